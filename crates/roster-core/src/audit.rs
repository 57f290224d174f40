//! The audit and change-event record. Every change of a user or department is written by
//! the store in the same transaction as the change itself, so the record is complete by
//! construction, and event delivery (Feishu `contact.user.*_v3`) can later be built by
//! reading it, without touching any write path.

use std::fmt;

use crate::error::Entity;
use crate::ids::{AppId, TenantId};
use crate::store::IdempotencyKey;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An app, through an API.
    App(AppId),
    /// An administrator at the command line.
    Cli,
    /// Roster itself (retention purges, background tasks).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::App(id) => write!(f, "app:{id}"),
            Actor::Cli => f.write_str("cli"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// The context of one write: who made it, and an optional note recorded with each event
/// (for example the hand-over of a deleted user's resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who.
    pub actor: Actor,
    /// Extra detail for the record.
    pub note: Option<String>,
    /// An idempotency key (Feishu's `client_token`) claimed for this write, with the id of
    /// the entity it creates: the store records that result in the write's own transaction,
    /// so that a process dying between the commit and the key's completion cannot leave the
    /// key claimed with no result behind an entity that exists (a retry would then create
    /// it again, or be refused as a duplicate of itself).
    pub completes: Option<(IdempotencyKey, String)>,
}

impl Change {
    /// A change by `actor` with no note.
    pub fn by(actor: Actor) -> Self {
        Self {
            actor,
            note: None,
            completes: None,
        }
    }
}

/// What happened to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// It was created.
    Created,
    /// Some of its fields changed.
    Updated,
    /// It was deleted (for users: resigned).
    Deleted,
    /// A resigned user came back.
    Resurrected,
}

impl ChangeAction {
    /// Stable name for storage and display.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Created => "created",
            ChangeAction::Updated => "updated",
            ChangeAction::Deleted => "deleted",
            ChangeAction::Resurrected => "resurrected",
        }
    }

    /// Inverse of `as_str`.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        Some(match s {
            "created" => ChangeAction::Created,
            "updated" => ChangeAction::Updated,
            "deleted" => ChangeAction::Deleted,
            "resurrected" => ChangeAction::Resurrected,
            _ => return None,
        })
    }
}

/// One recorded change, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Position in the log (increasing).
    pub id: i64,
    /// Tenant of the entity.
    pub tenant: TenantId,
    /// Kind of entity (`User`, `Department` or `Group`).
    pub entity: Entity,
    /// The entity's open id (a group's `group_id`).
    pub entity_id: String,
    /// What happened.
    pub action: ChangeAction,
    /// Who did it, as `Actor` displays it.
    pub actor: String,
    /// When, ms.
    pub at: i64,
    /// The entity before, in the store's document form (absent for a creation).
    pub before: Option<String>,
    /// The entity after (absent for a purge).
    pub after: Option<String>,
    /// The change's note.
    pub note: Option<String>,
}
