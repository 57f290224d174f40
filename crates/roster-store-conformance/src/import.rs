//! Bulk imports (docs/schema.md, "Migration 0007"): receiving, sealing, aborting and
//! expiring import tasks, the per-chunk commit with its lease and replay fences, the export
//! page read, and an import run end to end by a worker through `Directory`.
//!
//! Times are fixed instants around `T0` where the store takes `now` from its caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_core::{
    Actor, AppId, Change, ImportChunk, ImportCommit, ItemError, ItemOutcome, Store, Task, TaskId,
    TaskStatus, TenantId, User, UserLookup,
};
use tokio::sync::watch;

use crate::support::{
    active_users, env, event_mark, events_since, insert_department, insert_ok, new_user,
    plain_user, root, tenant,
};

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;
const PATIENCE: Duration = Duration::from_secs(30);

fn import_app() -> AppId {
    AppId::from_trusted("cli_conformance_imports".to_owned())
}

fn import_id(n: u32) -> TaskId {
    TaskId::parse(&format!("{:032x}", 0xabc0_0000_u64 + u64::from(n)))
        .expect("fixture task id is valid")
}

/// A receiving import with its first deadline at `T0 + 1000`.
fn receiving(tenant: TenantId, n: u32) -> Task {
    Task {
        id: import_id(n),
        tenant,
        app_id: import_app(),
        kind: roster_core::IMPORT_KIND.to_owned(),
        status: TaskStatus::Receiving,
        total: 0,
        succeeded: 0,
        failed: 0,
        notify: false,
        created_at: T0,
        finished_at: None,
        lease_owner: None,
        lease_until: Some(T0 + 1000),
    }
}

/// A chunk of rows `first..first + n` as users `row-<i>`, refusing the rows in `refused`.
fn chunk(seq: u32, first: u32, n: u32, refused: &[u32]) -> ImportChunk {
    ImportChunk {
        seq,
        first_row: first,
        items: (first..first + n)
            .map(|i| {
                if refused.contains(&i) {
                    Err(ItemError::dialect("format", format!("row: bad row {i}")))
                } else {
                    Ok(new_user(&format!("row-{i}")))
                }
            })
            .collect(),
    }
}

pub async fn check_only_a_sealed_import_is_claimed_and_its_chunks_read_back_in_order(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let task = receiving(t.id, 1);
    s.create_import(&task).await.expect("create the import");
    let (a, b) = (chunk(0, 0, 3, &[1]), chunk(1, 3, 2, &[]));
    assert!(s
        .append_import_chunk(&task.id, &a, T0 + 2000)
        .await
        .expect("append"));
    assert!(s
        .append_import_chunk(&task.id, &b, T0 + 3000)
        .await
        .expect("append"));
    let stored = s
        .get_task(t.id, &task.id)
        .await
        .expect("read")
        .expect("the import exists");
    assert_eq!(stored.status, TaskStatus::Receiving);
    assert_eq!(stored.total, 5, "appends count their rows");
    assert_eq!(
        stored.lease_until,
        Some(T0 + 3000),
        "each append moves the deadline"
    );
    assert!(
        s.claim_task("w1", T0 + 10_000_000, LEASE)
            .await
            .expect("claim")
            .is_none(),
        "a receiving import is never claimed, whatever the time"
    );
    assert!(s.seal_import(&task.id).await.expect("seal"));
    assert!(
        !s.seal_import(&task.id).await.expect("seal twice"),
        "sealed once"
    );
    assert!(
        !s.append_import_chunk(&task.id, &chunk(2, 5, 1, &[]), T0)
            .await
            .expect("append after seal"),
        "a sealed import takes no more rows"
    );
    let claimed = s
        .claim_task("w1", T0 + 4000, LEASE)
        .await
        .expect("claim")
        .expect("the sealed import is claimed");
    assert_eq!((claimed.id, claimed.total), (task.id.clone(), 5));
    let pending = s
        .pending_import_chunks(&task.id, None, 10)
        .await
        .expect("pending chunks");
    assert_eq!(
        pending,
        vec![a, b.clone()],
        "chunks read back whole, in order"
    );
    let after = s
        .pending_import_chunks(&task.id, Some(0), 10)
        .await
        .expect("pending chunks");
    assert_eq!(after, vec![b]);
    let outcomes = s.import_outcomes(&task.id, 4, 10).await.expect("outcomes");
    assert_eq!(outcomes.len(), 1, "only the chunk holding row index 4");
    assert_eq!(
        (
            outcomes[0].seq,
            outcomes[0].rows,
            outcomes[0].outcomes.as_ref()
        ),
        (1, 2, None)
    );
}

/// Import `n` of the tenant, one chunk of `rows` rows, sealed and claimed by worker `w1`.
async fn claimed_import(s: &dyn Store, tenant: TenantId, n: u32, rows: u32) -> Task {
    let task = receiving(tenant, n);
    s.create_import(&task).await.expect("create the import");
    s.append_import_chunk(&task.id, &chunk(0, 0, rows, &[]), T0 + 2000)
        .await
        .expect("append");
    s.seal_import(&task.id).await.expect("seal");
    s.claim_task("w1", T0, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    task
}

pub async fn check_an_import_chunk_commits_users_and_outcomes_once_under_the_lease(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let holder = insert_ok(s, &plain_user(t.id, r.key, "taken")).await;
    let task = claimed_import(s, t.id, 2, 4).await;

    // Row 0 and 1 are written, row 2 clashes with the holder's user id in the store,
    // row 3 was refused before the write.
    let mut users: Vec<(u32, User)> = vec![
        (0, plain_user(t.id, r.key, "row-0")),
        (1, plain_user(t.id, r.key, "row-1")),
        (2, plain_user(t.id, r.key, holder.user_id.as_str())),
    ];
    users[1].1.profile.leader = Some(users[0].1.open_id.clone());
    let failures = vec![(3, ItemError::dialect("format", "row: bad"))];
    let change = Change::by(Actor::App(import_app()));
    let commit = |worker: &'static str| ImportCommit {
        tenant: t.id,
        task_id: &task.id,
        worker,
        seq: 0,
        first_row: 0,
        rows: 4,
        users: &users,
        failures: &failures,
        mails: &[],
        change: &change,
    };
    let before = active_users(s, t.id).await;
    assert!(
        s.commit_import_chunk(&commit("w2"))
            .await
            .expect("commit")
            .is_none(),
        "a worker without the lease writes nothing"
    );
    assert_eq!(active_users(s, t.id).await, before);
    let mark = event_mark(s).await;
    let results = s
        .commit_import_chunk(&commit("w1"))
        .await
        .expect("commit")
        .expect("the lease holder commits");
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok() && results[2].is_err());
    assert_eq!(active_users(s, t.id).await, before + 2);
    let events = events_since(s, Some(t.id), mark).await;
    assert_eq!(
        events.len(),
        2,
        "one created event per written user: {events:#?}"
    );
    let stored = s
        .get_task(t.id, &task.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((stored.succeeded, stored.failed), (2, 2));
    let outcomes = s.import_outcomes(&task.id, 0, 10).await.expect("outcomes");
    let o = outcomes[0]
        .outcomes
        .clone()
        .expect("the chunk has its outcomes");
    assert_eq!(o.len(), 4, "one outcome per row");
    assert!(
        matches!(&o[0], ItemOutcome::Created { user_id, .. } if user_id == "row-0"),
        "{o:?}"
    );
    assert!(matches!(&o[1], ItemOutcome::Created { .. }));
    assert!(
        matches!(&o[2], ItemOutcome::Failed(e) if e.kind == "exists"),
        "{o:?}"
    );
    assert!(
        matches!(&o[3], ItemOutcome::Failed(e) if e.field == "format"),
        "{o:?}"
    );
    assert!(
        s.pending_import_chunks(&task.id, None, 10)
            .await
            .expect("pending")
            .is_empty(),
        "a committed chunk is no longer pending"
    );

    // A replay of the committed chunk writes nothing and counts nothing.
    assert!(s
        .commit_import_chunk(&commit("w1"))
        .await
        .expect("replay")
        .is_none());
    assert_eq!(active_users(s, t.id).await, before + 2);
    let again = s
        .get_task(t.id, &task.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((again.succeeded, again.failed), (2, 2));
    let leader = s
        .get_user(t.id, &UserLookup::UserId("row-1".into()))
        .await
        .expect("read")
        .expect("row-1 was written");
    assert_eq!(leader.profile.leader, Some(users[0].1.open_id.clone()));
}

/// An import chunk whose rows are all good (the SQLite store writes it by its bulk path)
/// counts its users as members of their departments, once, replay or not.
pub async fn check_an_import_chunk_counts_department_members(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let task = claimed_import(s, t.id, 6, 3).await;
    let mut both = plain_user(t.id, a.key, "in-a-and-root");
    both.profile.departments.push(roster_core::Membership {
        department: r.key,
        user_order: 0,
        department_order: 0,
        is_primary: false,
    });
    let users: Vec<(u32, User)> = vec![
        (0, plain_user(t.id, a.key, "in-a")),
        (1, both),
        (2, plain_user(t.id, r.key, "in-root")),
    ];
    let change = Change::by(Actor::App(import_app()));
    let commit = ImportCommit {
        tenant: t.id,
        task_id: &task.id,
        worker: "w1",
        seq: 0,
        first_row: 0,
        rows: 3,
        users: &users,
        failures: &[],
        mails: &[],
        change: &change,
    };
    let results = s
        .commit_import_chunk(&commit)
        .await
        .expect("commit")
        .expect("the lease holder commits");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let count = |d| async move { s.department_member_count(t.id, d).await.expect("count") };
    assert_eq!((count(a.key).await, count(r.key).await), (2, 2));
    assert!(s
        .commit_import_chunk(&commit)
        .await
        .expect("replay")
        .is_none());
    assert_eq!(
        (count(a.key).await, count(r.key).await),
        (2, 2),
        "a replay counts nothing"
    );
}

pub async fn check_aborted_and_abandoned_imports_fail_and_drop_their_rows(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let (a, b, c) = (receiving(t.id, 3), receiving(t.id, 4), receiving(t.id, 5));
    for task in [&a, &b, &c] {
        s.create_import(task).await.expect("create the import");
        s.append_import_chunk(&task.id, &chunk(0, 0, 2, &[]), T0 + 1000)
            .await
            .expect("append");
    }
    // `c` is still being uploaded: its deadline is later.
    s.append_import_chunk(&c.id, &chunk(1, 2, 2, &[]), T0 + 9000)
        .await
        .expect("append");
    assert!(s.abort_import(&a.id, T0 + 10).await.expect("abort"));
    assert!(!s.abort_import(&a.id, T0 + 10).await.expect("abort twice"));
    assert_eq!(
        s.expire_imports(T0 + 5000).await.expect("expire"),
        1,
        "only b"
    );
    for (task, status) in [
        (&a, TaskStatus::Failed),
        (&b, TaskStatus::Failed),
        (&c, TaskStatus::Receiving),
    ] {
        let stored = s
            .get_task(t.id, &task.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(stored.status, status, "{:?}", task.id);
    }
    for task in [&a, &b] {
        assert!(
            s.import_outcomes(&task.id, 0, 10)
                .await
                .expect("outcomes")
                .is_empty(),
            "a failed upload keeps no rows"
        );
        assert!(
            !s.seal_import(&task.id).await.expect("seal"),
            "and is never sealed"
        );
        assert!(!s
            .append_import_chunk(&task.id, &chunk(1, 2, 1, &[]), T0 + 99_999)
            .await
            .expect("append"));
    }
    assert!(
        s.claim_task("w1", T0 + 6000, LEASE)
            .await
            .expect("claim")
            .is_none(),
        "nothing of a failed or receiving import runs"
    );
    assert_eq!(
        s.pending_import_chunks(&c.id, None, 10)
            .await
            .expect("pending")
            .len(),
        2
    );
}

pub async fn check_list_users_pages_active_users_by_key(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let ro = root(s, other.id).await;
    let mut keys = Vec::new();
    for i in 0..5 {
        keys.push(
            insert_ok(s, &plain_user(t.id, r.key, &format!("u{i}")))
                .await
                .key,
        );
    }
    insert_ok(s, &plain_user(other.id, ro.key, "elsewhere")).await;
    let mut gone = s
        .get_user(t.id, &UserLookup::Key(keys[2]))
        .await
        .expect("read")
        .expect("exists");
    gone.status.is_resigned = true;
    gone.resigned_at = Some(T0);
    s.update_user(&gone, &Change::by(Actor::Cli))
        .await
        .expect("resign");
    let first = s.list_users(t.id, None, 2).await.expect("page");
    assert_eq!(
        first.iter().map(|u| u.key).collect::<Vec<_>>(),
        keys[..2].to_vec()
    );
    let rest = s.list_users(t.id, Some(keys[1]), 10).await.expect("page");
    assert_eq!(
        rest.iter().map(|u| u.key).collect::<Vec<_>>(),
        vec![keys[3], keys[4]],
        "resigned users and other tenants are left out"
    );
}

pub async fn check_an_import_runs_to_done_through_a_worker_with_results_by_row(
    store: Arc<dyn Store>,
) {
    let e = env(store, "Acme", None).await;
    let task = e.dir.begin_import(&e.caller, false).await.expect("begin");
    assert_eq!(task.status, TaskStatus::Receiving);
    // Chunk 0: a leader and its report, and a row refused when read. Chunk 1: a report of
    // the leader of chunk 0 (already written), and a duplicate of row 1's user id.
    let mut report = new_user("report");
    report.leader = Some(UserLookup::UserId("boss".into()));
    let mut later = new_user("later");
    later.leader = Some(UserLookup::UserId("boss".into()));
    let first = ImportChunk {
        seq: 0,
        first_row: 0,
        items: vec![
            Ok(report),
            Ok(new_user("boss")),
            Err(ItemError::dialect("format", "row: not JSON")),
        ],
    };
    let second = ImportChunk {
        seq: 1,
        first_row: 3,
        items: vec![Ok(later), Ok(new_user("BOSS"))],
    };
    e.dir
        .append_import_chunk(&task.id, &first)
        .await
        .expect("append");
    e.dir
        .append_import_chunk(&task.id, &second)
        .await
        .expect("append");
    e.dir.seal_import(&task.id).await.expect("seal");

    let (stop, rx) = watch::channel(false);
    let dir = e.dir.clone();
    let inv = roster_core::Invitations {
        base_url: "http://roster.test".into(),
        ttl_ms: 86_400_000,
        lease_ms: LEASE,
    };
    let worker = tokio::spawn(async move { dir.run_task_worker("w".into(), inv, rx).await });
    let start = Instant::now();
    let done = loop {
        let t = e.dir.get_import(&e.caller, &task.id).await.expect("status");
        if matches!(t.status, TaskStatus::Done | TaskStatus::Failed) {
            break t;
        }
        assert!(start.elapsed() < PATIENCE, "not done in time: {t:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop.send_replace(true);
    let _ = tokio::time::timeout(PATIENCE, worker).await;
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!((done.total, done.succeeded, done.failed), (5, 3, 2));
    let (_, rows) = e
        .dir
        .import_results(&e.caller, &task.id, 0, 100)
        .await
        .expect("results");
    let summary: Vec<(u32, String)> = rows
        .iter()
        .map(|r| {
            let what = match &r.outcome {
                Some(ItemOutcome::Created { user_id, .. }) => user_id.clone(),
                Some(ItemOutcome::Failed(e)) => format!("{}:{}", e.kind, e.field),
                None => "pending".into(),
            };
            (r.row, what)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "report".to_owned()),
            (2, "boss".to_owned()),
            (3, "dialect:format".to_owned()),
            (4, "later".to_owned()),
            (5, "exists:user_id".to_owned()),
        ]
    );
    let (_, page) = e
        .dir
        .import_results(&e.caller, &task.id, 3, 1)
        .await
        .expect("results");
    assert_eq!(
        page.iter().map(|r| r.row).collect::<Vec<_>>(),
        vec![4],
        "paged by row"
    );
    // Dry runs validate without writing.
    let before = active_users(e.store.as_ref(), e.tenant.id).await;
    let mut dry = e.dir.begin_dry_run(&e.caller).await.expect("dry run");
    let verdicts = e
        .dir
        .validate_users(
            &e.caller,
            vec![Ok(new_user("fresh")), Ok(new_user("boss"))],
            &mut dry,
        )
        .await
        .expect("validate");
    assert!(verdicts[0].is_none());
    assert_eq!(
        verdicts[1].as_ref().map(|e| e.kind.as_str()),
        Some("exists")
    );
    assert_eq!(active_users(e.store.as_ref(), e.tenant.id).await, before);
}

/// A dry run checks its later chunks as the real import would after writing the earlier
/// ones: a unique value claimed by an earlier chunk is taken, and valid rows use up the
/// tenant's licence room; nothing is written.
pub async fn check_a_dry_run_carries_claimed_values_and_licence_room_across_chunks(
    store: Arc<dyn Store>,
) {
    let e = env(store.clone(), "dry-run", Some(2)).await;
    let mut dry = e.dir.begin_dry_run(&e.caller).await.expect("dry run");
    let mut first = new_user("first");
    first.profile.mobile = Some(crate::support::mobile(901));
    let verdicts = e
        .dir
        .validate_users(&e.caller, vec![Ok(first)], &mut dry)
        .await
        .expect("validate");
    assert!(verdicts[0].is_none(), "{verdicts:?}");
    let mut same_mobile = new_user("second");
    same_mobile.profile.mobile = Some(crate::support::mobile(901));
    let verdicts = e
        .dir
        .validate_users(
            &e.caller,
            vec![
                Ok(same_mobile),
                Ok(new_user("FIRST")),
                Ok(new_user("third")),
                Ok(new_user("fourth")),
            ],
            &mut dry,
        )
        .await
        .expect("validate");
    let kinds: Vec<Option<&str>> = verdicts
        .iter()
        .map(|v| v.as_ref().map(|e| e.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [Some("exists"), Some("exists"), None, Some("licence")],
        "{verdicts:?}"
    );
    assert_eq!(active_users(store.as_ref(), e.tenant.id).await, 0);

    // A leader named by a row of an earlier chunk is there when the real import writes the
    // later row, so the dry run accepts it too; one named by no row is still refused.
    let e = env(store.clone(), "dry-run-leaders", None).await;
    let mut dry = e.dir.begin_dry_run(&e.caller).await.expect("dry run");
    let verdicts = e
        .dir
        .validate_users(&e.caller, vec![Ok(new_user("chief"))], &mut dry)
        .await
        .expect("validate");
    assert!(verdicts[0].is_none(), "{verdicts:?}");
    let led = |leader: &str| {
        let mut u = new_user(&format!("under-{leader}"));
        u.leader = Some(roster_core::UserLookup::UserId(leader.into()));
        u
    };
    let verdicts = e
        .dir
        .validate_users(
            &e.caller,
            vec![Ok(led("Chief")), Ok(led("nobody"))],
            &mut dry,
        )
        .await
        .expect("validate");
    let kinds: Vec<Option<&str>> = verdicts
        .iter()
        .map(|v| v.as_ref().map(|e| e.kind.as_str()))
        .collect();
    assert_eq!(kinds, [None, Some("bad_reference")], "{verdicts:?}");
}
