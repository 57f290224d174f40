//! Bulk imports: one upload of any size becomes ONE durable task of kind `IMPORT_KIND`.
//!
//! An upload can be far larger than anything that fits in one transaction, so an import task
//! is built in steps. It is created in the `Receiving` state with no rows; each chunk of
//! parsed rows is appended in its own transaction (the rows of one chunk are stored as one
//! compact record, not one row each); the upload's end seals it (`Receiving` → `Queued`),
//! and only then can a worker claim it. A task whose upload never ends (the client vanished,
//! the server died mid-upload) is never sealed: it is marked `Failed` and its rows dropped,
//! so an import never runs half.
//!
//! Workers then process the import chunk by chunk through the same `prepare_batch` as every
//! other write, and commit each chunk's users and its rows' outcomes in one transaction
//! (`Store::commit_import_chunk`), so a crash re-runs at most the uncommitted chunk.

use crate::audit::Change;
use crate::ids::TenantId;
use crate::outbox::OutboxMessage;
use crate::task::{ItemError, ItemOutcome, TaskId};
use crate::user::{NewUser, User};

/// The task kind of a bulk import.
pub const IMPORT_KIND: &str = "import_users";

/// Rows per import chunk: appended in one transaction, processed and committed in one.
/// Larger than `TASK_CHUNK` because per-transaction costs dominate small chunks of a large
/// import: at a million users every commit writes out (and checkpoints) index pages spread
/// over the whole of each random-keyed index, nearly as many for 5 000 rows as for 20 000,
/// so four times fewer commits wrote about half as much per imported user. A chunk is also
/// the unit of resumption after a crash and holds the writer for about two seconds.
pub const IMPORT_CHUNK_ROWS: usize = 20_000;

/// How long a receiving import waits for its next chunk before it counts as abandoned, ms.
pub const IMPORT_RECEIVE_TIMEOUT_MS: i64 = 10 * 60 * 1000;

/// A stored chunk still waiting for a worker: its rows' parsed inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportChunk {
    /// Position of the chunk in the upload, from 0.
    pub seq: u32,
    /// Index (from 0) of the chunk's first row in the upload.
    pub first_row: u32,
    /// Each row's user, or why it could not be parsed, in row order.
    pub items: Vec<Result<NewUser, ItemError>>,
}

/// A chunk's results: one outcome per row once the chunk is processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcomes {
    /// Position of the chunk in the upload.
    pub seq: u32,
    /// Index of the chunk's first row.
    pub first_row: u32,
    /// Number of rows in the chunk.
    pub rows: u32,
    /// The rows' outcomes in row order; `None` while the chunk is pending.
    pub outcomes: Option<Vec<ItemOutcome>>,
}

/// One processed chunk, committed in one transaction (see `Store::commit_import_chunk`).
#[derive(Debug)]
pub struct ImportCommit<'a> {
    /// The task's tenant.
    pub tenant: TenantId,
    /// The import task.
    pub task_id: &'a TaskId,
    /// The worker that must still hold the lease.
    pub worker: &'a str,
    /// The chunk.
    pub seq: u32,
    /// Index of the chunk's first row.
    pub first_row: u32,
    /// Number of rows in the chunk; every one gets an outcome.
    pub rows: u32,
    /// Users to insert (best effort), each with its row index, leaders first.
    pub users: &'a [(u32, User)],
    /// Rows refused before the write, with their errors.
    pub failures: &'a [(u32, ItemError)],
    /// Invitations, each written only if its row's user is.
    pub mails: &'a [(u32, OutboxMessage)],
    /// Who.
    pub change: &'a Change,
}

/// One row's result as reported to a client: its number in the upload (from 1) and its
/// outcome (`None` while not yet processed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRowResult {
    /// Row number, from 1 (a CSV header is not a row).
    pub row: u32,
    /// What became of it.
    pub outcome: Option<ItemOutcome>,
}
