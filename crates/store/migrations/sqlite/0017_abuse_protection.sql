-- The rate-limit tier of an organization (NULL: the configured default),
-- the networks an API key or a user may be used from (NULL: anywhere; else
-- comma-separated CIDR ranges), and the client certificate subject an API
-- key is bound to (NULL: none; else that verified certificate authenticates
-- as the key, and the key's secret works only over it).
ALTER TABLE organizations ADD COLUMN rate_tier TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT;
ALTER TABLE users ADD COLUMN allowed_cidrs TEXT;
ALTER TABLE api_keys ADD COLUMN cert_subject TEXT;
CREATE UNIQUE INDEX api_keys_cert_subject ON api_keys (cert_subject) WHERE cert_subject IS NOT NULL;
