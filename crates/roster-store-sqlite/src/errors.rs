//! Translation of SQLite errors into `StoreError`.
//!
//! Uniqueness is enforced by the database (see `migrations/0001_init.sql`), so a clash comes
//! back as a constraint error and has to be turned into the domain's `UniqueKey`. SQLite
//! reports a unique violation as `UNIQUE constraint failed: ` followed by the indexed columns
//! (`users.tenant_id, users.email_fold`), and only names the index (`index 'x'`) when the
//! index is on expressions. The table below therefore records both the index name from
//! `docs/schema.md` and its column list, and a unit test checks the column lists against
//! the migrated schema so that an index change cannot silently break the mapping.

use roster_core::{StoreError, UniqueKey};
use rusqlite::ffi;

/// One unique rule of the schema: its name in `docs/schema.md`, the columns SQLite lists
/// when it fires, and the domain key it means (`None` for values the store generates, whose
/// clash is a bug rather than a client error).
pub(crate) struct UniqueRule {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static str,
    pub(crate) key: Option<UniqueKey>,
}

const fn rule(name: &'static str, columns: &'static str, key: Option<UniqueKey>) -> UniqueRule {
    UniqueRule { name, columns, key }
}

/// Every unique rule of the schema. The names of constraints that are not separate indexes
/// (`tenants_name_key`, the primary keys) follow PostgreSQL's generated names so that both
/// stores speak of them alike.
pub(crate) const UNIQUE_RULES: &[UniqueRule] = &[
    rule(
        "tenants_name_key",
        "tenants.name",
        Some(UniqueKey::TenantName),
    ),
    rule("tenants_tenant_key_key", "tenants.tenant_key", None),
    rule("apps_pkey", "apps.app_id", Some(UniqueKey::AppId)),
    rule("tokens_pkey", "tokens.token_hash", None),
    rule(
        "access_keys_pkey",
        "access_keys.key_id",
        Some(UniqueKey::AppId),
    ),
    rule(
        "departments_open_id_uq",
        "departments.tenant_id, departments.open_department_id",
        Some(UniqueKey::OpenDepartmentId),
    ),
    rule(
        "departments_custom_id_uq",
        "departments.tenant_id, departments.department_id_fold",
        Some(UniqueKey::DepartmentId),
    ),
    rule(
        "departments_name_uq",
        "departments.tenant_id, departments.parent_id, departments.name",
        Some(UniqueKey::DepartmentName),
    ),
    rule(
        "users_open_id_uq",
        "users.tenant_id, users.open_id",
        Some(UniqueKey::OpenId),
    ),
    rule(
        "users_union_id_uq",
        "users.tenant_id, users.union_id",
        Some(UniqueKey::UnionId),
    ),
    rule(
        "users_user_id_uq",
        "users.tenant_id, users.user_id_fold",
        Some(UniqueKey::UserId),
    ),
    rule(
        "users_email_uq",
        "users.tenant_id, users.email_fold",
        Some(UniqueKey::Email),
    ),
    rule(
        "users_mobile_uq",
        "users.tenant_id, users.mobile",
        Some(UniqueKey::Mobile),
    ),
    rule(
        "users_username_uq",
        "users.tenant_id, users.username_fold",
        Some(UniqueKey::Username),
    ),
    rule(
        "users_employee_no_uq",
        "users.tenant_id, users.employee_no",
        Some(UniqueKey::EmployeeNo),
    ),
    rule(
        "user_departments_pkey",
        "user_departments.user_id, user_departments.department_id",
        None,
    ),
    rule(
        "groups_group_id_uq",
        "groups.tenant_id, groups.group_id",
        Some(UniqueKey::GroupId),
    ),
    rule(
        "groups_name_uq",
        "groups.tenant_id, groups.name_fold",
        Some(UniqueKey::GroupName),
    ),
    // Migration 0002. A clash of idempotency keys is handled by ON CONFLICT and one of
    // tickets by an upsert, so these only fire on a bug.
    rule("change_events_pkey", "change_events.id", None),
    rule(
        "idempotency_keys_pkey",
        "idempotency_keys.tenant_id, idempotency_keys.app_id, idempotency_keys.operation, \
         idempotency_keys.key",
        None,
    ),
    rule("jsapi_tickets_pkey", "jsapi_tickets.app_id", None),
];

/// The CHECK constraint that holds the licence cap (named as PostgreSQL names a table-level
/// CHECK on `tenants`, see the migration).
const LICENCE_CHECK: &str = "tenants_check";

/// Finds the rule a `UNIQUE constraint failed: …` message refers to.
fn unique_rule(detail: &str) -> Option<&'static UniqueRule> {
    let detail = detail.trim();
    if let Some(name) = detail
        .strip_prefix("index '")
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return UNIQUE_RULES.iter().find(|r| r.name == name);
    }
    // Compare column lists item by item so that spacing differences between SQLite versions
    // do not matter; the order is the index's column order in every version.
    let wanted = detail.split(',').map(str::trim);
    UNIQUE_RULES
        .iter()
        .find(|r| r.columns.split(',').map(str::trim).eq(wanted.clone()))
}

/// Maps a SQLite error to the store's error. `context` says what was being done, as a verb
/// phrase ("insert user"), and ends up in `Backend` messages only.
pub(crate) fn map_sqlite(err: &rusqlite::Error, context: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, message) = err {
        if code.code == ffi::ErrorCode::ConstraintViolation {
            let message = message.as_deref().unwrap_or_default();
            match code.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    let detail = message
                        .strip_prefix("UNIQUE constraint failed:")
                        .unwrap_or(message);
                    if let Some(UniqueRule { key: Some(key), .. }) = unique_rule(detail) {
                        return StoreError::Duplicate(*key);
                    }
                }
                ffi::SQLITE_CONSTRAINT_CHECK => {
                    let detail = message
                        .strip_prefix("CHECK constraint failed:")
                        .unwrap_or(message)
                        .trim();
                    if detail == LICENCE_CHECK {
                        return StoreError::LicenceExceeded;
                    }
                }
                _ => {}
            }
        }
    }
    StoreError::Backend(format!("{context}: {err}"))
}

/// `.context("verb phrase")` on rusqlite results, as `anyhow` spells it.
pub(crate) trait SqlContext<T> {
    /// Maps the error through [`map_sqlite`].
    fn context(self, what: &str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn context(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| map_sqlite(&e, what))
    }
}

/// A stored value that does not decode: the file was changed behind the store's back.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored row is corrupt: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        conn
    }

    /// The column lists in `UNIQUE_RULES` must be those of the real indexes, or the mapping
    /// would quietly turn clashes into backend errors.
    #[test]
    fn every_index_rule_matches_the_migrated_schema() {
        let conn = migrated();
        for r in UNIQUE_RULES {
            let table = r.columns.split('.').next().unwrap();
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .unwrap();
            let cols: Vec<String> = stmt
                .query_map([r.name], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            if cols.is_empty() {
                // Constraints declared inline (column UNIQUE, primary keys) have SQLite's own
                // index names; there the column list is all SQLite ever reports.
                assert!(
                    r.name.ends_with("_key") || r.name.ends_with("_pkey"),
                    "no index named {}",
                    r.name
                );
                continue;
            }
            let expected: Vec<String> = cols.iter().map(|c| format!("{table}.{c}")).collect();
            assert_eq!(r.columns, expected.join(", "), "columns of {}", r.name);
        }
    }

    #[test]
    fn every_unique_index_of_the_schema_has_a_rule() {
        let conn = migrated();
        let mut stmt = conn
            .prepare(
                "SELECT il.name FROM sqlite_master m, pragma_index_list(m.name) il \
                 WHERE m.type = 'table' AND il.\"unique\" = 1 AND il.origin = 'c'",
            )
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(names.len() >= 11);
        for name in names {
            assert!(
                UNIQUE_RULES.iter().any(|r| r.name == name),
                "index {name} has no rule"
            );
        }
    }

    #[test]
    fn messages_in_both_forms_map_to_keys() {
        assert_eq!(
            unique_rule(" users.tenant_id, users.email_fold").map(|r| r.key),
            Some(Some(UniqueKey::Email))
        );
        assert_eq!(
            unique_rule("index 'groups_name_uq'").map(|r| r.key),
            Some(Some(UniqueKey::GroupName))
        );
        assert!(unique_rule("users.tenant_id").is_none());
    }

    #[test]
    fn a_real_partial_index_violation_maps_to_its_key() {
        let conn = migrated();
        conn.execute_batch(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 't', 'k', 0);",
        )
        .unwrap();
        let insert = |open: &str, union: &str| {
            conn.execute(
                "INSERT INTO users (tenant_id, open_id, union_id, user_id, user_id_fold, \
                 email_fold, name, is_resigned, is_frozen, is_activated, is_exited, is_unjoin, \
                 created_at, updated_at, doc) \
                 VALUES (1, ?1, ?2, ?1, ?1, 'a@b.c', 'n', 0, 0, 0, 0, 0, 0, 0, '{}')",
                [open, union],
            )
        };
        insert("u1", "n1").unwrap();
        let err = insert("u2", "n2").unwrap_err();
        assert!(matches!(
            map_sqlite(&err, "insert user"),
            StoreError::Duplicate(UniqueKey::Email)
        ));
        let err = conn
            .execute(
                "UPDATE tenants SET max_active_users = 0, active_users = 1",
                [],
            )
            .unwrap_err();
        assert!(matches!(
            map_sqlite(&err, "update tenant"),
            StoreError::LicenceExceeded
        ));
        let err = conn
            .execute("UPDATE tenants SET active_users = -1", [])
            .unwrap_err();
        assert!(matches!(
            map_sqlite(&err, "update tenant"),
            StoreError::Backend(_)
        ));
    }
}
