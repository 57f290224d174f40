//! Groups on the raw store (round trips, owners, `save` of groups with their events), and the
//! directory's `create_group`.

use std::sync::Arc;

use roster_core::{
    Actor, Change, ChangeAction, ChangeEvent, CoreError, Entity, Group, IdGen, OpenId, RandomIds,
    Store, StoreError, TenantId, UniqueKey, UserLookup,
};

use crate::directory::assert_bad_reference;
use crate::support::{
    active_users, cli, email, env, event_mark, events_since, get_department, insert_department,
    insert_ok, new_user, now_ms, plain_user, reread, resign, root, tenant,
};

fn group(tenant: TenantId, name: &str, description: Option<&str>, created_at: i64) -> Group {
    Group {
        key: 0,
        tenant,
        group_id: RandomIds.hex(16),
        name: name.to_owned(),
        description: description.map(str::to_owned),
        owner: None,
        created_at,
    }
}

/// A group owned by `owner`.
fn owned(tenant: TenantId, name: &str, owner: &OpenId, created_at: i64) -> Group {
    Group {
        owner: Some(owner.clone()),
        ..group(tenant, name, None, created_at)
    }
}

/// Reads a group back by its group id; it must exist.
async fn group_now(store: &dyn Store, g: &Group) -> Group {
    store
        .get_group(g.tenant, &g.group_id)
        .await
        .expect("get_group must not fail")
        .unwrap_or_else(|| panic!("group {} vanished", g.name))
}

/// The groups as the store holds them now, in the given order.
async fn groups_now(store: &dyn Store, groups: &[&Group]) -> Vec<Group> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        out.push(group_now(store, g).await);
    }
    out
}

/// Groups keep every field, are found by group id within their tenant, are listed oldest
/// first, and a name repeated in another case is `Duplicate(GroupName)` (but free in another
/// tenant).
pub async fn check_groups_round_trip_and_names_are_unique_case_insensitively(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let now = now_ms();

    let eng = group(t.id, "Engineering", Some("Builds things"), now);
    let stored_eng = s.insert_group(&eng).await.expect("insert group");
    assert_eq!(
        stored_eng,
        Group {
            key: stored_eng.key,
            ..eng.clone()
        },
        "insert_group returns the group as given, with its new key"
    );
    let ops = s
        .insert_group(&group(t.id, "Operations", None, now + 1))
        .await
        .expect("insert group");
    assert_ne!(ops.key, stored_eng.key);
    assert_eq!(ops.description, None);

    assert_eq!(
        s.get_group(t.id, &eng.group_id).await.expect("get group"),
        Some(stored_eng.clone())
    );
    assert_eq!(
        s.get_group(other.id, &eng.group_id)
            .await
            .expect("get group"),
        None,
        "another tenant does not see the group"
    );
    assert_eq!(
        s.get_group(t.id, &RandomIds.hex(16))
            .await
            .expect("get group"),
        None
    );

    let err = s
        .insert_group(&group(t.id, "ENGINEERING", None, now + 2))
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::GroupName))),
        "expected Duplicate(GroupName), got {err:?}"
    );
    let elsewhere = s
        .insert_group(&group(other.id, "Engineering", None, now + 3))
        .await
        .expect("the same name is free in another tenant");

    assert_eq!(
        s.list_groups(t.id).await.expect("list groups"),
        vec![stored_eng, ops],
        "groups of one tenant, oldest first; the refused one left no row"
    );
    assert_eq!(
        s.list_groups(other.id).await.expect("list groups"),
        vec![elsewhere]
    );
}

/// A group's owner round-trips through `insert_group`, `get_group` and `list_groups` (absent
/// stays absent), and `groups_owned_by` lists exactly one owner's groups of one tenant,
/// oldest first.
pub async fn check_group_owner_round_trips_and_groups_owned_by_lists_an_owners_groups(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let now = now_ms();
    let ann = RandomIds.open_id();
    let bob = RandomIds.open_id();

    // Inserted newest first, so that "oldest first" is not just insertion order.
    let a2 = s
        .insert_group(&owned(t.id, "Ann Two", &ann, now + 20))
        .await
        .expect("insert group");
    let b1 = s
        .insert_group(&owned(t.id, "Bob One", &bob, now + 15))
        .await
        .expect("insert group");
    let a1 = s
        .insert_group(&owned(t.id, "Ann One", &ann, now + 10))
        .await
        .expect("insert group");
    let nobody = s
        .insert_group(&group(t.id, "Nobody's", Some("no owner"), now + 5))
        .await
        .expect("insert group");
    // The same owner id in another tenant is another tenant's business.
    let ann_elsewhere = s
        .insert_group(&owned(other.id, "Ann One", &ann, now))
        .await
        .expect("insert group");

    assert_eq!(
        a1.owner,
        Some(ann.clone()),
        "insert_group returns the owner"
    );
    assert_eq!(group_now(s, &a1).await, a1, "the owner round-trips");
    assert_eq!(group_now(s, &b1).await.owner, Some(bob.clone()));
    assert_eq!(
        group_now(s, &nobody).await.owner,
        None,
        "no owner stays no owner"
    );
    assert_eq!(
        s.list_groups(t.id).await.expect("list groups"),
        vec![nobody.clone(), a1.clone(), b1.clone(), a2.clone()],
        "list_groups carries the owners, oldest first"
    );

    assert_eq!(
        s.groups_owned_by(t.id, &ann)
            .await
            .expect("groups_owned_by"),
        vec![a1.clone(), a2.clone()],
        "an owner's groups of this tenant, oldest first"
    );
    assert_eq!(
        s.groups_owned_by(t.id, &bob)
            .await
            .expect("groups_owned_by"),
        vec![b1.clone()]
    );
    assert_eq!(
        s.groups_owned_by(other.id, &ann)
            .await
            .expect("groups_owned_by"),
        vec![ann_elsewhere]
    );
    assert_eq!(
        s.groups_owned_by(other.id, &bob)
            .await
            .expect("groups_owned_by"),
        vec![]
    );
    assert_eq!(
        s.groups_owned_by(t.id, &RandomIds.open_id())
            .await
            .expect("groups_owned_by"),
        vec![],
        "an id that owns nothing"
    );
}

/// The group events among `events`, in order.
fn group_events(events: &[ChangeEvent]) -> Vec<&ChangeEvent> {
    events
        .iter()
        .filter(|e| e.entity == Entity::Group)
        .collect()
}

/// `save` rewrites each listed group (name, description, owner) with one `Updated` event per
/// group: entity `Group`, entity id the group id, the change's actor and note, a `before` and
/// an `after` snapshot. Several groups are recorded in input order, and users, departments
/// and groups of one save in that order. A group name that clashes in another case is
/// `Duplicate(GroupName)`, a group that is not the tenant's is `Backend`, and either writes
/// nothing.
pub async fn check_save_rewrites_groups_with_an_updated_event_each(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let start = now_ms();
    let ann = RandomIds.open_id();
    let bob = RandomIds.open_id();
    let g1 = s
        .insert_group(&Group {
            description: Some("first".into()),
            ..owned(t.id, "Alpha", &ann, start)
        })
        .await
        .expect("insert group");
    let g2 = s
        .insert_group(&group(t.id, "Beta", None, start + 1))
        .await
        .expect("insert group");
    let g3 = s
        .insert_group(&owned(t.id, "Gamma", &ann, start + 2))
        .await
        .expect("insert group");

    // Listed in the order g2, g1: events follow the input, not the keys.
    let mark = event_mark(s).await;
    let mut g1_new = g1.clone();
    g1_new.name = "Alpha Prime".into();
    g1_new.description = None;
    g1_new.owner = Some(bob.clone());
    let mut g2_new = g2.clone();
    g2_new.description = Some("now described".into());
    g2_new.owner = Some(ann.clone());
    let app_id = RandomIds.app_id();
    let change = Change {
        actor: Actor::App(app_id.clone()),
        note: Some("reorganisation".into()),
        completes: None,
    };
    s.save(t.id, &[], &[], &[g2_new.clone(), g1_new.clone()], &change)
        .await
        .expect("save two groups");
    assert_eq!(
        groups_now(s, &[&g1, &g2, &g3]).await,
        vec![g1_new.clone(), g2_new.clone(), g3.clone()],
        "the listed groups are rewritten, the others left alone"
    );
    assert_eq!(
        s.groups_owned_by(t.id, &ann)
            .await
            .expect("groups_owned_by"),
        vec![g2_new.clone(), g3.clone()],
        "groups_owned_by follows the saved owners"
    );
    assert_eq!(
        s.groups_owned_by(t.id, &bob)
            .await
            .expect("groups_owned_by"),
        vec![g1_new.clone()]
    );

    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 2, "one event per saved group: {ev:#?}");
    assert_eq!(
        ev.iter().map(|e| e.entity_id.as_str()).collect::<Vec<_>>(),
        vec![g2.group_id.as_str(), g1.group_id.as_str()],
        "group events name the group id, in input order"
    );
    for e in &ev {
        assert_eq!((e.entity, e.action), (Entity::Group, ChangeAction::Updated));
        assert_eq!(e.tenant, t.id);
        assert_eq!(e.actor, format!("app:{app_id}"));
        assert_eq!(e.note.as_deref(), Some("reorganisation"));
        let end = now_ms();
        assert!(
            e.at >= start - 60_000 && e.at <= end + 60_000,
            "event {} is dated {}, outside the check's run [{start}, {end}] (ms)",
            e.id,
            e.at
        );
        let before = e.before.as_deref().expect("a group save records before");
        let after = e.after.as_deref().expect("a group save records after");
        assert_ne!(before, after);
        assert!(
            before.contains(&e.entity_id) && after.contains(&e.entity_id),
            "snapshots name the group id {}: {before} / {after}",
            e.entity_id
        );
    }
    let (b1, a1) = (
        ev[1].before.as_deref().unwrap_or_default(),
        ev[1].after.as_deref().unwrap_or_default(),
    );
    assert!(
        b1.contains("Alpha") && b1.contains(ann.as_str()) && !b1.contains(bob.as_str()),
        "before holds the old name and owner: {b1}"
    );
    assert!(
        a1.contains("Alpha Prime") && a1.contains(bob.as_str()) && !a1.contains(ann.as_str()),
        "after holds the new name and owner: {a1}"
    );
    let a2 = ev[0].after.as_deref().unwrap_or_default();
    assert!(
        a2.contains("now described") && a2.contains(ann.as_str()),
        "after holds the new description and owner: {a2}"
    );

    // Users, departments and groups of one save: one event each, in that order.
    let u = insert_ok(s, &plain_user(t.id, r.key, "u")).await;
    let d = insert_department(s, t.id, r.key, "D", "D", 0).await;
    let mark = event_mark(s).await;
    let mut u2 = u.clone();
    u2.profile.name = "Renamed".into();
    let mut d2 = d.clone();
    d2.fields.name = "D renamed".into();
    let mut g3_new = g3.clone();
    g3_new.owner = None;
    s.save(
        t.id,
        &[u2.clone()],
        &[d2.clone()],
        &[g3_new.clone()],
        &cli(),
    )
    .await
    .expect("save a user, a department and a group");
    assert_eq!(reread(s, &[&u]).await, vec![u2.clone()]);
    assert_eq!(get_department(s, t.id, d.key).await, d2);
    assert_eq!(group_now(s, &g3).await, g3_new);
    let ev = events_since(s, None, mark).await;
    assert_eq!(
        ev.iter()
            .map(|e| (e.entity, e.entity_id.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Entity::User, u.open_id.as_str()),
            (Entity::Department, d.open_department_id.as_str()),
            (Entity::Group, g3.group_id.as_str()),
        ],
        "users, then departments, then groups"
    );

    // Refusals write nothing and record nothing.
    let mark = event_mark(s).await;
    let mut g2_clash = g2_new.clone();
    g2_clash.name = "GAMMA".into();
    let mut g1_fine = g1_new.clone();
    g1_fine.description = Some("never written".into());
    let err = s
        .save(t.id, &[], &[], &[g1_fine.clone(), g2_clash], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::GroupName))),
        "a group name clash in another case: expected Duplicate(GroupName), got {err:?}"
    );
    let ghost = Group {
        key: g3.key + 100_000,
        ..group(t.id, "Ghost", None, start)
    };
    let err = s
        .save(t.id, &[], &[], &[g1_fine.clone(), ghost], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Backend(_))),
        "a group that does not exist: expected Backend, got {err:?}"
    );
    let foreign = s
        .insert_group(&group(other.id, "Foreign", None, start))
        .await
        .expect("insert group");
    let err = s
        .save(
            t.id,
            &[],
            &[],
            &[
                g1_fine,
                Group {
                    name: "Foreign renamed".into(),
                    ..foreign.clone()
                },
            ],
            &cli(),
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Backend(_))),
        "a group of another tenant: expected Backend, got {err:?}"
    );
    assert_eq!(
        groups_now(s, &[&g1, &g2, &g3, &foreign]).await,
        vec![g1_new, g2_new, g3_new, foreign],
        "refused saves wrote nothing"
    );
    assert_eq!(
        events_since(s, None, mark).await,
        vec![],
        "refused saves record no event"
    );
}

/// A save of users and groups is one transaction: a failing user (an e-mail clash, a user
/// that does not exist, the licence cap) leaves the group unchanged, and a failing group
/// leaves the user unchanged; nothing is recorded. Without the failure both are written.
pub async fn check_save_of_users_and_groups_writes_all_or_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Capped", Some(2)).await;
    let r = root(s, t.id).await;
    let z = insert_ok(s, &plain_user(t.id, r.key, "z")).await;
    let z = resign(s, &z, now_ms()).await;
    let mut a = plain_user(t.id, r.key, "a");
    a.profile.email = Some(email("a@example.com"));
    let a = insert_ok(s, &a).await;
    let b = insert_ok(s, &plain_user(t.id, r.key, "b")).await;
    let now = now_ms();
    let g = s
        .insert_group(&owned(t.id, "Team", &a.open_id, now))
        .await
        .expect("insert group");
    let taken = s
        .insert_group(&group(t.id, "Taken", None, now + 1))
        .await
        .expect("insert group");
    let mark = event_mark(s).await;

    let mut g_new = g.clone();
    g_new.name = "Team Renamed".into();
    g_new.owner = Some(b.open_id.clone());
    let mut a_renamed = a.clone();
    a_renamed.profile.name = "Renamed".into();

    // The group is fine, a user takes a's e-mail.
    let mut b_clash = b.clone();
    b_clash.profile.email = Some(email("A@Example.com"));
    let err = s
        .save(t.id, &[b_clash], &[], &[g_new.clone()], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::Email))),
        "expected Duplicate(Email), got {err:?}"
    );
    // The group is fine, a user does not exist.
    let ghost = roster_core::User {
        key: roster_core::UserKey(z.key.0 + 100_000),
        ..plain_user(t.id, r.key, "ghost")
    };
    let err = s
        .save(
            t.id,
            &[a_renamed.clone(), ghost],
            &[],
            &[g_new.clone()],
            &cli(),
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Backend(_))),
        "a user that does not exist: expected Backend, got {err:?}"
    );
    // The group is fine, a resurrection passes the cap of 2.
    let mut z_back = z.clone();
    z_back.status.is_resigned = false;
    z_back.resigned_at = None;
    let err = s.save(t.id, &[z_back], &[], &[g_new.clone()], &cli()).await;
    assert!(
        matches!(err, Err(StoreError::LicenceExceeded)),
        "resurrection past the cap: expected LicenceExceeded, got {err:?}"
    );
    // The user is fine, the group clashes.
    let mut g_clash = g_new.clone();
    g_clash.name = "taken".into();
    let err = s
        .save(t.id, &[a_renamed.clone()], &[], &[g_clash], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::GroupName))),
        "expected Duplicate(GroupName), got {err:?}"
    );

    assert_eq!(
        groups_now(s, &[&g, &taken]).await,
        vec![g.clone(), taken.clone()],
        "refused saves left the groups unchanged"
    );
    assert_eq!(
        reread(s, &[&a, &b, &z]).await,
        vec![a.clone(), b.clone(), z.clone()],
        "refused saves left the users unchanged"
    );
    assert_eq!(active_users(s, t.id).await, 2);
    assert_eq!(
        events_since(s, None, mark).await,
        vec![],
        "refused saves record no event"
    );

    s.save(t.id, &[a_renamed.clone()], &[], &[g_new.clone()], &cli())
        .await
        .expect("a clean save");
    assert_eq!(reread(s, &[&a]).await, vec![a_renamed]);
    assert_eq!(group_now(s, &g).await, g_new);
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert_eq!(group_events(&ev).len(), 1);
}

/// `Directory::create_group` stores a group with a generated id, owned by an active user
/// found by any lookup (or by nobody); a resigned or unknown owner is
/// `BadReference { owner }`, and a name already used in another case is
/// `AlreadyExists { Group, GroupName }`. Refusals create nothing.
pub async fn check_create_group_needs_an_active_owner_and_a_unique_name(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let create_user = |custom_id: &'static str| {
        let dir = &env.dir;
        let caller = &env.caller;
        async move {
            dir.create_user(caller, new_user(custom_id))
                .await
                .expect("create a user through the directory")
        }
    };
    let owner = create_user("owner").await;
    let gone = create_user("gone").await;
    resign(s, &gone, now_ms()).await;

    let g = env
        .dir
        .create_group(
            &env.caller,
            "Platform",
            Some("Runs the platform".into()),
            Some(&UserLookup::UserId("owner".into())),
        )
        .await
        .expect("create a group owned by an active user");
    assert_eq!(g.tenant, env.tenant.id);
    assert_eq!(g.name, "Platform");
    assert_eq!(g.description.as_deref(), Some("Runs the platform"));
    assert_eq!(
        g.owner,
        Some(owner.open_id.clone()),
        "the owner is stored by open id, whatever the lookup"
    );
    assert!(!g.group_id.is_empty());
    assert_eq!(
        group_now(s, &g).await,
        g,
        "the group reads back as returned"
    );
    let unowned = env
        .dir
        .create_group(&env.caller, "Guild", None, None)
        .await
        .expect("create a group without an owner");
    assert_eq!(unowned.owner, None);
    assert_ne!(unowned.group_id, g.group_id);

    for (what, lookup) in [
        (
            "a resigned owner",
            UserLookup::OpenId(gone.open_id.to_string()),
        ),
        ("an unknown owner", UserLookup::UserId("nobody".into())),
        (
            "an unknown open id",
            UserLookup::OpenId(RandomIds.open_id().to_string()),
        ),
    ] {
        let err = env
            .dir
            .create_group(&env.caller, "Refused", None, Some(&lookup))
            .await;
        assert_bad_reference(&err, "owner", what);
    }
    for name in ["PLATFORM", "platform", "Guild"] {
        let err = env
            .dir
            .create_group(
                &env.caller,
                name,
                None,
                Some(&UserLookup::OpenId(owner.open_id.to_string())),
            )
            .await;
        assert!(
            matches!(
                err,
                Err(CoreError::AlreadyExists {
                    entity: Entity::Group,
                    field: UniqueKey::GroupName
                })
            ),
            "{name}: expected AlreadyExists {{ Group, GroupName }}, got {err:?}"
        );
    }
    assert_eq!(
        env.dir.list_groups(&env.caller).await.expect("list groups"),
        vec![g.clone(), unowned],
        "refusals created nothing"
    );
    assert_eq!(
        s.groups_owned_by(env.tenant.id, &owner.open_id)
            .await
            .expect("groups_owned_by"),
        vec![g]
    );
}
