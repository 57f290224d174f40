-- Durable tasks, the outbox and activations. It follows the section "Migration 0004 (tasks,
-- outbox, activations)" of docs/schema.md table for table, column for column and index name
-- for index name, and mirrors the SQLite migration of the same number.

-- A background batch. A worker holds it through a lease (lease_owner, lease_until); a
-- `running` task whose lease ran out belongs to a dead worker and may be claimed again.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    app_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    total BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    notify BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    lease_owner TEXT NULL,
    lease_until BIGINT NULL
);
CREATE INDEX tasks_claim_idx ON tasks (status, lease_until);

-- One row per item of a task. `input` holds roster_store_common::encode_item_input and
-- `outcome` encode_outcome; a NULL outcome is an item still to be processed. An outcome is
-- only ever written where it is NULL.
CREATE TABLE task_items (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    idx BIGINT NOT NULL,
    input TEXT NOT NULL,
    echo TEXT NOT NULL,
    outcome TEXT NULL,
    PRIMARY KEY (task_id, idx)
);

-- Messages written in the same transaction as the change that causes them, delivered
-- afterwards. Only `email` rows are ever claimed for delivery; `sms` rows are a record.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT NULL,
    last_error TEXT NULL
);
CREATE INDEX outbox_due_idx ON outbox (channel, sent_at, next_attempt_at);

-- The activation an invitation carries: only the hash of its token is stored.
CREATE TABLE activations (
    token_hash TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    user_open_id TEXT NOT NULL,
    outbox_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL
);
