-- Roster schema on PostgreSQL. It follows docs/schema.md table for table, column for column
-- and index name for index name, so that it can be diffed against the SQLite migration.
-- Timestamps are milliseconds since the epoch. The `doc` columns hold JSON written and read
-- only through roster-store-common.

CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    tenant_key TEXT NOT NULL UNIQUE,
    max_active_users BIGINT NULL,
    active_users BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    -- The name is spelled out because errors.rs maps it to UniqueKey::TenantName.
    CONSTRAINT tenants_name_key UNIQUE (name),
    CHECK (active_users >= 0),
    -- The licence cap. Every write that changes the number of active users updates
    -- active_users in the same transaction, so this makes the cap a database rule.
    CHECK (max_active_users IS NULL OR active_users <= max_active_users)
);

CREATE TABLE apps (
    app_id TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    contact_scope TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX tokens_expires_idx ON tokens (expires_at);
CREATE INDEX tokens_app_idx ON tokens (app_id);

CREATE TABLE departments (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    open_department_id TEXT NOT NULL,
    department_id TEXT NOT NULL,
    department_id_fold TEXT NOT NULL,
    parent_id BIGINT NULL REFERENCES departments(id),
    name TEXT NOT NULL,
    sort_order BIGINT NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    is_deleted BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX departments_open_id_uq ON departments (tenant_id, open_department_id);
CREATE UNIQUE INDEX departments_custom_id_uq ON departments (tenant_id, department_id_fold)
    WHERE NOT is_deleted;
CREATE UNIQUE INDEX departments_name_uq ON departments (tenant_id, parent_id, name)
    WHERE NOT is_deleted;
CREATE INDEX departments_parent_idx ON departments (tenant_id, parent_id);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    open_id TEXT NOT NULL,
    union_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_fold TEXT NOT NULL,
    email_fold TEXT NULL,
    mobile TEXT NULL,
    username_fold TEXT NULL,
    employee_no TEXT NULL,
    name TEXT NOT NULL,
    leader_open_id TEXT NULL,
    is_resigned BOOLEAN NOT NULL,
    is_frozen BOOLEAN NOT NULL,
    is_activated BOOLEAN NOT NULL,
    is_exited BOOLEAN NOT NULL,
    is_unjoin BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resigned_at BIGINT NULL,
    logout_at BIGINT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX users_open_id_uq ON users (tenant_id, open_id);
CREATE UNIQUE INDEX users_union_id_uq ON users (tenant_id, union_id);
-- The remaining unique indexes are partial: a resigned user keeps its values for lookups of
-- old references but no longer blocks an active user from taking them.
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
-- Non-unique twins of the partial indexes serve lookups that include resigned users.
CREATE INDEX users_user_id_idx ON users (tenant_id, user_id_fold);
CREATE INDEX users_email_idx ON users (tenant_id, email_fold);
CREATE INDEX users_mobile_idx ON users (tenant_id, mobile);
CREATE INDEX users_leader_idx ON users (tenant_id, leader_open_id);

CREATE TABLE user_departments (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    department_id BIGINT NOT NULL REFERENCES departments(id),
    tenant_id BIGINT NOT NULL,
    position INTEGER NOT NULL,
    user_order BIGINT NOT NULL,
    department_order BIGINT NOT NULL,
    is_primary BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, department_id)
);
CREATE INDEX user_departments_dept_idx ON user_departments (department_id, user_id);

CREATE TABLE groups (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    group_id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_fold TEXT NOT NULL,
    description TEXT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_group_id_uq ON groups (tenant_id, group_id);
CREATE UNIQUE INDEX groups_name_uq ON groups (tenant_id, name_fold);
