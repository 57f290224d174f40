//! Bulk imports (`import_chunks`, docs/schema.md "Migration 0007"): an import task receives
//! its rows chunk by chunk while its status is `receiving`, is sealed into `queued`, and is
//! committed chunk by chunk: the chunk's users, its outcomes (one record per chunk), the
//! task's counters and the invitations in ONE transaction that holds the task row locked
//! and checks the worker's lease.
//!
//! Lock order is that of `tasks.rs`: the task row, then (inside the user insert) the tenant
//! row, then users.

use std::collections::HashSet;

use roster_core::{
    ImportChunk, ImportCommit, ImportOutcomes, ItemError, ItemOutcome, StoreError, Task, TaskId,
    User, UserKey,
};
use roster_store_common::{
    decode_chunk_inputs, decode_chunk_outcomes, encode_chunk_inputs, encode_chunk_outcomes,
};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};
use crate::outbox::insert_messages;
use crate::users::{check_tenant, insert_users_in_tx};

pub(crate) async fn create_import(pool: &PgPool, task: &Task) -> Result<(), StoreError> {
    crate::tasks::create_task(pool, task, &[]).await
}

pub(crate) async fn append_chunk(
    pool: &PgPool,
    id: &TaskId,
    chunk: &ImportChunk,
    deadline: i64,
) -> Result<bool, StoreError> {
    // Encoded before the transaction starts, so that no lock is held while encoding.
    let input = encode_chunk_inputs(&chunk.items);
    let rows = chunk.items.len() as i64;
    let mut tx = pool.begin().await.context("begin append import chunk")?;
    let n = sqlx::query(
        "UPDATE tasks SET total = total + $2, lease_until = $3 \
         WHERE id = $1 AND status = 'receiving'",
    )
    .bind(id.as_str())
    .bind(rows)
    .bind(deadline)
    .execute(&mut *tx)
    .await
    .context("count import rows")?
    .rows_affected();
    if n != 1 {
        tx.rollback().await.context("end append import chunk")?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO import_chunks (task_id, seq, first_row, row_count, input, outcome) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(id.as_str())
    .bind(i64::from(chunk.seq))
    .bind(i64::from(chunk.first_row))
    .bind(rows)
    .bind(input)
    .execute(&mut *tx)
    .await
    .context("insert import chunk")?;
    tx.commit().await.context("commit append import chunk")?;
    Ok(true)
}

pub(crate) async fn seal(pool: &PgPool, id: &TaskId) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE tasks SET status = 'queued', lease_until = NULL \
         WHERE id = $1 AND status = 'receiving'",
    )
    .bind(id.as_str())
    .execute(pool)
    .await
    .context("seal import")?
    .rows_affected();
    Ok(n == 1)
}

/// `receiving` → `failed`, with the rows deleted, inside the caller's transaction.
async fn fail_receiving(conn: &mut PgConnection, id: &str, now: i64) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE tasks SET status = 'failed', finished_at = $2, lease_until = NULL \
         WHERE id = $1 AND status = 'receiving'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("fail import")?
    .rows_affected();
    if n == 1 {
        sqlx::query("DELETE FROM import_chunks WHERE task_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .context("delete import chunks")?;
    }
    Ok(n == 1)
}

pub(crate) async fn abort(pool: &PgPool, id: &TaskId, now: i64) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin abort import")?;
    let done = fail_receiving(&mut tx, id.as_str(), now).await?;
    tx.commit().await.context("commit abort import")?;
    Ok(done)
}

pub(crate) async fn expire(pool: &PgPool, now: i64) -> Result<u64, StoreError> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tasks WHERE status = 'receiving' AND lease_until < $1")
            .bind(now)
            .fetch_all(pool)
            .await
            .context("find abandoned imports")?;
    let mut n = 0;
    for id in ids {
        // Each in its own transaction; the status condition makes a race with a late
        // chunk or another node's expiry harmless.
        let mut tx = pool.begin().await.context("begin expire import")?;
        if fail_receiving(&mut tx, &id, now).await? {
            n += 1;
        }
        tx.commit().await.context("commit expire import")?;
    }
    Ok(n)
}

pub(crate) async fn pending_chunks(
    pool: &PgPool,
    id: &TaskId,
    after: Option<u32>,
    limit: usize,
) -> Result<Vec<ImportChunk>, StoreError> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT seq, first_row, input FROM import_chunks \
         WHERE task_id = $1 AND seq > $2 AND outcome IS NULL ORDER BY seq LIMIT $3",
    )
    .bind(id.as_str())
    .bind(after.map_or(-1, i64::from))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
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

pub(crate) async fn outcomes(
    pool: &PgPool,
    id: &TaskId,
    from_row: u32,
    limit: usize,
) -> Result<Vec<ImportOutcomes>, StoreError> {
    let rows: Vec<(i64, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT seq, first_row, row_count, outcome FROM import_chunks \
         WHERE task_id = $1 AND first_row + row_count > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id.as_str())
    .bind(i64::from(from_row))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
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

/// See `Store::commit_import_chunk`. One transaction: lock the task and check the lease
/// and that the chunk is still pending, the user insert, the chunk's outcomes, the counters
/// and the mails.
pub(crate) async fn commit_chunk(
    pool: &PgPool,
    c: &ImportCommit<'_>,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let users: Vec<&User> = c.users.iter().map(|(_, u)| u).collect();
    check_tenant(c.tenant, &users)?;
    let mut tx = pool.begin().await.context("begin import chunk")?;
    let held = crate::tasks::lock_lease(&mut tx, c.task_id, c.tenant, c.worker).await?;
    // A chunk that already has its outcomes was committed (with its users) before: writing
    // its users again would create them twice.
    let pending: Option<bool> = sqlx::query_scalar(
        "SELECT outcome IS NULL FROM import_chunks WHERE task_id = $1 AND seq = $2",
    )
    .bind(c.task_id.as_str())
    .bind(i64::from(c.seq))
    .fetch_optional(&mut *tx)
    .await
    .context("check import chunk")?;
    if !held || pending != Some(true) {
        tx.rollback().await.context("end import chunk")?;
        return Ok(None);
    }

    let results = insert_users_in_tx(&mut tx, c.tenant, &users, false, c.change).await?;

    let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; c.rows as usize];
    let slot = |index: u32| index.checked_sub(c.first_row).map(|i| i as usize);
    let mut written = HashSet::with_capacity(c.users.len());
    for ((index, user), result) in c.users.iter().zip(&results) {
        let outcome = match result {
            Ok(_) => {
                written.insert(*index);
                ItemOutcome::Created {
                    open_id: user.open_id.as_str().to_owned(),
                    union_id: user.union_id.as_str().to_owned(),
                    user_id: user.user_id.as_str().to_owned(),
                }
            }
            Err(e) => ItemOutcome::Failed(ItemError::from_store(e.clone())),
        };
        if let Some(o) = slot(*index).and_then(|i| outcomes.get_mut(i)) {
            *o = Some(outcome);
        }
    }
    for (index, e) in c.failures {
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
    let succeeded = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Created { .. }))
        .count() as i64;
    let failed = outcomes.len() as i64 - succeeded;
    // The processed chunk's input is no longer needed; emptying it keeps a finished
    // import's footprint at its results.
    sqlx::query(
        "UPDATE import_chunks SET outcome = $3, input = '' \
         WHERE task_id = $1 AND seq = $2 AND outcome IS NULL",
    )
    .bind(c.task_id.as_str())
    .bind(i64::from(c.seq))
    .bind(encode_chunk_outcomes(&outcomes))
    .execute(&mut *tx)
    .await
    .context("set import chunk outcomes")?;
    sqlx::query("UPDATE tasks SET succeeded = succeeded + $2, failed = failed + $3 WHERE id = $1")
        .bind(c.task_id.as_str())
        .bind(succeeded)
        .bind(failed)
        .execute(&mut *tx)
        .await
        .context("update task counters")?;
    let mails: Vec<_> = c
        .mails
        .iter()
        .filter(|(index, _)| written.contains(index))
        .map(|(_, m)| m)
        .collect();
    insert_messages(&mut tx, &mails).await?;
    tx.commit().await.context("commit import chunk")?;
    Ok(Some(results))
}
