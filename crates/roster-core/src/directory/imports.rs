//! Bulk imports on the task engine (see `crate::import`): an upload becomes one task that
//! receives its rows chunk by chunk, is sealed, and is then processed chunk by chunk through
//! the same `prepare_batch` as every other write. Also the export read and the dry run.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use tracing::instrument;

use super::{Directory, PreparedBatch};
use crate::app::{Caller, Scope};
use crate::audit::{Actor, Change};
use crate::error::{ConflictKind, CoreError, Entity};
use crate::import::{
    ImportChunk, ImportCommit, ImportRowResult, IMPORT_KIND, IMPORT_RECEIVE_TIMEOUT_MS,
};
use crate::store::{UniqueProbe, UserLookup};
use crate::task::{ItemError, Task, TaskId, TaskStatus};
use crate::user::{NewUser, User, UserKey};

use super::tasks::Invitations;

/// How often an idle worker looks for abandoned uploads.
const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// Most rows one results page returns.
pub const MAX_RESULTS_PAGE: usize = 10_000;

/// What a dry run has accepted so far, so that its later chunks are checked as the real
/// import would check them after the earlier ones were written: unique values (user id,
/// e-mail, mobile, login, employee number) as 64-bit hashes, which keeps a million rows'
/// worth in tens of megabytes (a false "exists" needs a hash collision: about one chance
/// in four million for a million rows), and the licence room left.
#[derive(Debug)]
pub struct DryRun {
    claimed: HashSet<u64>,
    room: Option<u64>,
    /// The user ids (folded) of earlier rows that would be written: a later row may name
    /// one as its leader, as it may in the real import.
    user_ids: HashSet<String>,
}

impl Directory {
    /// Opens an import: a task in the `Receiving` state that no worker may claim until
    /// `seal_import`.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn begin_import(&self, caller: &Caller, notify: bool) -> Result<Task, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let now = self.inner.clock.now_ms();
        let task = Task {
            id: TaskId::from_trusted(self.inner.ids.hex(16)),
            tenant: caller.tenant,
            app_id: caller.app_id.clone(),
            kind: IMPORT_KIND.to_owned(),
            status: TaskStatus::Receiving,
            total: 0,
            succeeded: 0,
            failed: 0,
            notify,
            created_at: now,
            finished_at: None,
            lease_owner: None,
            lease_until: Some(now + IMPORT_RECEIVE_TIMEOUT_MS),
        };
        self.inner.store.create_import(&task).await?;
        self.open_uploads().insert(task.id.clone());
        Ok(task)
    }

    fn open_uploads(&self) -> std::sync::MutexGuard<'_, HashSet<TaskId>> {
        self.inner
            .open_uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails every import this process is still receiving; `roster serve` calls it when it
    /// shuts down, after open requests had their chance to finish. Returns how many.
    pub async fn abort_open_uploads(&self) -> usize {
        let open: Vec<TaskId> = self.open_uploads().drain().collect();
        for id in &open {
            if let Err(err) = self.abort_import(id).await {
                tracing::warn!(task = %id, "failed to abort an unfinished upload: {err}");
            }
        }
        open.len()
    }

    /// Appends a chunk of parsed rows to a receiving import.
    pub async fn append_import_chunk(
        &self,
        id: &TaskId,
        chunk: &ImportChunk,
    ) -> Result<(), CoreError> {
        let deadline = self.inner.clock.now_ms() + IMPORT_RECEIVE_TIMEOUT_MS;
        if self
            .inner
            .store
            .append_import_chunk(id, chunk, deadline)
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::conflict(
                ConflictKind::NotWritten,
                "the import is no longer receiving rows",
            ))
        }
    }

    /// Ends an import's upload; from now on a worker may claim it.
    pub async fn seal_import(&self, id: &TaskId) -> Result<(), CoreError> {
        self.open_uploads().remove(id);
        if self.inner.store.seal_import(id).await? {
            self.inner.task_wakeup.notify_one();
            Ok(())
        } else {
            Err(CoreError::conflict(
                ConflictKind::NotWritten,
                "the import is no longer receiving rows",
            ))
        }
    }

    /// Gives up an import whose upload failed; it never runs.
    pub async fn abort_import(&self, id: &TaskId) -> Result<(), CoreError> {
        self.open_uploads().remove(id);
        self.inner
            .store
            .abort_import(id, self.inner.clock.now_ms())
            .await?;
        Ok(())
    }

    /// An import task of the caller's tenant (any other task is `NotFound`).
    pub async fn get_import(&self, caller: &Caller, id: &TaskId) -> Result<Task, CoreError> {
        caller.require(Scope::ContactRead)?;
        self.inner
            .store
            .get_task(caller.tenant, id)
            .await?
            .filter(|t| t.kind == IMPORT_KIND)
            // Per-row results name the users created, which a department-scoped app may not
            // see: an import is readable by the app that submitted it, or by one that sees
            // the whole directory.
            .filter(|t| {
                t.app_id == caller.app_id
                    || matches!(caller.contact_scope, crate::app::ContactScope::All)
            })
            .ok_or_else(|| CoreError::not_found(Entity::Task, id.as_str()))
    }

    /// Per-row results of an import with a row number above `after`, in row order, at
    /// most `limit` (≤ `MAX_RESULTS_PAGE`); rows not processed yet have no outcome.
    pub async fn import_results(
        &self,
        caller: &Caller,
        id: &TaskId,
        after: u32,
        limit: usize,
    ) -> Result<(Task, Vec<ImportRowResult>), CoreError> {
        let task = self.get_import(caller, id).await?;
        let limit = limit.clamp(1, MAX_RESULTS_PAGE);
        let mut out = Vec::with_capacity(limit.min(task.total as usize));
        // Row numbers start at 1 and row indexes at 0, so row `after + 1` has index `after`.
        let mut from = after;
        while out.len() < limit && from < task.total {
            let chunks = self.inner.store.import_outcomes(&task.id, from, 4).await?;
            if chunks.is_empty() {
                break;
            }
            for c in chunks {
                let outcomes = c.outcomes.map(Vec::into_iter);
                let mut outcomes = outcomes.into_iter().flatten();
                for i in 0..c.rows {
                    let index = c.first_row + i;
                    let outcome = outcomes.next();
                    if index < from || out.len() >= limit {
                        continue;
                    }
                    out.push(ImportRowResult {
                        row: index + 1,
                        outcome,
                    });
                }
                from = from.max(c.first_row + c.rows);
            }
        }
        Ok((task, out))
    }

    /// Starts a dry run for the caller's tenant: the state that carries what earlier
    /// chunks of the same upload would have written into the checks of later ones.
    pub async fn begin_dry_run(&self, caller: &Caller) -> Result<DryRun, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let tenant = self.get_tenant(caller.tenant).await?;
        Ok(DryRun {
            claimed: HashSet::new(),
            user_ids: HashSet::new(),
            room: tenant
                .max_active_users
                .map(|max| u64::from(max).saturating_sub(tenant.active_users)),
        })
    }

    /// Validates rows with the whole batch path (departments, duplicates within the rows
    /// and against the directory, leaders) without writing anything: the dry run. Rows of
    /// earlier calls with the same `dry` count as written: their unique values are taken
    /// and they use up the licence room, as in the real import. Returns each row's refusal,
    /// or `None` for a row that would be written.
    pub async fn validate_users(
        &self,
        caller: &Caller,
        items: Vec<Result<NewUser, ItemError>>,
        dry: &mut DryRun,
    ) -> Result<Vec<Option<ItemError>>, CoreError> {
        caller.require(Scope::ContactWrite)?;
        // A leader named by a row of an earlier chunk would exist by the time the real
        // import writes this row; it is in no store to resolve against, so it is taken
        // as resolved (such a row cannot be in the store, or it would have been refused).
        let items: Vec<Result<NewUser, ItemError>> = items
            .into_iter()
            .map(|item| {
                item.map(|mut new| {
                    if let Some(UserLookup::UserId(l)) = &new.leader {
                        if dry.user_ids.contains(&l.to_ascii_lowercase()) {
                            new.leader = None;
                        }
                    }
                    new
                })
            })
            .collect();
        let (mut refused, inputs) = super::split_refused(items);
        let PreparedBatch {
            mut results,
            pending,
            ..
        } = self.prepare_batch(caller, inputs).await?;
        for (pos, slot) in pending.iter().enumerate() {
            let Some(p) = slot else { continue };
            if results[pos].is_some() {
                continue;
            }
            let values: Vec<u64> = super::unique_values(&p.user)
                .iter()
                .map(|v| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    v.hash(&mut h);
                    h.finish()
                })
                .collect();
            if let Some(i) = values.iter().position(|h| dry.claimed.contains(h)) {
                let field = super::unique_values(&p.user)[i].0;
                results[pos] = Some(Err(CoreError::AlreadyExists {
                    entity: Entity::User,
                    field,
                }));
                continue;
            }
            if dry.room == Some(0) {
                results[pos] = Some(Err(CoreError::LicenceExceeded));
                continue;
            }
            dry.claimed.extend(values);
            dry.user_ids.insert(p.user.user_id.folded());
            dry.room = dry.room.map(|r| r - 1);
        }
        Ok(results
            .iter()
            .enumerate()
            .map(|(pos, r)| match r {
                Some(Err(e)) => Some(
                    refused[pos]
                        .take()
                        .unwrap_or_else(|| ItemError::from_core(e)),
                ),
                _ => None,
            })
            .collect())
    }

    /// Active users the caller may see with a key above `after`, by key, at most `limit`
    /// (scanned; a page may hold fewer when some are outside the caller's scope). Returns
    /// the page and the last key scanned, `None` at the end.
    pub async fn export_users(
        &self,
        caller: &Caller,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<UserKey>), CoreError> {
        caller.require(Scope::ContactRead)?;
        let page = self
            .inner
            .store
            .list_users(caller.tenant, after, limit)
            .await?;
        let last = page.last().map(|u| u.key);
        let mut out = Vec::with_capacity(page.len());
        for u in page {
            if self.can_see_user(caller, &u).await? {
                out.push(u);
            }
        }
        Ok((out, last))
    }

    /// Fails abandoned uploads now and then (called by idle workers).
    pub(super) async fn expire_imports_now_and_then(&self, last: &mut Option<Instant>) {
        if last.is_some_and(|t| t.elapsed() < EXPIRE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        match self
            .inner
            .store
            .expire_imports(self.inner.clock.now_ms())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(imports = n, "abandoned uploads failed"),
            Err(err) => tracing::warn!("failed to expire abandoned uploads: {err}"),
        }
    }

    /// Processes a claimed import to its end (or until its lease is lost): the same steps
    /// as `process_task`, on chunks of rows stored as one record each.
    ///
    /// Chunks go through a two-stage pipeline: while one chunk is committed (on the store's
    /// writer), the next is read, decoded and prepared (validation, uniqueness probes on
    /// reader connections, leader resolution), so the writer is kept busy instead of waiting
    /// for the preparation. A chunk prepared this way has not seen the chunk before it, so:
    /// a value that the previous chunk took is caught by the store's unique indexes (the row
    /// is refused as a duplicate, as a probe would have refused it), and a chunk in which
    /// the preparation refused a row is prepared again once the previous commit is in, because a failure
    /// such as an unknown leader may have been caused by rows of the previous chunk. So is a
    /// chunk one of whose in-chunk leaders the previous chunk took: that leader is now a
    /// duplicate, and the rows it leads must resolve their leader to the user written. The
    /// outcome is the same as preparing each chunk after the previous commit, and a clean
    /// import (the case worth making fast) is never prepared twice.
    #[instrument(skip_all, fields(task = %task.id))]
    pub(super) async fn process_import(
        &self,
        task: Task,
        worker: &str,
        invitations: &Invitations,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), CoreError> {
        let Some(app) = self.inner.store.get_app(&task.app_id).await? else {
            self.inner
                .store
                .finish_task(
                    &task.id,
                    worker,
                    TaskStatus::Failed,
                    self.inner.clock.now_ms(),
                )
                .await?;
            return Ok(());
        };
        let caller = Caller {
            tenant: task.tenant,
            app_id: app.app_id,
            scopes: app.scopes,
            contact_scope: app.contact_scope,
        };
        let job = ImportJob {
            task: &task,
            caller: &caller,
            change: Change::by(Actor::App(caller.app_id.clone())),
            worker,
            invitations,
        };
        let mut next = self.next_import_chunk(&job, None).await?;
        loop {
            let Some(current) = next.take() else {
                // Before declaring the import done, look once more from the start: a chunk
                // skipped by an earlier pass (none is, today) must not be left behind.
                if let Some(c) = self.next_import_chunk(&job, None).await? {
                    next = Some(c);
                    continue;
                }
                // Memory goes back before the task says it is done, so that whoever waits
                // for the import finds the server at its resting size.
                self.inner.store.bulk_write_ended().await;
                if let Some(give_back) = &self.inner.return_memory {
                    give_back();
                }
                self.inner
                    .store
                    .finish_task(
                        &task.id,
                        worker,
                        TaskStatus::Done,
                        self.inner.clock.now_ms(),
                    )
                    .await?;
                return Ok(());
            };
            let commit = current.commit(&job);
            let (committed, following) = tokio::join!(
                self.inner.store.commit_import_chunk(&commit),
                self.next_import_chunk(&job, Some(current.seq)),
            );
            if committed?.is_none() {
                tracing::warn!(task = %task.id, "lost the import's lease; another worker has it");
                return Ok(());
            }
            next = match following? {
                // Prepared before `current` was committed; see the function's docs.
                Some(p) if p.refused_here || self.batch_leader_taken(&job, &p).await? => {
                    self.next_import_chunk(&job, p.seq.checked_sub(1)).await?
                }
                other => other,
            };
            if self.hand_over_if_stopping(&task.id, worker, stop).await? {
                return Ok(());
            }
            let until = self.inner.clock.now_ms() + invitations.lease_ms;
            if !self
                .inner
                .store
                .renew_task_lease(&task.id, worker, until)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Whether a value of a user who leads others in `chunk` is now taken (by the chunk
    /// committed while this one was prepared).
    async fn batch_leader_taken(
        &self,
        job: &ImportJob<'_>,
        chunk: &PreparedChunk,
    ) -> Result<bool, CoreError> {
        let probe = &chunk.batch_leaders;
        if probe.user_ids.is_empty() {
            return Ok(false);
        }
        let taken = self
            .inner
            .store
            .taken_user_values(job.task.tenant, probe)
            .await?;
        Ok(!(taken.user_ids.is_empty()
            && taken.emails.is_empty()
            && taken.mobiles.is_empty()
            && taken.usernames.is_empty()
            && taken.employee_nos.is_empty()))
    }

    /// Reads the first uncommitted chunk after `after` and prepares it; `None` when there is
    /// none.
    async fn next_import_chunk(
        &self,
        job: &ImportJob<'_>,
        after: Option<u32>,
    ) -> Result<Option<PreparedChunk>, CoreError> {
        let chunks = self
            .inner
            .store
            .pending_import_chunks(&job.task.id, after, 1)
            .await?;
        let Some(chunk) = chunks.into_iter().next() else {
            return Ok(None);
        };
        let rows = u32::try_from(chunk.items.len())
            .map_err(|_| CoreError::invalid("request", "chunk too large"))?;
        // Rows that failed to parse keep their own error, not its core form.
        let (mut refused, inputs) = super::split_refused(chunk.items);
        let PreparedBatch {
            results,
            pending,
            levels,
        } = self.prepare_batch(job.caller, inputs).await?;
        let mut failures = Vec::new();
        let mut refused_here = false;
        for (pos, r) in results.iter().enumerate() {
            if let Some(Err(e)) = r {
                let error = refused[pos].take().unwrap_or_else(|| {
                    refused_here = true;
                    ItemError::from_core(e)
                });
                failures.push((chunk.first_row + pos as u32, error));
            }
        }
        let led: HashSet<&str> = pending
            .iter()
            .flatten()
            .filter_map(|p| {
                p.user
                    .profile
                    .leader
                    .as_ref()
                    .map(crate::ids::OpenId::as_str)
            })
            .collect();
        let mut batch_leaders = UniqueProbe::default();
        for p in pending.iter().flatten() {
            if led.contains(p.user.open_id.as_str()) {
                super::probe_values_of(&mut batch_leaders, &p.user);
            }
        }
        let mut users: Vec<(u32, User)> = Vec::new();
        let mut mails = Vec::new();
        for pos in levels.into_iter().flatten() {
            if let Some(p) = &pending[pos] {
                let index = chunk.first_row + pos as u32;
                if job.task.notify {
                    if let Some(m) = self.invitation(&p.user, job.invitations) {
                        mails.push((index, m));
                    }
                }
                users.push((index, p.user.clone()));
            }
        }
        Ok(Some(PreparedChunk {
            seq: chunk.seq,
            first_row: chunk.first_row,
            rows,
            users,
            failures,
            mails,
            refused_here,
            batch_leaders,
        }))
    }
}

/// What every chunk of one import run shares.
struct ImportJob<'a> {
    task: &'a Task,
    caller: &'a Caller,
    change: Change,
    worker: &'a str,
    invitations: &'a Invitations,
}

/// A chunk ready to commit.
struct PreparedChunk {
    seq: u32,
    first_row: u32,
    rows: u32,
    /// Users to insert, each with its row index, leaders first.
    users: Vec<(u32, User)>,
    failures: Vec<(u32, ItemError)>,
    mails: Vec<(u32, crate::outbox::OutboxMessage)>,
    /// Whether the preparation itself refused a row (rows that did not parse are refused
    /// by the upload): such a refusal can depend on the previous chunk.
    refused_here: bool,
    /// The unique values of the users that lead other users of this chunk. If the previous
    /// chunk took one of them, that leader will be refused as a duplicate when this chunk
    /// commits, and the rows it leads must resolve their leader again (to the user the
    /// previous chunk wrote), so the chunk is prepared again.
    batch_leaders: UniqueProbe,
}

impl PreparedChunk {
    fn commit<'a>(&'a self, job: &'a ImportJob<'_>) -> ImportCommit<'a> {
        ImportCommit {
            tenant: job.task.tenant,
            task_id: &job.task.id,
            worker: job.worker,
            seq: self.seq,
            first_row: self.first_row,
            rows: self.rows,
            users: &self.users,
            failures: &self.failures,
            mails: &self.mails,
            change: &job.change,
        }
    }
}
