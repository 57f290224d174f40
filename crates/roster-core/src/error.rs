//! The one domain error. Every dialect maps each variant explicitly into its own envelope.

use std::borrow::Cow;
use std::fmt;

use crate::department::{MAX_CHILDREN, MAX_DEPARTMENTS, MAX_DEPTH};

/// The kinds of thing the directory holds, used to name what was not found or clashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A tenant (one company's directory).
    Tenant,
    /// An application credential of a tenant.
    App,
    /// A department.
    Department,
    /// A user.
    User,
    /// A user group.
    Group,
    /// An access token.
    Token,
    /// A batch task.
    Task,
    /// A member of a tenant's BI organisation (Quick BI).
    BiMember,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Tenant => "tenant",
            Entity::App => "app",
            Entity::Department => "department",
            Entity::User => "user",
            Entity::Group => "group",
            Entity::Token => "token",
            Entity::Task => "task",
            Entity::BiMember => "bi_member",
        })
    }
}

/// A value that the database keeps unique, named so that a dialect can choose its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueKey {
    /// `open_id` within a tenant.
    OpenId,
    /// `union_id` within a tenant.
    UnionId,
    /// The custom `user_id`, case-insensitively, among active users of a tenant.
    UserId,
    /// The e-mail address, case-insensitively, among active users of a tenant.
    Email,
    /// The mobile number in E.164 form, among active users of a tenant.
    Mobile,
    /// The login name, case-insensitively, among active users of a tenant.
    Username,
    /// The employee number among active users of a tenant.
    EmployeeNo,
    /// The custom `department_id` within a tenant.
    DepartmentId,
    /// The `open_department_id` within a tenant.
    OpenDepartmentId,
    /// A department name under one parent.
    DepartmentName,
    /// A tenant name.
    TenantName,
    /// An application id.
    AppId,
    /// A group name within a tenant.
    GroupName,
    /// A group id within a tenant (one a client chose; generated ones do not clash).
    GroupId,
}

impl fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UniqueKey::OpenId => "open_id",
            UniqueKey::UnionId => "union_id",
            UniqueKey::UserId => "user_id",
            UniqueKey::Email => "email",
            UniqueKey::Mobile => "mobile",
            UniqueKey::Username => "username",
            UniqueKey::EmployeeNo => "employee_no",
            UniqueKey::DepartmentId => "department_id",
            UniqueKey::OpenDepartmentId => "open_department_id",
            UniqueKey::DepartmentName => "department name",
            UniqueKey::TenantName => "tenant name",
            UniqueKey::AppId => "app_id",
            UniqueKey::GroupName => "group name",
            UniqueKey::GroupId => "group id",
        })
    }
}

/// What went wrong inside a store. Backends translate their driver errors into this.
/// `Clone`, so that a per-row refusal can be both returned and stored as the row's outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the backend names which one.
    #[error("duplicate {0}")]
    Duplicate(UniqueKey),
    /// The tenant's licence cap (maximum active users) would be exceeded.
    #[error("licence cap reached")]
    LicenceExceeded,
    /// A rule that only the write transaction can check for certain refused the write: a
    /// department move that would close a cycle with a move committed meanwhile.
    #[error("refused: {0:?}")]
    Conflict(ConflictKind),
    /// `save_checked` found an entity changed since the caller read it; nothing was
    /// written. The core reads again and reapplies its change.
    #[error("changed by another write since it was read")]
    Stale,
    /// An inserted user names a department that was deleted, or a leader who resigned,
    /// after the core checked it: only the write transaction sees this for certain. The
    /// field names which (`department_ids` or `leader_user_id`). The row is refused; the
    /// others of a non-atomic insert are written.
    #[error("{0} names something deleted since it was checked")]
    Gone(&'static str),
    /// Anything else: connection lost, disk full, a bug. Never shown to clients.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

/// The domain error. Deliberately not `#[non_exhaustive]`: a new variant must break every
/// dialect's mapping table until that dialect decides what it means.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Something addressed by a key does not exist (or is not visible to the caller).
    #[error("{entity} {key} not found")]
    NotFound {
        /// What kind of thing was looked up.
        entity: Entity,
        /// The key as the caller gave it.
        key: String,
    },
    /// A unique value is already taken.
    #[error("{entity} with this {field} already exists")]
    AlreadyExists {
        /// What kind of thing clashed.
        entity: Entity,
        /// Which unique value clashed.
        field: UniqueKey,
    },
    /// A value failed validation; `field` names it as the domain calls it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, in the domain's `snake_case` name.
        field: &'static str,
        /// A sentence for a person.
        reason: Cow<'static, str>,
    },
    /// A reference inside a request points at something unusable (a missing or resigned
    /// leader, a department that does not exist).
    #[error("invalid reference in {field}: {reason}")]
    BadReference {
        /// The referring field.
        field: &'static str,
        /// A sentence for a person.
        reason: Cow<'static, str>,
    },
    /// The operation is not allowed in the entity's current state (patching a resigned user,
    /// deleting a department that still has members). `kind` lets a dialect pick its code.
    #[error("{reason}")]
    Conflict {
        /// Which rule refused the operation.
        kind: ConflictKind,
        /// A sentence for a person.
        reason: Cow<'static, str>,
    },
    /// An idempotency key (Feishu's `client_token`) was reused with a different request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// The tenant's licence cap does not allow another active user.
    #[error("the tenant's licence allows no more active users")]
    LicenceExceeded,
    /// Credentials were missing, wrong or expired.
    #[error("unauthenticated: {0}")]
    Unauthenticated(Cow<'static, str>),
    /// The caller is known but lacks the scope or the department visibility.
    #[error("not permitted: {0}")]
    Forbidden(Cow<'static, str>),
    /// Storage failed; the detail is logged, never shown.
    #[error("storage failure")]
    Storage(#[source] StoreError),
}

/// The rules behind `CoreError::Conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The user has resigned (deleted) and cannot be changed or deleted again.
    UserResigned,
    /// The user is active, so there is nothing to resurrect.
    UserNotResigned,
    /// The department tree would exceed its depth limit.
    TreeTooDeep,
    /// A department would exceed its number of children.
    TooManyChildren,
    /// The tenant would exceed its number of departments.
    TooManyDepartments,
    /// A department still has members or children.
    DepartmentNotEmpty,
    /// A move or a leader change would create a cycle.
    Cycle,
    /// The root department cannot be moved or deleted.
    RootImmutable,
    /// A request with the same idempotency key is still being processed.
    InFlight,
    /// An atomic batch was not written because another item failed.
    NotWritten,
}

impl CoreError {
    /// Shorthand for a conflict.
    pub fn conflict(kind: ConflictKind, reason: impl Into<Cow<'static, str>>) -> Self {
        CoreError::Conflict {
            kind,
            reason: reason.into(),
        }
    }

    /// Shorthand for a validation failure.
    pub fn invalid(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        CoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for a missing entity.
    pub fn not_found(entity: Entity, key: impl Into<String>) -> Self {
        CoreError::NotFound {
            entity,
            key: key.into(),
        }
    }
}

impl From<StoreError> for CoreError {
    /// Duplicates and the licence cap are domain facts; everything else is a storage fault.
    /// The entity of a duplicate is inferred from the key, which names it unambiguously.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(field) => {
                let entity = match field {
                    UniqueKey::DepartmentId
                    | UniqueKey::OpenDepartmentId
                    | UniqueKey::DepartmentName => Entity::Department,
                    UniqueKey::TenantName => Entity::Tenant,
                    UniqueKey::AppId => Entity::App,
                    UniqueKey::GroupName | UniqueKey::GroupId => Entity::Group,
                    _ => Entity::User,
                };
                CoreError::AlreadyExists { entity, field }
            }
            StoreError::LicenceExceeded => CoreError::LicenceExceeded,
            StoreError::Conflict(kind) => CoreError::conflict(
                kind,
                match kind {
                    ConflictKind::Cycle => {
                        "a department cannot move under itself or its own subtree".to_owned()
                    }
                    ConflictKind::TooManyChildren => {
                        format!("a department may have at most {MAX_CHILDREN} children")
                    }
                    ConflictKind::TreeTooDeep => {
                        format!("departments may be at most {MAX_DEPTH} levels deep")
                    }
                    ConflictKind::TooManyDepartments => {
                        format!("a tenant may have at most {MAX_DEPARTMENTS} departments")
                    }
                    _ => "the write conflicts with a change committed meanwhile".to_owned(),
                },
            ),
            StoreError::Gone(field) => CoreError::BadReference {
                field,
                reason: match field {
                    // Checked inside the write: the leader resigned meanwhile, or was an
                    // item of the same write that a concurrent writer beat to one of its
                    // values, so that it was never written.
                    "leader_user_id" => {
                        "the leader is not an active user: resigned meanwhile, or not written"
                    }
                    "group_ids" => "the group does not exist",
                    "department_hrbps" => "the user is not an active user: resigned meanwhile",
                    _ => "the department does not exist",
                }
                .into(),
            },
            other @ (StoreError::Backend(_) | StoreError::Stale) => CoreError::Storage(other),
        }
    }
}

/// An error with its causes, `outer: inner: …`, for the log lines of background work,
/// which no dialect reports: `CoreError::Storage` displays only "storage failure" (clients
/// never see the detail), and the operator needs the store's own message.
#[must_use]
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::{chain, CoreError, StoreError};

    #[test]
    fn a_chain_names_the_store_failure_behind_a_storage_error() {
        let err = CoreError::Storage(StoreError::Backend("disk I/O error".into()));
        assert_eq!(err.to_string(), "storage failure", "clients see no detail");
        let logged = chain(&err);
        assert!(logged.starts_with("storage failure: "), "{logged}");
        assert!(logged.contains("disk I/O error"), "{logged}");
    }
}
