//! The use cases of `roster_core::Directory` over the store: where the contract a client sees
//! depends on the store answering exactly as the core expects.

use std::sync::Arc;

use roster_core::values::Email;
use roster_core::{
    BatchMode, ConflictKind, ContactScope, CoreError, Department, DepartmentFields,
    DepartmentPatch, DeptKey, DeptLookup, Entity, IdGen, Membership, NewDepartment, NewUser,
    RandomIds, Scope, Scopes, Store, UniqueKey, UserLookup,
};

use crate::support::{
    active_users, assert_user_exists_err, caller, directory, email, env, get_user, member_of,
    mobile, new_user, now_ms, resign, Env, ManualClock,
};

fn assert_unauthenticated<T: std::fmt::Debug>(r: &Result<T, CoreError>, what: &str) {
    assert!(
        matches!(r, Err(CoreError::Unauthenticated(_))),
        "{what}: expected Unauthenticated, got {r:?}"
    );
}

pub(crate) fn assert_conflict<T: std::fmt::Debug>(
    r: &Result<T, CoreError>,
    kind: ConflictKind,
    what: &str,
) {
    assert!(
        matches!(r, Err(CoreError::Conflict { kind: k, .. }) if *k == kind),
        "{what}: expected Conflict {{ {kind:?} }}, got {r:?}"
    );
}

pub(crate) fn assert_bad_reference<T: std::fmt::Debug>(
    r: &Result<T, CoreError>,
    field: &str,
    what: &str,
) {
    assert!(
        matches!(r, Err(CoreError::BadReference { field: f, .. }) if *f == field),
        "{what}: expected BadReference {{ {field} }}, got {r:?}"
    );
}

pub(crate) async fn create_department(
    env: &Env,
    parent: DeptKey,
    custom_id: &str,
    name: &str,
    order: i64,
) -> Department {
    env.dir
        .create_department(
            &env.caller,
            NewDepartment {
                parent,
                department_id: Some(
                    roster_core::ids::DepartmentId::parse(custom_id).expect("valid department id"),
                ),
                fields: DepartmentFields {
                    name: name.to_owned(),
                    order,
                    ..DepartmentFields::default()
                },
                order_after_siblings: false,
            },
        )
        .await
        .expect("create a department through the directory")
}

pub(crate) fn new_user_in(custom_id: &str, dept: DeptKey) -> NewUser {
    let mut u = new_user(custom_id);
    u.profile.departments = vec![member_of(dept)];
    u
}

/// `department_open_id` answers what the store holds for the key in the caller's tenant,
/// the same again once it is kept in memory (a deleted department's row, and so its open
/// id, stays), and nothing for a key of another tenant or no department.
pub async fn check_department_open_ids_are_kept_per_tenant(store: Arc<dyn Store>) {
    let a = env(store.clone(), "open-ids-a", None).await;
    let b = env(store.clone(), "open-ids-b", None).await;
    let d = create_department(&a, a.root.key, "sales", "Sales", 1).await;
    for round in ["read", "kept"] {
        assert_eq!(
            a.dir
                .department_open_id(a.tenant.id, d.key)
                .await
                .expect("read an open id"),
            Some(d.open_department_id.clone()),
            "{round}"
        );
        assert_eq!(
            a.dir
                .department_open_id(b.tenant.id, d.key)
                .await
                .expect("read another tenant's key"),
            None,
            "{round}: another tenant's department"
        );
    }
    a.dir
        .delete_department(&a.caller, &DeptLookup::Key(d.key))
        .await
        .expect("delete the empty department");
    // A directory that never read it asks the store, which keeps the deleted row.
    let fresh = directory(store.clone());
    assert_eq!(
        fresh
            .department_open_id(a.tenant.id, d.key)
            .await
            .expect("read a deleted department's open id"),
        Some(d.open_department_id.clone())
    );
    assert_eq!(
        fresh
            .department_open_id(a.tenant.id, DeptKey(i64::MAX))
            .await
            .expect("read a key no department has"),
        None
    );
}

/// `bootstrap` on an empty store creates the default tenant and one app whose secret works;
/// a second call does nothing and returns `None`.
pub async fn check_bootstrap_creates_a_tenant_and_an_app_once(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let boot = dir
        .bootstrap()
        .await
        .expect("bootstrap")
        .expect("an empty store is bootstrapped");
    assert_eq!(boot.tenant.name, "default");
    assert_eq!(boot.app.tenant, boot.tenant.id);
    assert!(boot.app.scopes.allows(Scope::ContactWrite));
    assert_eq!(boot.app.contact_scope, ContactScope::All);
    assert_eq!(
        store.get_app(&boot.app.app_id).await.expect("read app"),
        Some(boot.app.clone())
    );
    assert_eq!(
        store.list_tenants().await.expect("list"),
        vec![boot.tenant.clone()]
    );
    let root = crate::support::root(store.as_ref(), boot.tenant.id).await;
    assert_eq!(root.department_id.as_str(), "0");

    let token = dir
        .issue_tenant_token(boot.app.app_id.as_str(), &boot.secret)
        .await
        .expect("the bootstrap secret works");
    let who = dir.authenticate(&token.token).await.expect("authenticate");
    assert_eq!(who.tenant, boot.tenant.id);

    assert!(
        dir.bootstrap().await.expect("second bootstrap").is_none(),
        "a second bootstrap returns None"
    );
    assert!(
        directory(store.clone())
            .bootstrap()
            .await
            .expect("bootstrap from another node")
            .is_none(),
        "so does a bootstrap from another directory over the same store"
    );
    assert_eq!(store.list_tenants().await.expect("list").len(), 1);
    assert_eq!(store.list_apps(None).await.expect("list").len(), 1);
}

/// A token issued for an app's secret authenticates as that app, with its scopes and
/// department visibility; while fresh it is handed out again.
pub async fn check_issued_token_authenticates_its_app(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let t = dir
        .create_tenant(roster_core::NewTenant::parse("Acme", None).expect("name"))
        .await
        .expect("tenant");
    let root = crate::support::root(store.as_ref(), t.id).await;
    let scopes = Scopes::new([Scope::ContactRead]);
    let (app, secret) = dir
        .create_app(
            t.id,
            "reader",
            scopes.clone(),
            ContactScope::Departments(vec![root.key]),
        )
        .await
        .expect("create app");
    let issued = dir
        .issue_tenant_token(app.app_id.as_str(), &secret)
        .await
        .expect("issue token");
    assert!(
        issued.token.starts_with("t-"),
        "token text: {}",
        issued.token
    );
    assert_eq!(issued.expire_s, roster_core::directory::TOKEN_TTL_S);

    let who = dir.authenticate(&issued.token).await.expect("authenticate");
    assert_eq!(who.tenant, t.id);
    assert_eq!(who.app_id, app.app_id);
    assert_eq!(who.scopes, scopes);
    assert_eq!(who.contact_scope, ContactScope::Departments(vec![root.key]));

    let again = dir
        .issue_tenant_token(app.app_id.as_str(), &secret)
        .await
        .expect("issue again");
    assert_eq!(
        again.token, issued.token,
        "a fresh token is handed out again"
    );

    // Another node has no cache: it issues a new token, and both stay valid.
    let other = directory(store.clone());
    let second = other
        .issue_tenant_token(app.app_id.as_str(), &secret)
        .await
        .expect("issue on another node");
    assert_ne!(second.token, issued.token);
    for tok in [&issued.token, &second.token] {
        assert_eq!(
            other.authenticate(tok).await.expect("authenticate").app_id,
            app.app_id
        );
    }
    assert_eq!(dir.purge_expired_tokens().await.expect("purge"), 0);
}

/// A wrong secret, an unknown or malformed app id, and an unknown token are all
/// `Unauthenticated`.
pub async fn check_wrong_secret_or_unknown_app_is_unauthenticated(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let t = dir
        .create_tenant(roster_core::NewTenant::parse("Acme", None).expect("name"))
        .await
        .expect("tenant");
    let (app, secret) = dir
        .create_app(
            t.id,
            "app",
            Scopes::new([Scope::ContactRead]),
            ContactScope::All,
        )
        .await
        .expect("create app");
    assert_unauthenticated(
        &dir.issue_tenant_token(app.app_id.as_str(), &format!("{secret}x"))
            .await,
        "wrong secret",
    );
    assert_unauthenticated(
        &dir.issue_tenant_token(RandomIds.app_id().as_str(), &secret)
            .await,
        "unknown app id",
    );
    assert_unauthenticated(
        &dir.issue_tenant_token("not-an-app-id", &secret).await,
        "malformed app id",
    );
    assert_unauthenticated(
        &dir.authenticate(&format!("t-{}", RandomIds.hex(32))).await,
        "unknown token",
    );
    assert_unauthenticated(&dir.authenticate("").await, "empty token");
}

/// After a secret rotation (done on another node), the app's old tokens and old secret no
/// longer work, and the new secret does.
pub async fn check_token_of_a_rotated_app_no_longer_authenticates(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let other_node = directory(store.clone());
    let t = dir
        .create_tenant(roster_core::NewTenant::parse("Acme", None).expect("name"))
        .await
        .expect("tenant");
    let (app, secret) = dir
        .create_app(
            t.id,
            "app",
            Scopes::new([Scope::ContactRead]),
            ContactScope::All,
        )
        .await
        .expect("create app");
    let (bystander, bystander_secret) = dir
        .create_app(
            t.id,
            "bystander",
            Scopes::new([Scope::ContactRead]),
            ContactScope::All,
        )
        .await
        .expect("create app");
    let old = dir
        .issue_tenant_token(app.app_id.as_str(), &secret)
        .await
        .expect("issue");
    let kept = dir
        .issue_tenant_token(bystander.app_id.as_str(), &bystander_secret)
        .await
        .expect("issue");

    let new_secret = other_node.rotate_secret(&app.app_id).await.expect("rotate");
    assert_ne!(new_secret, secret);
    assert_unauthenticated(
        &dir.authenticate(&old.token).await,
        "token issued before rotation",
    );
    assert_unauthenticated(
        &dir.issue_tenant_token(app.app_id.as_str(), &secret).await,
        "old secret",
    );
    let fresh = dir
        .issue_tenant_token(app.app_id.as_str(), &new_secret)
        .await
        .expect("the new secret works");
    assert_ne!(
        fresh.token, old.token,
        "a revoked token is never handed out again"
    );
    assert_eq!(
        dir.authenticate(&fresh.token)
            .await
            .expect("authenticate")
            .app_id,
        app.app_id
    );
    assert_eq!(
        dir.authenticate(&kept.token)
            .await
            .expect("another app's token")
            .app_id,
        bystander.app_id
    );
    let missing = dir.rotate_secret(&RandomIds.app_id()).await;
    assert!(
        matches!(
            missing,
            Err(CoreError::NotFound {
                entity: Entity::App,
                ..
            })
        ),
        "rotating an unknown app: expected NotFound, got {missing:?}"
    );
}

/// `create_user` assigns ids, fills in the join time and the root department, sets the
/// activation flags, and the user reads back through the directory unchanged.
pub async fn check_created_user_reads_back_through_the_directory(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let before = now_ms() / 1000;
    let mut new = new_user("Created.One");
    new.profile.email = Some(email("created@example.com"));
    new.profile.mobile = Some(mobile(71));
    let created = env
        .dir
        .create_user(&env.caller, new)
        .await
        .expect("create user");
    assert_eq!(created.user_id.as_str(), "Created.One");
    assert!(created.open_id.as_str().starts_with("ou_"));
    assert!(created.union_id.as_str().starts_with("on_"));
    assert_eq!(created.profile.departments, vec![member_of(env.root.key)]);
    assert!(created.profile.join_time.is_some_and(|t| t >= before));
    assert!(created.status.is_activated && !created.status.is_unjoin);
    assert!(!created.status.is_resigned);
    for lookup in [
        UserLookup::OpenId(created.open_id.to_string()),
        UserLookup::UserId("created.one".into()),
        UserLookup::Email("CREATED@example.com".into()),
        UserLookup::Mobile(mobile(71).as_str().into()),
    ] {
        assert_eq!(
            env.dir
                .get_user(&env.caller, &lookup)
                .await
                .expect("get user"),
            created,
            "lookup {lookup:?}"
        );
    }

    let mut invited = new_user("invited");
    invited.activated = false;
    let invited = env
        .dir
        .create_user(&env.caller, invited)
        .await
        .expect("create user");
    assert!(!invited.status.is_activated && invited.status.is_unjoin);
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 2);

    let missing = env
        .dir
        .get_user(&env.caller, &UserLookup::UserId("nobody".into()))
        .await;
    assert!(
        matches!(
            missing,
            Err(CoreError::NotFound {
                entity: Entity::User,
                ..
            })
        ),
        "expected NotFound, got {missing:?}"
    );
}

/// A department created without an order goes after its current siblings, as Feishu
/// places it, and children list smaller orders first.
pub async fn check_department_without_order_goes_after_its_siblings(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let late = create_department(&env, env.root.key, "late", "Late", 100).await;
    let early = create_department(&env, env.root.key, "early", "Early", 5).await;
    let unordered = env
        .dir
        .create_department(
            &env.caller,
            NewDepartment {
                parent: env.root.key,
                department_id: None,
                fields: DepartmentFields {
                    name: "Unordered".into(),
                    order: -7,
                    ..DepartmentFields::default()
                },
                order_after_siblings: true,
            },
        )
        .await
        .expect("create a department without an order");
    assert_eq!(
        unordered.fields.order, 101,
        "one more than the largest sibling order; the order in fields is ignored"
    );
    let names: Vec<String> = env
        .dir
        .child_departments(&env.caller, &DeptLookup::Key(env.root.key), false)
        .await
        .expect("children")
        .into_iter()
        .map(|d| d.fields.name)
        .collect();
    assert_eq!(
        names,
        [&early, &late, &unordered].map(|d| d.fields.name.clone()),
        "smaller orders first, the unordered one last"
    );
    let first_child = env
        .dir
        .create_department(
            &env.caller,
            NewDepartment {
                parent: early.key,
                department_id: None,
                fields: DepartmentFields {
                    name: "First".into(),
                    ..DepartmentFields::default()
                },
                order_after_siblings: true,
            },
        )
        .await
        .expect("create a first child without an order");
    assert_eq!(first_child.fields.order, 0, "a first child gets order 0");
}

/// Feishu's department counts: `member_count` covers the department and everything below
/// it, each user once; `primary_member_count` those whose primary department is there; the
/// root counts every active user; a resigned user counts nowhere.
pub async fn check_department_counts_cover_the_subtree(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, a.key, "B", "B", 0).await;
    let c = create_department(&env, env.root.key, "C", "C", 0).await;
    for u in [new_user_in("u1", a.key), new_user_in("u2", b.key)] {
        env.dir.create_user(&env.caller, u).await.expect("create");
    }
    let mut u3 = new_user("u3");
    u3.profile.departments = vec![
        member_of(c.key),
        Membership {
            is_primary: false,
            ..member_of(b.key)
        },
    ];
    env.dir
        .create_user(&env.caller, u3)
        .await
        .expect("create u3");
    let gone = env
        .dir
        .create_user(&env.caller, new_user_in("gone", b.key))
        .await
        .expect("create gone");
    env.dir
        .delete_user(
            &env.caller,
            &UserLookup::Key(gone.key),
            roster_core::Handover::default(),
        )
        .await
        .expect("delete gone");
    let counts = |d: Department| {
        let dir = env.dir.clone();
        async move { dir.department_counts(&d).await.expect("counts") }
    };
    assert_eq!(
        counts(a.clone()).await,
        (3, 2),
        "A: u1, u2 below it, u3 in B"
    );
    assert_eq!(
        counts(b.clone()).await,
        (2, 1),
        "B: u2 and u3, u2's primary"
    );
    assert_eq!(counts(c.clone()).await, (1, 1));
    assert_eq!(
        counts(env.root.clone()).await,
        (3, 3),
        "the root: every active user"
    );
}

/// A best-effort batch returns one result per item in request order; good items are
/// written whatever happens to their neighbours.
pub async fn check_best_effort_batch_reports_each_item_in_request_order(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let mut taken = new_user("holder");
    taken.profile.email = Some(email("taken@example.com"));
    env.dir
        .create_user(&env.caller, taken)
        .await
        .expect("create holder");

    let mut good1 = new_user_in("good1", a.key);
    good1.profile.email = Some(email("good1@example.com"));
    let bad_parse = Email::parse("email", "not-an-email").map(|_| new_user("never"));
    assert!(bad_parse.is_err(), "the fixture must be a parse failure");
    let bad_dept = new_user_in("baddept", DeptKey(a.key.0 + 10_000));
    let mut dup = new_user("dupemail");
    dup.profile.email = Some(email("TAKEN@example.com"));
    let mut bad_leader = new_user("badleader");
    bad_leader.leader = Some(UserLookup::UserId("nobody".into()));
    let mut good2 = new_user("good2");
    good2.profile.mobile = Some(mobile(81));

    let report = env
        .dir
        .create_users(
            &env.caller,
            vec![
                Ok(good1),
                bad_parse,
                Ok(bad_dept),
                Ok(dup),
                Ok(bad_leader),
                Ok(good2),
            ],
            BatchMode::BestEffort,
        )
        .await
        .expect("a batch with bad items still answers");
    let items = &report.items;
    assert_eq!(items.len(), 6, "one result per item");
    assert_eq!(report.ok_count(), 2);
    let ok0 = items[0].as_ref().expect("good1 is written");
    assert_eq!(ok0.user_id.as_str(), "good1");
    assert!(
        matches!(&items[1], Err(CoreError::Invalid { field: "email", .. })),
        "item 1 keeps its parse error: {:?}",
        items[1]
    );
    assert_bad_reference(
        &items[2],
        "department_ids",
        "item 2 names a missing department",
    );
    assert_user_exists_err(&items[3], UniqueKey::Email, "item 3 repeats a taken e-mail");
    assert_bad_reference(&items[4], "leader_user_id", "item 4 names a missing leader");
    let ok5 = items[5].as_ref().expect("good2 is written");
    assert_eq!(ok5.user_id.as_str(), "good2");

    let g1 = env
        .dir
        .get_user(&env.caller, &UserLookup::OpenId(ok0.open_id.to_string()))
        .await
        .expect("good1 reads back");
    assert_eq!(g1.key, ok0.key);
    assert_eq!(g1.union_id, ok0.union_id);
    assert_eq!(g1.profile.email, Some(email("good1@example.com")));
    assert_eq!(g1.profile.departments, vec![member_of(a.key)]);
    let s = env.store.as_ref();
    for id in ["baddept", "dupemail", "badleader"] {
        assert_eq!(
            get_user(s, env.tenant.id, UserLookup::UserId(id.into())).await,
            None,
            "{id} was not written"
        );
    }
    assert_eq!(active_users(s, env.tenant.id).await, 3);
}

/// An all-or-nothing batch with one bad item writes nothing and says why for every item.
pub async fn check_atomic_batch_with_a_bad_item_writes_nothing(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let mut holder = new_user("holder");
    holder.profile.email = Some(email("taken@example.com"));
    env.dir
        .create_user(&env.caller, holder)
        .await
        .expect("create holder");
    let mut dup = new_user("dup");
    dup.profile.email = Some(email("Taken@Example.com"));
    let report = env
        .dir
        .create_users(
            &env.caller,
            vec![Ok(new_user("fine1")), Ok(dup), Ok(new_user("fine2"))],
            BatchMode::Atomic,
        )
        .await
        .expect("answer");
    assert_eq!(report.items.len(), 3);
    assert_conflict(
        &report.items[0],
        ConflictKind::NotWritten,
        "a good item of a failed atomic batch",
    );
    assert_user_exists_err(&report.items[1], UniqueKey::Email, "the bad item");
    assert_conflict(
        &report.items[2],
        ConflictKind::NotWritten,
        "a good item of a failed atomic batch",
    );
    for id in ["fine1", "dup", "fine2"] {
        assert_eq!(
            get_user(
                env.store.as_ref(),
                env.tenant.id,
                UserLookup::UserId(id.into())
            )
            .await,
            None
        );
    }
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 1);

    let ok = env
        .dir
        .create_users(
            &env.caller,
            vec![Ok(new_user("fine1")), Ok(new_user("fine2"))],
            BatchMode::Atomic,
        )
        .await
        .expect("answer");
    assert_eq!(ok.ok_count(), 2);
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 3);
}

/// A leader named by user id may be a later item of the same batch: the follower gets the
/// leader's generated open id, across two levels too; a two-item leader cycle fails both
/// items with `BadReference`, and leaders already stored are resolved by user id.
pub async fn check_batch_leader_may_be_a_later_item_of_the_same_batch(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let chief = env
        .dir
        .create_user(&env.caller, new_user("chief"))
        .await
        .expect("create chief");
    let gone = env
        .dir
        .create_user(&env.caller, new_user("gone"))
        .await
        .expect("create gone");
    resign(env.store.as_ref(), &gone, now_ms()).await;

    let led_by = |id: &str, leader: &str| {
        let mut u = new_user(id);
        u.leader = Some(UserLookup::UserId(leader.into()));
        u
    };
    let items = vec![
        Ok(led_by("follower", "Boss")),    // 0: leader is item 1
        Ok(new_user("boss")),              // 1
        Ok(led_by("cycle-a", "cycle-b")),  // 2: cycle with 3
        Ok(led_by("cycle-b", "cycle-a")),  // 3
        Ok(led_by("grand", "follower")),   // 4: leader is item 0, two levels down
        Ok(led_by("stored", "CHIEF")),     // 5: leader already stored
        Ok(led_by("to-resigned", "gone")), // 6: leader has resigned
        Ok(led_by("self", "self")),        // 7: leads themselves
    ];
    let report = env
        .dir
        .create_users(&env.caller, items, BatchMode::BestEffort)
        .await
        .expect("answer");
    let r = &report.items;
    assert_eq!(r.len(), 8);
    let ok = |i: usize| {
        r[i].as_ref()
            .unwrap_or_else(|e| panic!("item {i} failed: {e:?}"))
    };
    let (follower, boss, grand, stored) = (ok(0), ok(1), ok(4), ok(5));
    assert_bad_reference(&r[2], "leader_user_id", "cycle item a");
    assert_bad_reference(&r[3], "leader_user_id", "cycle item b");
    assert_bad_reference(&r[6], "leader_user_id", "resigned leader");
    assert_bad_reference(&r[7], "leader_user_id", "self leader");

    let read = |open_id: String| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        async move {
            dir.get_user(&caller, &UserLookup::OpenId(open_id))
                .await
                .expect("created user reads back")
        }
    };
    assert_eq!(
        read(follower.open_id.to_string()).await.profile.leader,
        Some(boss.open_id.clone())
    );
    assert_eq!(
        read(grand.open_id.to_string()).await.profile.leader,
        Some(follower.open_id.clone())
    );
    assert_eq!(
        read(stored.open_id.to_string()).await.profile.leader,
        Some(chief.open_id.clone())
    );
    assert_eq!(read(boss.open_id.to_string()).await.profile.leader, None);
    for id in ["cycle-a", "cycle-b", "to-resigned", "self"] {
        assert_eq!(
            get_user(
                env.store.as_ref(),
                env.tenant.id,
                UserLookup::UserId(id.into())
            )
            .await,
            None,
            "{id} was not written"
        );
    }
}

/// An item refused for its own reasons keeps no later item of the batch from the values it
/// named: not one whose e-mail an active user holds, nor one whose leader does not exist,
/// nor one that fails on its leader inside the batch (a cycle, itself). The later item
/// with the same mobile or user id is written, and takes its place as a leader too.
pub async fn check_a_refused_batch_item_keeps_no_value_from_later_items(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let mut holder = new_user("holder");
    holder.profile.email = Some(email("taken@example.com"));
    env.dir
        .create_user(&env.caller, holder)
        .await
        .expect("create holder");
    let with = |id: &str, m: u32, leader: Option<&str>| {
        let mut u = new_user(id);
        u.profile.mobile = Some(mobile(m));
        u.leader = leader.map(|l| UserLookup::UserId(l.into()));
        u
    };
    let mut taken = with("row0", 1, None);
    taken.profile.email = Some(email("Taken@Example.com"));
    let items = vec![
        Ok(taken),                           // 0: e-mail held by an active user
        Ok(with("row1", 1, None)),           // 1: mobile of item 0
        Ok(with("fx_3", 2, Some("nobody"))), // 2: no such leader
        Ok(with("FX_3", 3, None)),           // 3: user id of item 2
        Ok(with("cyc-a", 4, Some("cyc-b"))), // 4: cycle with item 5
        Ok(with("cyc-b", 5, Some("cyc-a"))), // 5
        Ok(with("row6", 4, None)),           // 6: mobile of item 4
        Ok(with("me", 7, Some("me"))),       // 7: leads themselves
        Ok(with("ME", 8, None)),             // 8: user id of item 7
        Ok(with("row9", 9, Some("me"))),     // 9: led by item 8 now
    ];
    let report = env
        .dir
        .create_users(&env.caller, items, BatchMode::BestEffort)
        .await
        .expect("answer");
    let r = &report.items;
    assert_user_exists_err(&r[0], UniqueKey::Email, "the e-mail an active user holds");
    for (i, what) in [
        (2, "missing leader"),
        (4, "cycle a"),
        (5, "cycle b"),
        (7, "self"),
    ] {
        assert!(
            matches!(
                &r[i],
                Err(CoreError::BadReference {
                    field: "leader_user_id",
                    ..
                })
            ),
            "{what}: {:?}",
            r[i]
        );
    }
    for i in [1, 3, 6, 8, 9] {
        assert!(r[i].is_ok(), "item {i} must be written: {:?}", r[i]);
    }
    let me = r[8].as_ref().expect("item 8");
    let row9 = env
        .dir
        .get_user(&env.caller, &UserLookup::UserId("row9".into()))
        .await
        .expect("row9 reads back");
    assert_eq!(row9.profile.leader, Some(me.open_id.clone()));
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 6);
}

/// Within one batch the first item keeps a unique value; a later item repeating it (in any
/// case) fails alone.
pub async fn check_duplicate_within_a_batch_fails_only_the_later_item(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let mut u1 = new_user("u1");
    u1.profile.email = Some(email("same@example.com"));
    let mut u2 = new_user("u2");
    u2.profile.email = Some(email("SAME@example.com"));
    let mut u3 = new_user("u3");
    u3.profile.email = Some(email("other@example.com"));
    let u4 = new_user("Same-Id");
    let u5 = new_user("same-id");
    let mut u6 = new_user("u6");
    u6.profile.mobile = Some(mobile(91));
    let mut u7 = new_user("u7");
    u7.profile.mobile = Some(mobile(91));
    let report = env
        .dir
        .create_users(
            &env.caller,
            vec![Ok(u1), Ok(u2), Ok(u3), Ok(u4), Ok(u5), Ok(u6), Ok(u7)],
            BatchMode::BestEffort,
        )
        .await
        .expect("answer");
    let r = &report.items;
    assert!(r[0].is_ok(), "{:?}", r[0]);
    assert_user_exists_err(&r[1], UniqueKey::Email, "u2 repeats u1's e-mail");
    assert!(r[2].is_ok(), "{:?}", r[2]);
    assert!(r[3].is_ok(), "{:?}", r[3]);
    assert_user_exists_err(&r[4], UniqueKey::UserId, "u5 repeats u4's user id");
    assert!(r[5].is_ok(), "{:?}", r[5]);
    assert_user_exists_err(&r[6], UniqueKey::Mobile, "u7 repeats u6's mobile");
    let holder = get_user(
        env.store.as_ref(),
        env.tenant.id,
        UserLookup::Email("same@example.com".into()),
    )
    .await
    .expect("the e-mail is held");
    assert_eq!(holder.user_id.as_str(), "u1");
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 4);
}

/// Through the directory, the licence cap fails the items past it with `LicenceExceeded`.
pub async fn check_licence_cap_applies_to_directory_batches(store: Arc<dyn Store>) {
    let env = env(store, "Capped", Some(2)).await;
    let items = (0..4).map(|i| Ok(new_user(&format!("u{i}")))).collect();
    let report = env
        .dir
        .create_users(&env.caller, items, BatchMode::BestEffort)
        .await
        .expect("answer");
    assert!(
        report.items[0].is_ok() && report.items[1].is_ok(),
        "{:?}",
        report.items
    );
    for i in 2..4 {
        assert!(
            matches!(report.items[i], Err(CoreError::LicenceExceeded)),
            "item {i}: expected LicenceExceeded, got {:?}",
            report.items[i]
        );
    }
    let one = env.dir.create_user(&env.caller, new_user("late")).await;
    assert!(
        matches!(one, Err(CoreError::LicenceExceeded)),
        "expected LicenceExceeded, got {one:?}"
    );
    assert_eq!(active_users(env.store.as_ref(), env.tenant.id).await, 2);
}

/// A department cannot move under itself or its own subtree (`Conflict`), and a refused
/// move changes nothing; a legal move does.
pub async fn check_department_cannot_move_under_its_own_subtree(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, a.key, "B", "B", 0).await;
    let c = create_department(&env, b.key, "C", "C", 0).await;
    let move_to = |dept: &Department, parent: DeptKey| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let key = dept.key;
        async move {
            dir.update_department(
                &caller,
                &DeptLookup::Key(key),
                DepartmentPatch {
                    parent: Some(parent),
                    ..DepartmentPatch::default()
                },
            )
            .await
        }
    };
    assert_conflict(
        &move_to(&a, c.key).await,
        ConflictKind::Cycle,
        "A under its grandchild C",
    );
    assert_conflict(
        &move_to(&a, b.key).await,
        ConflictKind::Cycle,
        "A under its child B",
    );
    assert_conflict(
        &move_to(&a, a.key).await,
        ConflictKind::Cycle,
        "A under itself",
    );
    assert_conflict(
        &move_to(&b, c.key).await,
        ConflictKind::Cycle,
        "B under its child C",
    );
    assert_conflict(
        &move_to(&env.root, a.key).await,
        ConflictKind::RootImmutable,
        "the root anywhere",
    );

    let get = |key: DeptKey| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        async move {
            dir.get_department(&caller, &DeptLookup::Key(key))
                .await
                .expect("department reads back")
        }
    };
    assert_eq!(get(a.key).await.parent, Some(env.root.key));
    assert_eq!(get(b.key).await.parent, Some(a.key));
    assert_eq!(get(c.key).await.parent, Some(b.key));

    let moved = move_to(&c, env.root.key)
        .await
        .expect("C moves to the root");
    assert_eq!(moved.parent, Some(env.root.key));
    assert_eq!(get(c.key).await, moved);
    let top: Vec<DeptKey> = env
        .dir
        .child_departments(&env.caller, &DeptLookup::Key(env.root.key), false)
        .await
        .expect("children")
        .iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(top, vec![a.key, c.key]);
    // And now A may move under C, which is no longer its descendant.
    move_to(&a, c.key).await.expect("A moves under C");
    let parents: Vec<DeptKey> = env
        .dir
        .department_parents(&env.caller, &DeptLookup::Key(b.key))
        .await
        .expect("parents")
        .iter()
        .map(|d| d.key)
        .collect();
    // Feishu's parent list never holds the root.
    assert_eq!(parents, vec![a.key, c.key]);

    // An app scoped to A sees the parents from A down: C is above its scope.
    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;
    let d = create_department(&env, b.key, "D", "D", 0).await;
    let parents: Vec<DeptKey> = env
        .dir
        .department_parents(&scoped, &DeptLookup::Key(d.key))
        .await
        .expect("parents within the scope")
        .iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(parents, vec![b.key, a.key]);
}

/// A department with a child or an active member cannot be deleted (`Conflict`); once empty
/// it can, and then reads as `NotFound`. The root can never be deleted.
pub async fn check_department_with_a_member_or_a_child_cannot_be_deleted(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let a1 = create_department(&env, a.key, "A1", "A1", 0).await;
    let member = env
        .dir
        .create_user(&env.caller, new_user_in("member", a1.key))
        .await
        .expect("create member");
    let delete = |key: DeptKey| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        async move { dir.delete_department(&caller, &DeptLookup::Key(key)).await }
    };
    assert_conflict(
        &delete(a.key).await,
        ConflictKind::DepartmentNotEmpty,
        "A has a child",
    );
    assert_conflict(
        &delete(a1.key).await,
        ConflictKind::DepartmentNotEmpty,
        "A1 has a member",
    );
    assert_conflict(
        &delete(env.root.key).await,
        ConflictKind::RootImmutable,
        "the root",
    );

    resign(env.store.as_ref(), &member, now_ms()).await;
    delete(a1.key)
        .await
        .expect("A1 has only a resigned member now");
    delete(a.key).await.expect("A has no child any more");
    for key in [a.key, a1.key] {
        let r = env
            .dir
            .get_department(&env.caller, &DeptLookup::Key(key))
            .await;
        assert!(
            matches!(
                r,
                Err(CoreError::NotFound {
                    entity: Entity::Department,
                    ..
                })
            ),
            "a deleted department reads as NotFound, got {r:?}"
        );
    }
    let r = env
        .dir
        .get_department(&env.caller, &DeptLookup::CustomId("A".into()))
        .await;
    assert!(matches!(r, Err(CoreError::NotFound { .. })), "got {r:?}");

    // The freed custom id can be used again at once, and then finds the new department.
    let again = create_department(&env, env.root.key, "a", "A", 0).await;
    assert_eq!(
        env.dir
            .get_department(&env.caller, &DeptLookup::CustomId("A".into()))
            .await
            .expect("the new holder of the id"),
        again
    );
}

/// An app scoped to department A sees users and departments in A's subtree; a user only in
/// department B reads as `NotFound`, department B is `Forbidden`, and it cannot create users
/// in B.
pub async fn check_contact_scope_hides_users_outside_it(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let a1 = create_department(&env, a.key, "A1", "A1", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    let in_a1 = env
        .dir
        .create_user(&env.caller, new_user_in("in-a1", a1.key))
        .await
        .expect("create");
    let in_b = env
        .dir
        .create_user(&env.caller, new_user_in("in-b", b.key))
        .await
        .expect("create");
    let mut both = new_user_in("in-b-and-a", b.key);
    both.profile.departments.push(Membership {
        is_primary: false,
        ..member_of(a.key)
    });
    let both = env
        .dir
        .create_user(&env.caller, both)
        .await
        .expect("create");

    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactWrite]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;
    for u in [&in_a1, &both] {
        assert_eq!(
            &env.dir
                .get_user(&scoped, &UserLookup::OpenId(u.open_id.to_string()))
                .await
                .expect("visible user"),
            u
        );
    }
    for lookup in [
        UserLookup::OpenId(in_b.open_id.to_string()),
        UserLookup::UserId("in-b".into()),
    ] {
        let r = env.dir.get_user(&scoped, &lookup).await;
        assert!(
            matches!(
                r,
                Err(CoreError::NotFound {
                    entity: Entity::User,
                    ..
                })
            ),
            "a user outside the scope reads as NotFound, got {r:?}"
        );
    }
    assert_eq!(
        env.dir
            .get_department(&scoped, &DeptLookup::Key(a1.key))
            .await
            .expect("A1 is in the subtree"),
        a1
    );
    let r = env
        .dir
        .get_department(&scoped, &DeptLookup::Key(b.key))
        .await;
    assert!(
        matches!(r, Err(CoreError::Forbidden(_))),
        "department B: {r:?}"
    );

    let report = env
        .dir
        .create_users(
            &scoped,
            vec![
                Ok(new_user_in("new-in-b", b.key)),
                Ok(new_user_in("new-in-a", a.key)),
            ],
            BatchMode::BestEffort,
        )
        .await
        .expect("answer");
    assert!(
        matches!(report.items[0], Err(CoreError::Forbidden(_))),
        "creating in B: {:?}",
        report.items[0]
    );
    assert!(
        report.items[1].is_ok(),
        "creating in A: {:?}",
        report.items[1]
    );

    // A user the app deleted stays in its view (resigned, with no department), and the app
    // may bring it back; the departments it left decide, so an app scoped elsewhere still
    // does not see it, nor does this app see a user deleted from B.
    let a1_lookup = UserLookup::OpenId(in_a1.open_id.to_string());
    env.dir
        .delete_user(
            &scoped,
            &a1_lookup,
            roster_core::directory::Handover::default(),
        )
        .await
        .expect("the scoped app deletes a user in its scope");
    let gone = env
        .dir
        .get_user(&scoped, &a1_lookup)
        .await
        .expect("the deleted user is still visible to the app that deleted it");
    assert!(gone.status.is_resigned);
    assert!(gone.profile.departments.is_empty());
    let scoped_to_b = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactWrite]),
        ContactScope::Departments(vec![b.key]),
    )
    .await;
    let r = env.dir.get_user(&scoped_to_b, &a1_lookup).await;
    assert!(
        matches!(
            r,
            Err(CoreError::NotFound {
                entity: Entity::User,
                ..
            })
        ),
        "a resigned user of A is outside B's scope, got {r:?}"
    );
    let b_lookup = UserLookup::OpenId(in_b.open_id.to_string());
    env.dir
        .delete_user(
            &env.caller,
            &b_lookup,
            roster_core::directory::Handover::default(),
        )
        .await
        .expect("delete the user in B");
    let r = env.dir.get_user(&scoped, &b_lookup).await;
    assert!(
        matches!(
            r,
            Err(CoreError::NotFound {
                entity: Entity::User,
                ..
            })
        ),
        "a user who left B stays outside A's scope, got {r:?}"
    );
    let back = env
        .dir
        .resurrect_user(
            &scoped,
            &a1_lookup,
            Some(vec![member_of(a1.key)]),
            Some(vec!["seat-1".into()]),
        )
        .await
        .expect("the scoped app resurrects the user it deleted");
    assert!(!back.status.is_resigned);
    assert_eq!(
        back.profile
            .departments
            .iter()
            .map(|m| m.department)
            .collect::<Vec<_>>(),
        vec![a1.key]
    );
    assert!(back.profile.former_departments.is_empty());
    assert_eq!(back.profile.subscription_ids, vec!["seat-1".to_owned()]);
    assert_eq!(
        &env.dir
            .get_user(&scoped, &a1_lookup)
            .await
            .expect("read back"),
        &back,
        "the resurrection is stored as returned"
    );
}

/// A recursive child listing returns the whole subtree breadth-first (the order
/// `Directory::child_departments` documents): every child of a level before any grandchild.
pub async fn check_recursive_child_listing_is_breadth_first(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 1).await;
    let b = create_department(&env, env.root.key, "B", "B", 2).await;
    let a1 = create_department(&env, a.key, "A1", "A1", 0).await;
    let b1 = create_department(&env, b.key, "B1", "B1", 0).await;
    let a11 = create_department(&env, a1.key, "A11", "A11", 0).await;
    let got: Vec<String> = env
        .dir
        .child_departments(&env.caller, &DeptLookup::Key(env.root.key), true)
        .await
        .expect("recursive children")
        .into_iter()
        .map(|d| d.department_id.to_string())
        .collect();
    let want: Vec<String> = [&a, &b, &a1, &b1, &a11]
        .iter()
        .map(|d| d.department_id.to_string())
        .collect();
    assert_eq!(got, want);
}

/// Tokens expire after `TOKEN_TTL_S`; with less than 30 minutes left a new one is issued and
/// the old one keeps working until its own expiry.
pub async fn check_expired_token_is_refused_and_a_new_one_issued(store: Arc<dyn Store>) {
    use std::sync::atomic::Ordering;
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(
        1_800_000_000_000,
    )));
    let dir = roster_core::Directory::new(store, clock.clone(), Arc::new(roster_core::RandomIds));
    let first = dir
        .bootstrap()
        .await
        .expect("bootstrap")
        .expect("empty store");
    let app_id = first.app.app_id.as_str().to_owned();
    let old = dir
        .issue_tenant_token(&app_id, &first.secret)
        .await
        .expect("token");
    let ttl_ms = roster_core::directory::TOKEN_TTL_S * 1000;

    // 100 minutes later: 20 minutes left, so a new token comes and both work.
    clock.0.fetch_add(ttl_ms - 20 * 60 * 1000, Ordering::SeqCst);
    let new = dir
        .issue_tenant_token(&app_id, &first.secret)
        .await
        .expect("token");
    assert_ne!(
        new.token, old.token,
        "a token with < 30 min left is not handed out again"
    );
    assert_eq!(new.expire_s, roster_core::directory::TOKEN_TTL_S);
    dir.authenticate(&old.token)
        .await
        .expect("the old token still works until it expires");

    // Past the first token's expiry: it fails, the new one works.
    clock.0.fetch_add(21 * 60 * 1000, Ordering::SeqCst);
    assert!(
        matches!(
            dir.authenticate(&old.token).await,
            Err(CoreError::Unauthenticated(_))
        ),
        "an expired token must be refused"
    );
    dir.authenticate(&new.token)
        .await
        .expect("the new token works");

    // And expired tokens are swept.
    clock.0.fetch_add(ttl_ms, Ordering::SeqCst);
    assert!(dir.purge_expired_tokens().await.expect("purge") >= 2);
    assert!(matches!(
        dir.authenticate(&new.token).await,
        Err(CoreError::Unauthenticated(_))
    ));
}
