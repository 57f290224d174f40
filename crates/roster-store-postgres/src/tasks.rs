//! Durable tasks (docs/schema.md, "Migration 0004"): the task rows with their leases, the
//! items with their outcomes, and `commit_task_chunk`, the transaction in which a chunk of
//! a bulk import is written.
//!
//! Several Roster processes share one database. A worker claims a task with
//! `FOR UPDATE SKIP LOCKED`, so that claimers neither wait for each other nor take the same
//! task, and every later write of the worker checks in the same statement or transaction
//! that it still holds the lease.
//!
//! Lock order: `commit_task_chunk` locks the task row, then the tenant row (inside the
//! shared user insert of `users.rs`), then writes users. No writer locks a task row while
//! holding a tenant or user lock, so this adds no cycle to the order of `users.rs`.

use std::collections::HashSet;

use roster_core::{
    AppId, ItemError, ItemOutcome, StoreError, Task, TaskChunk, TaskId, TaskItem, TaskStatus,
    TenantId, User, UserKey,
};
use roster_store_common::{decode_item_input, decode_outcome, encode_item_input, encode_outcome};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};
use crate::outbox::insert_messages;
use crate::users::{check_tenant, insert_users_in_tx};

/// Items written per statement by `create_task`: a task may have 100 000 items, and one
/// statement per few thousand keeps each message to the server a few megabytes.
const ITEMS_PER_STATEMENT: usize = 4000;

#[derive(sqlx::FromRow)]
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

/// The columns of `TaskRow`, as a macro so that queries stay `&'static str`.
macro_rules! task_columns {
    () => {
        "id, tenant_id, app_id, kind, status, total, succeeded, failed, notify, created_at, \
         finished_at, lease_owner, lease_until"
    };
}

fn count(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(what))
}

impl TaskRow {
    fn into_task(self) -> Result<Task, StoreError> {
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

#[derive(sqlx::FromRow)]
struct ItemRow {
    idx: i64,
    input: String,
    echo: String,
    outcome: Option<String>,
}

impl ItemRow {
    fn into_item(self) -> Result<TaskItem, StoreError> {
        Ok(TaskItem {
            index: count(self.idx, "task_items.idx")?,
            input: decode_item_input(&self.input)?,
            echo: self.echo,
            outcome: self.outcome.as_deref().map(decode_outcome).transpose()?,
        })
    }
}

// ----- creation and reads -----

pub(crate) async fn create_task(
    pool: &PgPool,
    task: &Task,
    items: &[TaskItem],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.context("begin task creation")?;
    sqlx::query(concat!(
        "INSERT INTO tasks (",
        task_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(task.id.as_str())
    .bind(task.tenant.0)
    .bind(task.app_id.as_str())
    .bind(&task.kind)
    .bind(task.status.as_str())
    .bind(i64::from(task.total))
    .bind(i64::from(task.succeeded))
    .bind(i64::from(task.failed))
    .bind(task.notify)
    .bind(task.created_at)
    .bind(task.finished_at)
    .bind(task.lease_owner.as_deref())
    .bind(task.lease_until)
    .execute(&mut *tx)
    .await
    .context("insert task")?;
    for part in items.chunks(ITEMS_PER_STATEMENT) {
        let mut idx = Vec::with_capacity(part.len());
        let mut input = Vec::with_capacity(part.len());
        let mut echo = Vec::with_capacity(part.len());
        let mut outcome = Vec::with_capacity(part.len());
        for item in part {
            idx.push(i64::from(item.index));
            input.push(encode_item_input(&item.input));
            echo.push(item.echo.as_str());
            outcome.push(item.outcome.as_ref().map(encode_outcome));
        }
        sqlx::query(
            "INSERT INTO task_items (task_id, idx, input, echo, outcome) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(task.id.as_str())
        .bind(idx)
        .bind(input)
        .bind(echo)
        .bind(outcome)
        .execute(&mut *tx)
        .await
        .context("insert task items")?;
    }
    tx.commit().await.context("commit task creation")?;
    Ok(())
}

pub(crate) async fn get_task(
    pool: &PgPool,
    tenant: TenantId,
    id: &TaskId,
) -> Result<Option<Task>, StoreError> {
    sqlx::query_as::<_, TaskRow>(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id.as_str())
    .bind(tenant.0)
    .fetch_optional(pool)
    .await
    .context("load task")?
    .map(TaskRow::into_task)
    .transpose()
}

pub(crate) async fn task_items(
    pool: &PgPool,
    id: &TaskId,
    after: Option<u32>,
    limit: usize,
    pending_only: bool,
) -> Result<Vec<TaskItem>, StoreError> {
    // Indexes start at 0, so "no cursor" is "above -1".
    let after = after.map_or(-1, i64::from);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Two statements rather than `(NOT $4 OR outcome IS NULL)`, so that each has a plain
    // plan on the primary key.
    let sql = if pending_only {
        "SELECT idx, input, echo, outcome FROM task_items \
         WHERE task_id = $1 AND idx > $2 AND outcome IS NULL ORDER BY idx LIMIT $3"
    } else {
        "SELECT idx, input, echo, outcome FROM task_items \
         WHERE task_id = $1 AND idx > $2 ORDER BY idx LIMIT $3"
    };
    sqlx::query_as::<_, ItemRow>(sql)
        .bind(id.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("load task items")?
        .into_iter()
        .map(ItemRow::into_item)
        .collect()
}

// ----- leases -----

/// With `only`, claims that task alone, on the same terms.
pub(crate) async fn claim_task(
    pool: &PgPool,
    worker: &str,
    now: i64,
    lease_ms: i64,
    only: Option<&str>,
) -> Result<Option<Task>, StoreError> {
    let mut tx = pool.begin().await.context("begin task claim")?;
    // SKIP LOCKED passes over a task that another process is claiming (or committing a chunk
    // of) right now. Under READ COMMITTED a row that changed since the statement began is
    // checked again once locked, so a task claimed and committed meanwhile is passed over.
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM tasks \
         WHERE (status = 'queued' OR (status = 'running' AND lease_until < $1)) \
         AND ($2::text IS NULL OR id = $2) \
         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(only)
    .fetch_optional(&mut *tx)
    .await
    .context("find a task to claim")?;
    let Some(id) = id else {
        tx.rollback().await.context("end task claim")?;
        return Ok(None);
    };
    let row = sqlx::query_as::<_, TaskRow>(concat!(
        "UPDATE tasks SET status = 'running', lease_owner = $2, lease_until = $3 \
         WHERE id = $1 RETURNING ",
        task_columns!()
    ))
    .bind(&id)
    .bind(worker)
    .bind(now.saturating_add(lease_ms))
    .fetch_one(&mut *tx)
    .await
    .context("claim task")?;
    tx.commit().await.context("commit task claim")?;
    row.into_task().map(Some)
}

pub(crate) async fn renew_task_lease(
    pool: &PgPool,
    id: &TaskId,
    worker: &str,
    until: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE tasks SET lease_until = $3 WHERE id = $1 AND lease_owner = $2")
        .bind(id.as_str())
        .bind(worker)
        .bind(until)
        .execute(pool)
        .await
        .context("renew task lease")?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn finish_task(
    pool: &PgPool,
    id: &TaskId,
    worker: &str,
    status: TaskStatus,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE tasks SET status = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id.as_str())
    .bind(worker)
    .bind(status.as_str())
    .bind(now)
    .execute(pool)
    .await
    .context("finish task")?;
    Ok(done.rows_affected() > 0)
}

// ----- the chunk transaction -----

/// Writes the outcomes of items that have none yet and adds what was written to the task's
/// counters, in one statement: an item that already has an outcome (a replayed chunk) keeps
/// it and is not counted again, so the counters always agree with the stored outcomes.
const RECORD_OUTCOMES: &str = "WITH recorded AS ( \
       UPDATE task_items AS t SET outcome = v.outcome \
       FROM UNNEST($2::bigint[], $3::text[], $4::boolean[]) AS v(idx, outcome, created) \
       WHERE t.task_id = $1 AND t.idx = v.idx AND t.outcome IS NULL \
       RETURNING v.created) \
     UPDATE tasks SET \
       succeeded = succeeded + (SELECT count(*) FROM recorded WHERE created), \
       failed = failed + (SELECT count(*) FROM recorded WHERE NOT created) \
     WHERE id = $1";

/// The outcomes of one chunk, as column arrays for `RECORD_OUTCOMES`.
#[derive(Default)]
struct Outcomes {
    idx: Vec<i64>,
    outcome: Vec<String>,
    created: Vec<bool>,
}

impl Outcomes {
    fn push(&mut self, index: u32, outcome: &ItemOutcome) {
        self.idx.push(i64::from(index));
        self.outcome.push(encode_outcome(outcome));
        self.created
            .push(matches!(outcome, ItemOutcome::Created { .. }));
    }
}

/// See `Store::commit_task_chunk` and docs/schema.md. One transaction; apart from the rare
/// row-by-row fallback of the user insert, a fixed number of statements whatever the size of
/// the chunk: lock the task, the user insert (tenant lock, users, memberships, count,
/// events), the outcomes with the counters, and the mails with their activations.
pub(crate) async fn commit_task_chunk(
    pool: &PgPool,
    chunk: &TaskChunk<'_>,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let users: Vec<&User> = chunk.users.iter().map(|(_, u)| u).collect();
    check_tenant(chunk.tenant, &users)?;
    let mut tx = pool.begin().await.context("begin task chunk")?;
    if !lock_lease(&mut tx, chunk.task_id, chunk.tenant, chunk.worker).await? {
        tx.rollback().await.context("end task chunk")?;
        return Ok(None);
    }

    let results = insert_users_in_tx(&mut tx, chunk.tenant, &users, false, chunk.change).await?;

    let mut outcomes = Outcomes::default();
    let mut written = HashSet::with_capacity(chunk.users.len());
    for ((index, user), result) in chunk.users.iter().zip(&results) {
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
        outcomes.push(*index, &outcome);
    }
    for (index, error) in chunk.failures {
        outcomes.push(*index, &ItemOutcome::Failed(error.clone()));
    }
    if !outcomes.idx.is_empty() {
        sqlx::query(RECORD_OUTCOMES)
            .bind(chunk.task_id.as_str())
            .bind(outcomes.idx)
            .bind(outcomes.outcome)
            .bind(outcomes.created)
            .execute(&mut *tx)
            .await
            .context("record task item outcomes")?;
    }

    // Invitations only for users that were written: a refused user gets no mail.
    let mails: Vec<_> = chunk
        .mails
        .iter()
        .filter(|(index, _)| written.contains(index))
        .map(|(_, m)| m)
        .collect();
    insert_messages(&mut tx, &mails).await?;

    tx.commit().await.context("commit task chunk")?;
    Ok(Some(results))
}

/// Locks the chunk's task row for the rest of the transaction and tells whether the worker
/// still holds its lease (a task of another tenant, or none, is not held).
pub(crate) async fn lock_lease(
    conn: &mut PgConnection,
    task_id: &TaskId,
    tenant: TenantId,
    worker: &str,
) -> Result<bool, StoreError> {
    let owner: Option<Option<String>> = sqlx::query_scalar(
        "SELECT lease_owner FROM tasks WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(task_id.as_str())
    .bind(tenant.0)
    .fetch_optional(&mut *conn)
    .await
    .context("lock task")?;
    Ok(owner.flatten().as_deref() == Some(worker))
}

/// Deletes up to `limit` tasks finished before `before`; their items and import chunks go
/// with them (`ON DELETE CASCADE`).
pub(crate) async fn purge_finished(
    pool: &PgPool,
    before: i64,
    limit: u64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks \
         WHERE status IN ('done', 'failed') AND finished_at IS NOT NULL \
         AND finished_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .execute(pool)
    .await
    .context("purge finished tasks")?;
    Ok(done.rows_affected())
}
