//! Racing writers. The core's uniqueness pre-check (`taken_user_values`) cannot see a
//! concurrent writer's rows, so only the database's own constraints and the store's handling
//! of the cap inside its transaction keep these invariants. Every task waits on one barrier
//! so that the writes really overlap.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use roster_core::{
    BatchMode, ConflictKind, CoreError, DeptLookup, IdempotencyClaim, NewTenant, ReadVersions,
    Store, StoreError, UniqueKey, User, UserLookup, UserPatch,
};
use tokio::sync::Barrier;

use crate::support::{
    active_users, assert_duplicate, assert_user_exists_err, cli, department, email, env, get_user,
    insert_department, mobile, new_user, now_ms, plain_user, root, tenant,
};

/// How many tasks race in each check.
const RACERS: usize = 16;

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

/// 16 concurrent `Directory::create_user` calls for users with one e-mail (in varying case)
/// and different user ids: exactly one succeeds, every other fails with
/// `AlreadyExists { User, Email }`, and the e-mail finds exactly that one active user.
pub async fn check_racing_creates_of_same_email_leave_one_user(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let results = race(|i| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let mut u = new_user(&format!("racer{i}"));
        let addr = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@Example.com"
        };
        u.profile.email = Some(email(addr));
        async move { dir.create_user(&caller, u).await }
    })
    .await;

    let winners: Vec<&User> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one racer may create the user; results: {results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        assert_user_exists_err(r, UniqueKey::Email, "a losing racer");
    }
    let s = env.store.as_ref();
    let holder = get_user(
        s,
        env.tenant.id,
        UserLookup::Email("race@example.com".into()),
    )
    .await
    .expect("the e-mail has a holder");
    assert_eq!(&holder, winners[0]);
    assert!(!holder.status.is_resigned);
    for i in 0..RACERS {
        let found = get_user(s, env.tenant.id, UserLookup::UserId(format!("racer{i}"))).await;
        assert_eq!(
            found.is_some(),
            format!("racer{i}") == winners[0].user_id.as_str(),
            "only the winner was written (racer{i})"
        );
    }
    assert_eq!(active_users(s, env.tenant.id).await, 1);
}

/// 16 concurrent `Directory::patch_user` calls on one user, each changing one of four
/// fields: no change is lost (each read-modify-write that found the user changed since its
/// read tries again), and the user's `updated_at` moved once per write.
pub async fn check_racing_patches_of_different_fields_lose_none(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let created = env
        .dir
        .create_user(&env.caller, new_user("patched"))
        .await
        .expect("create the user");
    let lookup = UserLookup::Key(created.key);
    let results = race(|i| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let lookup = lookup.clone();
        let value = Some(Some(format!("v{i}")));
        let patch = match i % 4 {
            0 => UserPatch {
                city: value,
                ..UserPatch::default()
            },
            1 => UserPatch {
                job_title: value,
                ..UserPatch::default()
            },
            2 => UserPatch {
                work_station: value,
                ..UserPatch::default()
            },
            _ => UserPatch {
                en_name: value,
                ..UserPatch::default()
            },
        };
        async move { dir.patch_user(&caller, &lookup, patch).await }
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "every patch succeeds: {r:?}");
    }
    let user = get_user(env.store.as_ref(), env.tenant.id, lookup)
        .await
        .expect("the user");
    let p = &user.profile;
    for (field, value) in [
        ("city", &p.city),
        ("job_title", &p.job_title),
        ("work_station", &p.work_station),
        ("en_name", &p.en_name),
    ] {
        assert!(value.is_some(), "the {field} patch was lost: {p:?}");
    }
    assert!(
        user.updated_at >= created.updated_at + RACERS as i64,
        "every write moved updated_at: {} then {}",
        created.updated_at,
        user.updated_at
    );
}

/// A pile-up on one user: 48 writers each patching it 5 times in a row, with no pause.
/// Every patch succeeds. Each round of racing read-modify-writes lets only one through, so
/// a retry bounded by a count of attempts (64 rounds before) left the unluckiest writers
/// failing on PostgreSQL, whose reads and writes take longer and widen the race.
pub async fn check_a_pile_up_of_patches_on_one_user_fails_none(store: Arc<dyn Store>) {
    const WRITERS: usize = 48;
    const ROUNDS: usize = 5;
    let env = env(store, "Acme", None).await;
    let created = env
        .dir
        .create_user(&env.caller, new_user("piled"))
        .await
        .expect("create the user");
    let lookup = UserLookup::Key(created.key);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut handles = Vec::with_capacity(WRITERS);
    for i in 0..WRITERS {
        let (dir, caller, lookup, barrier) = (
            env.dir.clone(),
            env.caller.clone(),
            lookup.clone(),
            barrier.clone(),
        );
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut failed = Vec::new();
            for round in 0..ROUNDS {
                let patch = UserPatch {
                    job_title: Some(Some(format!("w{i}r{round}"))),
                    ..UserPatch::default()
                };
                if let Err(e) = dir.patch_user(&caller, &lookup, patch).await {
                    failed.push(format!("writer {i} round {round}: {e:?}"));
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for h in handles {
        failed.extend(h.await.expect("a writer panicked"));
    }
    assert!(
        failed.is_empty(),
        "{} patches failed: {failed:?}",
        failed.len()
    );
    let user = get_user(env.store.as_ref(), env.tenant.id, lookup)
        .await
        .expect("the user");
    assert!(
        user.updated_at >= created.updated_at + (WRITERS * ROUNDS) as i64,
        "every write moved updated_at: {} then {}",
        created.updated_at,
        user.updated_at
    );
}

/// The store re-checks leader rules after a save's writes: a leader change that closes a
/// cycle with one committed since the caller read, a leader who resigned meanwhile, and a
/// resignation that leaves someone reporting to the resigned user are `Stale`.
pub async fn check_saves_never_leave_leader_cycles_or_resigned_leaders(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let a = env
        .dir
        .create_user(&env.caller, new_user("lead-a"))
        .await
        .expect("a");
    let b = env
        .dir
        .create_user(&env.caller, new_user("lead-b"))
        .await
        .expect("b");
    let mut a_under_b = a.clone();
    a_under_b.profile.leader = Some(b.open_id.clone());
    a_under_b.updated_at += 1;
    s.update_user(&a_under_b, &cli())
        .await
        .expect("A reports to B");

    // B, as read before that write, is made to report to A: a cycle.
    let mut b_under_a = b.clone();
    b_under_a.profile.leader = Some(a.open_id.clone());
    b_under_a.updated_at += 1;
    let r = s.update_user(&b_under_a, &cli()).await;
    assert!(matches!(r, Err(StoreError::Stale)), "a leader cycle: {r:?}");

    // B resigns while A still reports to B.
    let mut b_gone = b.clone();
    b_gone.status.is_resigned = true;
    b_gone.resigned_at = Some(b.updated_at + 1);
    b_gone.updated_at += 1;
    let r = s.update_user(&b_gone, &cli()).await;
    assert!(
        matches!(r, Err(StoreError::Stale)),
        "a report left behind: {r:?}"
    );
    let stored_b = get_user(s, env.tenant.id, UserLookup::Key(b.key))
        .await
        .expect("b");
    assert!(!stored_b.status.is_resigned, "B stays active");

    // With the report handed over in the same save, B may resign; then nobody may take B
    // as a leader.
    let mut a_free = a_under_b.clone();
    a_free.profile.leader = None;
    a_free.updated_at += 1;
    s.save(env.tenant.id, &[b_gone, a_free.clone()], &[], &[], &cli())
        .await
        .expect("resign B, handing A over");
    let mut a_again = a_free.clone();
    a_again.profile.leader = Some(b.open_id.clone());
    a_again.updated_at += 1;
    let r = s.update_user(&a_again, &cli()).await;
    assert!(
        matches!(r, Err(StoreError::Stale)),
        "a resigned leader: {r:?}"
    );
}

/// 16 concurrent first requests for an app's JSAPI ticket all get the same ticket (the one
/// stored), as Feishu hands out one ticket while it is valid.
pub async fn check_racing_first_jsapi_ticket_requests_get_one_ticket(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let results = race(|_| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        async move { dir.jsapi_ticket(&caller).await }
    })
    .await;
    let tickets: HashSet<String> = results
        .into_iter()
        .map(|r| r.expect("a ticket").0)
        .collect();
    assert_eq!(tickets.len(), 1, "one ticket for every caller: {tickets:?}");
}

/// `save_checked` writes nothing, and answers `Stale`, when an entity changed since the
/// version the caller read; with the current version it writes.
pub async fn check_save_checked_refuses_a_stale_read(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let created = env
        .dir
        .create_user(&env.caller, new_user("versioned"))
        .await
        .expect("create the user");
    let read = ReadVersions {
        users: vec![(created.key, created.updated_at)],
        departments: Vec::new(),
    };
    let mut first = created.clone();
    first.profile.city = Some("First".into());
    first.updated_at = created.updated_at + 1;
    s.save_checked(env.tenant.id, &[first.clone()], &[], &[], &read, &cli())
        .await
        .expect("a write from the current version");
    let mut second = created.clone();
    second.profile.job_title = Some("Second".into());
    second.updated_at = created.updated_at + 1;
    let stale = s
        .save_checked(env.tenant.id, &[second], &[], &[], &read, &cli())
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    let stored = get_user(s, env.tenant.id, UserLookup::Key(created.key))
        .await
        .expect("the user");
    assert_eq!(stored.profile.city.as_deref(), Some("First"));
    assert_eq!(
        stored.profile.job_title, None,
        "the stale write wrote nothing"
    );

    let mut dept = insert_department(
        s,
        env.tenant.id,
        env.root.key,
        "versioned-dept",
        "Versioned",
        0,
    )
    .await;
    let dept_read = ReadVersions {
        users: Vec::new(),
        departments: vec![(dept.key, dept.updated_at + 7)],
    };
    dept.fields.name = "Renamed".into();
    let stale = s
        .save_checked(env.tenant.id, &[], &[dept], &[], &dept_read, &cli())
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
}

/// The same race on the raw store, with the core's pre-check out of the way: 16 concurrent
/// `insert_users` calls of users sharing an e-mail write exactly one, and every other call
/// reports `Duplicate(Email)` for its row.
pub async fn check_racing_raw_inserts_of_same_email_write_one_row(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let results = race(|i| {
        let store = store.clone();
        let mut u = plain_user(t.id, r.key, &format!("raw{i}"));
        u.profile.email = Some(email("raw@example.com"));
        async move {
            let atomic = i % 2 == 0;
            let mut rs = store
                .insert_users(u.tenant, std::slice::from_ref(&u), atomic, &cli())
                .await
                .expect("a duplicate is a per-row result, not a failed call");
            assert_eq!(rs.len(), 1);
            rs.remove(0)
        }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        ok, 1,
        "exactly one row may be written; results: {results:?}"
    );
    for res in results.iter().filter(|r| r.is_err()) {
        assert_duplicate(res, UniqueKey::Email, "a losing racer");
    }
    assert_eq!(active_users(store.as_ref(), t.id).await, 1);
}

/// 16 concurrent best-effort batches whose mobiles overlap: each mobile is written exactly
/// once, every refused item fails with `AlreadyExists { User, Mobile }`, and the active count
/// equals the number of distinct mobiles.
pub async fn check_racing_best_effort_batches_overlapping_in_mobiles_write_each_mobile_once(
    store: Arc<dyn Store>,
) {
    const PER_BATCH: usize = 10;
    const POOL: usize = 24;
    let env = env(store, "Acme", None).await;
    let slot = |task: usize, j: usize| (task * 3 + j) % POOL;
    let results = race(|task| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let items = (0..PER_BATCH)
            .map(|j| {
                let mut u = new_user(&format!("b{task}-{j}"));
                u.profile.mobile = Some(mobile(u32::try_from(slot(task, j)).expect("small")));
                Ok(u)
            })
            .collect();
        async move {
            dir.create_users(&caller, items, BatchMode::BestEffort)
                .await
        }
    })
    .await;

    let pool: HashSet<usize> = (0..RACERS)
        .flat_map(|t| (0..PER_BATCH).map(move |j| slot(t, j)))
        .collect();
    let s = env.store.as_ref();
    let mut winners: HashMap<usize, Vec<String>> = HashMap::new();
    for (task, report) in results.iter().enumerate() {
        let report = report.as_ref().expect("a best-effort batch answers");
        assert_eq!(report.items.len(), PER_BATCH);
        for (j, item) in report.items.iter().enumerate() {
            match item {
                Ok(created) => winners
                    .entry(slot(task, j))
                    .or_default()
                    .push(created.user_id.to_string()),
                Err(_) => {
                    assert_user_exists_err(item, UniqueKey::Mobile, &format!("item {task}/{j}"));
                }
            }
        }
    }
    for m in &pool {
        let holders = winners.get(m).cloned().unwrap_or_default();
        assert_eq!(
            holders.len(),
            1,
            "mobile slot {m} must be written exactly once, written by {holders:?}"
        );
        let m32 = u32::try_from(*m).expect("small");
        let holder = get_user(
            s,
            env.tenant.id,
            UserLookup::Mobile(mobile(m32).as_str().into()),
        )
        .await
        .expect("the mobile has a holder");
        assert_eq!(holder.user_id.as_str(), holders[0]);
    }
    assert_eq!(
        active_users(s, env.tenant.id).await,
        pool.len() as u64,
        "one active user per distinct mobile"
    );
}

/// 16 concurrent creates of distinct users under a cap of 5: exactly 5 succeed, the rest are
/// `LicenceExceeded`, and the count never passes the cap.
pub async fn check_racing_creates_never_exceed_the_licence_cap(store: Arc<dyn Store>) {
    let env = env(store, "Capped", Some(5)).await;
    let results = race(|i| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let u = new_user(&format!("capped{i}"));
        async move { dir.create_user(&caller, u).await }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        ok, 5,
        "exactly the cap may be created; results: {results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(CoreError::LicenceExceeded)),
            "a refused racer: expected LicenceExceeded, got {r:?}"
        );
    }
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 5);
}

/// Racing creations of tenants with one name and of departments with one custom id each
/// leave exactly one row; the losers get the matching `Duplicate`.
pub async fn check_racing_tenant_and_department_creations_leave_one_row(store: Arc<dyn Store>) {
    let results = race(|i| {
        let store = store.clone();
        async move {
            store
                .create_tenant(
                    &NewTenant::parse("Racing Inc", None).expect("name"),
                    &format!("{i:016x}"),
                    now_ms(),
                )
                .await
        }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(StoreError::Duplicate(UniqueKey::TenantName))),
            "expected Duplicate(TenantName), got {r:?}"
        );
    }
    assert_eq!(store.list_tenants().await.expect("list").len(), 1);

    let t = results
        .into_iter()
        .find_map(Result::ok)
        .expect("one tenant won");
    let r = root(store.as_ref(), t.id).await;
    let results = race(|i| {
        let store = store.clone();
        // One custom id in varying case, distinct names.
        let id = if i % 2 == 0 { "Shared" } else { "SHARED" };
        let d = department(t.id, r.key, id, &format!("Dept {i}"), 0);
        async move { store.insert_department(&d, &cli()).await }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for res in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(res, Err(StoreError::Duplicate(UniqueKey::DepartmentId))),
            "expected Duplicate(DepartmentId), got {res:?}"
        );
    }
    assert_eq!(store.count_departments(t.id).await.expect("count"), 2);
    assert!(store
        .get_department(t.id, &DeptLookup::CustomId("shared".into()))
        .await
        .expect("lookup")
        .is_some());
}

/// Several server processes starting at once on an empty database all call `bootstrap`:
/// exactly one creates the default tenant and app, every other one returns `Ok(None)` (a
/// failure there would stop that process from starting), and one tenant and one app exist.
pub async fn check_racing_bootstraps_create_one_tenant_and_fail_none(store: Arc<dyn Store>) {
    let results = race(|_| {
        // One directory per racer: each stands for a separate process.
        let dir = crate::support::directory(store.clone());
        async move { dir.bootstrap().await.map(|b| b.map(|b| b.tenant.id)) }
    })
    .await;
    let created = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert_eq!(
        created, 1,
        "exactly one bootstrap creates; results: {results:?}"
    );
    for r in &results {
        assert!(r.is_ok(), "a racing bootstrap must not fail: {r:?}");
    }
    assert_eq!(store.list_tenants().await.expect("list").len(), 1);
    assert_eq!(store.list_apps(None).await.expect("list").len(), 1);
}

/// 16 concurrent claims of one idempotency key with different fingerprints: exactly one is
/// `Claimed`, and every other one sees that claim (its fingerprint, no result yet).
pub async fn check_racing_claims_of_one_idempotency_key_leave_one_claimant(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let app = crate::support::app(t.id, "racer");
    store.insert_app(&app).await.expect("insert app");
    let key = crate::idempotency::idem_key(t.id, &app.app_id, "feishu.users.create", "shared");
    let results = race(|i| {
        let store = store.clone();
        let key = key.clone();
        async move {
            let fp = format!("fp-{i}");
            let claim = store
                .claim_idempotency_key(&key, &fp, now_ms())
                .await
                .expect("a claim answers");
            (fp, claim)
        }
    })
    .await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, c)| *c == IdempotencyClaim::Claimed)
        .map(|(fp, _)| fp)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one racer claims the key; results: {results:?}"
    );
    let winner = winners[0].clone();
    for (fp, claim) in &results {
        if fp != &winner {
            assert_eq!(
                claim,
                &IdempotencyClaim::Existing {
                    fingerprint: winner.clone(),
                    result: None
                },
                "a losing racer ({fp}) sees the winner's claim"
            );
        }
    }
}

/// 16 concurrent `Directory::idempotent` calls with one key and fingerprint: the operation
/// runs once, every call answers with its entity id, exactly one as the original, the
/// replays with the answer the original recorded, and one user is created.
pub async fn check_racing_idempotent_calls_run_the_operation_once(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let results = race(|i| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let runs = runs.clone();
        async move {
            let op_dir = dir.clone();
            let op_caller = caller.clone();
            let outcome = dir
                .idempotent(
                    &caller,
                    "feishu.users.create",
                    "one-request",
                    "fp",
                    move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        op_dir
                            .create_user(&op_caller, new_user(&format!("idem{i}")))
                            .await
                            .map(|u| u.open_id.to_string())
                    },
                )
                .await;
            // The first request records its answer, as a dialect does; the others wait
            // for it.
            if let Some(o) = outcome.as_ref().ok().filter(|o| !o.replayed) {
                dir.record_idempotent_answer(
                    &caller,
                    "feishu.users.create",
                    "one-request",
                    &o.entity_id,
                    "the first answer",
                )
                .await;
            }
            outcome
        }
    })
    .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the operation runs once; results: {results:?}"
    );
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().expect("every racer gets the result"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(
        outcomes
            .iter()
            .filter(|o| o.replayed)
            .all(|o| o.answer.as_deref() == Some("the first answer")),
        "every replay answers what the first request answered: {outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .all(|o| o.entity_id == outcomes[0].entity_id));
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 1);
    let created = get_user(
        env.store.as_ref(),
        env.tenant.id,
        UserLookup::OpenId(outcomes[0].entity_id.clone()),
    )
    .await;
    assert!(created.is_some(), "the id replayed is the created user's");
}

/// Department creations racing user inserts in one tenant all succeed. A user insert locks
/// the tenant's row (its licence room) and then the department tree in shared mode, while a
/// department insert holds the tree and then checks its tenant reference; with locks that
/// exclude each other the two wait on each other and PostgreSQL kills one as a deadlock,
/// which a client saw as an internal error.
pub async fn check_racing_department_and_user_inserts_all_succeed(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    for round in 0..4 {
        let results = race(|i| {
            let store = store.clone();
            let d = department(
                t.id,
                r.key,
                &format!("d{round}x{i}"),
                &format!("Dept {round} {i}"),
                0,
            );
            let u = plain_user(t.id, r.key, &format!("r{round}x{i}"));
            async move {
                if i % 2 == 0 {
                    store
                        .insert_department(&d, &cli())
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("department: {e:?}"))
                } else {
                    let mut rs = store
                        .insert_users(u.tenant, std::slice::from_ref(&u), true, &cli())
                        .await
                        .map_err(|e| format!("users: {e:?}"))?;
                    rs.remove(0).map(|_| ()).map_err(|e| format!("user: {e:?}"))
                }
            }
        })
        .await;
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "round {round}: {failed:?}");
    }
    let racers = u64::try_from(RACERS).expect("a small count");
    assert_eq!(active_users(store.as_ref(), t.id).await, 4 * racers / 2);
    assert_eq!(
        store.count_departments(t.id).await.expect("count"),
        1 + 4 * racers / 2
    );
}

/// Concurrent first token calls of one app get one token, as Feishu hands out one current
/// token per app, not one per racing call.
pub async fn check_racing_first_token_calls_get_one_token(store: Arc<dyn Store>) {
    let dir = crate::support::directory(store.clone());
    let t = tenant(store.as_ref(), "Acme", None).await;
    let (app, secret) = dir
        .create_app(
            t.id,
            "racer",
            roster_core::Scopes::new([roster_core::Scope::ContactRead]),
            roster_core::ContactScope::All,
        )
        .await
        .expect("create app");
    let tokens = race(|_| {
        let dir = dir.clone();
        let (app_id, secret) = (app.app_id.as_str().to_owned(), secret.clone());
        async move {
            dir.issue_tenant_token(&app_id, &secret)
                .await
                .expect("issue token")
                .token
        }
    })
    .await;
    let distinct: HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
}

/// Feishu's tree limits hold inside the store's write, not only in the core's check on an
/// earlier read (which two racing writes can each pass): on the raw store, with the core out
/// of the way, the 1 001st child of a department, a 26th level below the root and a move
/// that would make a subtree reach that deep are refused with their conflict, and write
/// nothing.
pub async fn check_tree_limits_hold_inside_the_write(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let t = env.tenant.id;

    let full = insert_department(s, t, env.root.key, "full", "Full", 0).await;
    for i in 0..1000 {
        insert_department(s, t, full.key, &format!("c{i}"), &format!("C{i}"), 0).await;
    }
    let one_more = s
        .insert_department(&department(t, full.key, "c1000", "C1000", 0), &cli())
        .await;
    assert!(
        matches!(
            one_more,
            Err(StoreError::Conflict(ConflictKind::TooManyChildren))
        ),
        "the 1 001st child: {one_more:?}"
    );
    assert_eq!(
        s.child_departments(t, full.key)
            .await
            .expect("children")
            .len(),
        1000
    );

    // A chain of 25 levels below the root is the deepest allowed.
    let mut parent = env.root.key;
    for level in 1..=25 {
        parent = insert_department(s, t, parent, &format!("l{level}"), &format!("L{level}"), 0)
            .await
            .key;
    }
    let too_deep = s
        .insert_department(&department(t, parent, "l26", "L26", 0), &cli())
        .await;
    assert!(
        matches!(
            too_deep,
            Err(StoreError::Conflict(ConflictKind::TreeTooDeep))
        ),
        "a 26th level: {too_deep:?}"
    );

    // Two chains of 13 levels: hanging one under the other's bottom makes 26.
    let mut chains = Vec::new();
    for name in ["x", "y"] {
        let mut chain = Vec::new();
        let mut parent = env.root.key;
        for level in 1..=13 {
            let d = insert_department(
                s,
                t,
                parent,
                &format!("{name}{level}"),
                &format!("{name}{level}"),
                0,
            )
            .await;
            parent = d.key;
            chain.push(d);
        }
        chains.push(chain);
    }
    let mut moved = chains[0][0].clone();
    let read = ReadVersions {
        users: Vec::new(),
        departments: vec![(moved.key, moved.updated_at)],
    };
    moved.parent = Some(chains[1][12].key);
    moved.updated_at += 1;
    let deep_move = s
        .save_checked(t, &[], &[moved.clone()], &[], &read, &cli())
        .await;
    assert!(
        matches!(
            deep_move,
            Err(StoreError::Conflict(ConflictKind::TreeTooDeep))
        ),
        "a move that makes the tree 26 deep: {deep_move:?}"
    );
    let stored = s
        .get_department(t, &DeptLookup::Key(moved.key))
        .await
        .expect("read")
        .expect("the department");
    assert_eq!(
        stored.parent,
        Some(env.root.key),
        "the refused move wrote nothing"
    );

    // One level less is allowed: under the 12th level it reaches exactly 25.
    moved.parent = Some(chains[1][11].key);
    s.save_checked(t, &[], &[moved], &[], &read, &cli())
        .await
        .expect("a move to 25 levels");
}
