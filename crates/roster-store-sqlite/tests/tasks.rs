//! The task engine's storage on SQLite (migration 0004): tasks and their items, leases, the
//! one-transaction chunk commit, the outbox and activations.

// Setup helpers panic on failure by design; clippy's test exemption for `unwrap` covers only
// `#[test]` functions, not the helpers beside them.
#![allow(clippy::unwrap_used)]
// Tests read like the conformance suite: `s` the store, `t` the tenant.
#![allow(clippy::many_single_char_names)]

use roster_core::ids::UserId;
use roster_core::outbox::Activation;
use roster_core::values::{Email, Mobile};
use roster_core::{
    Actor, AppId, Change, ChangeAction, ChangeEvent, Channel, Entity, IdGen, ItemError,
    ItemOutcome, NewTenant, NewUser, OutboxMessage, RandomIds, Store, StoreError, Task, TaskChunk,
    TaskId, TaskItem, TaskStatus, Tenant, TenantId, UniqueKey, User, UserKey, UserLookup,
    UserProfile, UserStatus,
};
use roster_store_sqlite::SqliteStore;
use tempfile::TempDir;

const LEASE: i64 = 30_000;

/// A fresh store in its own directory; the directory lives as long as the returned guard.
fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("roster.db")).unwrap();
    (store, dir)
}

async fn tenant(s: &SqliteStore, name: &str, cap: Option<u32>) -> Tenant {
    s.create_tenant(
        &NewTenant::parse(name, cap).unwrap(),
        &RandomIds.hex(8),
        1_000,
    )
    .await
    .unwrap()
}

fn app_change() -> Change {
    Change::by(Actor::App(AppId::from_trusted("cli_task".to_owned())))
}

fn task_id(n: u32) -> TaskId {
    TaskId::parse(&format!("{n:032x}")).unwrap()
}

fn task(t: TenantId, n: u32, created_at: i64, total: u32) -> Task {
    Task {
        id: task_id(n),
        tenant: t,
        app_id: AppId::from_trusted("cli_task".to_owned()),
        kind: "add_user".to_owned(),
        status: TaskStatus::Queued,
        total,
        succeeded: 0,
        failed: 0,
        notify: true,
        created_at,
        finished_at: None,
        lease_owner: None,
        lease_until: None,
    }
}

/// `n` pending items; item 2 (if any) carries a parse error instead of a user.
fn items(n: u32) -> Vec<TaskItem> {
    (0..n)
        .map(|i| TaskItem {
            index: i,
            input: if i == 2 {
                Err(ItemError::dialect(1_002_001, "bad mobile"))
            } else {
                Ok(NewUser {
                    user_id: Some(UserId::parse(&format!("item-{i}")).unwrap()),
                    profile: UserProfile {
                        name: format!("Item {i}"),
                        ..UserProfile::default()
                    },
                    leader: Some(UserLookup::UserId("boss".to_owned())),
                    activated: false,
                })
            },
            echo: format!("{{\"row\":{i}}}"),
            outcome: None,
        })
        .collect()
}

/// A new user as the task engine builds it: not activated, invitation pending.
fn user(t: TenantId, user_id: &str, email: Option<&str>) -> User {
    User {
        key: UserKey(0),
        tenant: t,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: UserId::parse(user_id).unwrap(),
        profile: UserProfile {
            name: format!("User {user_id}"),
            email: email.map(|e| Email::parse("email", e).unwrap()),
            ..UserProfile::default()
        },
        status: UserStatus {
            is_unjoin: true,
            ..UserStatus::default()
        },
        created_at: 1_000,
        updated_at: 1_000,
        resigned_at: None,
        logout_at: None,
    }
}

/// The invitation of `u`, with an activation token hash named after its user id.
fn mail(u: &User, channel: Channel, created_at: i64, expires_at: i64) -> OutboxMessage {
    OutboxMessage {
        id: 0,
        tenant: u.tenant,
        channel,
        recipient: u
            .profile
            .email
            .as_ref()
            .map_or_else(String::new, |e| e.as_str().to_owned()),
        subject: "Invitation".to_owned(),
        body: format!("Hello {}", u.profile.name),
        activation: Some(Activation {
            token_hash: hash_of(u),
            user_open_id: u.open_id.to_string(),
            expires_at,
        }),
        created_at,
        attempts: 0,
        next_attempt_at: created_at,
        sent_at: None,
        last_error: None,
    }
}

fn hash_of(u: &User) -> String {
    format!("hash-{}", u.user_id.as_str())
}

async fn commit(
    s: &SqliteStore,
    t: TenantId,
    id: &TaskId,
    worker: &str,
    users: &[(u32, User)],
    failures: &[(u32, ItemError)],
    mails: &[(u32, OutboxMessage)],
) -> Option<Vec<Result<UserKey, StoreError>>> {
    s.commit_task_chunk(&TaskChunk {
        tenant: t,
        task_id: id,
        worker,
        users,
        failures,
        mails,
        change: &app_change(),
    })
    .await
    .unwrap()
}

async fn all_items(s: &SqliteStore, id: &TaskId) -> Vec<TaskItem> {
    s.task_items(id, None, 1_000, false).await.unwrap()
}

fn outcomes(items: &[TaskItem]) -> Vec<Option<ItemOutcome>> {
    items.iter().map(|i| i.outcome.clone()).collect()
}

fn created(u: &User) -> ItemOutcome {
    ItemOutcome::Created {
        open_id: u.open_id.to_string(),
        union_id: u.union_id.to_string(),
        user_id: u.user_id.to_string(),
    }
}

fn failed_kind(o: Option<&ItemOutcome>) -> Option<(&str, &str)> {
    match o {
        Some(ItemOutcome::Failed(e)) => Some((e.kind.as_str(), e.field.as_str())),
        _ => None,
    }
}

async fn active_users(s: &SqliteStore, t: TenantId) -> u64 {
    s.get_tenant(t).await.unwrap().unwrap().active_users
}

async fn all_events(s: &SqliteStore) -> Vec<ChangeEvent> {
    s.list_events(None, 0, 10_000).await.unwrap()
}

async fn find(s: &SqliteStore, t: TenantId, u: &User) -> Option<User> {
    s.get_user(t, &UserLookup::OpenId(u.open_id.to_string()))
        .await
        .unwrap()
}

/// Creates a task of `n` items and claims it for `worker` at time 1 000.
async fn claimed(s: &SqliteStore, t: TenantId, n: u32, worker: &str) -> Task {
    s.create_task(&task(t, 1, 100, n), &items(n)).await.unwrap();
    let claimed = s.claim_task(worker, 1_000, LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.lease_owner.as_deref(), Some(worker));
    claimed
}

#[tokio::test]
async fn tasks_round_trip_and_page_their_items() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let other = tenant(&s, "Other", None).await;
    let stored = task(t.id, 7, 100, 5);
    let given = items(5);
    s.create_task(&stored, &given).await.unwrap();

    assert_eq!(
        s.get_task(t.id, &stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(s.get_task(other.id, &stored.id).await.unwrap(), None);
    assert_eq!(s.get_task(t.id, &task_id(8)).await.unwrap(), None);

    // Pages by index, inputs (a user, a parse error) and echoes round-trip.
    let first = s.task_items(&stored.id, None, 2, false).await.unwrap();
    assert_eq!(first, given[..2].to_vec());
    let rest = s.task_items(&stored.id, Some(1), 10, false).await.unwrap();
    assert_eq!(rest, given[2..].to_vec());
    assert!(s
        .task_items(&stored.id, Some(4), 10, false)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .task_items(&task_id(8), None, 10, false)
        .await
        .unwrap()
        .is_empty());

    // Items with an outcome drop out of the pending pages.
    s.claim_task("w1", 1_000, LEASE).await.unwrap().unwrap();
    let refused = ItemError::dialect(1, "no");
    commit(
        &s,
        t.id,
        &stored.id,
        "w1",
        &[],
        &[(0, refused.clone()), (3, refused.clone())],
        &[],
    )
    .await
    .unwrap();
    let pending: Vec<u32> = s
        .task_items(&stored.id, None, 10, true)
        .await
        .unwrap()
        .iter()
        .map(|i| i.index)
        .collect();
    assert_eq!(pending, vec![1, 2, 4]);
    let page: Vec<u32> = s
        .task_items(&stored.id, Some(1), 1, true)
        .await
        .unwrap()
        .iter()
        .map(|i| i.index)
        .collect();
    assert_eq!(page, vec![2]);
    let all = all_items(&s, &stored.id).await;
    assert_eq!(all[3].outcome, Some(ItemOutcome::Failed(refused)));
    assert_eq!(all[1].outcome, None);
}

#[tokio::test]
async fn claims_take_the_oldest_task_and_expired_leases_move_on() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    s.create_task(&task(t.id, 2, 200, 1), &items(1))
        .await
        .unwrap();
    s.create_task(&task(t.id, 1, 100, 1), &items(1))
        .await
        .unwrap();

    let a = s.claim_task("w1", 1_000, 500).await.unwrap().unwrap();
    assert_eq!(a.id, task_id(1), "oldest first");
    assert_eq!(a.status, TaskStatus::Running);
    assert_eq!(a.lease_owner.as_deref(), Some("w1"));
    assert_eq!(a.lease_until, Some(1_500));
    assert_eq!(s.get_task(t.id, &a.id).await.unwrap(), Some(a.clone()));

    let b = s.claim_task("w2", 1_000, 500).await.unwrap().unwrap();
    assert_eq!(b.id, task_id(2));
    // Both held: nothing for a third worker, not even at the last moment of the leases.
    assert_eq!(s.claim_task("w3", 1_000, 500).await.unwrap(), None);
    assert_eq!(s.claim_task("w3", 1_500, 500).await.unwrap(), None);

    // Once the leases ran out, the oldest task goes to the next worker.
    let taken = s.claim_task("w3", 1_501, 500).await.unwrap().unwrap();
    assert_eq!(taken.id, task_id(1));
    assert_eq!(taken.lease_owner.as_deref(), Some("w3"));
    assert_eq!(taken.lease_until, Some(2_001));
    // The previous holder has lost it.
    assert!(!s.renew_task_lease(&a.id, "w1", 9_999).await.unwrap());
}

#[tokio::test]
async fn only_the_lease_holder_renews_and_finishes() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let task = claimed(&s, t.id, 1, "w1").await;

    assert!(!s.renew_task_lease(&task.id, "w2", 50_000).await.unwrap());
    assert!(s.renew_task_lease(&task.id, "w1", 60_000).await.unwrap());
    assert_eq!(
        s.get_task(t.id, &task.id)
            .await
            .unwrap()
            .unwrap()
            .lease_until,
        Some(60_000)
    );
    assert!(!s.renew_task_lease(&task_id(9), "w1", 60_000).await.unwrap());

    assert!(!s
        .finish_task(&task.id, "w2", TaskStatus::Done, 5_000)
        .await
        .unwrap());
    assert_eq!(
        s.get_task(t.id, &task.id).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    assert!(s
        .finish_task(&task.id, "w1", TaskStatus::Done, 5_000)
        .await
        .unwrap());
    let done = s.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.finished_at, Some(5_000));
    assert_eq!((done.lease_owner, done.lease_until), (None, None));

    // A finished task is nobody's: no renewal, no second finish, never claimed again.
    assert!(!s.renew_task_lease(&task.id, "w1", 70_000).await.unwrap());
    assert!(!s
        .finish_task(&task.id, "w1", TaskStatus::Failed, 6_000)
        .await
        .unwrap());
    assert_eq!(s.claim_task("w2", i64::MAX / 2, LEASE).await.unwrap(), None);
}

#[tokio::test]
async fn a_chunk_writes_users_outcomes_counters_and_invitations() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let existing = user(t.id, "existing", Some("taken@example.com"));
    s.insert_users(t.id, std::slice::from_ref(&existing), false, &app_change())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let task = claimed(&s, t.id, 4, "w1").await;
    let events_before = all_events(&s).await.len();

    let alice = user(t.id, "alice", Some("alice@example.com"));
    let clash = user(t.id, "clash", Some("TAKEN@example.com"));
    let mut carol = user(t.id, "carol", None);
    carol.profile.mobile = Some(Mobile::parse("mobile", "13011111111").unwrap());
    let refused = ItemError::dialect(1_002_001, "bad mobile");
    let users = [(0, alice.clone()), (1, clash.clone()), (3, carol.clone())];
    let mails = [
        (0, mail(&alice, Channel::Email, 10, 1_000_000)),
        (1, mail(&clash, Channel::Email, 11, 1_000_000)),
        (3, mail(&carol, Channel::Sms, 12, 1_000_000)),
    ];
    let results = commit(
        &s,
        t.id,
        &task.id,
        "w1",
        &users,
        &[(2, refused.clone())],
        &mails,
    )
    .await
    .unwrap();

    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(
        results[1],
        Err(StoreError::Duplicate(UniqueKey::Email))
    ));
    let stored_alice = find(&s, t.id, &alice).await.unwrap();
    assert_eq!(Some(&stored_alice.key), results[0].as_ref().ok());
    assert!(find(&s, t.id, &carol).await.is_some());
    assert!(find(&s, t.id, &clash).await.is_none());
    assert_eq!(active_users(&s, t.id).await, 3);

    let items = all_items(&s, &task.id).await;
    assert_eq!(items[0].outcome, Some(created(&alice)));
    assert_eq!(
        failed_kind(items[1].outcome.as_ref()),
        Some(("exists", "email"))
    );
    assert_eq!(items[2].outcome, Some(ItemOutcome::Failed(refused)));
    assert_eq!(items[3].outcome, Some(created(&carol)));
    let counted = s.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((counted.succeeded, counted.failed), (2, 2));
    assert_eq!(counted.processed(), counted.total);

    // Invitations only for the users written, each with its activation.
    let outbox = s.list_outbox(Some(t.id), false, 10).await.unwrap();
    let recipients: Vec<(Channel, &str)> = outbox
        .iter()
        .map(|m| (m.channel, m.recipient.as_str()))
        .collect();
    assert_eq!(
        recipients,
        vec![(Channel::Sms, ""), (Channel::Email, "alice@example.com")]
    );
    assert_eq!(s.activate(&hash_of(&clash), 500).await.unwrap(), None);
    assert!(s.activate(&hash_of(&carol), 500).await.unwrap().is_some());
    assert!(s.activate(&hash_of(&alice), 500).await.unwrap().is_some());

    // One `created` event per written user, by the chunk's actor, in the chunk's transaction.
    let events = all_events(&s).await;
    let created: Vec<&ChangeEvent> = events[events_before..]
        .iter()
        .filter(|e| e.action == ChangeAction::Created)
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].entity, Entity::User);
    assert_eq!(created[0].entity_id, alice.open_id.as_str());
    assert_eq!(created[0].actor, "app:cli_task");
    assert_eq!(created[1].entity_id, carol.open_id.as_str());
}

#[tokio::test]
async fn a_chunk_after_the_lease_was_lost_writes_nothing() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let task = claimed(&s, t.id, 2, "w1").await;
    // w1 stalls; its lease runs out and w2 takes the task over.
    let taken = s
        .claim_task("w2", 1_000 + LEASE + 1, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.lease_owner.as_deref(), Some("w2"));
    let events_before = all_events(&s).await.len();

    let alice = user(t.id, "alice", Some("alice@example.com"));
    let mails = [(0, mail(&alice, Channel::Email, 10, 1_000_000))];
    let lost = commit(
        &s,
        t.id,
        &task.id,
        "w1",
        &[(0, alice.clone())],
        &[(1, ItemError::dialect(1, "no"))],
        &mails,
    )
    .await;
    assert!(lost.is_none());
    // Nor may anyone commit to a task that does not exist.
    assert!(commit(&s, t.id, &task_id(9), "w1", &[], &[], &[])
        .await
        .is_none());

    assert!(find(&s, t.id, &alice).await.is_none());
    assert_eq!(active_users(&s, t.id).await, 0);
    assert_eq!(outcomes(&all_items(&s, &task.id).await), vec![None, None]);
    let after = s.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((after.succeeded, after.failed), (0, 0));
    assert!(s.list_outbox(None, false, 10).await.unwrap().is_empty());
    assert_eq!(s.activate(&hash_of(&alice), 500).await.unwrap(), None);
    assert_eq!(all_events(&s).await.len(), events_before);

    // The new holder's commit goes through.
    let ok = commit(&s, t.id, &task.id, "w2", &[(0, alice.clone())], &[], &mails)
        .await
        .unwrap();
    assert!(ok[0].is_ok());
}

#[tokio::test]
async fn a_replayed_chunk_cannot_overwrite_outcomes() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let task = claimed(&s, t.id, 3, "w1").await;
    let alice = user(t.id, "alice", Some("alice@example.com"));
    let bob = user(t.id, "bob", None);
    let users = [(0, alice.clone()), (1, bob.clone())];
    let failures = [(2, ItemError::dialect(1, "first"))];
    let mails = [(0, mail(&alice, Channel::Email, 10, 1_000_000))];

    let first = commit(&s, t.id, &task.id, "w1", &users, &failures, &mails)
        .await
        .unwrap();
    assert!(first.iter().all(Result::is_ok));
    let outcomes_once = outcomes(&all_items(&s, &task.id).await);
    assert_eq!(outcomes_once[0], Some(created(&alice)));
    assert_eq!(outcomes_once[1], Some(created(&bob)));

    // The same chunk again: the users are refused (their ids are taken), and the item
    // outcomes, counters and outbox stay as the first commit left them.
    let again = commit(
        &s,
        t.id,
        &task.id,
        "w1",
        &users,
        &[(2, ItemError::dialect(2, "second"))],
        &mails,
    )
    .await
    .unwrap();
    assert!(again
        .iter()
        .all(|r| matches!(r, Err(StoreError::Duplicate(_)))));
    assert_eq!(outcomes(&all_items(&s, &task.id).await), outcomes_once);
    let counted = s.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((counted.succeeded, counted.failed), (2, 1));
    assert_eq!(s.list_outbox(None, false, 10).await.unwrap().len(), 1);
    assert_eq!(active_users(&s, t.id).await, 2);
}

#[tokio::test]
async fn the_licence_cap_refuses_users_mid_chunk() {
    let (s, _dir) = store();
    let t = tenant(&s, "Small", Some(2)).await;
    s.insert_users(t.id, &[user(t.id, "first", None)], false, &app_change())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let task = claimed(&s, t.id, 3, "w1").await;
    let a = user(t.id, "a", Some("a@example.com"));
    let b = user(t.id, "b", Some("b@example.com"));
    let c = user(t.id, "c", Some("c@example.com"));
    let mails: Vec<(u32, OutboxMessage)> = [(0, &a), (1, &b), (2, &c)]
        .into_iter()
        .map(|(i, u)| (i, mail(u, Channel::Email, 10, 1_000_000)))
        .collect();
    let results = commit(
        &s,
        t.id,
        &task.id,
        "w1",
        &[(0, a.clone()), (1, b.clone()), (2, c.clone())],
        &[],
        &mails,
    )
    .await
    .unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(StoreError::LicenceExceeded)));
    assert!(matches!(results[2], Err(StoreError::LicenceExceeded)));
    assert_eq!(active_users(&s, t.id).await, 2);

    let items = all_items(&s, &task.id).await;
    assert_eq!(items[0].outcome, Some(created(&a)));
    assert_eq!(
        failed_kind(items[1].outcome.as_ref()),
        Some(("licence", ""))
    );
    assert_eq!(
        failed_kind(items[2].outcome.as_ref()),
        Some(("licence", ""))
    );
    let counted = s.get_task(t.id, &task.id).await.unwrap().unwrap();
    assert_eq!((counted.succeeded, counted.failed), (1, 2));
    let outbox = s.list_outbox(None, false, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].recipient, "a@example.com");
}

#[tokio::test]
async fn the_outbox_hands_out_due_emails_once() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let other = tenant(&s, "Other", None).await;
    let task = claimed(&s, t.id, 4, "w1").await;
    let early = user(t.id, "early", Some("early@example.com"));
    let late = user(t.id, "late", Some("late@example.com"));
    let future = user(t.id, "future", Some("future@example.com"));
    let texted = user(t.id, "texted", None);
    let mut later = mail(&future, Channel::Email, 30, 1_000_000);
    later.next_attempt_at = 5_000;
    commit(
        &s,
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
            (0, mail(&early, Channel::Email, 10, 1_000_000)),
            (1, mail(&late, Channel::Email, 20, 1_000_000)),
            (2, later),
            (3, mail(&texted, Channel::Sms, 5, 1_000_000)),
        ],
    )
    .await
    .unwrap();
    // A message of another tenant, for the list filters.
    s.create_task(&task_for(other.id), &items(1)).await.unwrap();
    let other_task = s.claim_task("w9", 1_000, LEASE).await.unwrap().unwrap();
    let stranger = user(other.id, "stranger", Some("stranger@example.com"));
    commit(
        &s,
        other.id,
        &other_task.id,
        "w9",
        &[(0, stranger.clone())],
        &[],
        &[(0, mail(&stranger, Channel::Email, 40, 1_000_000))],
    )
    .await
    .unwrap();

    // Due e-mails, oldest first, reserved for the lease.
    let due = s.claim_outbox(100, 10, 1_000).await.unwrap();
    let got: Vec<&str> = due.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "early@example.com",
            "late@example.com",
            "stranger@example.com"
        ]
    );
    assert!(due.iter().all(|m| m.next_attempt_at == 1_100));
    assert!(due.iter().all(|m| m.channel == Channel::Email));
    assert!(s.claim_outbox(100, 10, 1_000).await.unwrap().is_empty());
    let early_id = due[0].id;
    let late_id = due[1].id;

    s.mark_outbox_failed(early_id, "smtp down", 9_000)
        .await
        .unwrap();
    s.mark_outbox_sent(late_id, 1_050).await.unwrap();
    let again = s.claim_outbox(1_200, 1, 1_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].recipient, "stranger@example.com");

    // Later: the failed one is due again, and the one created for later too; the sent one
    // and the SMS never come back.
    let last = s.claim_outbox(10_000, 10, 1_000).await.unwrap();
    let got: Vec<(&str, u32, Option<&str>)> = last
        .iter()
        .map(|m| (m.recipient.as_str(), m.attempts, m.last_error.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("early@example.com", 1, Some("smtp down")),
            ("future@example.com", 0, None),
            ("stranger@example.com", 0, None),
        ]
    );
    assert!(s
        .claim_outbox(i64::MAX / 2, 100, 1)
        .await
        .unwrap()
        .iter()
        .all(|m| m.channel == Channel::Email));

    // Lists: newest first, by tenant, unsent only, limited.
    let all = s.list_outbox(None, false, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let sent = all.iter().find(|m| m.id == late_id).unwrap();
    assert_eq!(sent.sent_at, Some(1_050));
    let mine = s.list_outbox(Some(t.id), false, 10).await.unwrap();
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|m| m.tenant == t.id));
    let unsent = s.list_outbox(Some(t.id), true, 10).await.unwrap();
    assert_eq!(unsent.len(), 3);
    assert!(unsent.iter().all(|m| m.sent_at.is_none()));
    assert_eq!(s.list_outbox(None, true, 2).await.unwrap().len(), 2);
    assert_eq!(
        s.list_outbox(Some(other.id), false, 10).await.unwrap()[0].recipient,
        "stranger@example.com"
    );
}

fn task_for(t: TenantId) -> Task {
    task(t, 2, 200, 1)
}

#[tokio::test]
async fn an_activation_works_once_and_not_after_expiry() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let task = claimed(&s, t.id, 2, "w1").await;
    let alice = user(t.id, "alice", Some("alice@example.com"));
    let bob = user(t.id, "bob", Some("bob@example.com"));
    commit(
        &s,
        t.id,
        &task.id,
        "w1",
        &[(0, alice.clone()), (1, bob.clone())],
        &[],
        &[
            (0, mail(&alice, Channel::Email, 10, 50_000)),
            (1, mail(&bob, Channel::Email, 10, 50_000)),
        ],
    )
    .await
    .unwrap();
    let before = find(&s, t.id, &alice).await.unwrap();
    assert!(!before.status.is_activated && before.status.is_unjoin);
    let events_before = all_events(&s).await.len();

    let activated = s.activate(&hash_of(&alice), 20_000).await.unwrap().unwrap();
    assert!(activated.status.is_activated);
    assert!(!activated.status.is_unjoin);
    assert_eq!(activated.updated_at, 20_000);
    assert_eq!(activated.key, before.key);
    assert_eq!(activated.profile, before.profile);
    assert_eq!(find(&s, t.id, &alice).await, Some(activated.clone()));

    let events = all_events(&s).await;
    assert_eq!(events.len(), events_before + 1);
    let ev = &events[events_before];
    assert_eq!(ev.action, ChangeAction::Updated);
    assert_eq!(ev.entity_id, alice.open_id.as_str());
    assert_eq!(ev.actor, "system");
    assert_eq!(ev.note.as_deref(), Some("activated by invitation"));
    assert_eq!(ev.at, 20_000);
    assert!(ev.before.as_deref().unwrap().contains("\"is_unjoin\":true"));
    assert!(ev
        .after
        .as_deref()
        .unwrap()
        .contains("\"is_activated\":true"));

    // Once only.
    assert_eq!(s.activate(&hash_of(&alice), 20_001).await.unwrap(), None);
    // Not at or after expiry, and then nothing changes.
    assert_eq!(s.activate(&hash_of(&bob), 50_000).await.unwrap(), None);
    let bob_now = find(&s, t.id, &bob).await.unwrap();
    assert!(!bob_now.status.is_activated && bob_now.status.is_unjoin);
    // Unknown tokens.
    assert_eq!(s.activate("nope", 1).await.unwrap(), None);
    assert_eq!(all_events(&s).await.len(), events_before + 1);
    // Bob's link still works before it expires.
    assert!(s.activate(&hash_of(&bob), 49_999).await.unwrap().is_some());
}
