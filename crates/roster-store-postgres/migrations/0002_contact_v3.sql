-- Feishu contact v3 (issue 3): the change-event log, idempotency keys (client_token), JSAPI
-- tickets, and the columns behind user search and "departments led by". It follows the
-- section "Migration 0002" of docs/schema.md table for table, column for column and index
-- name for index name, so that it can be diffed against the SQLite migration.

-- Every change of a user or department, written by the store in the same transaction as the
-- change itself. `before` and `after` hold roster_store_common::user_snapshot /
-- department_snapshot.
CREATE TABLE change_events (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    before TEXT NULL,
    after TEXT NULL,
    note TEXT NULL
);
CREATE INDEX change_events_tenant_idx ON change_events (tenant_id, id);

-- One row per client_token of one app's calls of one operation; `result` stays NULL while
-- the claiming request runs.
CREATE TABLE idempotency_keys (
    tenant_id BIGINT NOT NULL,
    app_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result TEXT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, app_id, operation, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE jsapi_tickets (
    app_id TEXT PRIMARY KEY REFERENCES apps(app_id) ON DELETE CASCADE,
    ticket TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- lower(name) || U+001F || lower(en_name) || U+001F || lower(nickname), written by the store
-- (Unicode lower case, Rust's to_lowercase) on every insert and save. The backfill uses the
-- server's lower(), which agrees with it for every character the database's locale knows.
ALTER TABLE users ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE users SET search_text =
    lower(coalesce(doc::jsonb->>'name', '')) || E'\x1f'
    || lower(coalesce(doc::jsonb->>'en_name', '')) || E'\x1f'
    || lower(coalesce(doc::jsonb->>'nickname', ''));

-- The department's leader, copied out of `doc` so that it can be indexed.
ALTER TABLE departments ADD COLUMN leader_open_id TEXT NULL;
UPDATE departments SET leader_open_id = doc::jsonb->>'leader';
CREATE INDEX departments_leader_idx ON departments (tenant_id, leader_open_id);
