//! Durable tasks (`tasks`, `task_items`, migration 0004): creation, leases, and the chunk
//! commit that writes a chunk's users, its items' outcomes, the task's counters and the
//! written users' invitations in one transaction.
//!
//! Leases are taken and checked on the writer connection, so they are serialised with every
//! other write: `claim_task` is one `UPDATE … RETURNING`, and `commit_task_chunk` checks the
//! lease inside its own IMMEDIATE transaction, so a worker that lost its lease can never
//! write a chunk after another worker took the task over.

use std::collections::HashSet;

use roster_core::{
    AppId, ItemError, ItemOutcome, OutboxMessage, StoreError, Task, TaskChunk, TaskId, TaskItem,
    TaskStatus, TenantId, UserKey,
};
use roster_store_common::{decode_item_input, decode_outcome, encode_item_input, encode_outcome};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::events::ChangeCtx;
use crate::outbox;
use crate::users::{self, UserRow};

/// The select list matching `TaskRow::read`.
const TASK_COLS: &str = "id, tenant_id, app_id, kind, status, total, succeeded, failed, \
    notify, created_at, finished_at, lease_owner, lease_until";

/// A `tasks` row as read, before its names are parsed.
struct TaskRow {
    id: String,
    tenant_id: i64,
    app_id: String,
    kind: String,
    status: String,
    total: i64,
    succeeded: i64,
    failed: i64,
    notify: bool,
    created_at: i64,
    finished_at: Option<i64>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
}

impl TaskRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            app_id: r.get(2)?,
            kind: r.get(3)?,
            status: r.get(4)?,
            total: r.get(5)?,
            succeeded: r.get(6)?,
            failed: r.get(7)?,
            notify: r.get(8)?,
            created_at: r.get(9)?,
            finished_at: r.get(10)?,
            lease_owner: r.get(11)?,
            lease_until: r.get(12)?,
        })
    }

    fn into_task(self) -> Result<Task, StoreError> {
        let count = |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(what));
        Ok(Task {
            id: TaskId::from_trusted(self.id),
            tenant: TenantId(self.tenant_id),
            app_id: AppId::from_trusted(self.app_id),
            kind: self.kind,
            status: TaskStatus::from_str_opt(&self.status)
                .ok_or_else(|| corrupt("tasks.status"))?,
            total: count(self.total, "tasks.total")?,
            succeeded: count(self.succeeded, "tasks.succeeded")?,
            failed: count(self.failed, "tasks.failed")?,
            notify: self.notify,
            created_at: self.created_at,
            finished_at: self.finished_at,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
        })
    }
}

/// A task item encoded ahead of the blocking task: index, input, echo, outcome.
pub(crate) type ItemRow = (u32, String, String, Option<String>);

/// Encodes items for `create_task`.
pub(crate) fn item_rows(items: &[TaskItem]) -> Vec<ItemRow> {
    items
        .iter()
        .map(|i| {
            (
                i.index,
                encode_item_input(&i.input),
                i.echo.clone(),
                i.outcome.as_ref().map(encode_outcome),
            )
        })
        .collect()
}

/// Stores the task row and every item row in one transaction.
pub(crate) fn create_task(
    conn: &mut Connection,
    task: &Task,
    items: &[ItemRow],
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin create task")?;
    tx.prepare_cached(
        "INSERT INTO tasks (id, tenant_id, app_id, kind, status, total, succeeded, failed, \
         notify, created_at, finished_at, lease_owner, lease_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut s| {
        s.execute(params![
            task.id.as_str(),
            task.tenant.0,
            task.app_id.as_str(),
            task.kind,
            task.status.as_str(),
            task.total,
            task.succeeded,
            task.failed,
            task.notify,
            task.created_at,
            task.finished_at,
            task.lease_owner,
            task.lease_until,
        ])
    })
    .context("insert task")?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO task_items (task_id, idx, input, echo, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .context("prepare insert task item")?;
        for (idx, input, echo, outcome) in items {
            insert
                .execute(params![task.id.as_str(), idx, input, echo, outcome])
                .context("insert task item")?;
        }
    }
    tx.commit().context("commit create task")
}

/// A task of this tenant (another tenant's is `None`).
pub(crate) fn get_task(
    conn: &Connection,
    tenant: TenantId,
    id: &str,
) -> Result<Option<Task>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM tasks WHERE id = ?1 AND tenant_id = ?2"
    ))
    .and_then(|mut s| s.query_row(params![id, tenant.0], TaskRow::read).optional())
    .context("load task")?
    .map(TaskRow::into_task)
    .transpose()
}

/// Items with an index above `after`, by index, at most `limit`; with `pending_only`, only
/// those without an outcome. Walks the primary key `(task_id, idx)` from `after`.
pub(crate) fn task_items(
    conn: &Connection,
    id: &str,
    after: Option<u32>,
    limit: usize,
    pending_only: bool,
) -> Result<Vec<TaskItem>, StoreError> {
    let after = after.map_or(-1, i64::from);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<(i64, String, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT idx, input, echo, outcome FROM task_items \
             WHERE task_id = ?1 AND idx > ?2 AND (?4 = 0 OR outcome IS NULL) \
             ORDER BY idx LIMIT ?3",
        )
        .and_then(|mut s| {
            s.query_map(params![id, after, limit, pending_only], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .context("list task items")?;
    rows.into_iter()
        .map(|(idx, input, echo, outcome)| {
            Ok(TaskItem {
                index: u32::try_from(idx).map_err(|_| corrupt("task_items.idx"))?,
                input: decode_item_input(&input)?,
                echo,
                outcome: outcome.as_deref().map(decode_outcome).transpose()?,
            })
        })
        .collect()
}

/// Claims the oldest queued task, or the oldest running one whose lease ran out, in one
/// statement on the writer (so no two claims can pick the same task).
/// With `only`, claims that task alone, on the same terms.
pub(crate) fn claim_task(
    conn: &Connection,
    worker: &str,
    now: i64,
    lease_ms: i64,
    only: Option<&str>,
) -> Result<Option<Task>, StoreError> {
    let this_one = if only.is_some() { "AND id = ?4" } else { "" };
    conn.prepare_cached(&format!(
        "UPDATE tasks SET status = 'running', lease_owner = ?1, lease_until = ?3 \
         WHERE id = (SELECT id FROM tasks \
                     WHERE (status = 'queued' OR (status = 'running' AND lease_until < ?2)) \
                     {this_one} ORDER BY created_at, id LIMIT 1) \
         RETURNING {TASK_COLS}"
    ))
    .and_then(|mut s| {
        let until = now.saturating_add(lease_ms);
        match only {
            Some(id) => s.query_row(params![worker, now, until, id], TaskRow::read),
            None => s.query_row(params![worker, now, until], TaskRow::read),
        }
        .optional()
    })
    .context("claim task")?
    .map(TaskRow::into_task)
    .transpose()
}

/// Extends the lease if `worker` still holds it.
pub(crate) fn renew_lease(
    conn: &Connection,
    id: &str,
    worker: &str,
    until: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE tasks SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2")
        .and_then(|mut s| s.execute(params![id, worker, until]))
        .context("renew task lease")?;
    Ok(n == 1)
}

/// Ends the task if `worker` still holds it: status, finish time, lease cleared.
pub(crate) fn finish_task(
    conn: &Connection,
    id: &str,
    worker: &str,
    status: TaskStatus,
    now: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE tasks SET status = ?3, finished_at = ?4, lease_owner = NULL, \
             lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
        )
        .and_then(|mut s| s.execute(params![id, worker, status.as_str(), now]))
        .context("finish task")?;
    Ok(n == 1)
}

/// The ids of a chunk's user, for its `Created` outcome.
struct CreatedIds {
    index: u32,
    open_id: String,
    union_id: String,
    user_id: String,
}

/// A `TaskChunk` encoded ahead of the blocking task. `rows` and `created` are parallel, in
/// the chunk's user order.
pub(crate) struct ChunkRows {
    tenant: TenantId,
    task_id: String,
    worker: String,
    rows: Vec<UserRow>,
    created: Vec<CreatedIds>,
    failures: Vec<(u32, String)>,
    mails: Vec<(u32, OutboxMessage)>,
    ctx: ChangeCtx,
}

impl ChunkRows {
    pub(crate) fn of(chunk: &TaskChunk<'_>) -> Self {
        Self {
            tenant: chunk.tenant,
            task_id: chunk.task_id.as_str().to_owned(),
            worker: chunk.worker.to_owned(),
            rows: chunk.users.iter().map(|(_, u)| UserRow::of(u)).collect(),
            created: chunk
                .users
                .iter()
                .map(|(index, u)| CreatedIds {
                    index: *index,
                    open_id: u.open_id.as_str().to_owned(),
                    union_id: u.union_id.as_str().to_owned(),
                    user_id: u.user_id.as_str().to_owned(),
                })
                .collect(),
            failures: chunk
                .failures
                .iter()
                .map(|(index, e)| (*index, encode_outcome(&ItemOutcome::Failed(e.clone()))))
                .collect(),
            mails: chunk.mails.to_vec(),
            ctx: ChangeCtx::of(chunk.change),
        }
    }
}

/// Whether `worker` still holds the lease of task `task_id`, read inside the caller's
/// IMMEDIATE transaction so that no other worker can take the task over before it commits.
/// A task of another tenant than the chunk's is a bug in the caller, not a lost lease, and
/// fails loudly rather than writing one tenant's users under another's task.
pub(crate) fn lease_held(
    tx: &Connection,
    task_id: &str,
    worker: &str,
    tenant: TenantId,
    what: &str,
) -> Result<bool, StoreError> {
    let lease: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT tenant_id, lease_owner FROM tasks WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([task_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .context("check task lease")?;
    match lease {
        Some((owner_tenant, Some(owner))) if owner == worker => {
            if owner_tenant != tenant.0 {
                return Err(StoreError::Backend(format!(
                    "{what}: task {task_id} belongs to tenant {owner_tenant}, not {tenant}"
                )));
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Commits one chunk in ONE transaction: the lease check, the users (through the same
/// best-effort insert as `insert_users`), every item's outcome where it is still NULL, the
/// task's counters, and the outbox and activation rows of the users written. `None` when
/// `worker` no longer holds the lease; the transaction is then dropped with nothing written.
///
/// The counters move by the outcomes this call actually set, so that a replayed chunk
/// (whose outcomes are already there and stay as they are) cannot count its items twice.
pub(crate) fn commit_chunk(
    conn: &mut Connection,
    chunk: &ChunkRows,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin commit task chunk")?;
    if !lease_held(
        &tx,
        &chunk.task_id,
        &chunk.worker,
        chunk.tenant,
        "commit task chunk",
    )? {
        return Ok(None);
    }

    let results = users::insert_rows(&tx, chunk.tenant, &chunk.rows, &chunk.ctx)?;

    let mut succeeded: i64 = 0;
    let mut failed: i64 = 0;
    let mut written: HashSet<u32> = HashSet::with_capacity(results.len());
    {
        let mut set_outcome = tx
            .prepare_cached(
                "UPDATE task_items SET outcome = ?3 \
                 WHERE task_id = ?1 AND idx = ?2 AND outcome IS NULL",
            )
            .context("prepare set item outcome")?;
        for (ids, result) in chunk.created.iter().zip(&results) {
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
            let set = set_outcome
                .execute(params![chunk.task_id, ids.index, encode_outcome(&outcome)])
                .context("set item outcome")?;
            if set == 1 {
                if result.is_ok() {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
            }
        }
        for (index, outcome) in &chunk.failures {
            let set = set_outcome
                .execute(params![chunk.task_id, index, outcome])
                .context("set item outcome")?;
            if set == 1 {
                failed += 1;
            }
        }
    }
    if succeeded != 0 || failed != 0 {
        tx.prepare_cached(
            "UPDATE tasks SET succeeded = succeeded + ?2, failed = failed + ?3 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![chunk.task_id, succeeded, failed]))
        .context("update task counters")?;
    }

    let mails = chunk
        .mails
        .iter()
        .filter(|(index, _)| written.contains(index))
        .map(|(_, m)| m);
    outbox::insert_messages(&tx, mails)?;

    tx.commit().context("commit task chunk")?;
    Ok(Some(results))
}

/// Deletes up to `limit` tasks finished before `before`; their items and import chunks go
/// with them (`ON DELETE CASCADE`).
pub(crate) fn purge_finished(
    conn: &Connection,
    before: i64,
    limit: u64,
) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks \
             WHERE status IN ('done', 'failed') AND finished_at IS NOT NULL \
             AND finished_at < ?1 LIMIT ?2)",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                before,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
        })
        .context("purge finished tasks")?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    fn plan(conn: &Connection, sql: &str) -> String {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    }

    /// The claim finds candidates through `tasks_claim_idx`, and item pages walk the
    /// primary key from the cursor without a sort.
    #[test]
    fn task_queries_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let claim = plan(
            &conn,
            "SELECT id FROM tasks WHERE status = 'queued' OR (status = 'running' \
             AND lease_until < 5) ORDER BY created_at, id LIMIT 1",
        );
        assert!(claim.contains("tasks_claim_idx"), "{claim}");
        let items = plan(
            &conn,
            "SELECT idx, input, echo, outcome FROM task_items \
             WHERE task_id = 'x' AND idx > 5 AND (1 = 0 OR outcome IS NULL) \
             ORDER BY idx LIMIT 10",
        );
        assert!(
            items.contains("INDEX") && !items.contains("TEMP B-TREE"),
            "{items}"
        );
    }
}
