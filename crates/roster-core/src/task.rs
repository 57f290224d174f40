//! Durable batch tasks: a batch of users submitted at once and written in the background,
//! chunk by chunk, each chunk in one transaction together with its items' outcomes, so that
//! a crash at any moment resumes where the last committed chunk ended and writes every user
//! exactly once. Workers hold a lease on a task; a task whose worker died is taken over when
//! its lease runs out.

use std::borrow::Cow;
use std::fmt;

use crate::error::{ConflictKind, CoreError, Entity, StoreError, UniqueKey};
use crate::ids::{AppId, TenantId};
use crate::user::NewUser;

/// A task's id: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskId(String);

impl TaskId {
    /// Parses an id received from a client.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(CoreError::invalid(
                "task_id",
                "must be 32 lowercase hex digits",
            ))
        }
    }

    /// Wraps a value read back from the store or just generated.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// An import whose upload is still arriving: no worker may claim it until it is sealed.
    Receiving,
    /// Waiting for a worker.
    Queued,
    /// A worker holds it (or held it and died; its lease tells).
    Running,
    /// Every item has an outcome (items may have failed).
    Done,
    /// The task as a whole failed (an internal error), not merely some items.
    Failed,
}

impl TaskStatus {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Receiving => "receiving",
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
        }
    }

    /// Inverse of `as_str`.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        Some(match s {
            "receiving" => TaskStatus::Receiving,
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "done" => TaskStatus::Done,
            "failed" => TaskStatus::Failed,
            _ => return None,
        })
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// Tenant whose directory the task writes.
    pub tenant: TenantId,
    /// The app that submitted it (the actor of its changes).
    pub app_id: AppId,
    /// What it does, e.g. `add_user`.
    pub kind: String,
    /// Life stage.
    pub status: TaskStatus,
    /// Number of items.
    pub total: u32,
    /// Items written.
    pub succeeded: u32,
    /// Items refused.
    pub failed: u32,
    /// Whether created users get an invitation.
    pub notify: bool,
    /// Creation time, ms.
    pub created_at: i64,
    /// When it reached `Done` or `Failed`, ms.
    pub finished_at: Option<i64>,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// Until when the lease holds, ms.
    pub lease_until: Option<i64>,
}

impl Task {
    /// Items with an outcome.
    pub fn processed(&self) -> u32 {
        self.succeeded + self.failed
    }

    /// Percent done, 0-100.
    pub fn progress(&self) -> u32 {
        // u64 so that a 100 000-item task cannot overflow the multiplication.
        (u64::from(self.processed()) * 100)
            .checked_div(u64::from(self.total))
            .map_or(100, |p| p.min(100) as u32)
    }
}

/// A storable form of a per-item `CoreError`: the variant and its facts as text, so that a
/// task's results can be read back (and mapped by each dialect) after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The variant: `not_found`, `exists`, `invalid`, `bad_reference`, `conflict`,
    /// `licence`, `forbidden`, `unauthenticated`, `idempotency`, `storage`, or `dialect`
    /// for a refusal a dialect made before the core saw the item (`field` is its code).
    pub kind: String,
    /// The entity, unique key, field or conflict kind the variant names.
    pub field: String,
    /// The message for a person.
    pub detail: String,
}

/// Field names the domain uses, so that a stored error can be turned back into a
/// `CoreError` (whose field is a `&'static str`).
const FIELDS: &[&str] = &[
    "name",
    "en_name",
    "nickname",
    "email",
    "enterprise_email",
    "mobile",
    "gender",
    "avatar_key",
    "city",
    "country",
    "work_station",
    "employee_no",
    "employee_type",
    "job_title",
    "user_id",
    "open_id",
    "union_id",
    "department_id",
    "department_ids",
    "leader_user_id",
    "username",
    "description",
    "alias",
    "user_type",
    "acceptor",
    "parent_department_id",
    "owner",
    "password",
    "account_expires",
    "group_ids",
    "custom_attrs",
    "join_time",
    "request",
];

fn static_field(s: &str) -> &'static str {
    FIELDS.iter().copied().find(|f| *f == s).unwrap_or("value")
}

const UNIQUE_KEYS: &[UniqueKey] = &[
    UniqueKey::OpenId,
    UniqueKey::UnionId,
    UniqueKey::UserId,
    UniqueKey::Email,
    UniqueKey::Mobile,
    UniqueKey::Username,
    UniqueKey::EmployeeNo,
    UniqueKey::DepartmentId,
    UniqueKey::OpenDepartmentId,
    UniqueKey::DepartmentName,
    UniqueKey::TenantName,
    UniqueKey::AppId,
    UniqueKey::GroupName,
    UniqueKey::GroupId,
];

const CONFLICT_KINDS: &[(ConflictKind, &str)] = &[
    (ConflictKind::UserResigned, "user_resigned"),
    (ConflictKind::UserNotResigned, "user_not_resigned"),
    (ConflictKind::TreeTooDeep, "tree_too_deep"),
    (ConflictKind::TooManyChildren, "too_many_children"),
    (ConflictKind::TooManyDepartments, "too_many_departments"),
    (ConflictKind::DepartmentNotEmpty, "department_not_empty"),
    (ConflictKind::Cycle, "cycle"),
    (ConflictKind::RootImmutable, "root_immutable"),
    (ConflictKind::InFlight, "in_flight"),
    (ConflictKind::NotWritten, "not_written"),
];

const ENTITIES: &[Entity] = &[
    Entity::Tenant,
    Entity::App,
    Entity::Department,
    Entity::User,
    Entity::Group,
    Entity::Token,
    Entity::Task,
    Entity::BiMember,
];

impl ItemError {
    /// The storable form of a domain error.
    pub fn from_core(e: &CoreError) -> Self {
        let (kind, field) = match e {
            CoreError::NotFound { entity, .. } => ("not_found", entity.to_string()),
            CoreError::AlreadyExists { field, .. } => ("exists", field.to_string()),
            CoreError::Invalid { field, .. } => ("invalid", (*field).to_owned()),
            CoreError::BadReference { field, .. } => ("bad_reference", (*field).to_owned()),
            CoreError::Conflict { kind, .. } => (
                "conflict",
                CONFLICT_KINDS
                    .iter()
                    .find(|(k, _)| k == kind)
                    .map_or("not_written", |(_, n)| n)
                    .to_owned(),
            ),
            CoreError::IdempotencyMismatch => ("idempotency", String::new()),
            CoreError::LicenceExceeded => ("licence", String::new()),
            CoreError::Unauthenticated(_) => ("unauthenticated", String::new()),
            CoreError::Forbidden(_) => ("forbidden", String::new()),
            CoreError::Storage(_) => ("storage", String::new()),
        };
        let detail = match e {
            // Internal details are never stored where clients can read them.
            CoreError::Storage(_) => "internal error".to_owned(),
            CoreError::Invalid { reason, .. } | CoreError::BadReference { reason, .. } => {
                reason.to_string()
            }
            CoreError::NotFound { key, .. } => key.clone(),
            other => other.to_string(),
        };
        Self {
            kind: kind.to_owned(),
            field,
            detail,
        }
    }

    /// A dialect's own refusal of an item, under the dialect's code.
    pub fn dialect(code: impl std::fmt::Display, detail: impl Into<String>) -> Self {
        Self {
            kind: "dialect".to_owned(),
            field: code.to_string(),
            detail: detail.into(),
        }
    }

    /// The storable form of a store refusal.
    pub fn from_store(e: StoreError) -> Self {
        Self::from_core(&CoreError::from(e))
    }

    /// The domain error again, for a dialect's error table.
    pub fn to_core(&self) -> CoreError {
        let reason: Cow<'static, str> = Cow::Owned(self.detail.clone());
        match self.kind.as_str() {
            "not_found" => CoreError::NotFound {
                entity: ENTITIES
                    .iter()
                    .copied()
                    .find(|e| e.to_string() == self.field)
                    .unwrap_or(Entity::User),
                key: self.detail.clone(),
            },
            "exists" => {
                let field = UNIQUE_KEYS
                    .iter()
                    .copied()
                    .find(|k| k.to_string() == self.field)
                    .unwrap_or(UniqueKey::UserId);
                CoreError::from(StoreError::Duplicate(field))
            }
            "invalid" => CoreError::Invalid {
                field: static_field(&self.field),
                reason,
            },
            "bad_reference" => CoreError::BadReference {
                field: static_field(&self.field),
                reason,
            },
            "conflict" => CoreError::Conflict {
                kind: CONFLICT_KINDS
                    .iter()
                    .find(|(_, n)| *n == self.field)
                    .map_or(ConflictKind::NotWritten, |(k, _)| *k),
                reason,
            },
            "idempotency" => CoreError::IdempotencyMismatch,
            // A dialect's own per-item refusal (`field` holds its code): kept as an invalid
            // request for other readers; the dialect itself reads the code back.
            "dialect" => CoreError::Invalid {
                field: "request",
                reason,
            },
            "licence" => CoreError::LicenceExceeded,
            "unauthenticated" => CoreError::Unauthenticated(reason),
            "forbidden" => CoreError::Forbidden(reason),
            _ => CoreError::Storage(StoreError::Backend(self.detail.clone())),
        }
    }
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The user was created with these ids.
    Created {
        /// `ou_…`.
        open_id: String,
        /// `on_…`.
        union_id: String,
        /// The given or generated user id.
        user_id: String,
    },
    /// The item was refused.
    Failed(ItemError),
}

/// One item of a task: the parsed user (or why it could not be parsed), an opaque echo the
/// submitting dialect wants back in its status answer, and the outcome once processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskItem {
    /// Position in the request, from 0.
    pub index: u32,
    /// The user to create, or the error its parsing produced.
    pub input: Result<NewUser, ItemError>,
    /// Dialect data echoed in results (Feishu: name, e-mail, mobile, departments as sent).
    pub echo: String,
    /// Set once the item is processed.
    pub outcome: Option<ItemOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_errors_round_trip_through_their_stored_form() {
        let cases = vec![
            CoreError::not_found(Entity::Department, "od-x"),
            CoreError::AlreadyExists {
                entity: Entity::User,
                field: UniqueKey::Mobile,
            },
            CoreError::invalid("email", "is not a valid e-mail address"),
            CoreError::BadReference {
                field: "leader_user_id",
                reason: "leaders form a cycle".into(),
            },
            CoreError::conflict(ConflictKind::UserResigned, "gone"),
            CoreError::LicenceExceeded,
        ];
        for e in cases {
            let back = ItemError::from_core(&e).to_core();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }

    #[test]
    fn storage_errors_keep_no_detail() {
        let e = ItemError::from_core(&CoreError::Storage(StoreError::Backend("disk".into())));
        assert_eq!(e.detail, "internal error");
    }
}
