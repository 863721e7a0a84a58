-- Consecutive failed logins of a user (reset by a successful one) and,
-- once there were too many, until when its logins are refused.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TEXT;
