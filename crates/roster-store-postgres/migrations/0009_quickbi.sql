-- Migration 0009: the Quick BI organisation and the replay guard of signed requests.
-- Mirrors the section "Migration 0009 (Quick BI)" of docs/schema.md and the SQLite
-- migration of the same number.

-- Members of a tenant's BI organisation. The primary key is what decides "already a
-- member", so that two racing batches cannot both add one user. group_ids is a JSON array
-- of group ids (groups.group_id); nickname_fold is the lower-cased nickname for keyword
-- search.
CREATE TABLE bi_members (
    tenant_id     BIGINT NOT NULL REFERENCES tenants (id),
    open_id       TEXT    NOT NULL,
    nickname      TEXT    NOT NULL,
    nickname_fold TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL,
    is_auth_admin BOOLEAN NOT NULL,
    user_type     SMALLINT NOT NULL CHECK (user_type IN (1, 2, 3)),
    group_ids     TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, open_id)
);
CREATE INDEX bi_members_order_idx ON bi_members (tenant_id, created_at, open_id);

-- One row per tenant that has a BI organisation: the number of members, changed in the
-- same transaction as the members under the licence cap of the call.
CREATE TABLE bi_orgs (
    tenant_id    BIGINT PRIMARY KEY REFERENCES tenants (id),
    member_count BIGINT NOT NULL CHECK (member_count >= 0)
);

-- Nonces of signed requests (Alibaba x-acs-signature-nonce / SignatureNonce), claimed per
-- access key until the end of the timestamp window; the primary key makes a racing reuse
-- lose. Expired rows are purged by the server's purge loop.
CREATE TABLE signature_nonces (
    access_key_id TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (access_key_id, nonce)
);
CREATE INDEX signature_nonces_expiry_idx ON signature_nonces (expires_at);
