//! Task, outbox and activation storage on PostgreSQL (docs/schema.md, "Migration 0004"):
//! tasks and their items, leases claimed by racing workers, the chunk transaction of bulk
//! imports, the outbox claimed by racing mailers, and activation links.
//!
//! Every test gets its own database on the server named by `ROSTER_TEST_POSTGRES_URL`, and
//! prints `SKIPPED: ROSTER_TEST_POSTGRES_URL not set` and returns when the variable is unset.

// clippy.toml allows unwrap in test functions only; the helpers below are test code too,
// and a failed setup should stop the test on the spot.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::Arc;

use roster_core::outbox::Activation;
use roster_core::values::{Email, Mobile};
use roster_core::{
    Actor, AppId, Change, ChangeAction, Channel, DeptKey, DeptLookup, Entity, IdGen, ItemError,
    ItemOutcome, Membership, NewTenant, NewUser, OutboxMessage, RandomIds, Store, StoreError, Task,
    TaskChunk, TaskId, TaskItem, TaskStatus, Tenant, TenantId, UniqueKey, User, UserKey,
    UserLookup, UserProfile, UserStatus,
};
use roster_store_postgres::{test_store, PgStore, TEST_URL_ENV};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::Barrier;

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

async fn store(test: &str) -> Option<PgStore> {
    test_store(test)
        .await
        .expect("ROSTER_TEST_POSTGRES_URL is set, so a fresh test database must be made")
}

/// Two stores, each with its own connection pool, on one fresh database: two Roster
/// processes sharing it. The database is named the way `fresh_test_store` names its own, so
/// that the same stale-database cleanup drops it later.
async fn two_stores(test: &str) -> Option<(PgStore, PgStore)> {
    let base = match std::env::var(TEST_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set ({test})"
            );
            return None;
        }
    };
    let mut admin = PgConnection::connect(&base).await.unwrap();
    let name: String = sqlx::query_scalar(
        "SELECT 'roster_test_' || lpad(to_hex(extract(epoch FROM now())::bigint), 8, '0') \
         || substr(md5(random()::text || clock_timestamp()::text), 1, 16)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(name.len() == 36 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    // The base URL with its database replaced (query parameters kept).
    let (path, query) = base
        .split_once('?')
        .map_or((base.as_str(), None), |(p, q)| (p, Some(q)));
    let server = &path[..path
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .unwrap_or(path.len())];
    let url = match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    };
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    Some((a.unwrap(), b.unwrap()))
}

async fn tenant(store: &PgStore, name: &str, cap: Option<u32>) -> Tenant {
    store
        .create_tenant(&NewTenant::parse(name, cap).unwrap(), &RandomIds.hex(8), T0)
        .await
        .unwrap()
}

async fn root(store: &PgStore, tenant: TenantId) -> DeptKey {
    store
        .get_department(tenant, &DeptLookup::OpenId("0".into()))
        .await
        .unwrap()
        .unwrap()
        .key
}

fn app() -> AppId {
    AppId::from_trusted("cli_a1b2c3d4e5f6a7b8".to_owned())
}

fn change() -> Change {
    Change::by(Actor::App(app()))
}

/// A user not yet activated (as a task creates them), with the given e-mail and mobile.
fn user(
    tenant: TenantId,
    dept: DeptKey,
    name: &str,
    email: Option<&str>,
    mobile: Option<&str>,
) -> User {
    User {
        key: UserKey(0),
        tenant,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: RandomIds.user_id(),
        profile: UserProfile {
            name: name.into(),
            email: email.map(|e| Email::parse("email", e).unwrap()),
            mobile: mobile.map(|m| Mobile::parse("mobile", m).unwrap()),
            departments: vec![Membership {
                department: dept,
                user_order: 0,
                department_order: 0,
                is_primary: true,
            }],
            ..UserProfile::default()
        },
        status: UserStatus {
            is_activated: false,
            is_unjoin: true,
            ..UserStatus::default()
        },
        created_at: T0,
        updated_at: T0,
        resigned_at: None,
        logout_at: None,
    }
}

fn new_task(tenant: TenantId, total: u32, notify: bool, created_at: i64) -> Task {
    Task {
        id: TaskId::from_trusted(RandomIds.hex(16)),
        tenant,
        app_id: app(),
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

/// Items whose inputs are users named `user 0`, `user 1`, …, except every item listed in
/// `refused`, whose input is a parse error.
fn items(total: u32, refused: &[u32]) -> Vec<TaskItem> {
    (0..total)
        .map(|i| TaskItem {
            index: i,
            input: if refused.contains(&i) {
                Err(invalid_email())
            } else {
                Ok(NewUser {
                    user_id: None,
                    profile: UserProfile {
                        name: format!("user {i}"),
                        ..UserProfile::default()
                    },
                    leader: None,
                    activated: false,
                })
            },
            echo: format!("{{\"row\":{i}}}"),
            outcome: None,
        })
        .collect()
}

fn invalid_email() -> ItemError {
    ItemError {
        kind: "invalid".into(),
        field: "email".into(),
        detail: "is not a valid e-mail address".into(),
    }
}

async fn submitted(db: &PgStore, tenant: TenantId, total: u32, notify: bool) -> Task {
    let task = new_task(tenant, total, notify, T0);
    db.create_task(&task, &items(total, &[])).await.unwrap();
    task
}

/// The invitation of `user`, as the engine writes it: e-mail when it has one, else SMS.
fn invitation(user: &User, token_hash: &str, expires_at: i64) -> OutboxMessage {
    let (channel, recipient) = match (&user.profile.email, &user.profile.mobile) {
        (Some(e), _) => (Channel::Email, e.as_str().to_owned()),
        (None, Some(m)) => (Channel::Sms, m.as_str().to_owned()),
        (None, None) => (Channel::Sms, String::new()),
    };
    OutboxMessage {
        id: 0,
        tenant: user.tenant,
        channel,
        recipient,
        subject: "You are invited".to_owned(),
        body: format!("Hello {}", user.profile.name),
        activation: Some(Activation {
            token_hash: token_hash.to_owned(),
            user_open_id: user.open_id.to_string(),
            expires_at,
        }),
        created_at: T0,
        attempts: 0,
        next_attempt_at: T0,
        sent_at: None,
        last_error: None,
    }
}

/// Commits `users` (item indexes from `first`) with their invitations as one chunk.
async fn commit(
    db: &PgStore,
    task: &Task,
    worker: &str,
    first: u32,
    users: &[User],
    failures: &[(u32, ItemError)],
) -> Option<Vec<Result<UserKey, StoreError>>> {
    let users: Vec<(u32, User)> = (first..).zip(users.iter().cloned()).collect();
    let mails: Vec<(u32, OutboxMessage)> = users
        .iter()
        .map(|(i, u)| {
            (
                *i,
                invitation(u, &format!("hash-{}", u.open_id), T0 + 86_400_000),
            )
        })
        .collect();
    db.commit_task_chunk(&TaskChunk {
        tenant: task.tenant,
        task_id: &task.id,
        worker,
        users: &users,
        failures,
        mails: &mails,
        change: &change(),
    })
    .await
    .unwrap()
}

async fn all_items(db: &PgStore, task: &Task) -> Vec<TaskItem> {
    db.task_items(&task.id, None, 1_000_000, false)
        .await
        .unwrap()
}

async fn active_users(db: &PgStore, tenant: TenantId) -> u64 {
    db.get_tenant(tenant).await.unwrap().unwrap().active_users
}

fn created(u: &User) -> ItemOutcome {
    ItemOutcome::Created {
        open_id: u.open_id.to_string(),
        union_id: u.union_id.to_string(),
        user_id: u.user_id.to_string(),
    }
}

fn failed_kind(item: &TaskItem) -> Option<(&str, &str)> {
    match &item.outcome {
        Some(ItemOutcome::Failed(e)) => Some((e.kind.as_str(), e.field.as_str())),
        _ => None,
    }
}

// ----- tasks and items -----

#[tokio::test]
async fn a_task_reads_back_with_its_items_paged_and_only_to_its_tenant() {
    let Some(db) = store("a_task_reads_back_with_its_items_paged_and_only_to_its_tenant").await
    else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let other = tenant(&db, "Other", None).await;
    let task = new_task(t.id, 7, true, T0);
    let written = items(7, &[3]);
    db.create_task(&task, &written).await.unwrap();

    assert_eq!(
        db.get_task(t.id, &task.id).await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(db.get_task(other.id, &task.id).await.unwrap(), None);
    let unknown = TaskId::from_trusted(RandomIds.hex(16));
    assert_eq!(db.get_task(t.id, &unknown).await.unwrap(), None);

    // Pages by index, after a cursor.
    assert_eq!(all_items(&db, &task).await, written);
    let first = db.task_items(&task.id, None, 3, false).await.unwrap();
    assert_eq!(first, written[..3]);
    let next = db.task_items(&task.id, Some(2), 3, false).await.unwrap();
    assert_eq!(next, written[3..6]);
    let last = db.task_items(&task.id, Some(5), 3, false).await.unwrap();
    assert_eq!(last, written[6..]);
    assert!(db
        .task_items(&task.id, Some(6), 3, false)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .task_items(&unknown, None, 3, false)
        .await
        .unwrap()
        .is_empty());

    // pending_only skips items with an outcome.
    let claimed = db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, task.id);
    let failures = [
        (0, invalid_email()),
        (3, invalid_email()),
        (5, invalid_email()),
    ];
    commit(&db, &task, "w1", 0, &[], &failures).await.unwrap();
    let pending: Vec<u32> = db
        .task_items(&task.id, None, 100, true)
        .await
        .unwrap()
        .iter()
        .map(|i| i.index)
        .collect();
    assert_eq!(pending, vec![1, 2, 4, 6]);
    let pending: Vec<u32> = db
        .task_items(&task.id, Some(1), 2, true)
        .await
        .unwrap()
        .iter()
        .map(|i| i.index)
        .collect();
    assert_eq!(pending, vec![2, 4]);
    let stored = all_items(&db, &task).await;
    assert_eq!(
        stored[3].outcome,
        Some(ItemOutcome::Failed(invalid_email()))
    );
    assert_eq!(stored[3].input, Err(invalid_email()));
}

#[tokio::test]
async fn a_large_task_is_stored_whole() {
    let Some(db) = store("a_large_task_is_stored_whole").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    // More items than one statement carries.
    let task = submitted(&db, t.id, 10_001, false).await;
    let stored = all_items(&db, &task).await;
    assert_eq!(stored.len(), 10_001);
    assert!(stored
        .iter()
        .enumerate()
        .all(|(i, item)| item.index as usize == i));
    assert_eq!(stored[10_000].echo, "{\"row\":10000}");
}

// ----- leases -----

#[tokio::test]
async fn a_task_is_claimed_once_until_its_lease_runs_out() {
    let Some(db) = store("a_task_is_claimed_once_until_its_lease_runs_out").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    assert_eq!(db.claim_task("w1", T0, LEASE).await.unwrap(), None);
    let newer = new_task(t.id, 1, false, T0 + 5);
    db.create_task(&newer, &items(1, &[])).await.unwrap();
    let older = new_task(t.id, 1, false, T0);
    db.create_task(&older, &items(1, &[])).await.unwrap();

    // Oldest first; queued → running with the worker's lease.
    let claimed = db.claim_task("w1", T0 + 10, LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, older.id);
    assert_eq!(claimed.status, TaskStatus::Running);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_until, Some(T0 + 10 + LEASE));
    assert_eq!(
        db.get_task(t.id, &older.id).await.unwrap(),
        Some(claimed.clone())
    );
    let second = db.claim_task("w2", T0 + 10, LEASE).await.unwrap().unwrap();
    assert_eq!(second.id, newer.id);
    // Nothing left while both leases hold.
    assert_eq!(
        db.claim_task("w3", T0 + 10 + LEASE, LEASE).await.unwrap(),
        None
    );

    // Only the owner renews.
    assert!(!db
        .renew_task_lease(&older.id, "w2", T0 + 100_000)
        .await
        .unwrap());
    assert!(db
        .renew_task_lease(&older.id, "w1", T0 + 40_000)
        .await
        .unwrap());
    // w2 dies: once its lease ran out, another worker takes its task over.
    let taken = db
        .claim_task("w3", T0 + 10 + LEASE + 1, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, newer.id);
    assert_eq!(taken.lease_owner.as_deref(), Some("w3"));
    assert!(!db
        .renew_task_lease(&newer.id, "w2", T0 + 100_000)
        .await
        .unwrap());
    // The dead worker's chunk is refused.
    assert!(commit(&db, &newer, "w2", 0, &[], &[]).await.is_none());

    // Only the owner finishes; a finished task is never claimed again.
    assert!(!db
        .finish_task(&older.id, "w3", TaskStatus::Done, T0 + 50)
        .await
        .unwrap());
    assert!(db
        .finish_task(&older.id, "w1", TaskStatus::Done, T0 + 50)
        .await
        .unwrap());
    let done = db.get_task(t.id, &older.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.finished_at, Some(T0 + 50));
    assert_eq!((done.lease_owner, done.lease_until), (None, None));
    assert!(!db
        .renew_task_lease(&older.id, "w1", T0 + 100_000)
        .await
        .unwrap());
    assert!(db
        .finish_task(&newer.id, "w3", TaskStatus::Failed, T0 + 60)
        .await
        .unwrap());
    assert_eq!(
        db.get_task(t.id, &newer.id).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );
    assert_eq!(
        db.claim_task("w4", T0 + 1_000_000, LEASE).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claimers_on_two_pools_never_get_the_same_task() {
    let Some((a, b)) = two_stores("racing_claimers_on_two_pools_never_get_the_same_task").await
    else {
        return;
    };
    let t = tenant(&a, "Acme", None).await;
    let mut ids = HashSet::new();
    for i in 0..40 {
        let task = new_task(t.id, 1, false, T0 + i);
        a.create_task(&task, &items(1, &[])).await.unwrap();
        ids.insert(task.id);
    }
    let barrier = Arc::new(Barrier::new(8));
    let mut claimers = Vec::new();
    for n in 0..8 {
        let db = if n % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = Arc::clone(&barrier);
        claimers.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut got = Vec::new();
            while let Some(task) = db
                .claim_task(&format!("w{n}"), T0 + 100, LEASE)
                .await
                .unwrap()
            {
                assert_eq!(task.lease_owner, Some(format!("w{n}")));
                got.push(task.id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    assert_eq!(claimed.len(), 40, "every task claimed exactly once");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), ids);
}

// ----- the chunk transaction -----

#[tokio::test]
async fn a_chunk_writes_users_outcomes_counters_and_mails_of_written_users_only() {
    let Some(db) =
        store("a_chunk_writes_users_outcomes_counters_and_mails_of_written_users_only").await
    else {
        return;
    };
    let t = tenant(&db, "Acme", Some(100)).await;
    let dept = root(&db, t.id).await;
    // Someone already holds the e-mail of item 2.
    let holder = user(t.id, dept, "Holder", Some("taken@example.com"), None);
    db.insert_users(t.id, &[holder], false, &Change::by(Actor::Cli))
        .await
        .unwrap();
    let events_before = db.list_events(Some(t.id), 0, 1000).await.unwrap().len();

    let task = submitted(&db, t.id, 6, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    let users = vec![
        user(t.id, dept, "Zhang", Some("zhang@example.com"), None),
        user(t.id, dept, "Li", None, Some("+8613800000001")),
        user(t.id, dept, "Dup", Some("TAKEN@example.com"), None),
    ];
    let results = commit(&db, &task, "w1", 0, &users, &[(3, invalid_email())])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(matches!(
        results[2],
        Err(StoreError::Duplicate(UniqueKey::Email))
    ));

    // The users, with their memberships and keys.
    for (u, r) in users.iter().zip(&results).take(2) {
        let stored = db
            .get_user(t.id, &UserLookup::OpenId(u.open_id.to_string()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.key, *r.as_ref().unwrap());
        assert_eq!(stored.profile.departments, u.profile.departments);
    }
    assert!(db
        .get_user(t.id, &UserLookup::OpenId(users[2].open_id.to_string()))
        .await
        .unwrap()
        .is_none());
    assert_eq!(active_users(&db, t.id).await, 3);

    // Outcomes: created, created, exists, the given failure, then two pending.
    let stored = all_items(&db, &task).await;
    assert_eq!(stored[0].outcome, Some(created(&users[0])));
    assert_eq!(stored[1].outcome, Some(created(&users[1])));
    assert_eq!(failed_kind(&stored[2]), Some(("exists", "email")));
    assert_eq!(
        stored[3].outcome,
        Some(ItemOutcome::Failed(invalid_email()))
    );
    assert_eq!(
        (stored[4].outcome.as_ref(), stored[5].outcome.as_ref()),
        (None, None)
    );
    let counted = db.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!(
        (counted.succeeded, counted.failed, counted.processed()),
        (2, 2, 4)
    );

    // One `created` event per written user, under the chunk's change.
    let events = db.list_events(Some(t.id), 0, 1000).await.unwrap();
    let new: Vec<_> = events[events_before..].iter().collect();
    assert_eq!(new.len(), 2);
    for (e, u) in new.iter().zip(&users) {
        assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Created));
        assert_eq!(e.entity_id, u.open_id.as_str());
        assert_eq!(e.actor, change().actor.to_string());
    }

    // Invitations of the two written users only, each with its activation.
    let mails = db.list_outbox(Some(t.id), false, 10).await.unwrap();
    assert_eq!(mails.len(), 2);
    let mut by_recipient: Vec<_> = mails
        .iter()
        .map(|m| (m.recipient.as_str(), m.channel.as_str()))
        .collect();
    by_recipient.sort_unstable();
    assert_eq!(
        by_recipient,
        vec![("+8613800000001", "sms"), ("zhang@example.com", "email")]
    );
    for m in &mails {
        let a = m.activation.as_ref().unwrap();
        assert_eq!(a.token_hash, format!("hash-{}", a.user_open_id));
        let owner = users[..2]
            .iter()
            .find(|u| u.open_id.as_str() == a.user_open_id)
            .unwrap();
        let contact = owner.profile.email.as_ref().map_or_else(
            || owner.profile.mobile.as_ref().unwrap().as_str(),
            |e| e.as_str(),
        );
        assert_eq!(m.recipient, contact);
        assert!(m.id > 0);
    }
    // The activation rows work (and name the right users).
    let activated = db
        .activate(&format!("hash-{}", users[1].open_id), T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(activated.open_id, users[1].open_id);
}

#[tokio::test]
async fn a_chunk_of_a_lost_lease_writes_nothing() {
    let Some(db) = store("a_chunk_of_a_lost_lease_writes_nothing").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let other = tenant(&db, "Other", None).await;
    let dept = root(&db, t.id).await;
    let task = submitted(&db, t.id, 2, true).await;
    let users = vec![user(t.id, dept, "Zhang", Some("zhang@example.com"), None)];
    // Not claimed yet: nobody holds it.
    assert!(commit(&db, &task, "w1", 0, &users, &[(1, invalid_email())])
        .await
        .is_none());
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    // Taken over by w2 after w1's lease ran out.
    db.claim_task("w2", T0 + LEASE + 1, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(commit(&db, &task, "w1", 0, &users, &[(1, invalid_email())])
        .await
        .is_none());
    // A task of another tenant is never held.
    let foreign = Task {
        tenant: other.id,
        ..task.clone()
    };
    let chunk = TaskChunk {
        tenant: other.id,
        task_id: &foreign.id,
        worker: "w2",
        users: &[],
        failures: &[(1, invalid_email())],
        mails: &[],
        change: &change(),
    };
    assert!(db.commit_task_chunk(&chunk).await.unwrap().is_none());

    assert!(db
        .get_user(t.id, &UserLookup::OpenId(users[0].open_id.to_string()))
        .await
        .unwrap()
        .is_none());
    assert!(all_items(&db, &task)
        .await
        .iter()
        .all(|i| i.outcome.is_none()));
    let stored = db.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((stored.succeeded, stored.failed), (0, 0));
    assert!(db.list_outbox(None, false, 10).await.unwrap().is_empty());
    assert!(db.list_events(Some(t.id), 0, 10).await.unwrap().is_empty());
    assert_eq!(active_users(&db, t.id).await, 0);

    // The new owner's chunk goes through.
    assert!(commit(&db, &task, "w2", 0, &users, &[(1, invalid_email())])
        .await
        .is_some());
}

#[tokio::test]
async fn a_replayed_chunk_cannot_overwrite_outcomes() {
    let Some(db) = store("a_replayed_chunk_cannot_overwrite_outcomes").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let dept = root(&db, t.id).await;
    let task = submitted(&db, t.id, 3, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    let users = vec![
        user(t.id, dept, "Zhang", Some("zhang@example.com"), None),
        user(t.id, dept, "Li", Some("li@example.com"), None),
    ];
    let first = commit(&db, &task, "w1", 0, &users, &[(2, invalid_email())])
        .await
        .unwrap();
    assert!(first.iter().all(Result::is_ok));
    let after_first = all_items(&db, &task).await;

    // The same chunk again: its users now clash with themselves and are refused, but the
    // stored outcomes, counters and mails stay as the first commit left them.
    let conflict = ItemError {
        kind: "conflict".into(),
        field: "not_written".into(),
        detail: "replayed".into(),
    };
    let replay = commit(&db, &task, "w1", 0, &users, &[(2, conflict)])
        .await
        .unwrap();
    assert!(replay
        .iter()
        .all(|r| matches!(r, Err(StoreError::Duplicate(_)))));
    assert_eq!(all_items(&db, &task).await, after_first);
    let stored = db.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((stored.succeeded, stored.failed), (2, 1));
    assert_eq!(db.list_outbox(None, false, 10).await.unwrap().len(), 2);
    assert_eq!(active_users(&db, t.id).await, 2);
}

#[tokio::test]
async fn the_licence_cap_refuses_the_rest_of_a_chunk() {
    let Some(db) = store("the_licence_cap_refuses_the_rest_of_a_chunk").await else {
        return;
    };
    let t = tenant(&db, "Acme", Some(3)).await;
    let dept = root(&db, t.id).await;
    let seated = user(t.id, dept, "First", Some("first@example.com"), None);
    db.insert_users(t.id, &[seated], false, &Change::by(Actor::Cli))
        .await
        .unwrap();
    let task = submitted(&db, t.id, 5, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    let users: Vec<User> = (0..4)
        .map(|i| {
            user(
                t.id,
                dept,
                &format!("U{i}"),
                Some(&format!("u{i}@example.com")),
                None,
            )
        })
        .collect();
    let results = commit(&db, &task, "w1", 0, &users, &[]).await.unwrap();
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(matches!(results[2], Err(StoreError::LicenceExceeded)));
    assert!(matches!(results[3], Err(StoreError::LicenceExceeded)));
    assert_eq!(active_users(&db, t.id).await, 3);

    let stored = all_items(&db, &task).await;
    assert_eq!(stored[0].outcome, Some(created(&users[0])));
    assert_eq!(stored[1].outcome, Some(created(&users[1])));
    assert_eq!(failed_kind(&stored[2]).map(|(k, _)| k), Some("licence"));
    assert_eq!(failed_kind(&stored[3]).map(|(k, _)| k), Some("licence"));
    assert!(stored[4].outcome.is_none());
    let counted = db.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((counted.succeeded, counted.failed), (2, 2));
    let mut recipients: Vec<String> = db
        .list_outbox(None, false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.recipient)
        .collect();
    recipients.sort_unstable();
    assert_eq!(recipients, vec!["u0@example.com", "u1@example.com"]);
}

#[tokio::test]
async fn a_duplicate_and_the_licence_cap_in_one_chunk_fall_back_row_by_row() {
    let Some(db) = store("a_duplicate_and_the_licence_cap_in_one_chunk_fall_back_row_by_row").await
    else {
        return;
    };
    let t = tenant(&db, "Acme", Some(3)).await;
    let dept = root(&db, t.id).await;
    let holder = user(t.id, dept, "Holder", Some("taken@example.com"), None);
    db.insert_users(t.id, &[holder], false, &Change::by(Actor::Cli))
        .await
        .unwrap();
    let task = submitted(&db, t.id, 4, false).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    // The duplicate frees a seat that the row-by-row path gives to the next user.
    let users = vec![
        user(t.id, dept, "A", Some("taken@example.com"), None),
        user(t.id, dept, "B", None, None),
        user(t.id, dept, "C", None, None),
        user(t.id, dept, "D", None, None),
    ];
    let results = commit(&db, &task, "w1", 0, &users, &[]).await.unwrap();
    assert!(matches!(
        results[0],
        Err(StoreError::Duplicate(UniqueKey::Email))
    ));
    assert!(results[1].is_ok() && results[2].is_ok());
    assert!(matches!(results[3], Err(StoreError::LicenceExceeded)));
    assert_eq!(active_users(&db, t.id).await, 3);
    let counted = db.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((counted.succeeded, counted.failed), (2, 2));
    let events = db.list_events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(
        events.len(),
        3,
        "the holder's event and one per written user"
    );
}

// ----- the outbox -----

/// Commits one user per recipient (all with invitations) and returns the stored messages,
/// oldest first.
async fn outbox_of(
    db: &PgStore,
    t: TenantId,
    emails: &[&str],
    mobiles: &[&str],
) -> Vec<OutboxMessage> {
    let dept = root(db, t).await;
    let mut users: Vec<User> = emails
        .iter()
        .map(|e| user(t, dept, "E", Some(e), None))
        .collect();
    users.extend(mobiles.iter().map(|m| user(t, dept, "M", None, Some(m))));
    let task = submitted(db, t, users.len() as u32, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    commit(db, &task, "w1", 0, &users, &[]).await.unwrap();
    let mut all = db.list_outbox(Some(t), false, 1000).await.unwrap();
    all.reverse();
    all
}

#[tokio::test]
async fn the_outbox_is_claimed_marked_and_listed() {
    let Some(db) = store("the_outbox_is_claimed_marked_and_listed").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let other = tenant(&db, "Other", None).await;
    let all = outbox_of(
        &db,
        t.id,
        &["a@example.com", "b@example.com", "c@example.com"],
        &["+8613800000001"],
    )
    .await;
    assert_eq!(all.len(), 4);
    let ids: Vec<i64> = all.iter().map(|m| m.id).collect();
    // Ids follow the order of the mails, each with the activation of its own user.
    let recipients: Vec<&str> = all.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(
        recipients,
        vec![
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "+8613800000001"
        ]
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for m in &all {
        let owner = db
            .get_user(
                t.id,
                &UserLookup::OpenId(m.activation.as_ref().unwrap().user_open_id.clone()),
            )
            .await
            .unwrap()
            .unwrap();
        let contact = owner
            .profile
            .email
            .map(|e| e.as_str().to_owned())
            .or(owner.profile.mobile.map(|m| m.as_str().to_owned()));
        assert_eq!(contact.as_deref(), Some(m.recipient.as_str()));
    }

    // Not due yet; then the e-mails only, oldest first, reserved for the lease.
    assert!(db
        .claim_outbox(T0 - 1, 10, 60_000)
        .await
        .unwrap()
        .is_empty());
    let claimed = db.claim_outbox(T0, 2, 60_000).await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
    assert!(claimed
        .iter()
        .all(|m| m.next_attempt_at == T0 + 60_000 && m.activation.is_some()));
    let rest = db.claim_outbox(T0, 10, 60_000).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..3]);
    assert!(db
        .claim_outbox(T0 + 59_999, 10, 60_000)
        .await
        .unwrap()
        .is_empty());

    db.mark_outbox_sent(ids[0], T0 + 10).await.unwrap();
    db.mark_outbox_failed(ids[1], "550 no such user", T0 + 5_000)
        .await
        .unwrap();
    let retried = db.claim_outbox(T0 + 5_000, 10, 60_000).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, ids[1]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_error.as_deref(), Some("550 no such user"));
    // The SMS is never claimed, however late.
    let late = db.claim_outbox(T0 + 10_000_000, 10, 60_000).await.unwrap();
    assert_eq!(
        late.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[2]]
    );

    // Newest first; unsent ones; per tenant.
    let listed = db.list_outbox(None, false, 10).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.id).rev().collect::<Vec<_>>(), ids);
    let sent = listed.iter().find(|m| m.id == ids[0]).unwrap();
    assert_eq!(sent.sent_at, Some(T0 + 10));
    let unsent: Vec<i64> = db
        .list_outbox(None, true, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(unsent, vec![ids[3], ids[2], ids[1]]);
    assert_eq!(db.list_outbox(None, false, 2).await.unwrap().len(), 2);
    assert!(db
        .list_outbox(Some(other.id), false, 10)
        .await
        .unwrap()
        .is_empty());
    let sms = listed.iter().find(|m| m.id == ids[3]).unwrap();
    assert_eq!(
        (sms.channel, sms.recipient.as_str()),
        (Channel::Sms, "+8613800000001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_mailers_on_two_pools_never_get_the_same_message() {
    let Some((a, b)) = two_stores("racing_mailers_on_two_pools_never_get_the_same_message").await
    else {
        return;
    };
    let t = tenant(&a, "Acme", None).await;
    let emails: Vec<String> = (0..60).map(|i| format!("m{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let all = outbox_of(&a, t.id, &refs, &["+8613800000001"]).await;
    let barrier = Arc::new(Barrier::new(6));
    let mut mailers = Vec::new();
    for n in 0..6 {
        let db = if n % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = Arc::clone(&barrier);
        mailers.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut got = Vec::new();
            loop {
                let batch = db.claim_outbox(T0, 4, 60_000).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for m in mailers {
        claimed.extend(m.await.unwrap());
    }
    assert_eq!(claimed.len(), 60, "every e-mail claimed exactly once");
    let expected: HashSet<i64> = all
        .iter()
        .filter(|m| m.channel == Channel::Email)
        .map(|m| m.id)
        .collect();
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), expected);
}

// ----- activation -----

#[tokio::test]
async fn an_activation_works_once_and_not_after_it_expires() {
    let Some(db) = store("an_activation_works_once_and_not_after_it_expires").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let dept = root(&db, t.id).await;
    let task = submitted(&db, t.id, 2, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    let users = vec![
        user(t.id, dept, "Zhang", Some("zhang@example.com"), None),
        user(t.id, dept, "Li", Some("li@example.com"), None),
    ];
    commit(&db, &task, "w1", 0, &users, &[]).await.unwrap();
    let expires = T0 + 86_400_000;
    let token = |u: &User| format!("hash-{}", u.open_id);
    let events_before = db.list_events(Some(t.id), 0, 100).await.unwrap().len();

    let at = T0 + 1_000;
    let activated = db.activate(&token(&users[0]), at).await.unwrap().unwrap();
    assert_eq!(activated.open_id, users[0].open_id);
    assert!(activated.status.is_activated);
    assert!(!activated.status.is_unjoin);
    assert_eq!(activated.updated_at, at);
    assert_eq!(activated.profile.departments, users[0].profile.departments);
    let stored = db
        .get_user(t.id, &UserLookup::OpenId(users[0].open_id.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, activated);

    let events = db.list_events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(events.len(), events_before + 1);
    let e = events.last().unwrap();
    assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Updated));
    assert_eq!(e.entity_id, users[0].open_id.as_str());
    assert_eq!(e.actor, "system");
    assert_eq!(e.note.as_deref(), Some("activated by invitation"));
    assert_eq!(e.at, at);
    assert!(e
        .before
        .as_deref()
        .unwrap()
        .contains("\"is_activated\":false"));
    assert!(e
        .after
        .as_deref()
        .unwrap()
        .contains("\"is_activated\":true"));

    // Once only.
    assert_eq!(db.activate(&token(&users[0]), at + 1).await.unwrap(), None);
    // Expired (the expiry instant included), and unknown.
    assert_eq!(db.activate(&token(&users[1]), expires).await.unwrap(), None);
    assert_eq!(db.activate("no-such-hash", at).await.unwrap(), None);
    let li = db
        .get_user(t.id, &UserLookup::OpenId(users[1].open_id.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert!(!li.status.is_activated);
    // A link refused as expired was not used up: it still works before its expiry.
    assert!(db
        .activate(&token(&users[1]), expires - 1)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        db.list_events(Some(t.id), 0, 100).await.unwrap().len(),
        events_before + 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_activations_of_one_link_succeed_once() {
    let Some(db) = store("racing_activations_of_one_link_succeed_once").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let dept = root(&db, t.id).await;
    let task = submitted(&db, t.id, 1, true).await;
    db.claim_task("w1", T0, LEASE).await.unwrap().unwrap();
    let u = user(t.id, dept, "Zhang", Some("zhang@example.com"), None);
    commit(&db, &task, "w1", 0, std::slice::from_ref(&u), &[])
        .await
        .unwrap();
    let token = format!("hash-{}", u.open_id);
    let barrier = Arc::new(Barrier::new(6));
    let mut racers = Vec::new();
    for _ in 0..6 {
        let db = db.clone();
        let token = token.clone();
        let barrier = Arc::clone(&barrier);
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            db.activate(&token, T0 + 1).await.unwrap().is_some()
        }));
    }
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1);
    let events = db.list_events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == ChangeAction::Updated)
            .count(),
        1
    );
}
