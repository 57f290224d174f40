-- Migration 0004: durable tasks, the outbox and activations. Mirrors the section
-- "Migration 0004 (tasks, outbox, activations)" of docs/schema.md and the PostgreSQL
-- migration of the same number.

-- One batch submitted at once and written in the background, chunk by chunk. A worker holds
-- a lease (lease_owner until lease_until); a running task whose lease ran out is taken over.
CREATE TABLE tasks (
    id          TEXT    PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    app_id      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    total       INTEGER NOT NULL,
    succeeded   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    notify      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER NULL,
    lease_owner TEXT    NULL,
    lease_until INTEGER NULL
);
CREATE INDEX tasks_claim_idx ON tasks (status, lease_until);

-- One row per item of a task; outcome is NULL until the chunk holding the item commits.
CREATE TABLE task_items (
    task_id TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    input   TEXT    NOT NULL,
    echo    TEXT    NOT NULL,
    outcome TEXT    NULL,
    PRIMARY KEY (task_id, idx)
);

-- Messages written in the transaction of the change that causes them, delivered afterwards.
-- AUTOINCREMENT so that an id is never reused.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER NULL,
    last_error      TEXT    NULL
);
CREATE INDEX outbox_due_idx ON outbox (channel, sent_at, next_attempt_at);

-- Activation links: only the hash of the token is stored.
CREATE TABLE activations (
    token_hash   TEXT    PRIMARY KEY,
    tenant_id    INTEGER NOT NULL,
    user_open_id TEXT    NOT NULL,
    outbox_id    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER NULL
);
