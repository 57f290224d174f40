-- Vendor access keys (Alibaba Quick BI, Huawei Workspace): docs/schema.md "Migration 0008".
-- The secret is sealed (AEAD) by the application before it gets here; the database never
-- sees it in clear. Each key belongs to an app of the same kind, created with it.
CREATE TABLE access_keys (
    key_id        TEXT    PRIMARY KEY,
    app_id        TEXT    NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    kind          TEXT    NOT NULL,
    project_id    TEXT    NULL,
    sealed_secret BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX access_keys_tenant_idx ON access_keys (tenant_id, created_at);
CREATE INDEX access_keys_app_idx ON access_keys (app_id);
CREATE INDEX access_keys_project_idx ON access_keys (project_id);
