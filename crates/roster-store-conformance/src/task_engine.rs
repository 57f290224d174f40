//! The task engine of `roster_core::Directory` over the store: `submit_task`, a worker
//! (`run_task_worker`) running it to its end, a dead worker's task taken over, invitations
//! delivered through `deliver_outbox` with retries, and activation links.
//!
//! The directory runs on a clock the checks move by hand, so that leases run out and retries
//! come due without sleeping; the checks only wait (briefly) for the worker to finish.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster_core::{
    Actor, Change, ChangeAction, Channel, Clock, ContactScope, CoreError, Directory, Entity,
    Invitations, ItemError, ItemOutcome, MailError, MailSender, NewTenant, NewUser, OutboxMessage,
    RandomIds, Scope, Scopes, Store, Task, TaskChunk, TaskId, TaskItem, TaskStatus, TaskSubmission,
    UserLookup,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{
    active_users, caller, email, event_mark, events_since, get_user, mobile, new_user, now_ms,
    plain_user, root, Env, ManualClock,
};

/// Where activation links point.
const BASE_URL: &str = "http://roster.test";
/// How long an activation link works.
const TTL_MS: i64 = 7 * 86_400_000;
/// The lease of the checks' workers.
const LEASE_MS: i64 = 2_000;
/// How long a check waits for a worker to finish a task.
const PATIENCE: Duration = Duration::from_secs(20);

fn invitations() -> Invitations {
    Invitations {
        base_url: BASE_URL.to_owned(),
        ttl_ms: TTL_MS,
        lease_ms: LEASE_MS,
    }
}

/// A directory on a hand-moved clock (starting at the wall clock), a tenant made through it
/// and a caller with every scope, authenticated through a token.
async fn task_env(store: Arc<dyn Store>, name: &str) -> (Env, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicI64::new(now_ms())));
    let dir = Directory::new(store.clone(), clock.clone(), Arc::new(RandomIds));
    let tenant = dir
        .create_tenant(NewTenant::parse(name, None).expect("fixture tenant name is valid"))
        .await
        .expect("create a tenant through the directory");
    let root = root(store.as_ref(), tenant.id).await;
    let caller = caller(&dir, tenant.id, all_scopes(), ContactScope::All).await;
    (
        Env {
            dir,
            store,
            tenant,
            root,
            caller,
        },
        clock,
    )
}

fn all_scopes() -> Scopes {
    Scopes::new([Scope::ContactRead, Scope::ContactWrite])
}

/// A running `run_task_worker`, stopped through its watch channel.
struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn start(dir: &Directory, name: &str) -> Self {
        let (stop, rx) = watch::channel(false);
        let dir = dir.clone();
        let name = name.to_owned();
        let handle =
            tokio::spawn(async move { dir.run_task_worker(name, invitations(), rx).await });
        Self { stop, handle }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("the worker stops when told to")
            .expect("the worker did not panic");
    }
}

/// Waits until the task is done or failed and returns it with its items.
async fn finished(env: &Env, id: &TaskId) -> (Task, Vec<TaskItem>) {
    let start = Instant::now();
    loop {
        let (task, items) = env
            .dir
            .get_task(&env.caller, id)
            .await
            .expect("the submitted task reads back");
        if matches!(task.status, TaskStatus::Done | TaskStatus::Failed) {
            return (task, items);
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the worker did not finish the task in {PATIENCE:?}: {task:?} {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Submits the inputs as an `add_user` task, each echoing its row.
async fn submit(env: &Env, inputs: &[Result<NewUser, ItemError>], notify: bool) -> Task {
    env.dir
        .submit_task(
            &env.caller,
            TaskSubmission {
                kind: "add_user".to_owned(),
                items: inputs
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, input)| (input, format!("{{\"row\":{i}}}")))
                    .collect(),
                notify,
            },
        )
        .await
        .expect("submit a task")
}

/// The ids of a created item, or a panic naming what it was instead.
fn created(item: &TaskItem) -> (&str, &str, &str) {
    match &item.outcome {
        Some(ItemOutcome::Created {
            open_id,
            union_id,
            user_id,
        }) => (open_id, union_id, user_id),
        other => panic!("item {} must be created, got {other:?}", item.index),
    }
}

/// The error of a failed item, or a panic naming what it was instead.
fn failure(item: &TaskItem) -> &ItemError {
    match &item.outcome {
        Some(ItemOutcome::Failed(e)) => e,
        other => panic!("item {} must have failed, got {other:?}", item.index),
    }
}

/// A new user who gets an invitation (not activated yet).
fn invited_user(custom_id: &str, mail: Option<&str>) -> NewUser {
    let mut u = new_user(custom_id);
    u.profile.email = mail.map(email);
    u.activated = false;
    u
}

fn assert_not_found<T: std::fmt::Debug>(r: &Result<T, CoreError>, entity: Entity, what: &str) {
    assert!(
        matches!(r, Err(CoreError::NotFound { entity: e, .. }) if *e == entity),
        "{what}: expected NotFound {{ {entity:?} }}, got {r:?}"
    );
}

/// A mail sender that records what it is asked to send, refuses the first attempt to each
/// recipient listed in `fail_once` and every attempt to those in `refuse` (for good).
#[derive(Default)]
struct Mailbox {
    calls: AtomicUsize,
    sent: Mutex<Vec<(String, String, String)>>,
    fail_once: Mutex<HashSet<String>>,
    refuse: Mutex<HashSet<String>>,
}

impl Mailbox {
    fn failing_once_for(recipient: &str) -> Self {
        let mailbox = Self::default();
        mailbox
            .fail_once
            .lock()
            .expect("mailbox lock")
            .insert(recipient.to_owned());
        mailbox
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// What was delivered: (recipient, subject, body), in delivery order.
    fn sent(&self) -> Vec<(String, String, String)> {
        self.sent.lock().expect("mailbox lock").clone()
    }

    fn deliver(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_once.lock().expect("mailbox lock").remove(to) {
            return Err(MailError::transient("smtp down"));
        }
        if self.refuse.lock().expect("mailbox lock").contains(to) {
            return Err(MailError::permanent("550 no such mailbox"));
        }
        self.sent.lock().expect("mailbox lock").push((
            to.to_owned(),
            subject.to_owned(),
            body.to_owned(),
        ));
        Ok(())
    }
}

// `MailSender` is an `async_trait`; this is its expanded form, so that this crate needs no
// dependency of its own for one test double.
impl MailSender for Mailbox {
    fn send<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        to: &'life1 str,
        subject: &'life2 str,
        body: &'life3 str,
    ) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(self.deliver(to, subject, body)))
    }
}

/// The activation token in a message body's link.
fn token_in(body: &str) -> String {
    let marker = format!("{BASE_URL}/activate/");
    let (_, rest) = body
        .split_once(&marker)
        .unwrap_or_else(|| panic!("the body carries an activation link: {body}"));
    let token: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(
        token.len(),
        64,
        "the token is 256 random bits in hex: {body}"
    );
    token
}

/// The tenant's outbox message to `recipient`.
async fn message_to(env: &Env, recipient: &str) -> OutboxMessage {
    let all = env
        .dir
        .list_outbox(Some(env.tenant.id), false, 100)
        .await
        .expect("list the outbox");
    let mut to: Vec<OutboxMessage> = all
        .into_iter()
        .filter(|m| m.recipient == recipient)
        .collect();
    assert_eq!(to.len(), 1, "one message to {recipient}: {to:#?}");
    to.remove(0)
}

/// Runs a task with invitations for `ann` and `ben` (e-mail) and `cat` (mobile only) to its
/// end, and returns its items.
async fn invited(env: &Env) -> Vec<TaskItem> {
    let mut cat = invited_user("cat", None);
    cat.profile.mobile = Some(mobile(7));
    let task = submit(
        env,
        &[
            Ok(invited_user("ann", Some("ann@example.com"))),
            Ok(invited_user("ben", Some("ben@example.com"))),
            Ok(cat),
        ],
        true,
    )
    .await;
    let worker = Worker::start(&env.dir, "worker-1");
    let (done, items) = finished(env, &task.id).await;
    worker.stop().await;
    assert_eq!(
        (done.status, done.succeeded, done.failed),
        (TaskStatus::Done, 3, 0),
        "every invited user is created: {items:#?}"
    );
    items
}

// ------------------------------------------------------------------------------ checks

/// `submit_task` stores the task queued with every item pending; a worker runs it to `Done`
/// with one outcome per item in request order: a leader named by a later item of the task
/// is resolved, a 2-cycle of leaders fails both items, an item a dialect refused at
/// submission keeps its stored error as it is, a taken e-mail fails as `exists`. The users
/// are created by the submitting app, without invitations when `notify` is off, and the task
/// is visible only to its own tenant.
pub async fn check_a_submitted_task_runs_to_done_with_outcomes_in_request_order(
    store: Arc<dyn Store>,
) {
    let (env, clock) = task_env(store, "Acme").await;
    let s = env.store.as_ref();
    let mut holder = new_user("holder");
    holder.profile.email = Some(email("taken@example.com"));
    env.dir
        .create_user(&env.caller, holder)
        .await
        .expect("create the holder");
    let led_by = |id: &str, leader: &str| {
        let mut u = new_user(id);
        u.leader = Some(UserLookup::UserId(leader.to_owned()));
        Ok(u)
    };
    let refused = ItemError::dialect(1_002_001, "mobile is not valid");
    let mut dup = new_user("dup");
    dup.profile.email = Some(email("TAKEN@example.com"));
    let mut last = new_user("last");
    last.profile.email = Some(email("last@example.com"));
    let inputs = vec![
        led_by("follower", "Boss"),   // 0: the leader is item 1
        Ok(new_user("boss")),         // 1
        led_by("cycle-a", "cycle-b"), // 2: a cycle with 3
        led_by("cycle-b", "cycle-a"), // 3
        Err(refused.clone()),         // 4: refused at submission
        Ok(dup),                      // 5: a taken e-mail
        Ok(last),                     // 6
    ];
    let mark = event_mark(s).await;
    let queued = submit(&env, &inputs, false).await;
    assert_eq!(queued.status, TaskStatus::Queued);
    assert_eq!((queued.total, queued.succeeded, queued.failed), (7, 0, 0));
    assert_eq!(queued.tenant, env.tenant.id);
    assert_eq!(queued.app_id, env.caller.app_id);
    assert_eq!(queued.kind, "add_user");
    assert!(!queued.notify);
    assert_eq!(queued.created_at, clock.now_ms());
    assert_eq!(
        (queued.finished_at, queued.lease_owner.as_ref()),
        (None, None)
    );
    let (stored, pending) = env
        .dir
        .get_task(&env.caller, &queued.id)
        .await
        .expect("the task reads back");
    assert_eq!(stored, queued, "stored as returned, before any worker runs");
    assert_eq!(pending.len(), 7);
    for (i, item) in pending.iter().enumerate() {
        assert_eq!(item.index as usize, i);
        assert_eq!(item.input, inputs[i], "item {i} keeps its input");
        assert_eq!(item.echo, format!("{{\"row\":{i}}}"));
        assert_eq!(item.outcome, None);
    }

    let worker = Worker::start(&env.dir, "worker-1");
    let (done, items) = finished(&env, &queued.id).await;
    worker.stop().await;
    assert_eq!(done.status, TaskStatus::Done, "{items:#?}");
    assert_eq!((done.succeeded, done.failed), (3, 4), "{items:#?}");
    assert_eq!(done.progress(), 100);
    assert_eq!(done.finished_at, Some(clock.now_ms()));
    assert_eq!((done.lease_owner, done.lease_until), (None, None));
    assert_eq!(items.len(), 7);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index as usize, i, "items come in request order");
        assert_eq!(item.echo, format!("{{\"row\":{i}}}"), "echoes stay");
    }

    let (follower_open, _, follower_id) = created(&items[0]);
    let (boss_open, _, boss_id) = created(&items[1]);
    assert_eq!((follower_id, boss_id), ("follower", "boss"));
    for i in [2, 3] {
        let e = failure(&items[i]);
        assert_eq!(
            (e.kind.as_str(), e.field.as_str()),
            ("bad_reference", "leader_user_id"),
            "item {i} is in a cycle of leaders: {e:?}"
        );
    }
    assert_eq!(
        failure(&items[4]),
        &refused,
        "a dialect's refusal stays as stored"
    );
    let e = failure(&items[5]);
    assert_eq!(
        (e.kind.as_str(), e.field.as_str()),
        ("exists", "email"),
        "{e:?}"
    );
    let (_, _, last_id) = created(&items[6]);
    assert_eq!(last_id, "last");

    for item in [&items[0], &items[1], &items[6]] {
        let (open_id, union_id, user_id) = created(item);
        let u = env
            .dir
            .get_user(&env.caller, &UserLookup::OpenId(open_id.to_owned()))
            .await
            .expect("a created user reads back");
        assert_eq!(
            (u.union_id.as_str(), u.user_id.as_str()),
            (union_id, user_id)
        );
    }
    let follower = get_user(s, env.tenant.id, UserLookup::OpenId(follower_open.into()))
        .await
        .expect("the follower");
    assert_eq!(
        follower
            .profile
            .leader
            .as_ref()
            .map(roster_core::OpenId::as_str),
        Some(boss_open),
        "a leader created by the same task is resolved"
    );
    for id in ["cycle-a", "cycle-b", "dup"] {
        assert_eq!(
            get_user(s, env.tenant.id, UserLookup::UserId(id.into())).await,
            None,
            "{id} is not written"
        );
    }
    assert_eq!(active_users(s, env.tenant.id).await, 4);

    let events = events_since(s, None, mark).await;
    let actor = Actor::App(env.caller.app_id.clone()).to_string();
    assert_eq!(events.len(), 3, "one event per created user: {events:#?}");
    assert!(events.iter().all(|e| e.action == ChangeAction::Created
        && e.entity == Entity::User
        && e.actor == actor));
    assert!(
        env.dir
            .list_outbox(Some(env.tenant.id), false, 10)
            .await
            .expect("list the outbox")
            .is_empty(),
        "no invitation without notify"
    );

    // Only the tenant's own apps see the task.
    let other = env
        .dir
        .create_tenant(NewTenant::parse("Other", None).expect("valid name"))
        .await
        .expect("create another tenant");
    let stranger = caller(&env.dir, other.id, all_scopes(), ContactScope::All).await;
    assert_not_found(
        &env.dir.get_task(&stranger, &queued.id).await,
        Entity::Task,
        "another tenant's task",
    );
    // Nor does another app of the tenant limited to some departments: the items name users
    // it may not see. Another app that sees the whole directory does.
    let scoped = caller(
        &env.dir,
        env.tenant.id,
        all_scopes(),
        ContactScope::Departments(vec![env.root.key]),
    )
    .await;
    assert_not_found(
        &env.dir.get_task(&scoped, &queued.id).await,
        Entity::Task,
        "another app's task, for an app limited to some departments",
    );
    let colleague = caller(&env.dir, env.tenant.id, all_scopes(), ContactScope::All).await;
    let (seen, _) = env
        .dir
        .get_task(&colleague, &queued.id)
        .await
        .expect("an app that sees everything reads another app's task");
    assert_eq!(seen.id, queued.id);
    let unknown = TaskId::parse(&"0".repeat(32)).expect("valid id");
    assert_not_found(
        &env.dir.get_task(&env.caller, &unknown).await,
        Entity::Task,
        "an unknown task",
    );
}

/// A worker claims a task, commits one chunk and dies. Once its lease ran out a new worker
/// takes the task over, processes only the items still pending and finishes it: every user
/// is written exactly once (one `created` event, one invitation each), and the dead worker
/// can no longer commit, renew or finish.
pub async fn check_a_dead_workers_task_is_taken_over_and_writes_each_user_once(
    store: Arc<dyn Store>,
) {
    let (env, clock) = task_env(store, "Acme").await;
    let s = env.store.as_ref();
    let inputs: Vec<Result<NewUser, ItemError>> = (0..4)
        .map(|i| {
            Ok(invited_user(
                &format!("take-{i}"),
                Some(&format!("take-{i}@example.com")),
            ))
        })
        .collect();
    let queued = submit(&env, &inputs, true).await;

    // The dead worker: claims with a short lease and commits item 0 before it dies.
    let dead = s
        .claim_task("dead-worker", clock.now_ms(), 100)
        .await
        .expect("claim_task")
        .expect("the queued task is claimed");
    assert_eq!(dead.id, queued.id);
    let mut first = plain_user(env.tenant.id, env.root.key, "take-0");
    first.profile.email = Some(email("take-0@example.com"));
    let change = Change::by(Actor::App(env.caller.app_id.clone()));
    let chunk = TaskChunk {
        tenant: env.tenant.id,
        task_id: &queued.id,
        worker: "dead-worker",
        users: &[(0, first.clone())],
        failures: &[],
        mails: &[],
        change: &change,
    };
    let results = s
        .commit_task_chunk(&chunk)
        .await
        .expect("commit_task_chunk")
        .expect("the dead worker still held the lease");
    assert!(results[0].is_ok(), "{results:?}");
    clock.0.fetch_add(1_000, Ordering::SeqCst);
    let mark = event_mark(s).await;

    let worker = Worker::start(&env.dir, "worker-2");
    let (done, items) = finished(&env, &queued.id).await;
    worker.stop().await;
    assert_eq!(done.status, TaskStatus::Done, "{items:#?}");
    assert_eq!((done.succeeded, done.failed), (4, 0), "{items:#?}");
    assert_eq!(
        created(&items[0]),
        (first.open_id.as_str(), first.union_id.as_str(), "take-0"),
        "the dead worker's committed item stays as it was"
    );
    for (i, item) in items.iter().enumerate() {
        let (open_id, _, user_id) = created(item);
        assert_eq!(user_id, format!("take-{i}"));
        let by_id = get_user(s, env.tenant.id, UserLookup::UserId(user_id.into()))
            .await
            .unwrap_or_else(|| panic!("take-{i} is written"));
        assert_eq!(by_id.open_id.as_str(), open_id);
    }
    assert_eq!(active_users(s, env.tenant.id).await, 4, "every user once");
    let events = events_since(s, None, mark).await;
    let mut written: Vec<&str> = events
        .iter()
        .filter(|e| e.action == ChangeAction::Created)
        .map(|e| e.entity_id.as_str())
        .collect();
    written.sort_unstable();
    let mut want: Vec<&str> = items[1..].iter().map(|i| created(i).0).collect();
    want.sort_unstable();
    assert_eq!(
        written, want,
        "the new worker writes only the pending items"
    );
    let mut mailed: Vec<String> = env
        .dir
        .list_outbox(Some(env.tenant.id), false, 100)
        .await
        .expect("list the outbox")
        .into_iter()
        .map(|m| m.recipient)
        .collect();
    mailed.sort_unstable();
    assert_eq!(
        mailed,
        vec![
            "take-1@example.com",
            "take-2@example.com",
            "take-3@example.com"
        ],
        "one invitation per user the new worker wrote"
    );

    // The dead worker has lost the task for good.
    assert!(s
        .commit_task_chunk(&chunk)
        .await
        .expect("commit_task_chunk")
        .is_none());
    assert!(!s
        .renew_task_lease(&queued.id, "dead-worker", clock.now_ms() + 10_000)
        .await
        .expect("renew"));
    assert!(!s
        .finish_task(
            &queued.id,
            "dead-worker",
            TaskStatus::Failed,
            clock.now_ms()
        )
        .await
        .expect("finish"));
    let (after, _) = finished(&env, &queued.id).await;
    assert_eq!(after, done);
}

/// A worker told to stop finishes the chunk in hand and ends its lease at once, so that
/// another worker takes the rest of the task over now, not when the lease would run out.
pub async fn check_a_stopping_worker_hands_its_task_over_at_once(store: Arc<dyn Store>) {
    let (env, clock) = task_env(store, "Acme").await;
    let s = env.store.as_ref();
    let inputs: Vec<Result<NewUser, ItemError>> = (0..10_000)
        .map(|i| Ok(new_user(&format!("stop-{i}"))))
        .collect();
    let queued = submit(&env, &inputs, false).await;
    let worker = Worker::start(&env.dir, "stopping");
    let start = Instant::now();
    loop {
        let (task, _) = env
            .dir
            .get_task(&env.caller, &queued.id)
            .await
            .expect("the task reads back");
        if task.succeeded > 0 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "no chunk committed: {task:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.stop().await;
    let (task, _) = env
        .dir
        .get_task(&env.caller, &queued.id)
        .await
        .expect("the task reads back");
    assert_eq!(
        task.status,
        TaskStatus::Running,
        "the worker stopped after a chunk, before the end: {task:?}"
    );
    assert!(
        task.succeeded % 1000 == 0 && task.succeeded < 10_000,
        "{task:?}"
    );
    // The clock has not moved: only a lease that was ended lets another worker in.
    let next = s
        .claim_task("next", clock.now_ms(), 30_000)
        .await
        .expect("claim_task");
    assert_eq!(
        next.map(|t| t.id),
        Some(queued.id.clone()),
        "the stopped worker's task is claimable at once"
    );
}

/// `deliver_outbox` sends the due invitation e-mails (never the SMS notices) with the stored
/// subject and body and marks them sent; a failed attempt is counted, its error kept, and
/// the message is not sent again before its retry time (5 s later), then it is; a sent
/// message is never sent again.
pub async fn check_deliver_outbox_sends_invitations_and_retries_failures_later(
    store: Arc<dyn Store>,
) {
    let (env, clock) = task_env(store, "Acme").await;
    invited(&env).await;
    let mailbox = Mailbox::failing_once_for("ann@example.com");
    let t1 = clock.now_ms();
    let sent = env.dir.deliver_outbox(&mailbox).await.expect("deliver");
    assert_eq!(sent, 1, "ben's e-mail is sent, ann's attempt fails");
    assert_eq!(
        mailbox.calls(),
        2,
        "both e-mails are attempted, the SMS is not"
    );
    let ben = message_to(&env, "ben@example.com").await;
    let delivered = mailbox.sent();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        (delivered[0].0.as_str(), delivered[0].1.as_str()),
        ("ben@example.com", ben.subject.as_str())
    );
    token_in(&delivered[0].2);
    assert!(
        !ben.body.contains("/activate/"),
        "a delivered message keeps no activation link at rest: {:?}",
        ben.body
    );
    assert_eq!(ben.sent_at, Some(t1));
    assert_eq!(ben.last_error, None);
    let ann = message_to(&env, "ann@example.com").await;
    assert_eq!(ann.attempts, 1, "the failed attempt is counted");
    assert_eq!(ann.last_error.as_deref(), Some("smtp down"));
    assert_eq!(ann.sent_at, None);
    assert_eq!(ann.next_attempt_at, t1 + 5_000, "retried after 5 s");
    let cat = message_to(&env, "+8613000000007").await;
    assert_eq!(
        (cat.channel, cat.attempts, cat.sent_at),
        (Channel::Sms, 0, None),
        "SMS notices are recorded, never delivered"
    );

    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 0);
    clock.0.fetch_add(4_999, Ordering::SeqCst);
    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 0);
    assert_eq!(
        mailbox.calls(),
        2,
        "nothing is sent again before its retry time"
    );

    clock.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        env.dir.deliver_outbox(&mailbox).await.expect("deliver"),
        1,
        "the failed e-mail is retried once due"
    );
    assert_eq!(mailbox.calls(), 3);
    let ann = message_to(&env, "ann@example.com").await;
    assert_eq!(ann.sent_at, Some(t1 + 5_000));
    assert_eq!(ann.last_error, None, "a delivery clears the earlier error");
    let delivered = mailbox.sent();
    assert_eq!(
        (delivered[1].0.as_str(), delivered[1].1.as_str()),
        ("ann@example.com", ann.subject.as_str())
    );
    token_in(&delivered[1].2);
    clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 0);
    assert_eq!(mailbox.calls(), 3, "a sent message is never sent again");
    assert!(env
        .dir
        .list_outbox(Some(env.tenant.id), true, 10)
        .await
        .expect("list the outbox")
        .iter()
        .all(|m| m.channel == Channel::Sms));
}

/// A permanent refusal (an SMTP 5xx) is recorded and never retried; an invitation to a user
/// deleted before its delivery is not sent at all, and neither is tried again.
pub async fn check_deliver_outbox_gives_up_on_refusals_and_deleted_users(store: Arc<dyn Store>) {
    let (env, clock) = task_env(store, "Acme").await;
    let items = invited(&env).await;
    let (ben_open, _, _) = created(&items[1]);
    env.dir
        .delete_user(
            &env.caller,
            &UserLookup::OpenId(ben_open.into()),
            roster_core::Handover::default(),
        )
        .await
        .expect("delete ben before his invitation goes out");
    let mailbox = Mailbox::default();
    mailbox
        .refuse
        .lock()
        .expect("mailbox lock")
        .insert("ann@example.com".to_owned());
    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 0);
    assert_eq!(mailbox.calls(), 1, "ben's invitation is not attempted");
    let ann = message_to(&env, "ann@example.com").await;
    assert_eq!((ann.attempts, ann.sent_at), (1, None));
    assert!(
        ann.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("permanent failure") && e.contains("550")),
        "the refusal is recorded as final: {:?}",
        ann.last_error
    );
    let ben = message_to(&env, "ben@example.com").await;
    assert_eq!(ben.sent_at, None);
    assert_eq!(
        ben.last_error.as_deref(),
        Some("not sent: the user was deleted")
    );
    clock.0.fetch_add(10 * 3_600_000, Ordering::SeqCst);
    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 0);
    assert_eq!(mailbox.calls(), 1, "neither is tried again, hours later");

    // The link of a user deleted since the invitation (cat's recorded SMS) is dead.
    let (cat_open, _, _) = created(&items[2]);
    let cat_sms = message_to(&env, "+8613000000007").await;
    env.dir
        .delete_user(
            &env.caller,
            &UserLookup::OpenId(cat_open.into()),
            roster_core::Handover::default(),
        )
        .await
        .expect("delete cat");
    assert_not_found(
        &env.dir.activate_invitation(&token_in(&cat_sms.body)).await,
        Entity::User,
        "the link of a deleted user",
    );
    let cat = get_user(
        env.store.as_ref(),
        env.tenant.id,
        UserLookup::OpenId(cat_open.into()),
    )
    .await
    .expect("cat");
    assert!(
        !cat.status.is_activated,
        "the deleted user stays unactivated"
    );
}

/// The token in a delivered invitation's link activates its user once (`is_activated`,
/// joined, one `updated` event by `system`); a second use, an unknown token and an expired
/// link are `NotFound` and change nothing.
pub async fn check_activation_link_of_a_delivered_invitation_works_once(store: Arc<dyn Store>) {
    let (env, clock) = task_env(store, "Acme").await;
    let s = env.store.as_ref();
    let items = invited(&env).await;
    let mailbox = Mailbox::default();
    assert_eq!(env.dir.deliver_outbox(&mailbox).await.expect("deliver"), 2);
    let sent = mailbox.sent();
    let ann_body = &sent
        .iter()
        .find(|(to, _, _)| to == "ann@example.com")
        .expect("ann's invitation is delivered")
        .2;
    let ben_body = &sent
        .iter()
        .find(|(to, _, _)| to == "ben@example.com")
        .expect("ben's invitation is delivered")
        .2;
    let (ann_open, _, _) = created(&items[0]);
    let (ben_open, _, _) = created(&items[1]);
    let (cat_open, _, _) = created(&items[2]);
    let before = get_user(s, env.tenant.id, UserLookup::OpenId(ann_open.into()))
        .await
        .expect("ann");
    assert!(!before.status.is_activated && before.status.is_unjoin);

    clock.0.fetch_add(60_000, Ordering::SeqCst);
    let mark = event_mark(s).await;
    let token = token_in(ann_body);
    let ann = env
        .dir
        .activate_invitation(&token)
        .await
        .expect("the delivered link activates");
    assert_eq!(ann.open_id.as_str(), ann_open);
    assert!(ann.status.is_activated && !ann.status.is_unjoin);
    assert_eq!(ann.updated_at, clock.now_ms());
    assert_eq!(ann.profile, before.profile);
    let read = env
        .dir
        .get_user(&env.caller, &UserLookup::OpenId(ann_open.into()))
        .await
        .expect("ann reads back");
    assert_eq!(read, ann);
    let events = events_since(s, None, mark).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        (
            events[0].action,
            events[0].entity_id.as_str(),
            events[0].actor.as_str()
        ),
        (ChangeAction::Updated, ann_open, "system")
    );

    assert_not_found(
        &env.dir.activate_invitation(&token).await,
        Entity::User,
        "a used link",
    );
    assert_not_found(
        &env.dir.activate_invitation(&"ab".repeat(32)).await,
        Entity::User,
        "an unknown link",
    );
    // The recorded SMS notice carries a working link too.
    let cat_sms = message_to(&env, "+8613000000007").await;
    let cat = env
        .dir
        .activate_invitation(&token_in(&cat_sms.body))
        .await
        .expect("the SMS link activates");
    assert_eq!(cat.open_id.as_str(), cat_open);
    // Ben waited too long.
    clock.0.fetch_add(TTL_MS, Ordering::SeqCst);
    assert_not_found(
        &env.dir.activate_invitation(&token_in(ben_body)).await,
        Entity::User,
        "an expired link",
    );
    let ben = get_user(s, env.tenant.id, UserLookup::OpenId(ben_open.into()))
        .await
        .expect("ben");
    assert!(!ben.status.is_activated && ben.status.is_unjoin);
    assert_eq!(
        events_since(s, None, mark).await.len(),
        2,
        "ann and cat only"
    );
}

/// `purge_finished_tasks` deletes the tasks that finished before the cut-off, with their
/// items, up to the limit per call, and leaves tasks that finished later or have not
/// finished. (The times are from 1970, so that no other check's tasks are in reach.)
pub async fn check_finished_tasks_are_purged_with_their_items_after_retention(
    store: Arc<dyn Store>,
) {
    let env = crate::support::env(store.clone(), "task-purge", None).await;
    let task = |status: TaskStatus, finished_at: Option<i64>| Task {
        id: TaskId::from_trusted(roster_core::IdGen::hex(&RandomIds, 16)),
        tenant: env.tenant.id,
        app_id: env.caller.app_id.clone(),
        kind: "add_user".to_owned(),
        status,
        total: 1,
        succeeded: 0,
        failed: 0,
        notify: false,
        created_at: 100,
        finished_at,
        lease_owner: None,
        lease_until: None,
    };
    let item = TaskItem {
        index: 0,
        input: Ok(new_user("purged")),
        echo: "{}".to_owned(),
        outcome: None,
    };
    let old = [
        task(TaskStatus::Done, Some(500)),
        task(TaskStatus::Failed, Some(600)),
        task(TaskStatus::Done, Some(700)),
    ];
    let kept = [
        task(TaskStatus::Done, Some(1_500)),
        task(TaskStatus::Running, None),
        task(TaskStatus::Queued, None),
    ];
    for t in old.iter().chain(&kept) {
        store
            .create_task(t, std::slice::from_ref(&item))
            .await
            .expect("create task");
    }
    assert_eq!(
        store.purge_finished_tasks(1_000, 2).await.expect("purge"),
        2,
        "the limit holds"
    );
    assert_eq!(
        store.purge_finished_tasks(1_000, 2).await.expect("purge"),
        1
    );
    assert_eq!(
        store.purge_finished_tasks(1_000, 2).await.expect("purge"),
        0
    );
    for t in &old {
        assert!(
            store
                .get_task(env.tenant.id, &t.id)
                .await
                .expect("get")
                .is_none(),
            "{:?} finished at {:?} is purged",
            t.status,
            t.finished_at
        );
        assert!(
            store
                .task_items(&t.id, None, 10, false)
                .await
                .expect("items")
                .is_empty(),
            "its items go with it"
        );
    }
    for t in &kept {
        assert!(
            store
                .get_task(env.tenant.id, &t.id)
                .await
                .expect("get")
                .is_some(),
            "{:?} finished at {:?} is kept",
            t.status,
            t.finished_at
        );
        assert_eq!(
            store
                .task_items(&t.id, None, 10, false)
                .await
                .expect("items")
                .len(),
            1
        );
    }
}
