//! Types of the one batch write path (`Directory::create_users`).

use crate::error::CoreError;
use crate::ids::{OpenId, UnionId, UserId};
use crate::user::{NewUser, UserKey};

/// How a batch treats failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// All items are written or none is.
    Atomic,
    /// Each item succeeds or fails on its own.
    BestEffort,
}

/// One item of a batch: a parsed user, or the error its parsing produced (so that the
/// report keeps request order and names every bad item).
pub type BatchItem = Result<NewUser, CoreError>;

/// The ids of a user the batch created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// Internal key.
    pub key: UserKey,
    /// Generated open id.
    pub open_id: OpenId,
    /// Generated union id.
    pub union_id: UnionId,
    /// Given or generated user id.
    pub user_id: UserId,
}

/// Per-item results in request order.
#[derive(Debug)]
pub struct BatchReport {
    /// One entry per item.
    pub items: Vec<Result<CreatedUser, CoreError>>,
}

impl BatchReport {
    /// How many items were written.
    pub fn ok_count(&self) -> usize {
        self.items.iter().filter(|r| r.is_ok()).count()
    }

    /// How many items failed.
    pub fn failed_count(&self) -> usize {
        self.items.len() - self.ok_count()
    }
}
