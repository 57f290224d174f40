-- The Roster schema on SQLite. It mirrors docs/schema.md and the PostgreSQL migration table
-- for table, column for column and index for index, so that the two can be diffed. SQLite
-- stores every integer and boolean (0/1) as INTEGER and every string as TEXT. Timestamps are
-- milliseconds since the epoch.
--
-- Unique rules are indexes with the names from docs/schema.md. SQLite reports a violation by
-- listing the indexed columns rather than the index name, so src/errors.rs maps both forms.
-- The two CHECK constraints on tenants carry the names PostgreSQL would generate for them
-- (tenants_active_users_check, tenants_check), so that both stores report the same name.

CREATE TABLE tenants (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL CONSTRAINT tenants_name_key UNIQUE,
    tenant_key       TEXT    NOT NULL UNIQUE,
    max_active_users INTEGER NULL,
    active_users     INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    CONSTRAINT tenants_active_users_check CHECK (active_users >= 0),
    -- The licence cap: the store adds to active_users in the same transaction that
    -- inserts or resurrects users, so this CHECK makes the cap a database rule.
    CONSTRAINT tenants_check CHECK (max_active_users IS NULL OR active_users <= max_active_users)
);

CREATE TABLE apps (
    app_id        TEXT    PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    secret_hash   TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    contact_scope TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT    PRIMARY KEY,
    app_id     TEXT    NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    tenant_id  INTEGER NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_expires_idx ON tokens (expires_at);
CREATE INDEX tokens_app_idx ON tokens (app_id);

CREATE TABLE departments (
    id                 INTEGER PRIMARY KEY,
    tenant_id          INTEGER NOT NULL REFERENCES tenants (id),
    open_department_id TEXT    NOT NULL,
    department_id      TEXT    NOT NULL,
    department_id_fold TEXT    NOT NULL,
    parent_id          INTEGER NULL REFERENCES departments (id),
    name               TEXT    NOT NULL,
    sort_order         INTEGER NOT NULL DEFAULT 0,
    doc                TEXT    NOT NULL,
    is_deleted         INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE UNIQUE INDEX departments_open_id_uq ON departments (tenant_id, open_department_id);
CREATE UNIQUE INDEX departments_custom_id_uq ON departments (tenant_id, department_id_fold)
    WHERE NOT is_deleted;
CREATE UNIQUE INDEX departments_name_uq ON departments (tenant_id, parent_id, name)
    WHERE NOT is_deleted;
CREATE INDEX departments_parent_idx ON departments (tenant_id, parent_id);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id),
    open_id        TEXT    NOT NULL,
    union_id       TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    user_id_fold   TEXT    NOT NULL,
    email_fold     TEXT    NULL,
    mobile         TEXT    NULL,
    username_fold  TEXT    NULL,
    employee_no    TEXT    NULL,
    name           TEXT    NOT NULL,
    leader_open_id TEXT    NULL,
    is_resigned    INTEGER NOT NULL,
    is_frozen      INTEGER NOT NULL,
    is_activated   INTEGER NOT NULL,
    is_exited      INTEGER NOT NULL,
    is_unjoin      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    resigned_at    INTEGER NULL,
    logout_at      INTEGER NULL,
    doc            TEXT    NOT NULL
);
CREATE UNIQUE INDEX users_open_id_uq ON users (tenant_id, open_id);
CREATE UNIQUE INDEX users_union_id_uq ON users (tenant_id, union_id);
-- Resigned users keep their values for lookups and resurrection but give them up for reuse,
-- so the unique indexes cover active users only.
CREATE UNIQUE INDEX users_user_id_uq ON users (tenant_id, user_id_fold)
    WHERE NOT is_resigned;
CREATE UNIQUE INDEX users_email_uq ON users (tenant_id, email_fold)
    WHERE NOT is_resigned AND email_fold IS NOT NULL;
CREATE UNIQUE INDEX users_mobile_uq ON users (tenant_id, mobile)
    WHERE NOT is_resigned AND mobile IS NOT NULL;
CREATE UNIQUE INDEX users_username_uq ON users (tenant_id, username_fold)
    WHERE NOT is_resigned AND username_fold IS NOT NULL;
CREATE UNIQUE INDEX users_employee_no_uq ON users (tenant_id, employee_no)
    WHERE NOT is_resigned AND employee_no IS NOT NULL;
-- Lookups of resigned users by an old id, e-mail or mobile cannot use the partial indexes.
CREATE INDEX users_user_id_idx ON users (tenant_id, user_id_fold);
CREATE INDEX users_email_idx ON users (tenant_id, email_fold);
CREATE INDEX users_mobile_idx ON users (tenant_id, mobile);
CREATE INDEX users_leader_idx ON users (tenant_id, leader_open_id);

CREATE TABLE user_departments (
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    department_id    INTEGER NOT NULL REFERENCES departments (id),
    tenant_id        INTEGER NOT NULL,
    position         INTEGER NOT NULL,
    user_order       INTEGER NOT NULL,
    department_order INTEGER NOT NULL,
    is_primary       INTEGER NOT NULL,
    PRIMARY KEY (user_id, department_id)
);
CREATE INDEX user_departments_dept_idx ON user_departments (department_id, user_id);

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    group_id    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    name_fold   TEXT    NOT NULL,
    description TEXT    NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX groups_group_id_uq ON groups (tenant_id, group_id);
CREATE UNIQUE INDEX groups_name_uq ON groups (tenant_id, name_fold);
