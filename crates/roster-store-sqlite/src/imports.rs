//! Bulk imports (`import_chunks`, migration 0007): an import task receives its rows chunk by
//! chunk while its status is `receiving`, is sealed into `queued`, and is committed chunk by
//! chunk: the chunk's users, its outcomes (one record per chunk), the task's counters and
//! the invitations in ONE transaction that also checks the worker's lease.

use std::collections::HashSet;

use roster_core::{
    ImportChunk, ImportCommit, ImportOutcomes, ItemError, ItemOutcome, OutboxMessage, StoreError,
    Task, TenantId, UserKey,
};
use roster_store_common::{
    decode_chunk_inputs, decode_chunk_outcomes, encode_chunk_inputs, encode_chunk_outcomes,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::events::ChangeCtx;
use crate::outbox;
use crate::users::{self, UserRow};

/// Stores the task row of a new, receiving import.
pub(crate) fn create_import(conn: &mut Connection, task: &Task) -> Result<(), StoreError> {
    crate::tasks::create_task(conn, task, &[])
}

/// A chunk encoded ahead of the blocking task.
pub(crate) struct ChunkIn {
    pub(crate) task_id: String,
    pub(crate) seq: u32,
    pub(crate) first_row: u32,
    pub(crate) rows: u32,
    pub(crate) input: String,
    pub(crate) deadline: i64,
}

impl ChunkIn {
    pub(crate) fn of(id: &roster_core::TaskId, chunk: &ImportChunk, deadline: i64) -> Self {
        Self {
            task_id: id.as_str().to_owned(),
            seq: chunk.seq,
            first_row: chunk.first_row,
            rows: chunk.items.len() as u32,
            input: encode_chunk_inputs(&chunk.items),
            deadline,
        }
    }
}

/// Appends a chunk to a receiving import (its total and deadline move in the same
/// transaction); false when the import is not receiving.
pub(crate) fn append_chunk(conn: &mut Connection, c: &ChunkIn) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin append import chunk")?;
    let n = tx
        .prepare_cached(
            "UPDATE tasks SET total = total + ?2, lease_until = ?3 \
             WHERE id = ?1 AND status = 'receiving'",
        )
        .and_then(|mut s| s.execute(params![c.task_id, c.rows, c.deadline]))
        .context("count import rows")?;
    if n != 1 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO import_chunks (task_id, seq, first_row, row_count, input, outcome) \
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
    )
    .and_then(|mut s| s.execute(params![c.task_id, c.seq, c.first_row, c.rows, c.input]))
    .context("insert import chunk")?;
    tx.commit().context("commit append import chunk")?;
    Ok(true)
}

/// `receiving` → `queued`.
pub(crate) fn seal(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE tasks SET status = 'queued', lease_until = NULL \
             WHERE id = ?1 AND status = 'receiving'",
        )
        .and_then(|mut s| s.execute([id]))
        .context("seal import")?;
    Ok(n == 1)
}

/// `receiving` → `failed`, with the rows deleted, in one transaction.
fn fail_receiving(tx: &Connection, id: &str, now: i64) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE tasks SET status = 'failed', finished_at = ?2, lease_until = NULL \
             WHERE id = ?1 AND status = 'receiving'",
        )
        .and_then(|mut s| s.execute(params![id, now]))
        .context("fail import")?;
    if n == 1 {
        tx.prepare_cached("DELETE FROM import_chunks WHERE task_id = ?1")
            .and_then(|mut s| s.execute([id]))
            .context("delete import chunks")?;
    }
    Ok(n == 1)
}

/// Gives up one receiving import.
pub(crate) fn abort(conn: &mut Connection, id: &str, now: i64) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin abort import")?;
    let done = fail_receiving(&tx, id, now)?;
    tx.commit().context("commit abort import")?;
    Ok(done)
}

/// Fails every receiving import past its deadline (found through `tasks_claim_idx`).
pub(crate) fn expire(conn: &mut Connection, now: i64) -> Result<u64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin expire imports")?;
    let ids: Vec<String> = tx
        .prepare_cached("SELECT id FROM tasks WHERE status = 'receiving' AND lease_until < ?1")
        .and_then(|mut s| s.query_map([now], |r| r.get(0))?.collect())
        .context("find abandoned imports")?;
    let mut n = 0;
    for id in &ids {
        if fail_receiving(&tx, id, now)? {
            n += 1;
        }
    }
    tx.commit().context("commit expire imports")?;
    Ok(n)
}

/// Chunks without outcomes above `after`, by position.
pub(crate) fn pending_chunks(
    conn: &Connection,
    id: &str,
    after: Option<u32>,
    limit: usize,
) -> Result<Vec<ImportChunk>, StoreError> {
    let after = after.map_or(-1, i64::from);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<(i64, i64, String)> = conn
        .prepare_cached(
            "SELECT seq, first_row, input FROM import_chunks \
             WHERE task_id = ?1 AND seq > ?2 AND outcome IS NULL ORDER BY seq LIMIT ?3",
        )
        .and_then(|mut s| {
            s.query_map(params![id, after, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .context("list pending import chunks")?;
    rows.into_iter()
        .map(|(seq, first_row, input)| {
            Ok(ImportChunk {
                seq: u32::try_from(seq).map_err(|_| corrupt("import_chunks.seq"))?,
                first_row: u32::try_from(first_row)
                    .map_err(|_| corrupt("import_chunks.first_row"))?,
                items: decode_chunk_inputs(&input)?,
            })
        })
        .collect()
}

/// Results of the chunks holding rows at or above `from_row`.
pub(crate) fn outcomes(
    conn: &Connection,
    id: &str,
    from_row: u32,
    limit: usize,
) -> Result<Vec<ImportOutcomes>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<(i64, i64, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT seq, first_row, row_count, outcome FROM import_chunks \
             WHERE task_id = ?1 AND first_row + row_count > ?2 ORDER BY seq LIMIT ?3",
        )
        .and_then(|mut s| {
            s.query_map(params![id, from_row, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .context("list import outcomes")?;
    rows.into_iter()
        .map(|(seq, first_row, count, outcome)| {
            let n = |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(what));
            Ok(ImportOutcomes {
                seq: n(seq, "import_chunks.seq")?,
                first_row: n(first_row, "import_chunks.first_row")?,
                rows: n(count, "import_chunks.row_count")?,
                outcomes: outcome.as_deref().map(decode_chunk_outcomes).transpose()?,
            })
        })
        .collect()
}

/// The ids of a chunk's user, for its `Created` outcome.
struct CreatedIds {
    index: u32,
    open_id: String,
    union_id: String,
    user_id: String,
}

/// An `ImportCommit` encoded ahead of the blocking task; `rows` and `created` are
/// parallel, in the chunk's user order.
pub(crate) struct CommitRows {
    tenant: TenantId,
    task_id: String,
    worker: String,
    seq: u32,
    first_row: u32,
    count: u32,
    rows: Vec<UserRow>,
    created: Vec<CreatedIds>,
    failures: Vec<(u32, ItemError)>,
    mails: Vec<(u32, OutboxMessage)>,
    ctx: ChangeCtx,
}

impl CommitRows {
    pub(crate) fn of(c: &ImportCommit<'_>) -> Self {
        Self {
            tenant: c.tenant,
            task_id: c.task_id.as_str().to_owned(),
            worker: c.worker.to_owned(),
            seq: c.seq,
            first_row: c.first_row,
            count: c.rows,
            rows: c.users.iter().map(|(_, u)| UserRow::of(u)).collect(),
            created: c
                .users
                .iter()
                .map(|(index, u)| CreatedIds {
                    index: *index,
                    open_id: u.open_id.as_str().to_owned(),
                    union_id: u.union_id.as_str().to_owned(),
                    user_id: u.user_id.as_str().to_owned(),
                })
                .collect(),
            failures: c.failures.to_vec(),
            mails: c.mails.to_vec(),
            ctx: ChangeCtx::of(c.change),
        }
    }
}

/// Commits one processed chunk in ONE transaction (see `Store::commit_import_chunk`).
pub(crate) fn commit_chunk(
    conn: &mut Connection,
    c: &CommitRows,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin commit import chunk")?;
    if !crate::tasks::lease_held(&tx, &c.task_id, &c.worker, c.tenant, "commit import chunk")? {
        return Ok(None);
    }
    // A chunk that already has its outcomes was committed (with its users) before: writing
    // its users again would create them twice.
    let pending: Option<bool> = tx
        .prepare_cached("SELECT outcome IS NULL FROM import_chunks WHERE task_id = ?1 AND seq = ?2")
        .and_then(|mut s| {
            s.query_row(params![c.task_id, c.seq], |r| r.get(0))
                .optional()
        })
        .context("check import chunk")?;
    if pending != Some(true) {
        return Ok(None);
    }

    // The bulk insert writes the whole chunk in a few statements; a chunk with a refused
    // row (rare: the core pre-checks uniqueness) is written row by row instead.
    let results = match users::insert_rows_bulk(&tx, c.tenant, &c.rows, &c.ctx)? {
        Some(results) => results,
        None => users::insert_rows(&tx, c.tenant, &c.rows, &c.ctx)?,
    };

    let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; c.count as usize];
    let slot = |index: u32| index.checked_sub(c.first_row).map(|i| i as usize);
    let mut written: HashSet<u32> = HashSet::with_capacity(results.len());
    let (mut succeeded, mut failed) = (0_i64, 0_i64);
    for (ids, result) in c.created.iter().zip(&results) {
        let outcome = match result {
            Ok(_) => {
                written.insert(ids.index);
                ItemOutcome::Created {
                    open_id: ids.open_id.clone(),
                    union_id: ids.union_id.clone(),
                    user_id: ids.user_id.clone(),
                }
            }
            Err(e) => ItemOutcome::Failed(ItemError::from_store(e.clone())),
        };
        if let Some(o) = slot(ids.index).and_then(|i| outcomes.get_mut(i)) {
            *o = Some(outcome);
        }
    }
    for (index, e) in &c.failures {
        if let Some(o) = slot(*index).and_then(|i| outcomes.get_mut(i)) {
            *o = Some(ItemOutcome::Failed(e.clone()));
        }
    }
    let outcomes: Vec<ItemOutcome> = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                ItemOutcome::Failed(ItemError::from_core(&roster_core::CoreError::conflict(
                    roster_core::ConflictKind::NotWritten,
                    "row was not processed",
                )))
            })
        })
        .collect();
    for o in &outcomes {
        if matches!(o, ItemOutcome::Created { .. }) {
            succeeded += 1;
        } else {
            failed += 1;
        }
    }
    // The processed chunk's input is no longer needed; emptying it keeps a finished
    // import's footprint at its results.
    tx.prepare_cached(
        "UPDATE import_chunks SET outcome = ?3, input = '' \
         WHERE task_id = ?1 AND seq = ?2 AND outcome IS NULL",
    )
    .and_then(|mut s| s.execute(params![c.task_id, c.seq, encode_chunk_outcomes(&outcomes)]))
    .context("set import chunk outcomes")?;
    tx.prepare_cached(
        "UPDATE tasks SET succeeded = succeeded + ?2, failed = failed + ?3 WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![c.task_id, succeeded, failed]))
    .context("update task counters")?;
    let mails = c
        .mails
        .iter()
        .filter(|(index, _)| written.contains(index))
        .map(|(_, m)| m);
    outbox::insert_messages(&tx, mails)?;
    tx.commit().context("commit import chunk")?;
    Ok(Some(results))
}
