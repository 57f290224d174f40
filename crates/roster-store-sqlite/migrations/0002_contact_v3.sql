-- Migration 0002 (issue 3): change events, idempotency keys, JSAPI tickets, name search and
-- department leaders. Mirrors the section "Migration 0002" of docs/schema.md and the
-- PostgreSQL migration of the same number.

-- One row per change of a user or department, written in the transaction of the change.
-- AUTOINCREMENT so that an id is never reused, even after the newest events are deleted:
-- readers page through the log by id.
CREATE TABLE change_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    entity    TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    before    TEXT    NULL,
    after     TEXT    NULL,
    note      TEXT    NULL
);
CREATE INDEX change_events_tenant_idx ON change_events (tenant_id, id);

-- Feishu's client_token: one claim per app, operation and key.
CREATE TABLE idempotency_keys (
    tenant_id   INTEGER NOT NULL,
    app_id      TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    result      TEXT    NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, app_id, operation, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE jsapi_tickets (
    app_id     TEXT    PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    ticket     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- lower(name) || char(31) || lower(en_name) || char(31) || lower(nickname), searched with
-- instr() by search_users. The store writes it with Rust's (Unicode) lower-casing; SQLite's
-- lower() folds ASCII only, so the migration hook in src/lib.rs re-folds the backfilled rows
-- that hold other characters.
ALTER TABLE users ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE users SET search_text =
    lower(coalesce(json_extract(doc, '$.name'), '')) || char(31) ||
    lower(coalesce(json_extract(doc, '$.en_name'), '')) || char(31) ||
    lower(coalesce(json_extract(doc, '$.nickname'), ''));

-- The leader is in the department document; a column lets departments_led_by use an index.
ALTER TABLE departments ADD COLUMN leader_open_id TEXT NULL;
UPDATE departments SET leader_open_id = json_extract(doc, '$.leader');
CREATE INDEX departments_leader_idx ON departments (tenant_id, leader_open_id);
