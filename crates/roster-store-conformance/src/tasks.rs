//! The task engine's storage (docs/schema.md, "Migration 0004"): tasks and their items,
//! leases, the one-transaction chunk commit, the outbox and activation links, driven through
//! the raw `Store` trait, plus the races the engine relies on the store to win: claims of one
//! task, claims of the outbox and uses of one activation link.
//!
//! Times here are fixed instants around `T0`: the store takes `now` from its caller, so the
//! checks move time by hand and never sleep.

use std::collections::HashSet;
use std::sync::Arc;

use roster_core::outbox::Activation;
use roster_core::{
    Actor, AppId, Change, ChangeAction, Channel, DeptKey, Entity, ItemError, ItemOutcome,
    OutboxMessage, Store, StoreError, Task, TaskChunk, TaskId, TaskItem, TaskStatus, TenantId,
    UniqueKey, User, UserKey, UserLookup, UserStatus,
};
use tokio::sync::Barrier;

use crate::support::{
    active_users, email, event_mark, events_since, get_user, insert_ok, mobile, new_user,
    plain_user, root, tenant,
};

/// The instant the checks start at.
const T0: i64 = 1_700_000_000_000;
/// The lease the raw checks claim tasks for.
const LEASE: i64 = 30_000;
/// When the fixture activation links expire.
const EXPIRES: i64 = T0 + 86_400_000;
/// How many tasks race in the checks of this module.
const RACERS: usize = 8;

/// The app that "submitted" the fixture tasks.
fn task_app() -> AppId {
    AppId::from_trusted("cli_conformance_tasks".to_owned())
}

/// The change context of chunk commits: the submitting app, as the engine uses it.
fn by_app() -> Change {
    Change::by(Actor::App(task_app()))
}

/// A task id made of `n` in 32 hex digits.
fn task_id(n: u32) -> TaskId {
    TaskId::parse(&format!("{n:032x}")).expect("fixture task id is valid")
}

/// A queued task of `total` items.
fn new_task(tenant: TenantId, n: u32, created_at: i64, total: u32, notify: bool) -> Task {
    Task {
        id: task_id(n),
        tenant,
        app_id: task_app(),
        kind: "add_user".to_owned(),
        status: TaskStatus::Queued,
        total,
        succeeded: 0,
        failed: 0,
        notify,
        created_at,
        finished_at: None,
        lease_owner: None,
        lease_until: None,
    }
}

/// A dialect's refusal of an item at submission, as the Feishu dialect stores one.
fn refusal(detail: &str) -> ItemError {
    ItemError::dialect(1_002_001, detail)
}

/// `total` pending items: users `item-0`, `item-1`, … (led by `boss`), except the indexes
/// in `refused`, whose input is a dialect's refusal. Each echoes its row.
fn items(total: u32, refused: &[u32]) -> Vec<TaskItem> {
    (0..total)
        .map(|i| TaskItem {
            index: i,
            input: if refused.contains(&i) {
                Err(refusal("bad mobile"))
            } else {
                let mut u = new_user(&format!("item-{i}"));
                u.leader = Some(UserLookup::UserId("boss".to_owned()));
                u.activated = false;
                Ok(u)
            },
            echo: format!("{{\"row\":{i}}}"),
            outcome: None,
        })
        .collect()
}

/// A user as the task engine builds one: not activated yet, its invitation pending.
fn invitee(tenant: TenantId, dept: DeptKey, custom_id: &str, mail: Option<&str>) -> User {
    let mut u = plain_user(tenant, dept, custom_id);
    u.profile.email = mail.map(email);
    u.status = UserStatus {
        is_activated: false,
        is_unjoin: true,
        ..UserStatus::default()
    };
    u
}

/// The activation token hash the fixtures give a user's invitation.
fn hash_of(u: &User) -> String {
    format!("hash-{}", u.user_id.as_str())
}

/// The invitation of `u` as the engine writes it: e-mail when it has an address, otherwise
/// a recorded SMS; with an activation link expiring at `EXPIRES`.
fn invitation(u: &User, created_at: i64) -> OutboxMessage {
    let (channel, recipient) = match (&u.profile.email, &u.profile.mobile) {
        (Some(e), _) => (Channel::Email, e.as_str().to_owned()),
        (None, Some(m)) => (Channel::Sms, m.as_str().to_owned()),
        (None, None) => (Channel::Sms, String::new()),
    };
    OutboxMessage {
        id: 0,
        tenant: u.tenant,
        channel,
        recipient,
        subject: "You are invited".to_owned(),
        body: format!("Hello {}", u.profile.name),
        activation: Some(Activation {
            token_hash: hash_of(u),
            user_open_id: u.open_id.to_string(),
            expires_at: EXPIRES,
        }),
        created_at,
        attempts: 0,
        next_attempt_at: created_at,
        sent_at: None,
        last_error: None,
    }
}

/// Each user with its item index and its invitation created at `T0`.
fn with_mails(users: &[(u32, User)]) -> Vec<(u32, OutboxMessage)> {
    users.iter().map(|(i, u)| (*i, invitation(u, T0))).collect()
}

/// Commits one chunk of `task` as `worker`.
async fn commit(
    s: &dyn Store,
    tenant: TenantId,
    id: &TaskId,
    worker: &str,
    users: &[(u32, User)],
    failures: &[(u32, ItemError)],
    mails: &[(u32, OutboxMessage)],
) -> Option<Vec<Result<UserKey, StoreError>>> {
    let results = s
        .commit_task_chunk(&TaskChunk {
            tenant,
            task_id: id,
            worker,
            users,
            failures,
            mails,
            change: &by_app(),
        })
        .await
        .expect("commit_task_chunk must not fail for duplicates, the cap or a lost lease");
    if let Some(r) = &results {
        assert_eq!(
            r.len(),
            users.len(),
            "commit_task_chunk returns one result per user of the chunk"
        );
    }
    results
}

/// Every item of a task, by index.
async fn all_items(s: &dyn Store, id: &TaskId) -> Vec<TaskItem> {
    s.task_items(id, None, 100_000, false)
        .await
        .expect("task_items must not fail")
}

/// The indexes of a page of items.
async fn indexes(
    s: &dyn Store,
    id: &TaskId,
    after: Option<u32>,
    limit: usize,
    pending_only: bool,
) -> Vec<u32> {
    s.task_items(id, after, limit, pending_only)
        .await
        .expect("task_items must not fail")
        .iter()
        .map(|i| i.index)
        .collect()
}

/// Every outcome of a task, by index.
async fn outcomes(s: &dyn Store, id: &TaskId) -> Vec<Option<ItemOutcome>> {
    all_items(s, id)
        .await
        .into_iter()
        .map(|i| i.outcome)
        .collect()
}

/// The task as stored now.
async fn read_task(s: &dyn Store, tenant: TenantId, id: &TaskId) -> Task {
    s.get_task(tenant, id)
        .await
        .expect("get_task must not fail")
        .unwrap_or_else(|| panic!("task {id} vanished"))
}

/// Claims a task, expecting one.
async fn claim(s: &dyn Store, worker: &str, now: i64, lease_ms: i64) -> Task {
    s.claim_task(worker, now, lease_ms)
        .await
        .expect("claim_task must not fail")
        .unwrap_or_else(|| panic!("{worker} must get a task at {now}"))
}

/// Claims nothing, expecting nothing.
async fn claim_none(s: &dyn Store, worker: &str, now: i64, what: &str) {
    let got = s
        .claim_task(worker, now, LEASE)
        .await
        .expect("claim_task must not fail");
    assert_eq!(got, None, "{what}");
}

/// Creates a task of `total` items (number `n`) and claims it as `w1` at `T0`.
async fn claimed(s: &dyn Store, tenant: TenantId, n: u32, total: u32) -> Task {
    let task = new_task(tenant, n, T0, total, true);
    s.create_task(&task, &items(total, &[]))
        .await
        .expect("create a task");
    let got = claim(s, "w1", T0, LEASE).await;
    assert_eq!(got.id, task.id, "the only queued task is the one claimed");
    got
}

/// What an item's stored outcome is for a written user.
fn created(u: &User) -> ItemOutcome {
    ItemOutcome::Created {
        open_id: u.open_id.to_string(),
        union_id: u.union_id.to_string(),
        user_id: u.user_id.to_string(),
    }
}

/// The kind and field of a failed outcome.
fn failed_kind(o: Option<&ItemOutcome>) -> Option<(&str, &str)> {
    match o {
        Some(ItemOutcome::Failed(e)) => Some((e.kind.as_str(), e.field.as_str())),
        _ => None,
    }
}

/// Reads a user by open id.
async fn find(s: &dyn Store, u: &User) -> Option<User> {
    get_user(s, u.tenant, UserLookup::OpenId(u.open_id.to_string())).await
}

/// The outbox of one tenant (or all), newest first.
async fn outbox(s: &dyn Store, tenant: Option<TenantId>, unsent_only: bool) -> Vec<OutboxMessage> {
    s.list_outbox(tenant, unsent_only, 1_000)
        .await
        .expect("list_outbox must not fail")
}

/// Claims due messages.
async fn claim_mail(s: &dyn Store, now: i64, limit: usize, lease_ms: i64) -> Vec<OutboxMessage> {
    s.claim_outbox(now, limit, lease_ms)
        .await
        .expect("claim_outbox must not fail")
}

fn recipients(messages: &[OutboxMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.recipient.as_str()).collect()
}

/// Uses an activation link.
async fn activate(s: &dyn Store, hash: &str, now: i64) -> Option<User> {
    s.activate(hash, now).await.expect("activate must not fail")
}

/// Whether a snapshot (in any JSON spacing) holds `"key":value`.
fn snapshot_has(snapshot: Option<&str>, key: &str, value: &str) -> bool {
    snapshot.is_some_and(|s| {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        compact.contains(&format!("\"{key}\":{value}"))
    })
}

/// Runs `RACERS` copies of `work(i)` at once and returns their outputs in task order.
async fn race<T, F, Fut>(work: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut handles = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let barrier = barrier.clone();
        let fut = work(i);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::with_capacity(RACERS);
    for h in handles {
        out.push(h.await.expect("a racing task panicked"));
    }
    out
}

// ----------------------------------------------------------------------- tasks and items

/// `create_task` stores a task and its items; `get_task` returns it only to its own tenant;
/// `task_items` pages by index after a cursor, round-trips inputs (users and refusals) and
/// echoes, and with `pending_only` skips items that have an outcome.
pub async fn check_tasks_round_trip_and_page_their_items_per_tenant(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let task = new_task(t.id, 7, T0, 7, true);
    let written = items(7, &[3]);
    s.create_task(&task, &written).await.expect("create a task");

    assert_eq!(
        s.get_task(t.id, &task.id).await.expect("get_task"),
        Some(task.clone()),
        "a task reads back exactly as created"
    );
    assert_eq!(
        s.get_task(other.id, &task.id).await.expect("get_task"),
        None,
        "another tenant's task is not found"
    );
    assert_eq!(
        s.get_task(t.id, &task_id(8)).await.expect("get_task"),
        None,
        "an unknown task is not found"
    );

    // Pages by index after a cursor; inputs (users and refusals) and echoes round-trip.
    assert_eq!(all_items(s, &task.id).await, written);
    let first = s.task_items(&task.id, None, 3, false).await.expect("page");
    assert_eq!(first, written[..3], "the first page");
    let next = s
        .task_items(&task.id, Some(2), 3, false)
        .await
        .expect("page");
    assert_eq!(next, written[3..6], "the page after index 2");
    let last = s
        .task_items(&task.id, Some(5), 3, false)
        .await
        .expect("page");
    assert_eq!(last, written[6..], "the last page");
    assert!(indexes(s, &task.id, Some(6), 3, false).await.is_empty());
    assert!(
        indexes(s, &task_id(8), None, 3, false).await.is_empty(),
        "an unknown task has no items"
    );

    // Items with an outcome drop out of the pending pages.
    claim(s, "w1", T0, LEASE).await;
    let refused = refusal("refused");
    commit(
        s,
        t.id,
        &task.id,
        "w1",
        &[],
        &[
            (0, refused.clone()),
            (3, refused.clone()),
            (5, refused.clone()),
        ],
        &[],
    )
    .await
    .expect("w1 holds the lease");
    assert_eq!(
        indexes(s, &task.id, None, 100, true).await,
        vec![1, 2, 4, 6]
    );
    assert_eq!(indexes(s, &task.id, Some(1), 2, true).await, vec![2, 4]);
    assert_eq!(indexes(s, &task.id, Some(4), 2, true).await, vec![6]);
    assert_eq!(
        indexes(s, &task.id, None, 100, false).await,
        (0..7).collect::<Vec<u32>>(),
        "without pending_only every item is listed"
    );
    let stored = all_items(s, &task.id).await;
    assert_eq!(stored[3].outcome, Some(ItemOutcome::Failed(refused)));
    assert_eq!(
        stored[3].input,
        Err(refusal("bad mobile")),
        "the input stays"
    );
    assert_eq!(stored[1].outcome, None);
    assert_eq!(stored[1].input, written[1].input);
}

/// A task with more items than one SQL statement can bind is stored whole, in order.
pub async fn check_a_task_of_many_items_is_stored_whole(store: Arc<dyn Store>) {
    const TOTAL: u32 = 10_001;
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let task = new_task(t.id, 1, T0, TOTAL, false);
    s.create_task(&task, &items(TOTAL, &[7, 9_999]))
        .await
        .expect("create a large task");
    let stored = all_items(s, &task.id).await;
    assert_eq!(stored.len(), TOTAL as usize, "every item is stored");
    assert!(
        stored.iter().zip(0..).all(|(item, i)| item.index == i),
        "items come back by index"
    );
    assert_eq!(stored[10_000].echo, "{\"row\":10000}");
    assert_eq!(stored[9_999].input, Err(refusal("bad mobile")));
    assert_eq!(
        indexes(s, &task.id, Some(9_998), 10, true).await,
        vec![9_999, 10_000]
    );
}

// ----------------------------------------------------------------------------- leases

/// `claim_task` takes queued tasks oldest first, making them `running` with the worker's
/// lease; a held task is not claimed again (not even at the last instant of its lease); once
/// the lease ran out another worker takes it over, and the previous holder has lost it.
pub async fn check_claim_task_takes_the_oldest_task_and_expired_leases_move_on(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    claim_none(s, "w1", T0, "no task, nothing to claim").await;
    let newer = new_task(t.id, 2, T0 + 5, 1, false);
    s.create_task(&newer, &items(1, &[])).await.expect("create");
    let older = new_task(t.id, 1, T0, 1, false);
    s.create_task(&older, &items(1, &[])).await.expect("create");

    let a = claim(s, "w1", T0 + 10, 500).await;
    assert_eq!(a.id, older.id, "the oldest task is claimed first");
    assert_eq!(a.status, TaskStatus::Running);
    assert_eq!(a.lease_owner.as_deref(), Some("w1"));
    assert_eq!(a.lease_until, Some(T0 + 510));
    assert_eq!((a.total, a.succeeded, a.failed), (1, 0, 0));
    assert_eq!(
        s.get_task(t.id, &a.id).await.expect("get_task"),
        Some(a.clone()),
        "the claim is stored as returned"
    );

    let b = claim(s, "w2", T0 + 10, 500).await;
    assert_eq!(
        b.id, newer.id,
        "a held task is passed over for the next one"
    );
    claim_none(s, "w3", T0 + 10, "both tasks are held").await;
    claim_none(s, "w3", T0 + 510, "a lease holds up to its last instant").await;

    // The leases ran out: the oldest task goes to the next worker, with a lease of its own.
    let taken = claim(s, "w3", T0 + 511, 500).await;
    assert_eq!(
        taken.id, older.id,
        "the oldest expired task is taken over first"
    );
    assert_eq!(taken.status, TaskStatus::Running);
    assert_eq!(taken.lease_owner.as_deref(), Some("w3"));
    assert_eq!(taken.lease_until, Some(T0 + 1_011));
    assert!(
        !s.renew_task_lease(&a.id, "w1", T0 + 9_999)
            .await
            .expect("renew"),
        "the previous holder has lost the task"
    );
    let taken = claim(s, "w4", T0 + 511, 500).await;
    assert_eq!(taken.id, newer.id);
    claim_none(s, "w5", T0 + 511, "both taken over").await;
}

/// Only the lease holder renews or finishes a task; `finish_task` sets the status and
/// `finished_at` and clears the lease; a finished task (done or failed) is nobody's: it is
/// not renewed, not finished again, and never claimed again, however late.
pub async fn check_only_the_lease_holder_renews_and_finishes_a_task(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let task = claimed(s, t.id, 1, 1).await;

    assert!(!s
        .renew_task_lease(&task.id, "w2", T0 + 50_000)
        .await
        .expect("renew"));
    assert_eq!(
        read_task(s, t.id, &task.id).await.lease_until,
        Some(T0 + LEASE)
    );
    assert!(s
        .renew_task_lease(&task.id, "w1", T0 + 60_000)
        .await
        .expect("renew"));
    assert_eq!(
        read_task(s, t.id, &task.id).await.lease_until,
        Some(T0 + 60_000)
    );
    assert!(
        !s.renew_task_lease(&task_id(9), "w1", T0 + 60_000)
            .await
            .expect("renew"),
        "an unknown task is not renewed"
    );
    claim_none(s, "w2", T0 + LEASE + 1, "the renewed lease still holds").await;

    assert!(!s
        .finish_task(&task.id, "w2", TaskStatus::Done, T0 + 5_000)
        .await
        .expect("finish"));
    assert_eq!(
        read_task(s, t.id, &task.id).await.status,
        TaskStatus::Running
    );
    assert!(s
        .finish_task(&task.id, "w1", TaskStatus::Done, T0 + 5_000)
        .await
        .expect("finish"));
    let done = read_task(s, t.id, &task.id).await;
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.finished_at, Some(T0 + 5_000));
    assert_eq!((done.lease_owner, done.lease_until), (None, None));

    assert!(!s
        .renew_task_lease(&task.id, "w1", T0 + 70_000)
        .await
        .expect("renew"));
    assert!(!s
        .finish_task(&task.id, "w1", TaskStatus::Failed, T0 + 6_000)
        .await
        .expect("finish"));
    assert_eq!(read_task(s, t.id, &task.id).await.status, TaskStatus::Done);

    // A task failed as a whole is just as final.
    let second = new_task(t.id, 2, T0 + 1, 1, false);
    s.create_task(&second, &items(1, &[]))
        .await
        .expect("create");
    assert_eq!(claim(s, "w2", T0 + 10, LEASE).await.id, second.id);
    assert!(s
        .finish_task(&second.id, "w2", TaskStatus::Failed, T0 + 20)
        .await
        .expect("finish"));
    let failed = read_task(s, t.id, &second.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.finished_at, Some(T0 + 20));
    assert_eq!((failed.lease_owner, failed.lease_until), (None, None));

    claim_none(
        s,
        "w3",
        T0 + 1_000_000_000,
        "finished tasks are never claimed",
    )
    .await;
}

// ------------------------------------------------------------------- the chunk transaction

/// One chunk writes, in one transaction: the users (best effort: a duplicate row is refused
/// on its own), every item's outcome (`Created` with the user's ids, the refusal as
/// `Failed` with kind `exists`, the given failures as given), the task's counters, a
/// `created` event per written user by the chunk's actor, and the invitations (with their
/// activation links) of the written users only.
pub async fn check_a_task_chunk_writes_users_outcomes_counters_and_invitations(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", Some(100)).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await.key;
    let mut holder = plain_user(t.id, r, "holder");
    holder.profile.email = Some(email("taken@example.com"));
    insert_ok(s, &holder).await;
    let task = claimed(s, t.id, 1, 6).await;
    let mark = event_mark(s).await;

    let alice = invitee(t.id, r, "alice", Some("alice@example.com"));
    let mut li = invitee(t.id, r, "li", None);
    li.profile.mobile = Some(mobile(1));
    let dup = invitee(t.id, r, "dup", Some("TAKEN@example.com"));
    let carol = invitee(t.id, r, "carol", Some("carol@example.com"));
    let refused = refusal("bad mobile");
    let users = [
        (0, alice.clone()),
        (1, li.clone()),
        (2, dup.clone()),
        (4, carol.clone()),
    ];
    let results = commit(
        s,
        t.id,
        &task.id,
        "w1",
        &users,
        &[(3, refused.clone())],
        &with_mails(&users),
    )
    .await
    .expect("w1 holds the lease");

    for (pos, u) in [(0, &alice), (1, &li), (3, &carol)] {
        let key = results[pos]
            .as_ref()
            .unwrap_or_else(|e| panic!("{} must be written: {e:?}", u.user_id));
        let stored = find(s, u).await.expect("a written user reads back");
        assert_eq!(stored.key, *key, "the result is the stored key");
        assert_eq!(stored.profile, u.profile);
        assert_eq!(stored.status, u.status, "not activated, invitation pending");
    }
    assert!(
        matches!(results[2], Err(StoreError::Duplicate(UniqueKey::Email))),
        "the taken e-mail is refused on its own: {:?}",
        results[2]
    );
    assert_eq!(find(s, &dup).await, None, "the refused user is not written");
    assert_eq!(active_users(s, t.id).await, 4);

    let stored = all_items(s, &task.id).await;
    assert_eq!(stored[0].outcome, Some(created(&alice)));
    assert_eq!(stored[1].outcome, Some(created(&li)));
    assert_eq!(
        failed_kind(stored[2].outcome.as_ref()),
        Some(("exists", "email")),
        "a duplicate row fails its item as `exists`: {:?}",
        stored[2].outcome
    );
    assert_eq!(
        stored[3].outcome,
        Some(ItemOutcome::Failed(refused)),
        "a given failure is stored as given"
    );
    assert_eq!(stored[4].outcome, Some(created(&carol)));
    assert_eq!(
        stored[5].outcome, None,
        "an item not in the chunk stays pending"
    );
    let counted = read_task(s, t.id, &task.id).await;
    assert_eq!((counted.succeeded, counted.failed), (3, 2));
    assert_eq!(counted.processed(), 5);
    assert_eq!(
        counted.status,
        TaskStatus::Running,
        "a chunk does not end the task"
    );
    assert_eq!(counted.lease_owner.as_deref(), Some("w1"));

    // One `created` event per written user, by the chunk's actor.
    let events = events_since(s, None, mark).await;
    assert_eq!(events.len(), 3, "one event per written user: {events:#?}");
    assert!(events.iter().all(|e| e.entity == Entity::User
        && e.action == ChangeAction::Created
        && e.tenant == t.id
        && e.actor == by_app().actor.to_string()));
    let mut ids: Vec<&str> = events.iter().map(|e| e.entity_id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![
        alice.open_id.as_str(),
        li.open_id.as_str(),
        carol.open_id.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(ids, want);

    // Invitations of the written users only, stored as given (their activations are read
    // back by `check_outbox_reads_return_each_messages_activation`).
    let mails = outbox(s, Some(t.id), false).await;
    let mut got: Vec<(Channel, &str)> = mails
        .iter()
        .map(|m| (m.channel, m.recipient.as_str()))
        .collect();
    got.sort_unstable_by_key(|(_, r)| *r);
    assert_eq!(
        got,
        vec![
            (Channel::Sms, "+8613000000001"),
            (Channel::Email, "alice@example.com"),
            (Channel::Email, "carol@example.com"),
        ]
    );
    for m in &mails {
        assert!(m.id > 0, "the store assigns ids");
        assert_eq!(m.tenant, t.id);
        assert_eq!(
            (m.attempts, m.sent_at, m.last_error.as_deref()),
            (0, None, None)
        );
        let owner = [&alice, &li, &carol]
            .into_iter()
            .find(|u| invitation(u, T0).recipient == m.recipient)
            .unwrap_or_else(|| panic!("message {} is to a written user: {m:?}", m.id));
        assert_eq!(
            OutboxMessage {
                activation: None,
                ..m.clone()
            },
            OutboxMessage {
                id: m.id,
                activation: None,
                ..invitation(owner, T0)
            },
            "the message is stored as given"
        );
    }
    assert!(outbox(s, Some(other.id), false).await.is_empty());
    assert_eq!(
        activate(s, &hash_of(&dup), T0 + 1).await,
        None,
        "a refused user's invitation was never written"
    );
    let activated = activate(s, &hash_of(&li), T0 + 1)
        .await
        .expect("the activation row of a written user works");
    assert_eq!(activated.open_id, li.open_id);
}

/// A chunk of a worker that does not hold the task's lease — the task not claimed yet, taken
/// over after the lease ran out, unknown, or named under another tenant — is `Ok(None)` and
/// writes nothing: no user, outcome, counter, event, message or activation.
pub async fn check_a_task_chunk_without_the_lease_writes_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await.key;
    let task = new_task(t.id, 1, T0, 2, true);
    s.create_task(&task, &items(2, &[])).await.expect("create");
    let alice = invitee(t.id, r, "alice", Some("alice@example.com"));
    let users = [(0, alice.clone())];
    let mails = with_mails(&users);
    let failures = [(1, refusal("no"))];
    let mark = event_mark(s).await;

    assert!(
        commit(s, t.id, &task.id, "w1", &users, &failures, &mails)
            .await
            .is_none(),
        "nobody holds a queued task"
    );
    claim(s, "w1", T0, LEASE).await;
    // w1 stalls; its lease runs out and w2 takes the task over.
    let taken = claim(s, "w2", T0 + LEASE + 1, LEASE).await;
    assert_eq!(taken.lease_owner.as_deref(), Some("w2"));
    assert!(
        commit(s, t.id, &task.id, "w1", &users, &failures, &mails)
            .await
            .is_none(),
        "the previous holder's chunk is refused"
    );
    assert!(
        commit(s, t.id, &task_id(9), "w2", &users, &failures, &mails)
            .await
            .is_none(),
        "nobody holds an unknown task"
    );
    // A chunk naming the task under another tenant is refused (as a lost lease, or as an
    // error: the engine never builds one, so either answer will do), and writes nothing.
    let mut stranger = alice.clone();
    stranger.tenant = other.id;
    let foreign = s
        .commit_task_chunk(&TaskChunk {
            tenant: other.id,
            task_id: &task.id,
            worker: "w2",
            users: &[(0, stranger)],
            failures: &failures,
            mails: &[],
            change: &by_app(),
        })
        .await;
    assert!(
        matches!(foreign, Ok(None) | Err(_)),
        "a task is held only within its own tenant: {foreign:?}"
    );

    assert_eq!(find(s, &alice).await, None);
    assert_eq!(
        get_user(s, other.id, UserLookup::UserId("alice".into())).await,
        None
    );
    assert_eq!(
        (active_users(s, t.id).await, active_users(s, other.id).await),
        (0, 0)
    );
    assert_eq!(outcomes(s, &task.id).await, vec![None, None]);
    let after = read_task(s, t.id, &task.id).await;
    assert_eq!((after.succeeded, after.failed), (0, 0));
    assert_eq!(after.lease_owner.as_deref(), Some("w2"));
    assert!(outbox(s, None, false).await.is_empty());
    assert_eq!(activate(s, &hash_of(&alice), T0 + 1).await, None);
    assert_eq!(events_since(s, None, mark).await, vec![]);

    // The new holder's chunk goes through.
    let ok = commit(s, t.id, &task.id, "w2", &users, &failures, &mails)
        .await
        .expect("w2 holds the lease");
    assert!(ok[0].is_ok(), "{ok:?}");
    assert_eq!(
        outcomes(s, &task.id).await,
        vec![
            Some(created(&alice)),
            Some(ItemOutcome::Failed(refusal("no")))
        ]
    );
}

/// A chunk committed twice (a worker retrying after a lost answer): the second time its users
/// are refused as duplicates, but item outcomes are only ever set once, so the stored
/// outcomes, the counters, the outbox, the events and the active count stay as the first
/// commit left them.
pub async fn check_a_replayed_task_chunk_overwrites_and_counts_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 3).await;
    let users = [
        (0, invitee(t.id, r, "alice", Some("alice@example.com"))),
        (1, invitee(t.id, r, "bob", Some("bob@example.com"))),
    ];
    let mails = with_mails(&users);
    let first = commit(
        s,
        t.id,
        &task.id,
        "w1",
        &users,
        &[(2, refusal("first"))],
        &mails,
    )
    .await
    .expect("w1 holds the lease");
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    let once = outcomes(s, &task.id).await;
    assert_eq!(once[0], Some(created(&users[0].1)));
    assert_eq!(once[1], Some(created(&users[1].1)));
    let mark = event_mark(s).await;

    let again = commit(
        s,
        t.id,
        &task.id,
        "w1",
        &users,
        &[(2, refusal("second"))],
        &mails,
    )
    .await
    .expect("w1 still holds the lease");
    assert!(
        again
            .iter()
            .all(|r| matches!(r, Err(StoreError::Duplicate(_)))),
        "the replayed users are duplicates now: {again:?}"
    );
    assert_eq!(
        outcomes(s, &task.id).await,
        once,
        "no outcome is overwritten"
    );
    let counted = read_task(s, t.id, &task.id).await;
    assert_eq!(
        (counted.succeeded, counted.failed),
        (2, 1),
        "a replay counts nothing twice"
    );
    assert_eq!(outbox(s, None, false).await.len(), 2, "no invitation twice");
    assert_eq!(active_users(s, t.id).await, 2);
    assert_eq!(events_since(s, None, mark).await, vec![]);
}

/// The licence cap applies inside the chunk's transaction exactly as in `insert_users`: the
/// users beyond it fail with kind `licence` (and get no invitation), and a duplicate earlier
/// in the chunk frees the seat it would have taken for a later user.
pub async fn check_the_licence_cap_refuses_users_mid_chunk(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Small", Some(3)).await;
    let r = root(s, t.id).await.key;
    insert_ok(s, &plain_user(t.id, r, "seated")).await;
    let task = claimed(s, t.id, 1, 5).await;
    let users: Vec<(u32, User)> = (0..4)
        .map(|i| {
            (
                i,
                invitee(
                    t.id,
                    r,
                    &format!("u{i}"),
                    Some(&format!("u{i}@example.com")),
                ),
            )
        })
        .collect();
    let results = commit(s, t.id, &task.id, "w1", &users, &[], &with_mails(&users))
        .await
        .expect("w1 holds the lease");
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        matches!(results[2], Err(StoreError::LicenceExceeded))
            && matches!(results[3], Err(StoreError::LicenceExceeded)),
        "the users beyond the cap are refused: {results:?}"
    );
    assert_eq!(active_users(s, t.id).await, 3);
    let stored = all_items(s, &task.id).await;
    assert_eq!(stored[0].outcome, Some(created(&users[0].1)));
    assert_eq!(stored[1].outcome, Some(created(&users[1].1)));
    for item in &stored[2..4] {
        assert_eq!(
            failed_kind(item.outcome.as_ref()).map(|(kind, _)| kind),
            Some("licence"),
            "item {}: {:?}",
            item.index,
            item.outcome
        );
    }
    assert_eq!(stored[4].outcome, None);
    let counted = read_task(s, t.id, &task.id).await;
    assert_eq!((counted.succeeded, counted.failed), (2, 2));
    let mut sent: Vec<String> = outbox(s, Some(t.id), false)
        .await
        .into_iter()
        .map(|m| m.recipient)
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, vec!["u0@example.com", "u1@example.com"]);

    // A duplicate frees the seat it would have taken for the next user.
    let t2 = tenant(s, "Tight", Some(3)).await;
    let r2 = root(s, t2.id).await.key;
    let mut holder = plain_user(t2.id, r2, "holder");
    holder.profile.email = Some(email("taken@example.com"));
    insert_ok(s, &holder).await;
    let task2 = new_task(t2.id, 2, T0 + 1, 4, false);
    s.create_task(&task2, &items(4, &[])).await.expect("create");
    assert_eq!(claim(s, "w2", T0, LEASE).await.id, task2.id);
    let mark = event_mark(s).await;
    let users2 = [
        (0, invitee(t2.id, r2, "a", Some("taken@example.com"))),
        (1, invitee(t2.id, r2, "b", None)),
        (2, invitee(t2.id, r2, "c", None)),
        (3, invitee(t2.id, r2, "d", None)),
    ];
    let results = commit(s, t2.id, &task2.id, "w2", &users2, &[], &[])
        .await
        .expect("w2 holds the lease");
    assert!(
        matches!(results[0], Err(StoreError::Duplicate(UniqueKey::Email)))
            && results[1].is_ok()
            && results[2].is_ok()
            && matches!(results[3], Err(StoreError::LicenceExceeded)),
        "duplicate, written, written, over the cap: {results:?}"
    );
    assert_eq!(active_users(s, t2.id).await, 3);
    let counted = read_task(s, t2.id, &task2.id).await;
    assert_eq!((counted.succeeded, counted.failed), (2, 2));
    let kinds: Vec<Option<&str>> = all_items(s, &task2.id)
        .await
        .iter()
        .map(|i| match &i.outcome {
            Some(ItemOutcome::Created { .. }) => Some("created"),
            Some(ItemOutcome::Failed(e)) if e.kind == "exists" => Some("exists"),
            Some(ItemOutcome::Failed(e)) if e.kind == "licence" => Some("licence"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some("exists"),
            Some("created"),
            Some("created"),
            Some("licence")
        ]
    );
    assert_eq!(
        events_since(s, None, mark).await.len(),
        2,
        "one event per written user"
    );
}

// ----------------------------------------------------------------------------- the outbox

/// `claim_outbox` hands out due e-mails (never SMS, never messages not yet due or already
/// sent), oldest first, at most `limit`, and reserves them for `lease_ms` so that no claim
/// gets them again meanwhile; `mark_outbox_failed` counts the attempt, keeps the error and
/// sets when to retry; `mark_outbox_sent` ends the message; `list_outbox` lists newest first,
/// per tenant or all, optionally unsent only, limited.
pub async fn check_the_outbox_hands_out_due_emails_once_and_records_attempts(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 4).await;
    let early = invitee(t.id, r, "early", Some("early@example.com"));
    let late = invitee(t.id, r, "late", Some("late@example.com"));
    let future = invitee(t.id, r, "future", Some("future@example.com"));
    let mut texted = invitee(t.id, r, "texted", None);
    texted.profile.mobile = Some(mobile(2));
    // Creation times rise with the order of writing (so with the ids): "oldest" and "newest"
    // mean the same whether a store orders by `created_at` or by id.
    let mut for_later = invitation(&future, T0 + 30);
    for_later.next_attempt_at = T0 + 5_000;
    commit(
        s,
        t.id,
        &task.id,
        "w1",
        &[
            (0, early.clone()),
            (1, late.clone()),
            (2, future.clone()),
            (3, texted.clone()),
        ],
        &[],
        &[
            (0, invitation(&early, T0 + 10)),
            (1, invitation(&late, T0 + 20)),
            (2, for_later),
            (3, invitation(&texted, T0 + 35)),
        ],
    )
    .await
    .expect("w1 holds the lease");
    // A message of another tenant.
    let ro = root(s, other.id).await.key;
    let other_task = new_task(other.id, 2, T0 + 1, 1, true);
    s.create_task(&other_task, &items(1, &[]))
        .await
        .expect("create");
    assert_eq!(claim(s, "w2", T0, LEASE).await.id, other_task.id);
    let stranger = invitee(other.id, ro, "stranger", Some("stranger@example.com"));
    commit(
        s,
        other.id,
        &other_task.id,
        "w2",
        &[(0, stranger.clone())],
        &[],
        &[(0, invitation(&stranger, T0 + 40))],
    )
    .await
    .expect("w2 holds the lease");

    assert!(
        claim_mail(s, T0 + 9, 10, 1_000).await.is_empty(),
        "nothing is due yet (the SMS never is)"
    );
    let due = claim_mail(s, T0 + 100, 10, 1_000).await;
    assert_eq!(
        recipients(&due),
        vec![
            "early@example.com",
            "late@example.com",
            "stranger@example.com"
        ],
        "due e-mails, oldest first"
    );
    for m in &due {
        assert_eq!(m.channel, Channel::Email);
        assert_eq!(m.next_attempt_at, T0 + 1_100, "reserved for the lease");
        assert_eq!((m.attempts, m.sent_at), (0, None));
    }
    assert!(
        claim_mail(s, T0 + 100, 10, 1_000).await.is_empty(),
        "reserved"
    );
    assert!(
        claim_mail(s, T0 + 1_099, 10, 1_000).await.is_empty(),
        "still reserved"
    );
    let (early_id, late_id) = (due[0].id, due[1].id);

    s.mark_outbox_failed(early_id, "smtp down", T0 + 9_000)
        .await
        .expect("mark failed");
    s.mark_outbox_sent(late_id, T0 + 1_050)
        .await
        .expect("mark sent");
    let again = claim_mail(s, T0 + 1_200, 10, 1_000).await;
    assert_eq!(
        recipients(&again),
        vec!["stranger@example.com"],
        "an unsent reservation runs out; a failed message waits for its retry time"
    );

    // Later: the failed one is due again, with its attempt and error; `limit` applies.
    let first = claim_mail(s, T0 + 10_000, 2, 1_000).await;
    let got: Vec<(&str, u32, Option<&str>)> = first
        .iter()
        .map(|m| (m.recipient.as_str(), m.attempts, m.last_error.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("early@example.com", 1, Some("smtp down")),
            ("future@example.com", 0, None),
        ]
    );
    assert_eq!(
        recipients(&claim_mail(s, T0 + 10_000, 10, 1_000).await),
        vec!["stranger@example.com"]
    );
    assert!(
        claim_mail(s, T0 + 1_000_000_000, 100, 1)
            .await
            .iter()
            .all(|m| m.channel == Channel::Email && m.id != late_id),
        "a sent message and an SMS are never claimed"
    );

    // Lists: newest first, per tenant or all, unsent only, limited.
    let all = outbox(s, None, false).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let sent = all
        .iter()
        .find(|m| m.id == late_id)
        .expect("the sent message");
    assert_eq!(sent.sent_at, Some(T0 + 1_050));
    let failed = all
        .iter()
        .find(|m| m.id == early_id)
        .expect("the failed message");
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error.as_deref(), Some("smtp down"));
    assert_eq!(failed.sent_at, None);
    let sms = all
        .iter()
        .find(|m| m.channel == Channel::Sms)
        .expect("the SMS is recorded");
    assert_eq!(
        (sms.recipient.as_str(), sms.attempts, sms.sent_at),
        ("+8613000000002", 0, None)
    );
    let mine = outbox(s, Some(t.id), false).await;
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|m| m.tenant == t.id));
    let unsent = outbox(s, Some(t.id), true).await;
    assert_eq!(unsent.len(), 3);
    assert!(unsent
        .iter()
        .all(|m| m.sent_at.is_none() && m.id != late_id));
    assert_eq!(outbox(s, None, true).await.len(), 4);
    assert_eq!(
        s.list_outbox(None, false, 2).await.expect("list").len(),
        2,
        "limit applies"
    );
    assert_eq!(
        recipients(&outbox(s, Some(other.id), false).await),
        vec!["stranger@example.com"]
    );
}

/// Messages read back through `list_outbox` and `claim_outbox` carry the activation they
/// were written with (its token hash, user and expiry), and a message written without one
/// reads back without one.
pub async fn check_outbox_reads_return_each_messages_activation(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 3).await;
    let ann = invitee(t.id, r, "ann", Some("ann@example.com"));
    let mut ben = invitee(t.id, r, "ben", None);
    ben.profile.mobile = Some(mobile(4));
    let cid = invitee(t.id, r, "cid", Some("cid@example.com"));
    let mut bare = invitation(&cid, T0);
    bare.activation = None;
    let written = [
        (0, invitation(&ann, T0)),
        (1, invitation(&ben, T0)),
        (2, bare),
    ];
    commit(
        s,
        t.id,
        &task.id,
        "w1",
        &[(0, ann.clone()), (1, ben.clone()), (2, cid.clone())],
        &[],
        &written,
    )
    .await
    .expect("w1 holds the lease");
    let activation_of = |recipient: &str| {
        written
            .iter()
            .find(|(_, m)| m.recipient == recipient)
            .and_then(|(_, m)| m.activation.clone())
    };

    let listed = outbox(s, Some(t.id), false).await;
    assert_eq!(listed.len(), 3);
    for m in &listed {
        assert_eq!(
            m.activation,
            activation_of(&m.recipient),
            "list_outbox: the activation of the message to {}",
            m.recipient
        );
    }
    let due = claim_mail(s, T0, 10, 1_000).await;
    assert_eq!(due.len(), 2, "the two e-mails are due: {due:#?}");
    for m in &due {
        assert_eq!(
            m.activation,
            activation_of(&m.recipient),
            "claim_outbox: the activation of the message to {}",
            m.recipient
        );
    }
}

/// `activate` works once: it marks the link used and the user activated (`is_activated`,
/// not `is_unjoin`, `updated_at` = now) with one `updated` event by `system`, note
/// `activated by invitation`; a used, expired (at the expiry instant included) or unknown
/// link is `None` and changes nothing, and an expired refusal does not use the link up.
pub async fn check_an_activation_works_once_and_not_after_expiry(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 2).await;
    let alice = invitee(t.id, r, "alice", Some("alice@example.com"));
    let bob = invitee(t.id, r, "bob", Some("bob@example.com"));
    let users = [(0, alice.clone()), (1, bob.clone())];
    commit(s, t.id, &task.id, "w1", &users, &[], &with_mails(&users))
        .await
        .expect("w1 holds the lease");
    let before = find(s, &alice).await.expect("alice is written");
    assert!(!before.status.is_activated && before.status.is_unjoin);
    let mark = event_mark(s).await;

    let at = T0 + 20_000;
    let activated = activate(s, &hash_of(&alice), at)
        .await
        .expect("a fresh link activates");
    assert!(activated.status.is_activated, "activated");
    assert!(!activated.status.is_unjoin, "joined");
    assert_eq!(activated.updated_at, at);
    assert_eq!(
        (activated.key, &activated.open_id, &activated.profile),
        (before.key, &before.open_id, &before.profile),
        "only the status changes"
    );
    assert_eq!(
        find(s, &alice).await,
        Some(activated.clone()),
        "stored as returned"
    );

    let events = events_since(s, None, mark).await;
    assert_eq!(events.len(), 1, "one event: {events:#?}");
    let e = &events[0];
    assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Updated));
    assert_eq!(e.tenant, t.id);
    assert_eq!(e.entity_id, alice.open_id.as_str());
    assert_eq!(e.actor, "system");
    assert_eq!(e.note.as_deref(), Some("activated by invitation"));
    assert_eq!(e.at, at);
    assert!(
        snapshot_has(e.before.as_deref(), "is_activated", "false"),
        "before: {:?}",
        e.before
    );
    assert!(
        snapshot_has(e.after.as_deref(), "is_activated", "true"),
        "after: {:?}",
        e.after
    );

    assert_eq!(
        activate(s, &hash_of(&alice), at + 1).await,
        None,
        "once only"
    );
    assert_eq!(
        activate(s, &hash_of(&bob), EXPIRES).await,
        None,
        "not at the expiry instant"
    );
    assert_eq!(
        activate(s, &hash_of(&bob), EXPIRES + 1).await,
        None,
        "nor after"
    );
    assert_eq!(activate(s, "no-such-hash", at).await, None, "unknown");
    let bob_now = find(s, &bob).await.expect("bob is written");
    assert!(!bob_now.status.is_activated && bob_now.status.is_unjoin);
    assert_eq!(
        events_since(s, None, mark).await.len(),
        1,
        "refusals record nothing"
    );
    assert!(
        activate(s, &hash_of(&bob), EXPIRES - 1).await.is_some(),
        "a link refused as expired was not used up"
    );
}

// ------------------------------------------------------------------------------- races

/// 8 workers claim at once when one task is queued: exactly one gets it, and the stored
/// lease names that one.
pub async fn check_racing_claims_of_one_task_leave_one_owner(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let task = new_task(t.id, 1, T0, 1, false);
    store
        .create_task(&task, &items(1, &[]))
        .await
        .expect("create");
    let results = race(|i| {
        let store = store.clone();
        async move {
            let got = store
                .claim_task(&format!("w{i}"), T0 + 10, LEASE)
                .await
                .expect("claim_task must not fail when racing");
            (i, got)
        }
    })
    .await;
    let winners: Vec<&(usize, Option<Task>)> =
        results.iter().filter(|(_, got)| got.is_some()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one worker may claim the task: {results:?}"
    );
    let (winner, got) = winners[0];
    let got = got.as_ref().expect("the winner's task");
    assert_eq!(got.id, task.id);
    let owner = format!("w{winner}");
    assert_eq!(got.lease_owner.as_deref(), Some(owner.as_str()));
    let stored = read_task(store.as_ref(), t.id, &task.id).await;
    assert_eq!(stored.lease_owner.as_deref(), Some(owner.as_str()));
    assert_eq!(stored.status, TaskStatus::Running);
}

/// `claim_this_task` takes the named task and no other: not an older queued one, not one
/// leased to a live worker, and once its lease runs out, again.
pub async fn check_claim_this_task_takes_that_task_alone(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let older = new_task(t.id, 1, T0, 1, false);
    let mine = new_task(t.id, 2, T0 + 1, 1, false);
    for task in [&older, &mine] {
        store
            .create_task(task, &items(1, &[]))
            .await
            .expect("create");
    }
    let got = store
        .claim_this_task("cli", T0 + 10, LEASE, &mine.id)
        .await
        .expect("claim")
        .expect("the named task is claimable");
    assert_eq!(got.id, mine.id, "the named task, not the older one");
    assert_eq!(got.lease_owner.as_deref(), Some("cli"));
    assert_eq!(
        read_task(store.as_ref(), t.id, &older.id).await.status,
        TaskStatus::Queued,
        "the older task is left to the server's workers"
    );
    assert!(
        store
            .claim_this_task("other", T0 + 20, LEASE, &mine.id)
            .await
            .expect("claim")
            .is_none(),
        "a live lease keeps the task"
    );
    let again = store
        .claim_this_task("other", T0 + 20 + LEASE, LEASE, &mine.id)
        .await
        .expect("claim")
        .expect("an expired lease frees the task");
    assert_eq!(again.lease_owner.as_deref(), Some("other"));
}

/// 8 mailers claim the outbox at once, a few messages at a time, until nothing is left:
/// every due e-mail is handed out exactly once and no SMS at all.
pub async fn check_racing_outbox_claims_never_share_a_message(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 41).await;
    let mut users: Vec<(u32, User)> = (0..40)
        .map(|i| {
            (
                i,
                invitee(
                    t.id,
                    r,
                    &format!("m{i}"),
                    Some(&format!("m{i}@example.com")),
                ),
            )
        })
        .collect();
    let mut texted = invitee(t.id, r, "texted", None);
    texted.profile.mobile = Some(mobile(3));
    users.push((40, texted));
    commit(s, t.id, &task.id, "w1", &users, &[], &with_mails(&users))
        .await
        .expect("w1 holds the lease");
    let expected: HashSet<i64> = outbox(s, Some(t.id), false)
        .await
        .iter()
        .filter(|m| m.channel == Channel::Email)
        .map(|m| m.id)
        .collect();
    assert_eq!(expected.len(), 40);

    let claimed = race(|_| {
        let store = store.clone();
        async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_outbox(T0, 3, 60_000)
                    .await
                    .expect("claim_outbox must not fail when racing");
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| (m.id, m.channel)));
            }
        }
    })
    .await;
    let all: Vec<(i64, Channel)> = claimed.into_iter().flatten().collect();
    assert!(
        all.iter().all(|(_, c)| *c == Channel::Email),
        "no SMS is claimed"
    );
    let ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "a message was handed to two mailers"
    );
    assert_eq!(distinct, expected, "every due e-mail is handed out");
}

/// 8 uses of one activation link at once: exactly one activates, with one `updated` event.
pub async fn check_racing_activations_of_one_link_succeed_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await.key;
    let task = claimed(s, t.id, 1, 1).await;
    let u = invitee(t.id, r, "zhang", Some("zhang@example.com"));
    let users = [(0, u.clone())];
    commit(s, t.id, &task.id, "w1", &users, &[], &with_mails(&users))
        .await
        .expect("w1 holds the lease");
    let mark = event_mark(s).await;
    let hash = hash_of(&u);
    let results = race(|i| {
        let store = store.clone();
        let hash = hash.clone();
        async move {
            store
                .activate(&hash, T0 + 1 + i as i64)
                .await
                .expect("activate must not fail when racing")
                .is_some()
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|won| **won).count(),
        1,
        "exactly one use of the link activates: {results:?}"
    );
    let events = events_since(s, None, mark).await;
    assert_eq!(events.len(), 1, "one activation, one event: {events:#?}");
    assert_eq!(events[0].action, ChangeAction::Updated);
    assert!(find(s, &u).await.expect("written").status.is_activated);
}
