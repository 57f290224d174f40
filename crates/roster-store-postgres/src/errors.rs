//! Translation of sqlx errors into the port's `StoreError`.
//!
//! The database is the final judge of uniqueness and of the licence cap, so the names of its
//! unique indexes and the table of its cap CHECK are part of this crate's contract: they are
//! listed in `docs/schema.md` and must match `migrations/0001_init.sql`.

use roster_core::{StoreError, UniqueKey};

/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a CHECK violation.
const CHECK_VIOLATION: &str = "23514";
/// SQLSTATE of a transaction that PostgreSQL ended to break a deadlock.
const DEADLOCK_DETECTED: &str = "40P01";
/// SQLSTATE of a transaction that could not be serialized with a concurrent one.
const SERIALIZATION_FAILURE: &str = "40001";

/// The unique key that a constraint or unique index enforces, by its name.
///
/// Constraints that are absent here (`tenants_tenant_key_key`, the primary keys of tokens
/// and memberships) guard generated values: a clash there is a bug or
/// a broken invariant, not something a client can be told about, so it stays a backend error.
fn unique_key(constraint: &str) -> Option<UniqueKey> {
    Some(match constraint {
        "users_open_id_uq" => UniqueKey::OpenId,
        "users_union_id_uq" => UniqueKey::UnionId,
        "users_user_id_uq" => UniqueKey::UserId,
        "users_email_uq" => UniqueKey::Email,
        "users_mobile_uq" => UniqueKey::Mobile,
        "users_username_uq" => UniqueKey::Username,
        "users_employee_no_uq" => UniqueKey::EmployeeNo,
        "departments_open_id_uq" => UniqueKey::OpenDepartmentId,
        "departments_custom_id_uq" => UniqueKey::DepartmentId,
        "departments_name_uq" => UniqueKey::DepartmentName,
        "tenants_name_key" => UniqueKey::TenantName,
        "apps_pkey" | "access_keys_pkey" => UniqueKey::AppId,
        "groups_name_uq" => UniqueKey::GroupName,
        "groups_group_id_uq" => UniqueKey::GroupId,
        _ => return None,
    })
}

/// Maps one sqlx error, naming what was being done for the backend case.
pub(crate) fn map_sqlx(context: &str, err: &sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = err {
        match db.code().as_deref() {
            Some(UNIQUE_VIOLATION) => {
                if let Some(key) = db.constraint().and_then(unique_key) {
                    return StoreError::Duplicate(key);
                }
            }
            // Both CHECKs of `tenants` are about the active-user count; the only way a
            // correct store trips one is by exceeding the licence cap.
            Some(CHECK_VIOLATION) if db.table() == Some("tenants") => {
                return StoreError::LicenceExceeded;
            }
            // The database rolled the whole transaction back, so nothing of it was written
            // and running it again from a fresh read is safe: that is what `Stale` tells
            // the core, whose read-modify-write operations retry it. The lock order of
            // this crate is meant to make these impossible; the log keeps any that happen.
            Some(DEADLOCK_DETECTED | SERIALIZATION_FAILURE) => {
                tracing::warn!("PostgreSQL ended a transaction to {context}: {err}");
                return StoreError::Stale;
            }
            _ => {}
        }
    }
    StoreError::Backend(format!("failed to {context}: {err}"))
}

/// `.context("verb phrase")` on sqlx results, in the house style.
pub(crate) trait Context<T> {
    /// Maps the error through `map_sqlx` with `context` describing the operation.
    fn context(self, context: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| map_sqlx(context, &e))
    }
}

/// A value read from the database that does not fit the domain type. Rows are only ever
/// written by this crate, so this means corruption or a manual edit, never a client error.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored value is out of range: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unique indexes of the schema that are no client's duplicate (see `unique_key`): they
    /// guard generated values (a clash is a bug), or the statements that write them settle
    /// a clash themselves (`ON CONFLICT`: idempotency keys, nonces, search terms, Quick BI
    /// members).
    const GENERATED: &[&str] = &[
        "tenants_pkey",
        "tenants_tenant_key_key",
        "tokens_pkey",
        "user_departments_pkey",
        "departments_pkey",
        "users_pkey",
        "groups_pkey",
        "change_events_pkey",
        "idempotency_keys_pkey",
        "jsapi_tickets_pkey",
        "tasks_pkey",
        "task_items_pkey",
        "outbox_pkey",
        "activations_pkey",
        "user_search_terms_pkey",
        "import_chunks_pkey",
        "bi_members_pkey",
        "bi_orgs_pkey",
        "signature_nonces_pkey",
    ];

    /// Every unique index and constraint of the migrated schema maps to a client-facing key
    /// or is listed as guarding generated values, and every name `unique_key` knows exists:
    /// a migration that renamed an index would otherwise turn a duplicate into a 500.
    #[tokio::test]
    async fn every_unique_index_of_the_schema_is_mapped_or_generated() {
        let Some(store) = crate::test_store("every_unique_index_of_the_schema")
            .await
            .unwrap()
        else {
            return;
        };
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indisunique AND n.nspname = current_schema() \
             AND NOT starts_with(c.relname::text, '_sqlx')",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert!(names.len() >= 14, "{names:?}");
        let unmapped: Vec<&String> = names
            .iter()
            .filter(|n| unique_key(n).is_none() && !GENERATED.contains(&n.as_str()))
            .collect();
        let mut surplus: Vec<&str> = GENERATED
            .iter()
            .copied()
            .filter(|g| !names.iter().any(|n| n == g))
            .collect();
        for known in [
            "users_open_id_uq",
            "users_union_id_uq",
            "users_user_id_uq",
            "users_email_uq",
            "users_mobile_uq",
            "users_username_uq",
            "users_employee_no_uq",
            "departments_open_id_uq",
            "departments_custom_id_uq",
            "departments_name_uq",
            "tenants_name_key",
            "apps_pkey",
            "access_keys_pkey",
            "groups_name_uq",
            "groups_group_id_uq",
        ] {
            assert!(unique_key(known).is_some(), "{known}");
            if !names.iter().any(|n| n == known) {
                surplus.push(known);
            }
        }
        assert!(
            unmapped.is_empty(),
            "unique indexes with no mapping: {unmapped:?}"
        );
        assert!(
            surplus.is_empty(),
            "listed names not in the schema: {surplus:?}"
        );
    }

    #[test]
    fn generated_value_clashes_are_not_client_duplicates() {
        assert_eq!(unique_key("tenants_tenant_key_key"), None);
        assert_eq!(unique_key("user_departments_pkey"), None);
    }

    #[test]
    fn non_database_errors_are_backend_errors_with_context() {
        let e = map_sqlx("load user row", &sqlx::Error::RowNotFound);
        match e {
            StoreError::Backend(msg) => assert!(msg.starts_with("failed to load user row")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
