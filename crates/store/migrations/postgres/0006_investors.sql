-- Investors. Personal data (name, e-mail, external reference) is stored
-- sealed (rwa_domain::pii: `v1.<key id>.<hex>`, bound to its row and column);
-- exact search compares keyed hashes of the normalised values (`*_index`),
-- never plaintext. `pii_key` is the key every sealed column of the row uses,
-- so a rotation finds the rows still under the previous key.
CREATE TABLE investors (
    id                        UUID PRIMARY KEY,
    org_id                    UUID NOT NULL REFERENCES organizations (id),
    pii_key                   TEXT NOT NULL,
    name_sealed               TEXT NOT NULL,
    email_sealed              TEXT NOT NULL,
    external_ref_sealed       TEXT,
    name_index                TEXT NOT NULL,
    external_ref_index        TEXT,
    country                   TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('individual', 'entity')),
    accredited                BOOLEAN NOT NULL,
    accreditation_expires_at  TIMESTAMPTZ,
    kyc_status                TEXT NOT NULL DEFAULT 'pending'
                              CHECK (kyc_status IN ('pending', 'approved', 'rejected', 'expired')),
    kyc_expires_at            TIMESTAMPTZ,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((external_ref_sealed IS NULL) = (external_ref_index IS NULL))
);
CREATE INDEX investors_org ON investors (org_id, id);
CREATE INDEX investors_name ON investors (org_id, name_index);
-- An external reference names one investor of the organization.
CREATE UNIQUE INDEX investors_external_ref ON investors (org_id, external_ref_index)
    WHERE external_ref_index IS NOT NULL;
CREATE INDEX investors_pii_key ON investors (pii_key);
