//! The BI organisation (Quick BI members) and the nonces of signed requests: raw store
//! round trips, the licence cap and primary key as database rules (racing writers
//! included), change events, and the directory's `bi_add_members` report.

use std::sync::Arc;

use roster_core::values::UserType;
use roster_core::{
    Actor, BiEntryFailure, BiMember, BiRoles, ChangeAction, CoreError, Entity, IdGen, OpenId,
    RandomIds, Store, StoreError, TenantId, UniqueKey, UserLookup,
};

use crate::support::{cli, email, env, event_mark, events_since, now_ms, tenant};

/// Creates the groups the fixture members join (`g1`, `g2`, `g3`): the store refuses a
/// member of a group that does not exist.
async fn fixture_groups(store: &dyn Store, tenant: TenantId) {
    for id in ["g1", "g2", "g3"] {
        store
            .insert_group(&roster_core::Group {
                key: 0,
                tenant,
                group_id: id.to_owned(),
                name: format!("group {id}"),
                description: None,
                owner: None,
                created_at: now_ms(),
            })
            .await
            .expect("fixture group");
    }
}

pub(crate) fn member(tenant: TenantId, nickname: &str, at: i64) -> BiMember {
    BiMember {
        tenant,
        open_id: RandomIds.open_id(),
        nickname: nickname.to_owned(),
        is_admin: false,
        is_auth_admin: true,
        user_type: UserType::Analyst,
        groups: vec!["g1".to_owned(), "g2".to_owned()],
        created_at: at,
        updated_at: at,
    }
}

async fn get(store: &dyn Store, m: &BiMember) -> Option<BiMember> {
    store
        .get_bi_member(m.tenant, &m.open_id)
        .await
        .expect("get_bi_member must not fail")
}

/// Members keep every field; adding one twice is `Duplicate(OpenId)` for that row only
/// while the others are written; each written member has one `Created` event.
pub async fn check_bi_members_round_trip_and_a_user_joins_once(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "bi-rt", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let at = now_ms();
    let a = member(t.id, "Ann", at);
    let b = member(t.id, "Bob", at + 1);
    let mark = event_mark(store.as_ref()).await;
    let r = store
        .insert_bi_members(t.id, std::slice::from_ref(&a), 10, &cli())
        .await
        .expect("insert one member");
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(get(store.as_ref(), &a).await.as_ref(), Some(&a));
    let r = store
        .insert_bi_members(t.id, &[a.clone(), b.clone()], 10, &cli())
        .await
        .expect("insert two members");
    assert!(
        matches!(r[0], Err(StoreError::Duplicate(UniqueKey::OpenId))),
        "{r:?}"
    );
    assert!(r[1].is_ok(), "{r:?}");
    assert_eq!(get(store.as_ref(), &b).await.as_ref(), Some(&b));
    let events = events_since(store.as_ref(), Some(t.id), mark).await;
    let created: Vec<&str> = events
        .iter()
        .filter(|e| e.entity == Entity::BiMember && e.action == ChangeAction::Created)
        .map(|e| e.entity_id.as_str())
        .collect();
    assert_eq!(created, [a.open_id.as_str(), b.open_id.as_str()]);
    let other = tenant(store.as_ref(), "bi-rt-other", None).await;
    assert!(store
        .get_bi_member(other.id, &a.open_id)
        .await
        .expect("get in another tenant")
        .is_none());
}

/// A batch that would pass the cap writes nothing; removing a member frees a licence.
pub async fn check_bi_licence_cap_refuses_the_whole_insert(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "bi-cap", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let at = now_ms();
    let first: Vec<BiMember> = (0..2).map(|i| member(t.id, &format!("m{i}"), at)).collect();
    store
        .insert_bi_members(t.id, &first, 3, &cli())
        .await
        .expect("two of three licences");
    let more: Vec<BiMember> = (0..2).map(|i| member(t.id, &format!("n{i}"), at)).collect();
    let err = store
        .insert_bi_members(t.id, &more, 3, &cli())
        .await
        .expect_err("four members exceed a cap of three");
    assert!(matches!(err, StoreError::LicenceExceeded), "{err:?}");
    for m in &more {
        assert!(get(store.as_ref(), m).await.is_none(), "nothing is written");
    }
    // A batch of duplicates only takes no licence.
    let r = store
        .insert_bi_members(t.id, &first, 2, &cli())
        .await
        .expect("duplicates only");
    assert!(r.iter().all(Result::is_err));
    assert!(store
        .delete_bi_member(t.id, &first[0].open_id, at, &cli())
        .await
        .expect("delete"));
    let r = store
        .insert_bi_members(t.id, &more, 3, &cli())
        .await
        .expect("the freed licence and the third one fit two more");
    assert!(r.iter().all(Result::is_ok));
}

/// Pages run oldest first with a total; the keyword matches nicknames case-insensitively
/// and treats `%` and `_` as plain characters.
pub async fn check_bi_members_page_and_filter_by_nickname(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "bi-page", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let at = now_ms();
    let names = ["Alice", "alfred", "Bob", "50%_off", "Carol"];
    let members: Vec<BiMember> = names
        .iter()
        .enumerate()
        .map(|(i, n)| member(t.id, n, at + i as i64))
        .collect();
    store
        .insert_bi_members(t.id, &members, 100, &cli())
        .await
        .expect("insert");
    let (page, total) = store
        .list_bi_members(t.id, None, 2, 2)
        .await
        .expect("page 2");
    assert_eq!(total, 5);
    let got: Vec<&str> = page.iter().map(|m| m.nickname.as_str()).collect();
    assert_eq!(got, ["Bob", "50%_off"]);
    let (page, total) = store
        .list_bi_members(t.id, Some("al"), 0, 10)
        .await
        .expect("keyword");
    assert_eq!(total, 2);
    assert_eq!(page.len(), 2);
    let (_, total) = store
        .list_bi_members(t.id, Some("%_"), 0, 10)
        .await
        .expect("keyword with wildcards");
    assert_eq!(total, 1);
}

/// Updates and deletes rewrite the row with `Updated` / `Deleted` events; absent members
/// are reported, not invented.
pub async fn check_bi_member_update_and_delete_record_events(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "bi-upd", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let at = now_ms();
    let mut a = member(t.id, "Ann", at);
    store
        .insert_bi_members(t.id, std::slice::from_ref(&a), 10, &cli())
        .await
        .expect("insert");
    let mark = event_mark(store.as_ref()).await;
    a.nickname = "Annie".into();
    a.user_type = UserType::Developer;
    a.is_admin = true;
    a.groups.push("g3".into());
    a.updated_at = at + 5;
    // A writer that read an older version finds the member moved on and writes nothing.
    let stale = store.update_bi_member(&a, at - 1, &cli()).await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    assert_eq!(
        get(store.as_ref(), &a).await.map(|m| m.updated_at),
        Some(at)
    );
    assert!(store
        .update_bi_member(&a, at, &cli())
        .await
        .expect("update"));
    assert_eq!(get(store.as_ref(), &a).await.as_ref(), Some(&a));
    assert!(store
        .delete_bi_member(t.id, &a.open_id, at + 6, &cli())
        .await
        .expect("delete"));
    assert!(get(store.as_ref(), &a).await.is_none());
    assert!(!store
        .delete_bi_member(t.id, &a.open_id, at + 7, &cli())
        .await
        .expect("delete again"));
    assert!(!store
        .update_bi_member(&a, at + 5, &cli())
        .await
        .expect("update gone"));
    let events = events_since(store.as_ref(), Some(t.id), mark).await;
    let actions: Vec<ChangeAction> = events
        .iter()
        .filter(|e| e.entity == Entity::BiMember)
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, [ChangeAction::Updated, ChangeAction::Deleted]);
    assert!(events[0]
        .before
        .as_deref()
        .is_some_and(|b| b.contains("Ann")));
    assert!(events[0]
        .after
        .as_deref()
        .is_some_and(|b| b.contains("Annie")));
}

/// A nonce is claimed once per key until it expires, is free for another key, can be
/// claimed again after expiry, and the purge forgets only expired claims.
pub async fn check_signature_nonces_are_claimed_once_until_expiry(store: Arc<dyn Store>) {
    let now = now_ms();
    assert!(store
        .claim_signature_nonce("AK1", "n1", now, now + 1000)
        .await
        .expect("claim"));
    assert!(!store
        .claim_signature_nonce("AK1", "n1", now + 10, now + 1010)
        .await
        .expect("reuse"));
    assert!(store
        .claim_signature_nonce("AK2", "n1", now, now + 1000)
        .await
        .expect("other key"));
    assert!(store
        .claim_signature_nonce("AK1", "n1", now + 1000, now + 2000)
        .await
        .expect("after expiry"));
    assert!(store
        .claim_signature_nonce("AK1", "n2", now, now + 500)
        .await
        .expect("second nonce"));
    let purged = store
        .purge_signature_nonces(now + 1000)
        .await
        .expect("purge");
    assert_eq!(purged, 2, "AK2/n1 and AK1/n2 expired; AK1/n1 was renewed");
    assert!(!store
        .claim_signature_nonce("AK1", "n1", now + 1500, now + 2500)
        .await
        .expect("still claimed"));
}

/// Racing claims of one nonce: exactly one wins.
pub async fn check_racing_claims_of_one_signature_nonce_leave_one_winner(store: Arc<dyn Store>) {
    let now = now_ms();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_signature_nonce("AKrace", "nonce", now, now + 60_000)
                .await
                .expect("claim")
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("task") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

/// Racing batches overlapping in users add each user once and never pass the cap.
pub async fn check_racing_bi_batches_add_each_user_once_within_the_cap(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "bi-race", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let at = now_ms();
    let pool: Vec<BiMember> = (0..12)
        .map(|i| member(t.id, &format!("u{i}"), at))
        .collect();
    let cap = 10;
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = store.clone();
        // Each batch takes 4 users, overlapping its neighbours by 2.
        let batch: Vec<BiMember> = pool[(k * 2) % 10..(k * 2) % 10 + 4].to_vec();
        tasks.push(tokio::spawn(async move {
            s.insert_bi_members(t.id, &batch, cap, &cli()).await
        }));
    }
    let mut written = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(results) => written += results.iter().filter(|r| r.is_ok()).count(),
            Err(StoreError::LicenceExceeded) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let (_, total) = store
        .list_bi_members(t.id, None, 0, 100)
        .await
        .expect("list");
    assert_eq!(total as usize, written, "each write counted once");
    assert!(total <= cap);
    assert_eq!(total, 10, "users 0..10 are covered by the batches");

    // Disjoint batches of two racing for a cap of five: exactly two batches fit, whatever
    // the interleaving, because the counter is checked in each batch's transaction.
    let t = tenant(store.as_ref(), "bi-race-cap", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = store.clone();
        let batch: Vec<BiMember> = (0..2)
            .map(|i| member(t.id, &format!("c{k}-{i}"), at))
            .collect();
        tasks.push(tokio::spawn(async move {
            s.insert_bi_members(t.id, &batch, 5, &cli()).await
        }));
    }
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(results) => assert!(results.iter().all(Result::is_ok)),
            Err(StoreError::LicenceExceeded) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let (_, total) = store
        .list_bi_members(t.id, None, 0, 100)
        .await
        .expect("list");
    assert_eq!((total, refused), (4, 2));

    // The same users named in opposite orders by racing batches: no batch fails (no lock
    // cycle between them), and each user is added once.
    let t = tenant(store.as_ref(), "bi-race-order", None).await;
    fixture_groups(store.as_ref(), t.id).await;
    let same: Vec<BiMember> = (0..6).map(|i| member(t.id, &format!("o{i}"), at)).collect();
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = store.clone();
        let mut batch = same.clone();
        if k % 2 == 1 {
            batch.reverse();
        }
        tasks.push(tokio::spawn(async move {
            s.insert_bi_members(t.id, &batch, 100, &cli()).await
        }));
    }
    let mut written = 0;
    for task in tasks {
        let results = task
            .await
            .expect("task")
            .expect("a batch racing in another order must not fail");
        written += results.iter().filter(|r| r.is_ok()).count();
    }
    assert_eq!(written, 6);
}

/// The directory reports one outcome per entry: added, already a member (also when named
/// twice), not in the directory, no e-mail or mobile; whole-request rules change nothing.
pub async fn check_bi_add_members_reports_every_entry_and_whole_request_rules(
    store: Arc<dyn Store>,
) {
    let e = env(store.clone(), "bi-dir", None).await;
    let mut with_mail = crate::support::new_user("withmail");
    with_mail.profile.email = Some(email("ann@example.com"));
    let ann = e
        .dir
        .create_user(&e.caller, with_mail)
        .await
        .expect("create ann");
    let bare = e
        .dir
        .create_user(&e.caller, crate::support::new_user("bare"))
        .await
        .expect("create bare");
    let group = e
        .dir
        .bi_create_group(e.tenant.id, None, "analysts", None)
        .await
        .expect("group");
    let roles = BiRoles {
        is_admin: false,
        is_auth_admin: false,
        user_type: UserType::Developer,
    };
    let entries = vec![
        (ann.open_id.as_str().to_owned(), "Ann".to_owned()),
        ("withmail".to_owned(), String::new()),
        (bare.union_id.as_str().to_owned(), "Bare".to_owned()),
        ("ou_nobody".to_owned(), "X".to_owned()),
    ];
    let report = e
        .dir
        .bi_add_members(
            e.tenant.id,
            Actor::Cli,
            entries.clone(),
            roles.clone(),
            vec![group.group_id.clone()],
            100,
        )
        .await
        .expect("batch");
    let results: Vec<Result<OpenId, BiEntryFailure>> =
        report.entries.iter().map(|o| o.result.clone()).collect();
    assert_eq!(
        results,
        [
            Ok(ann.open_id.clone()),
            Err(BiEntryFailure::AlreadyMember),
            Err(BiEntryFailure::NoContact),
            Err(BiEntryFailure::NotInDirectory),
        ]
    );
    assert_eq!(report.ok_count() + report.fail_count(), entries.len());
    let (m, _) = e
        .dir
        .bi_member(e.tenant.id, ann.open_id.as_str())
        .await
        .expect("member");
    assert_eq!(m.groups, std::slice::from_ref(&group.group_id));
    assert_eq!(m.nickname, "Ann");

    // Again: now an existing member.
    let again = e
        .dir
        .bi_add_members(
            e.tenant.id,
            Actor::Cli,
            entries[..1].to_vec(),
            roles.clone(),
            vec![],
            100,
        )
        .await
        .expect("again");
    assert_eq!(again.entries[0].result, Err(BiEntryFailure::AlreadyMember));

    // Whole-request failures.
    let unknown_group = e
        .dir
        .bi_add_members(
            e.tenant.id,
            Actor::Cli,
            entries.clone(),
            roles.clone(),
            vec!["nope".into()],
            100,
        )
        .await
        .expect_err("unknown group");
    assert!(matches!(
        unknown_group,
        CoreError::NotFound {
            entity: Entity::Group,
            ..
        }
    ));
    let visitor_admin = BiRoles {
        is_admin: true,
        is_auth_admin: false,
        user_type: UserType::Visitor,
    };
    assert!(matches!(
        e.dir
            .bi_add_members(
                e.tenant.id,
                Actor::Cli,
                entries.clone(),
                visitor_admin,
                vec![],
                100
            )
            .await,
        Err(CoreError::Invalid { .. })
    ));
    let mut other = crate::support::new_user("other");
    other.profile.email = Some(email("other@example.com"));
    let other = e.dir.create_user(&e.caller, other).await.expect("other");
    let capped = e
        .dir
        .bi_add_members(
            e.tenant.id,
            Actor::Cli,
            vec![(other.open_id.as_str().to_owned(), String::new())],
            roles,
            vec![],
            1,
        )
        .await
        .expect_err("cap of one is taken by ann");
    assert!(matches!(capped, CoreError::LicenceExceeded));
    assert!(store
        .get_bi_member(e.tenant.id, &other.open_id)
        .await
        .expect("get")
        .is_none());
    // The directory user is untouched by membership.
    assert!(store
        .get_user(
            e.tenant.id,
            &UserLookup::OpenId(ann.open_id.as_str().to_owned())
        )
        .await
        .expect("user")
        .is_some());
}

/// A group that holds members of the BI organisation cannot be deleted through the
/// directory (as one with directory members cannot): deleting it would drop them from the
/// group without a word. Once no member lists it, it goes.
pub async fn check_a_group_with_bi_members_is_not_deleted(store: Arc<dyn Store>) {
    let e = env(store.clone(), "bi-group-del", None).await;
    let group = e
        .dir
        .create_group(&e.caller, "analysts", None, None)
        .await
        .expect("group");
    let mut m = member(e.tenant.id, "Ann", now_ms());
    m.groups = vec![group.group_id.clone()];
    let r = store
        .insert_bi_members(e.tenant.id, std::slice::from_ref(&m), 10, &cli())
        .await
        .expect("insert");
    assert!(r[0].is_ok(), "{r:?}");
    let refused = e.dir.delete_group(&e.caller, &group.group_id).await;
    assert!(
        matches!(refused, Err(CoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert!(store
        .get_group(e.tenant.id, &group.group_id)
        .await
        .expect("get")
        .is_some());
    assert!(store
        .delete_bi_member(e.tenant.id, &m.open_id, now_ms(), &cli())
        .await
        .expect("delete member"));
    e.dir
        .delete_group(&e.caller, &group.group_id)
        .await
        .expect("an empty group is deleted");
}

/// A BI group may be created under an id the client chose (Quick BI's `UserGroupId`): the
/// group is found by it, another group of the tenant cannot take it (`Duplicate(GroupId)`,
/// nothing written), another tenant may, and a malformed one or `-1` is refused.
pub async fn check_a_bi_group_takes_the_id_its_client_chose(store: Arc<dyn Store>) {
    let e = env(store.clone(), "bi-group-id", None).await;
    let other = env(store.clone(), "bi-group-id-2", None).await;
    let group = e
        .dir
        .bi_create_group(e.tenant.id, Some("sales.east-1"), "East", None)
        .await
        .expect("group with a chosen id");
    assert_eq!(group.group_id, "sales.east-1");
    let read = store
        .get_group(e.tenant.id, "sales.east-1")
        .await
        .expect("get");
    assert_eq!(read.map(|g| g.name), Some("East".to_owned()));
    let clash = e
        .dir
        .bi_create_group(e.tenant.id, Some("sales.east-1"), "West", None)
        .await;
    assert!(
        matches!(
            clash,
            Err(CoreError::AlreadyExists {
                field: UniqueKey::GroupId,
                ..
            })
        ),
        "{clash:?}"
    );
    let names: Vec<String> = store
        .list_groups(e.tenant.id)
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, vec!["East".to_owned()], "the clash wrote nothing");
    other
        .dir
        .bi_create_group(other.tenant.id, Some("sales.east-1"), "East", None)
        .await
        .expect("another tenant may use the same id");
    for bad in ["-1", "a,b", "a/b", ".", "..", "组", &"x".repeat(65)] {
        let refused = e
            .dir
            .bi_create_group(e.tenant.id, Some(bad), "Bad", None)
            .await;
        assert!(
            matches!(
                refused,
                Err(CoreError::Invalid {
                    field: "group_id",
                    ..
                })
            ),
            "{bad}: {refused:?}"
        );
    }
    let long_name = "名".repeat(255);
    e.dir
        .bi_create_group(e.tenant.id, None, &long_name, None)
        .await
        .expect("a name of 255 characters");
}

/// Concurrent changes of one member through the directory never overwrite each other:
/// twelve racing `AddUserGroupMembers` of different groups leave the member in all twelve,
/// and racing `UpdateUser`s of different fields both take effect.
pub async fn check_racing_bi_member_changes_are_all_kept(store: Arc<dyn Store>) {
    let e = env(store.clone(), "bi-race", None).await;
    let mut racer = crate::support::new_user("racer");
    racer.profile.email = Some(email("racer@example.com"));
    let user = e.dir.create_user(&e.caller, racer).await.expect("create");
    let roles = BiRoles {
        is_admin: false,
        is_auth_admin: false,
        user_type: UserType::Developer,
    };
    let open_id = user.open_id.as_str().to_owned();
    let added = e
        .dir
        .bi_add_members(
            e.tenant.id,
            Actor::Cli,
            vec![(open_id.clone(), "Racer".to_owned())],
            roles,
            vec![],
            100,
        )
        .await
        .expect("add");
    assert_eq!(added.ok_count(), 1, "{added:?}");
    let mut groups = Vec::new();
    for i in 0..12 {
        let g = e
            .dir
            .bi_create_group(e.tenant.id, None, &format!("g{i}"), None)
            .await
            .expect("group");
        groups.push(g.group_id);
    }
    let mut tasks = Vec::new();
    for g in &groups {
        let dir = e.dir.clone();
        let (tenant, open_id, g) = (e.tenant.id, open_id.clone(), g.clone());
        tasks.push(tokio::spawn(async move {
            dir.bi_add_member_groups(tenant, Actor::Cli, &open_id, vec![g])
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("add to a group");
    }
    let (m, _) = e
        .dir
        .bi_member(e.tenant.id, &open_id)
        .await
        .expect("member");
    let mut kept = m.groups.clone();
    kept.sort();
    let mut want = groups.clone();
    want.sort();
    assert_eq!(kept, want, "every acknowledged group is kept");

    let patches = [
        roster_core::BiMemberPatch {
            nickname: Some("After".into()),
            ..Default::default()
        },
        roster_core::BiMemberPatch {
            is_admin: Some(true),
            ..Default::default()
        },
    ];
    let mut tasks = Vec::new();
    for p in patches {
        let dir = e.dir.clone();
        let (tenant, open_id) = (e.tenant.id, open_id.clone());
        tasks.push(tokio::spawn(async move {
            dir.bi_update_member(tenant, Actor::Cli, &open_id, p).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("update");
    }
    let (m, _) = e
        .dir
        .bi_member(e.tenant.id, &open_id)
        .await
        .expect("member");
    assert_eq!((m.nickname.as_str(), m.is_admin), ("After", true));
    assert_eq!(m.groups.len(), 12);
}

/// A resurrected user comes back in the groups that existed when they left and still do:
/// not in one deleted meanwhile, nor in a new, unrelated group that has taken a deleted
/// group's id since (a client may choose group ids).
pub async fn check_a_resurrected_user_keeps_only_the_groups_it_left(store: Arc<dyn Store>) {
    let e = env(store.clone(), "bi-group-reuse", None).await;
    for (id, name) in [("sales", "Sales"), ("kept", "Kept")] {
        e.dir
            .bi_create_group(e.tenant.id, Some(id), name, None)
            .await
            .expect("group");
    }
    let mut u = crate::support::new_user("returner");
    u.profile.groups = vec!["sales".to_owned(), "kept".to_owned()];
    let user = e.dir.create_user(&e.caller, u).await.expect("create");
    e.dir
        .delete_user(
            &e.caller,
            &UserLookup::Key(user.key),
            roster_core::Handover::default(),
        )
        .await
        .expect("delete");
    // Group times are in milliseconds: the new group is made strictly after the user left.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    e.dir
        .delete_group(&e.caller, "sales")
        .await
        .expect("no active user is in it");
    e.dir
        .bi_create_group(e.tenant.id, Some("sales"), "Another sales", None)
        .await
        .expect("the id is free again");
    let back = e
        .dir
        .resurrect_user(&e.caller, &UserLookup::Key(user.key), None, None)
        .await
        .expect("resurrect");
    assert_eq!(back.profile.groups, vec!["kept".to_owned()]);
    let stored = store
        .get_user(e.tenant.id, &UserLookup::Key(user.key))
        .await
        .expect("get")
        .expect("the user");
    assert_eq!(stored.profile.groups, vec!["kept".to_owned()]);
}
