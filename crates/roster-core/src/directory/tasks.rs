//! The task engine: durable background batches (Feishu v2 `batch_add` today; file imports
//! and SCIM bulk later). See `crate::task` for the guarantees.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::instrument;

use super::{Directory, PreparedBatch};
use crate::app::{Caller, Scope};
use crate::audit::{Actor, Change};
use crate::error::{CoreError, Entity};
use crate::outbox::{Activation, Channel, MailError, MailSender, OutboxMessage};
use crate::store::TaskChunk;
use crate::store::UserLookup;
use crate::task::{ItemError, Task, TaskId, TaskItem, TaskStatus};
use crate::user::{NewUser, User};

/// Items per chunk: one transaction each. Large enough that per-transaction costs vanish,
/// small enough that a crash re-runs little and a lease renewal comes often.
pub const TASK_CHUNK: usize = 1000;
/// How often an idle worker looks for tasks submitted on other nodes.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The pause after a worker's first failure in a row; it doubles with each further one.
const FAILURE_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between failures.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(30);
/// Attempts in a row, each ending in a storage error with no item processed, after which
/// a worker gives a task up as failed rather than retry it every lease forever. Each
/// attempt waits for the lease to run out first, so this is minutes, not a burst.
const STORAGE_STRIKES: u32 = 5;
/// How long a claimed outbox message is reserved for one delivery attempt.
const MAIL_LEASE_MS: i64 = 60_000;
/// Most messages one `deliver_outbox` round sends.
const MAIL_ROUND: usize = 20;
/// The longest one delivery attempt may take: well within `MAIL_LEASE_MS`, so that no other
/// node claims a message while it is being sent.
const MAIL_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// `next_attempt_at` of a message that is never to be tried again.
const NEVER: i64 = crate::outbox::GIVEN_UP;

/// A batch to run in the background: each item a parsed user (or its error) with the
/// dialect's echo.
#[derive(Debug)]
pub struct TaskSubmission {
    /// What the task does, e.g. `add_user`.
    pub kind: String,
    /// The items, in request order.
    pub items: Vec<(Result<NewUser, ItemError>, String)>,
    /// Whether created users get an invitation.
    pub notify: bool,
}

/// How a worker runs tasks and writes invitations.
#[derive(Debug, Clone)]
pub struct Invitations {
    /// Base of activation links, e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub base_url: String,
    /// How long an activation link works, ms.
    pub ttl_ms: i64,
    /// How long a claimed task stays this worker's without renewal, ms; a task whose
    /// worker died is taken over this long after its last renewal.
    pub lease_ms: i64,
}

impl Directory {
    /// Stores a task durably and wakes a worker; returns it queued.
    #[instrument(skip_all, fields(tenant = %caller.tenant, items = submission.items.len()))]
    pub async fn submit_task(
        &self,
        caller: &Caller,
        submission: TaskSubmission,
    ) -> Result<Task, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let task = Task {
            id: TaskId::from_trusted(self.inner.ids.hex(16)),
            tenant: caller.tenant,
            app_id: caller.app_id.clone(),
            kind: submission.kind,
            status: TaskStatus::Queued,
            total: u32::try_from(submission.items.len())
                .map_err(|_| CoreError::invalid("request", "too many items"))?,
            succeeded: 0,
            failed: 0,
            notify: submission.notify,
            created_at: self.inner.clock.now_ms(),
            finished_at: None,
            lease_owner: None,
            lease_until: None,
        };
        let items: Vec<TaskItem> = submission
            .items
            .into_iter()
            .enumerate()
            .map(|(i, (input, echo))| TaskItem {
                index: i as u32,
                input,
                echo,
                outcome: None,
            })
            .collect();
        self.inner.store.create_task(&task, &items).await?;
        self.inner.task_wakeup.notify_one();
        Ok(task)
    }

    /// A task of the caller's tenant with all its items, in request order. Its items name
    /// the users they created, which an app limited to some departments may not see: as an
    /// import, a task is readable by the app that submitted it, or by one that sees the
    /// whole directory.
    pub async fn get_task(
        &self,
        caller: &Caller,
        id: &TaskId,
    ) -> Result<(Task, Vec<TaskItem>), CoreError> {
        caller.require(Scope::ContactRead)?;
        let task = self
            .inner
            .store
            .get_task(caller.tenant, id)
            .await?
            .filter(|t| {
                t.app_id == caller.app_id
                    || matches!(caller.contact_scope, crate::app::ContactScope::All)
            })
            .ok_or_else(|| CoreError::not_found(Entity::Task, id.as_str()))?;
        let mut items = Vec::with_capacity(task.total as usize);
        let mut after = None;
        loop {
            let page = self
                .inner
                .store
                .task_items(&task.id, after, 5000, false)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            items.extend(page);
        }
        Ok((task, items))
    }

    /// Runs tasks until `stop` resolves: claims one at a time (with a lease), processes it
    /// chunk by chunk, and waits for a wake-up or a short poll when there is nothing to do.
    pub async fn run_task_worker(
        &self,
        worker: String,
        invitations: Invitations,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        self.run_worker(worker, invitations, stop, None).await;
    }

    /// `run_task_worker` for the task `only` and no other: what a command-line import runs,
    /// so that it never takes a server's task (whose invitation links it could not know).
    pub async fn run_task_worker_for(
        &self,
        worker: String,
        invitations: Invitations,
        stop: tokio::sync::watch::Receiver<bool>,
        only: TaskId,
    ) {
        self.run_worker(worker, invitations, stop, Some(only)).await;
    }

    async fn run_worker(
        &self,
        worker: String,
        invitations: Invitations,
        mut stop: tokio::sync::watch::Receiver<bool>,
        only: Option<TaskId>,
    ) {
        let mut last_expiry = None;
        let mut strikes = HashMap::new();
        // Failures in a row (of a task or of a claim), for the pause after each.
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            self.expire_imports_now_and_then(&mut last_expiry).await;
            let (now, lease) = (self.inner.clock.now_ms(), invitations.lease_ms);
            let claimed = match &only {
                Some(id) => {
                    self.inner
                        .store
                        .claim_this_task(&worker, now, lease, id)
                        .await
                }
                None => self.inner.store.claim_task(&worker, now, lease).await,
            };
            match claimed {
                Ok(Some(task)) => {
                    let (id, task_tenant) = (task.id.clone(), task.tenant);
                    if let Err(err) = self.process_task(task, &worker, &invitations, &stop).await {
                        tracing::error!(
                            task = %id,
                            "failed to process task: {}",
                            crate::error::chain(&err)
                        );
                        // A storage error may pass (a restarting database, a full disk):
                        // the lease runs out and the task is retried. One that comes back
                        // on every attempt without any progress is a fault in the task's
                        // own data, and a task that cannot succeed at all ends as well,
                        // marked failed so that it stops being retried.
                        let give_up = match err {
                            CoreError::Storage(_) => {
                                self.storage_strike(&mut strikes, &id, task_tenant).await
                            }
                            _ => true,
                        };
                        if give_up {
                            strikes.remove(&id);
                            if let Err(err) = self
                                .inner
                                .store
                                .finish_task(
                                    &id,
                                    &worker,
                                    TaskStatus::Failed,
                                    self.inner.clock.now_ms(),
                                )
                                .await
                            {
                                tracing::error!(
                                    task = %id,
                                    "failed to mark the task failed: {}",
                                    crate::error::chain(&err)
                                );
                            }
                        }
                        failures += 1;
                    } else {
                        strikes.remove(&id);
                        failures = 0;
                        continue;
                    }
                }
                Ok(None) => failures = 0,
                Err(err) => {
                    tracing::warn!("failed to claim a task: {}", crate::error::chain(&err));
                    failures += 1;
                }
            }
            // After a failure the worker pauses, longer after each in a row, before it
            // claims again: the same worker may take its own task straight back, and a
            // failure that lasts (a full disk, a database that is down) must not become a
            // loop that burns the CPU and floods the log (which may fill that same disk).
            if failures > 0 {
                let pause = FAILURE_PAUSE
                    .saturating_mul(1 << (failures - 1).min(6))
                    .min(MAX_FAILURE_PAUSE);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tokio::select! {
                () = self.inner.task_wakeup.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Counts a storage error of a task against it; true when the task has now failed
    /// [`STORAGE_STRIKES`] attempts in a row without processing a single item in between,
    /// so that it should end as failed. A task whose count of processed items moved since
    /// its last error starts counting again, so a long import through a flaky database is
    /// never given up on while it advances. When the task cannot even be read, the
    /// database is the trouble rather than the task, and nothing is counted.
    async fn storage_strike(
        &self,
        strikes: &mut HashMap<TaskId, (u32, u32)>,
        id: &TaskId,
        tenant: crate::ids::TenantId,
    ) -> bool {
        let Ok(Some(task)) = self.inner.store.get_task(tenant, id).await else {
            return false;
        };
        let processed = task.processed();
        let entry = strikes.entry(id.clone()).or_insert((processed, 0));
        if entry.0 != processed {
            *entry = (processed, 0);
        }
        entry.1 += 1;
        if entry.1 >= STORAGE_STRIKES {
            tracing::error!(
                task = %id,
                attempts = entry.1,
                "giving the task up as failed: every attempt failed on storage without progress"
            );
            true
        } else {
            false
        }
    }

    /// Processes a claimed task to its end (or until its lease is lost).
    #[instrument(skip_all, fields(task = %task.id))]
    async fn process_task(
        &self,
        task: Task,
        worker: &str,
        invitations: &Invitations,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), CoreError> {
        if task.kind == crate::import::IMPORT_KIND {
            return self.process_import(task, worker, invitations, stop).await;
        }
        // The task acts with the submitting app's current rights; an app deleted meanwhile
        // leaves its task failed.
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
        let change = Change::by(Actor::App(caller.app_id.clone()));
        // Items are processed in index order, so each chunk's scan can start after the last
        // one; the first scan starts at the beginning, as earlier workers may have left a gap.
        let mut after = None;
        loop {
            let items = self
                .inner
                .store
                .task_items(&task.id, after, TASK_CHUNK, true)
                .await?;
            if items.is_empty() && after.is_some() {
                // Before declaring the task done, look once more from the start.
                after = None;
                continue;
            }
            if items.is_empty() {
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
            }
            let indexes: Vec<u32> = items.iter().map(|i| i.index).collect();
            after = indexes.last().copied();
            // Items refused at submission keep their stored error as it is (a dialect's own
            // code survives); the others go through the batch path.
            let (mut refused, inputs) = super::split_refused(items.into_iter().map(|i| i.input));
            let PreparedBatch {
                results,
                pending,
                levels,
            } = self.prepare_batch(&caller, inputs).await?;
            let mut failures = Vec::new();
            for (pos, r) in results.iter().enumerate() {
                if let Some(Err(e)) = r {
                    let error = refused[pos]
                        .take()
                        .unwrap_or_else(|| ItemError::from_core(e));
                    failures.push((indexes[pos], error));
                }
            }
            let mut users: Vec<(u32, User)> = Vec::new();
            let mut mails = Vec::new();
            for pos in levels.into_iter().flatten() {
                if let Some(p) = &pending[pos] {
                    let index = indexes[pos];
                    if task.notify {
                        if let Some(m) = self.invitation(&p.user, invitations) {
                            mails.push((index, m));
                        }
                    }
                    users.push((index, p.user.clone()));
                }
            }
            let chunk = TaskChunk {
                tenant: task.tenant,
                task_id: &task.id,
                worker,
                users: &users,
                failures: &failures,
                mails: &mails,
                change: &change,
            };
            if self.inner.store.commit_task_chunk(&chunk).await?.is_none() {
                tracing::warn!(task = %task.id, "lost the task's lease; another worker has it");
                return Ok(());
            }
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

    /// When the process is stopping, ends the worker's lease at once (after a committed
    /// chunk), so that another node takes the task over now rather than when the lease
    /// would have run out; returns whether the worker should stop.
    pub(super) async fn hand_over_if_stopping(
        &self,
        task: &crate::task::TaskId,
        worker: &str,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<bool, CoreError> {
        if !*stop.borrow() {
            return Ok(false);
        }
        tracing::info!(task = %task, "stopping: the task is left to the next worker");
        self.inner.store.renew_task_lease(task, worker, 0).await?;
        Ok(true)
    }

    /// The invitation of a new user: an e-mail with an activation link, or, with only a
    /// mobile, a recorded SMS notice carrying the same link. A user with neither (the bulk
    /// import allows one) gets none: there is nobody to send it to.
    pub(super) fn invitation(&self, user: &User, inv: &Invitations) -> Option<OutboxMessage> {
        let (channel, recipient) = match (&user.profile.email, &user.profile.mobile) {
            (Some(e), _) => (Channel::Email, e.as_str().to_owned()),
            (None, Some(m)) => (Channel::Sms, m.as_str().to_owned()),
            (None, None) => return None,
        };
        let token = self.inner.ids.hex(32);
        let link = format!("{}/activate/{token}", inv.base_url.trim_end_matches('/'));
        let now = self.inner.clock.now_ms();
        Some(OutboxMessage {
            id: 0,
            tenant: user.tenant,
            channel,
            recipient,
            subject: "You are invited to join your organisation's directory".to_owned(),
            body: format!(
                "Hello {},\n\nan account has been created for you. Activate it here:\n\n{link}\n\nThe link works for {}.\n",
                user.profile.name,
                link_lifetime(inv.ttl_ms)
            ),
            activation: Some(Activation {
                token_hash: hex::encode(Sha256::digest(token.as_bytes())),
                user_open_id: user.open_id.to_string(),
                expires_at: now + inv.ttl_ms,
            }),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
        })
    }

    /// Activates the account an invitation link names; an unknown, used or expired link is
    /// `NotFound`.
    pub async fn activate_invitation(&self, token: &str) -> Result<User, CoreError> {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        self.inner
            .store
            .activate(&hash, self.inner.clock.now_ms())
            .await?
            .ok_or_else(|| CoreError::not_found(Entity::User, "activation link"))
    }

    /// Delivers due e-mails from the outbox through `sender`; failures are retried with
    /// exponential backoff (5 s doubling, at most an hour). Returns how many were sent.
    pub async fn deliver_outbox(&self, sender: &dyn MailSender) -> Result<usize, CoreError> {
        let mut sent = 0;
        // One message claimed at a time, each sent right after its claim: a claim of many
        // sent one by one outlives its lease behind a slow relay, and another node then
        // claims and sends the tail again (the sender's timeout is below the lease).
        for _ in 0..MAIL_ROUND {
            let now = self.inner.clock.now_ms();
            let Some(m) = self
                .inner
                .store
                .claim_outbox(now, 1, MAIL_LEASE_MS)
                .await?
                .into_iter()
                .next()
            else {
                break;
            };
            // An invitation to a user deleted (or purged) since is not sent: its link could
            // no longer activate anything.
            if let Some(a) = &m.activation {
                let user = self
                    .inner
                    .store
                    .get_user(m.tenant, &UserLookup::OpenId(a.user_open_id.clone()))
                    .await?;
                if user.is_none_or(|u| u.status.is_resigned) {
                    self.inner
                        .store
                        .mark_outbox_failed(m.id, "not sent: the user was deleted", NEVER)
                        .await?;
                    continue;
                }
            }
            // lettre's timeout bounds the connect only; a relay that accepts the connection
            // and then says nothing would hold the mailer (and every later invitation) for
            // good, and outlive the claim's lease so that another node sends it again.
            let sent_or = tokio::time::timeout(
                MAIL_SEND_TIMEOUT,
                sender.send(&m.recipient, &m.subject, &m.body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(MailError::transient(format!(
                    "the relay did not finish within {} s",
                    MAIL_SEND_TIMEOUT.as_secs()
                )))
            });
            match sent_or {
                Ok(()) => {
                    self.inner
                        .store
                        .mark_outbox_sent(m.id, self.inner.clock.now_ms())
                        .await?;
                    sent += 1;
                }
                Err(err) if err.permanent => {
                    tracing::warn!(
                        outbox = m.id,
                        attempts = m.attempts + 1,
                        "mail refused for good, not retried: {}",
                        err.message
                    );
                    let why = format!("permanent failure, not retried: {}", err.message);
                    self.inner
                        .store
                        .mark_outbox_failed(m.id, &why, NEVER)
                        .await?;
                }
                Err(err) => {
                    let backoff = 5_000_i64
                        .saturating_mul(1_i64 << m.attempts.min(10))
                        .min(3_600_000);
                    tracing::warn!(
                        outbox = m.id,
                        attempts = m.attempts + 1,
                        "failed to deliver mail: {}",
                        err.message
                    );
                    self.inner
                        .store
                        .mark_outbox_failed(m.id, &err.message, self.inner.clock.now_ms() + backoff)
                        .await?;
                }
            }
        }
        Ok(sent)
    }

    /// Runs `deliver_outbox` every second until `stop` resolves.
    pub async fn run_mailer(
        &self,
        sender: Arc<dyn MailSender>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.deliver_outbox(sender.as_ref()).await {
                Ok(n) if n > 0 => tracing::info!(sent = n, "invitations delivered"),
                Ok(_) => {}
                Err(err) => tracing::warn!("failed to read the outbox: {err}"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Messages in the outbox, newest first (for `roster outbox list`).
    pub async fn list_outbox(
        &self,
        tenant: Option<crate::ids::TenantId>,
        unsent_only: bool,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, CoreError> {
        Ok(self
            .inner
            .store
            .list_outbox(tenant, unsent_only, limit)
            .await?)
    }
}

/// How long an invitation link works, as the mail says it: whole days from two days up,
/// hours below (a 12-hour link is not "0 days").
fn link_lifetime(ttl_ms: i64) -> String {
    match (ttl_ms / 3_600_000).max(1) {
        h if h >= 48 => format!("{} days", h / 24),
        1 => "1 hour".to_owned(),
        h => format!("{h} hours"),
    }
}

#[cfg(test)]
mod tests {
    use super::link_lifetime;

    #[test]
    fn link_lifetime_is_said_in_days_or_hours() {
        assert_eq!(link_lifetime(7 * 86_400_000), "7 days");
        assert_eq!(link_lifetime(48 * 3_600_000), "2 days");
        assert_eq!(link_lifetime(12 * 3_600_000), "12 hours");
        assert_eq!(link_lifetime(3_600_000), "1 hour");
        assert_eq!(link_lifetime(60_000), "1 hour");
    }
}
