//! The user lifecycle use cases of `roster_core::Directory` over the store: patch, change of
//! user id, deletion with hand-over (of reports, departments and groups), resurrection,
//! sign-out, JSAPI tickets, idempotent operations, contact lookups and scoped lists.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use roster_core::directory::JSAPI_TICKET_TTL_S;
use roster_core::{
    ChangeAction, ConflictKind, ContactScope, CoreError, Department, DepartmentPatch, DeptKey,
    DeptLookup, Directory, Entity, Group, Handover, IdGen, IdempotencyClaim, NewTenant, NewUser,
    RandomIds, Scope, Scopes, Store, StoreError, UniqueKey, User, UserLookup, UserPatch,
};

use crate::directory::{assert_bad_reference, assert_conflict, create_department, new_user_in};
use crate::idempotency::idem_key;
use crate::support::{
    active_users, assert_user_exists_err, caller, email, env, event_mark, events_since,
    get_department, get_user, member_of, mobile, new_user, now_ms, user_id, Env, ManualClock,
};

const CREATE: &str = "feishu.users.create";

async fn create(env: &Env, new: NewUser) -> User {
    env.dir
        .create_user(&env.caller, new)
        .await
        .expect("create a user through the directory")
}

fn led_by(custom_id: &str, leader: &User) -> NewUser {
    let mut u = new_user(custom_id);
    u.leader = Some(UserLookup::OpenId(leader.open_id.to_string()));
    u
}

fn open(u: &User) -> UserLookup {
    UserLookup::OpenId(u.open_id.to_string())
}

/// The user as stored now.
async fn now_of(env: &Env, u: &User) -> User {
    get_user(env.store.as_ref(), env.tenant.id, UserLookup::Key(u.key))
        .await
        .unwrap_or_else(|| panic!("user {} vanished", u.user_id))
}

/// The department as stored now.
async fn dept_now(env: &Env, d: &Department) -> Department {
    get_department(env.store.as_ref(), env.tenant.id, d.key).await
}

/// Makes `leader` the leader of the department, through the directory.
async fn lead(env: &Env, d: &Department, leader: &User) -> Department {
    env.dir
        .update_department(
            &env.caller,
            &DeptLookup::Key(d.key),
            DepartmentPatch {
                leader: Some(Some(leader.open_id.clone())),
                ..DepartmentPatch::default()
            },
        )
        .await
        .expect("set a department's leader")
}

/// Deletes a user with the default hand-over.
async fn delete(env: &Env, u: &User) {
    env.dir
        .delete_user(&env.caller, &open(u), Handover::default())
        .await
        .expect("delete a user");
}

/// `got` equals `want` except for a newer `updated_at`.
fn assert_same_but_updated(got: &User, want: &User, what: &str) {
    assert!(
        got.updated_at >= want.updated_at,
        "{what}: updated_at went back"
    );
    let want = User {
        updated_at: got.updated_at,
        ..want.clone()
    };
    assert_eq!(got, &want, "{what}");
}

/// `patch_user` changes exactly the fields the patch names (a cleared optional field is
/// cleared, the rest unchanged) with one `Updated` event by the calling app; refusals
/// (another active user's e-mail, a leader that is the user or reports to them, a missing
/// department, a resigned user) change nothing.
pub async fn check_patch_user_changes_only_the_given_fields(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    let boss = create(&env, new_user("boss")).await;
    let mut nu = new_user_in("patched", a.key);
    nu.leader = Some(open(&boss));
    nu.profile.en_name = Some("Patched En".into());
    nu.profile.nickname = Some("Pat".into());
    nu.profile.email = Some(email("patched@example.com"));
    nu.profile.mobile = Some(mobile(701));
    nu.profile.city = Some("Hangzhou".into());
    nu.profile.job_title = Some("Engineer".into());
    nu.profile.employee_no = Some("E-701".into());
    let u = create(&env, nu).await;
    let mut other = new_user("other");
    other.profile.email = Some(email("other@example.com"));
    let other = create(&env, other).await;
    let mut gone = new_user("gone");
    gone.profile.email = Some(email("gone@example.com"));
    let gone = create(&env, gone).await;
    delete(&env, &gone).await;

    let mark = event_mark(s).await;
    let patched = env
        .dir
        .patch_user(
            &env.caller,
            &open(&u),
            UserPatch {
                name: Some("New Name".into()),
                city: Some(None),
                job_title: Some(Some("Lead".into())),
                departments: Some(vec![member_of(b.key)]),
                is_frozen: Some(true),
                ..UserPatch::default()
            },
        )
        .await
        .expect("patch");
    let mut want = u.clone();
    want.profile.name = "New Name".into();
    want.profile.city = None;
    want.profile.job_title = Some("Lead".into());
    want.profile.departments = vec![member_of(b.key)];
    want.status.is_frozen = true;
    assert_same_but_updated(&patched, &want, "only the patched fields change");
    let want = patched.clone();
    assert_eq!(now_of(&env, &u).await, want, "the patch is stored");
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, a.key)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, b.key)
            .await
            .expect("count"),
        1
    );
    let ev = events_since(s, Some(env.tenant.id), mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].entity_id, u.open_id.as_str());
    assert_eq!(ev[0].action, ChangeAction::Updated);
    assert_eq!(ev[0].actor, format!("app:{}", env.caller.app_id));

    // Refusals change nothing and record nothing.
    let r1 = create(&env, led_by("r1", &u)).await;
    let r2 = create(&env, led_by("r2", &r1)).await;
    let mark = event_mark(s).await;
    let patch = |p: UserPatch| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let lookup = open(&u);
        async move { dir.patch_user(&caller, &lookup, p).await }
    };
    let r = patch(UserPatch {
        name: Some("Never".into()),
        email: Some(Some(email("OTHER@example.com"))),
        ..UserPatch::default()
    })
    .await;
    assert_user_exists_err(&r, UniqueKey::Email, "another active user's e-mail");
    let r = patch(UserPatch {
        mobile: Some(u.profile.mobile.clone()),
        employee_no: Some(Some("E-701".into())),
        ..UserPatch::default()
    })
    .await;
    assert!(
        r.is_ok(),
        "re-setting the user's own values is no clash: {r:?}"
    );
    let want = r.expect("checked");
    let leader_to = |l: UserLookup| UserPatch {
        name: Some("Never".into()),
        leader: Some(Some(l)),
        ..UserPatch::default()
    };
    assert_bad_reference(
        &patch(leader_to(open(&u))).await,
        "leader_user_id",
        "leader: self",
    );
    assert_bad_reference(
        &patch(leader_to(open(&r1))).await,
        "leader_user_id",
        "leader: a direct report",
    );
    assert_bad_reference(
        &patch(leader_to(open(&r2))).await,
        "leader_user_id",
        "leader: a report's report",
    );
    assert_bad_reference(
        &patch(leader_to(open(&gone))).await,
        "leader_user_id",
        "leader: a resigned user",
    );
    assert_bad_reference(
        &patch(leader_to(UserLookup::UserId("nobody".into()))).await,
        "leader_user_id",
        "leader: unknown",
    );
    assert_bad_reference(
        &patch(UserPatch {
            name: Some("Never".into()),
            departments: Some(vec![member_of(DeptKey(b.key.0 + 10_000))]),
            ..UserPatch::default()
        })
        .await,
        "department_ids",
        "a missing department",
    );
    assert_eq!(
        now_of(&env, &u).await,
        want,
        "refused patches changed nothing"
    );
    assert_eq!(now_of(&env, &other).await, other);
    assert_eq!(
        events_since(s, None, mark).await.len(),
        1,
        "only the accepted (no-op) patch recorded an event"
    );

    // A released e-mail may be taken; the leader may be cleared; no departments is the root.
    let p = patch(UserPatch {
        email: Some(Some(email("Gone@Example.com"))),
        leader: Some(None),
        departments: Some(vec![]),
        ..UserPatch::default()
    })
    .await
    .expect("take a resigned user's e-mail, drop the leader");
    assert_eq!(p.profile.email, Some(email("Gone@Example.com")));
    assert_eq!(p.profile.leader, None);
    assert_eq!(p.profile.departments, vec![member_of(env.root.key)]);
    assert_eq!(p.profile.name, "New Name");
    assert_eq!(now_of(&env, &u).await, p);
    let p = patch(UserPatch {
        leader: Some(Some(UserLookup::UserId("BOSS".into()))),
        ..UserPatch::default()
    })
    .await
    .expect("a leader by user id");
    assert_eq!(p.profile.leader, Some(boss.open_id.clone()));

    // A resigned user cannot be patched.
    let r = env
        .dir
        .patch_user(
            &env.caller,
            &open(&gone),
            UserPatch {
                name: Some("Zombie".into()),
                ..UserPatch::default()
            },
        )
        .await;
    assert_conflict(&r, ConflictKind::UserResigned, "patching a resigned user");
    assert_ne!(now_of(&env, &gone).await.profile.name, "Zombie");
}

/// `update_user_id` gives a user a new custom id: the old one stops resolving and the new
/// one (in any case) resolves to the same user; an id held by another active user is
/// `AlreadyExists(UserId)`, one held only by a resigned user is free; a resigned user is a
/// `Conflict`.
pub async fn check_update_user_id_moves_the_custom_id(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let u = create(&env, new_user("old.id")).await;
    let taken = create(&env, new_user("taken")).await;
    let gone = create(&env, new_user("gone")).await;
    delete(&env, &gone).await;
    let t = env.tenant.id;

    let mark = event_mark(s).await;
    let moved = env
        .dir
        .update_user_id(
            &env.caller,
            &UserLookup::UserId("OLD.ID".into()),
            user_id("New.Id"),
        )
        .await
        .expect("update the user id");
    assert_eq!(moved.user_id.as_str(), "New.Id");
    assert_same_but_updated(
        &moved,
        &User {
            user_id: user_id("New.Id"),
            ..u.clone()
        },
        "only the user id changes",
    );
    assert_eq!(
        get_user(s, t, UserLookup::UserId("old.id".into())).await,
        None
    );
    for id in ["New.Id", "new.id", "NEW.ID"] {
        assert_eq!(
            get_user(s, t, UserLookup::UserId(id.into())).await.as_ref(),
            Some(&moved),
            "the new id {id} resolves"
        );
    }
    let r = env
        .dir
        .get_user(&env.caller, &UserLookup::UserId("old.id".into()))
        .await;
    assert!(
        matches!(
            r,
            Err(CoreError::NotFound {
                entity: Entity::User,
                ..
            })
        ),
        "the old id no longer resolves: {r:?}"
    );
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].action, ChangeAction::Updated);

    let r = env
        .dir
        .update_user_id(&env.caller, &open(&u), user_id("TAKEN"))
        .await;
    assert_user_exists_err(&r, UniqueKey::UserId, "another active user's id");
    assert_eq!(now_of(&env, &u).await, moved);
    assert_eq!(now_of(&env, &taken).await, taken);

    let recased = env
        .dir
        .update_user_id(&env.caller, &open(&u), user_id("NEW.ID"))
        .await
        .expect("a change of case only");
    assert_eq!(recased.user_id.as_str(), "NEW.ID");
    let freed = env
        .dir
        .update_user_id(&env.caller, &open(&u), user_id("gone"))
        .await
        .expect("a resigned user's id is free");
    assert_eq!(
        get_user(s, t, UserLookup::UserId("GONE".into()))
            .await
            .as_ref(),
        Some(&freed),
        "the active holder wins over the resigned one"
    );

    let r = env
        .dir
        .update_user_id(&env.caller, &open(&gone), user_id("zombie"))
        .await;
    assert_conflict(&r, ConflictKind::UserResigned, "a resigned user's id");
}

/// Deleting a user with an explicit successor, in one transaction: the user is resigned and
/// out of every department, the successor leads the user's active direct reports and the
/// departments the user led, and every event of the change carries the hand-over note;
/// other users and departments are untouched; deleting again is a `Conflict`.
pub async fn check_delete_user_hands_over_to_an_explicit_successor(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let top = create(&env, new_user("top")).await;
    let mut nu = led_by("leaver", &top);
    nu.profile.departments = vec![member_of(a.key), member_of(env.root.key)];
    nu.profile.departments[1].is_primary = false;
    nu.profile.email = Some(email("leaver@example.com"));
    let u = create(&env, nu).await;
    let succ = create(&env, new_user("succ")).await;
    let mut r1 = led_by("r1", &u);
    r1.profile.departments = vec![member_of(a.key)];
    let r1 = create(&env, r1).await;
    let r2 = create(&env, led_by("r2", &u)).await;
    // Resigned while still naming the user as leader: not a report to hand over.
    let gone_report = create(&env, led_by("gone-report", &u)).await;
    let gone_report = crate::support::resign(s, &gone_report, now_ms()).await;
    let bystander = create(&env, led_by("bystander", &top)).await;
    let d1 = lead(
        &env,
        &create_department(&env, env.root.key, "D1", "D1", 0).await,
        &u,
    )
    .await;
    let d2 = lead(
        &env,
        &create_department(&env, a.key, "D2", "D2", 0).await,
        &u,
    )
    .await;
    let d3 = lead(
        &env,
        &create_department(&env, env.root.key, "D3", "D3", 0).await,
        &top,
    )
    .await;
    let active_before = active_users(s, env.tenant.id).await;

    let mark = event_mark(s).await;
    env.dir
        .delete_user(
            &env.caller,
            &UserLookup::UserId("leaver".into()),
            Handover {
                successor: Some(UserLookup::UserId("succ".into())),
                transfers: vec![("docs".into(), UserLookup::OpenId(top.open_id.to_string()))],
            },
        )
        .await
        .expect("delete with a successor");

    let gone = now_of(&env, &u).await;
    assert!(gone.status.is_resigned, "the user is resigned");
    assert!(gone.resigned_at.is_some());
    assert_eq!(
        gone.profile.departments,
        vec![],
        "the user left every department"
    );
    assert_eq!(
        gone.profile.email, u.profile.email,
        "the user's data is kept"
    );
    assert_eq!(active_users(s, env.tenant.id).await, active_before - 1);
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, a.key)
            .await
            .expect("count"),
        1,
        "only r1 is left in A"
    );
    for r in [&r1, &r2] {
        assert_same_but_updated(
            &now_of(&env, r).await,
            &User {
                profile: roster_core::UserProfile {
                    leader: Some(succ.open_id.clone()),
                    ..r.profile.clone()
                },
                ..r.clone()
            },
            "a direct report is now led by the successor",
        );
    }
    assert_eq!(
        now_of(&env, &gone_report).await,
        gone_report,
        "resigned reports are left alone"
    );
    assert_eq!(now_of(&env, &bystander).await, bystander);
    assert_eq!(now_of(&env, &succ).await, succ);
    assert_eq!(now_of(&env, &top).await, top);
    for d in [&d1, &d2] {
        let now = dept_now(&env, d).await;
        assert_eq!(
            now.fields.leader,
            Some(succ.open_id.clone()),
            "{} is led by the successor",
            d.department_id
        );
        assert_eq!(now.parent, d.parent);
        assert_eq!(now.fields.name, d.fields.name);
    }
    assert_eq!(dept_now(&env, &d3).await, d3);

    let ev = events_since(s, None, mark).await;
    assert_eq!(
        ev.len(),
        5,
        "the user, two reports, two departments: {ev:#?}"
    );
    let action_of = |id: &str| {
        ev.iter()
            .find(|e| e.entity_id == id)
            .map(|e| (e.entity, e.action))
    };
    assert_eq!(
        action_of(u.open_id.as_str()),
        Some((Entity::User, ChangeAction::Deleted))
    );
    assert_eq!(
        action_of(r1.open_id.as_str()),
        Some((Entity::User, ChangeAction::Updated))
    );
    assert_eq!(
        action_of(r2.open_id.as_str()),
        Some((Entity::User, ChangeAction::Updated))
    );
    for d in [&d1, &d2] {
        assert_eq!(
            action_of(d.open_department_id.as_str()),
            Some((Entity::Department, ChangeAction::Updated))
        );
    }
    for e in &ev {
        let note = e
            .note
            .as_deref()
            .unwrap_or_else(|| panic!("event {} has no note", e.id));
        assert!(
            note.contains(succ.open_id.as_str()) && note.contains(top.open_id.as_str()),
            "the hand-over note names the acceptors: {note}"
        );
        assert_eq!(e.actor, format!("app:{}", env.caller.app_id));
    }

    let again = env
        .dir
        .delete_user(&env.caller, &open(&u), Handover::default())
        .await;
    assert_conflict(
        &again,
        ConflictKind::UserResigned,
        "deleting a resigned user",
    );
}

/// A deleted user is nobody's deputy any more, and a deputy who takes over a department as
/// its main leader is listed once.
pub async fn check_delete_user_leaves_deputy_posts(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let boss = create(&env, new_user("boss")).await;
    let dep = create(&env, new_user("dep")).await;
    let dep2 = create(&env, new_user("dep2")).await;
    let d = create_department(&env, env.root.key, "D", "D", 0).await;
    env.dir
        .update_department(
            &env.caller,
            &DeptLookup::Key(d.key),
            DepartmentPatch {
                leader: Some(Some(boss.open_id.clone())),
                deputies: Some(vec![dep.open_id.clone(), dep2.open_id.clone()]),
                ..DepartmentPatch::default()
            },
        )
        .await
        .expect("set the leaders");
    delete(&env, &dep2).await;
    let now = dept_now(&env, &d).await;
    assert_eq!(now.fields.leader, Some(boss.open_id.clone()));
    assert_eq!(
        now.fields.deputies,
        vec![dep.open_id.clone()],
        "a deleted deputy is no deputy"
    );
    env.dir
        .delete_user(
            &env.caller,
            &open(&boss),
            Handover {
                successor: Some(open(&dep)),
                transfers: vec![],
            },
        )
        .await
        .expect("delete the main leader");
    let now = dept_now(&env, &d).await;
    assert_eq!(now.fields.leader, Some(dep.open_id.clone()));
    assert!(
        now.fields.deputies.is_empty(),
        "the new main leader is not also a deputy: {:?}",
        now.fields.deputies
    );
}

/// A deleted user leaves every dotted-line leader list it was on (a user who also reports
/// to it directly is rewritten once, both ways), keeps none of its own, and resurrecting it
/// brings none of those links back. Resigned users are left alone.
pub async fn check_delete_user_leaves_dotted_line_posts(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let v = create(&env, new_user("v")).await;
    let w = create(&env, new_user("w")).await;
    let mut with_v = new_user("vr");
    with_v.profile.dotted_line_leaders = vec![w.open_id.clone()];
    let mut own = create(&env, with_v).await;
    let dotted = |id: &str, leaders: Vec<&User>| {
        let mut n = new_user(id);
        n.profile.dotted_line_leaders = leaders.iter().map(|u| u.open_id.clone()).collect();
        n
    };
    let r = create(&env, dotted("r", vec![&v])).await;
    let rw = create(&env, dotted("rw", vec![&w, &v])).await;
    let mut both = dotted("both", vec![&v]);
    both.leader = Some(open(&v));
    let both = create(&env, both).await;
    let gone = create(&env, dotted("gone", vec![&v])).await;
    delete(&env, &gone).await;
    let gone = now_of(&env, &gone).await;
    // v's own dotted-line leader, set after creation.
    env.dir
        .patch_user(
            &env.caller,
            &open(&v),
            roster_core::UserPatch {
                dotted_line_leaders: Some(vec![w.open_id.clone()]),
                ..roster_core::UserPatch::default()
            },
        )
        .await
        .expect("give v a dotted-line leader");
    delete(&env, &v).await;
    assert!(now_of(&env, &r)
        .await
        .profile
        .dotted_line_leaders
        .is_empty());
    assert_eq!(
        now_of(&env, &rw).await.profile.dotted_line_leaders,
        vec![w.open_id.clone()],
        "only the deleted user leaves the list"
    );
    let b = now_of(&env, &both).await;
    assert!(b.profile.dotted_line_leaders.is_empty());
    assert_eq!(
        b.profile.leader, None,
        "v had no leader to hand its reports to"
    );
    assert!(now_of(&env, &v)
        .await
        .profile
        .dotted_line_leaders
        .is_empty());
    assert_eq!(
        now_of(&env, &gone).await,
        gone,
        "a resigned user is left alone"
    );
    own = now_of(&env, &own).await;
    assert_eq!(own.profile.dotted_line_leaders, vec![w.open_id.clone()]);

    env.dir
        .resurrect_user(&env.caller, &open(&v), None, None)
        .await
        .expect("resurrect v");
    for u in [&r, &both] {
        assert!(
            now_of(&env, u).await.profile.dotted_line_leaders.is_empty(),
            "resurrecting v brings no dotted-line link back"
        );
    }
}

/// Without a successor, the deleted user's own leader takes over; a user with no leader
/// leaves reports and departments leaderless; a successor who is one of the reports leads
/// the others but not themselves.
pub async fn check_delete_user_defaults_the_successor_to_the_leader(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let top = create(&env, new_user("top")).await;
    let u = create(&env, led_by("mid", &top)).await;
    let r = create(&env, led_by("r", &u)).await;
    let d = lead(
        &env,
        &create_department(&env, env.root.key, "D", "D", 0).await,
        &u,
    )
    .await;
    delete(&env, &u).await;
    assert_eq!(
        now_of(&env, &r).await.profile.leader,
        Some(top.open_id.clone())
    );
    assert_eq!(
        dept_now(&env, &d).await.fields.leader,
        Some(top.open_id.clone())
    );

    let solo = create(&env, new_user("solo")).await;
    let rs = create(&env, led_by("rs", &solo)).await;
    let ds = lead(
        &env,
        &create_department(&env, env.root.key, "DS", "DS", 0).await,
        &solo,
    )
    .await;
    delete(&env, &solo).await;
    assert_eq!(now_of(&env, &rs).await.profile.leader, None);
    assert_eq!(dept_now(&env, &ds).await.fields.leader, None);

    let x = create(&env, new_user("x")).await;
    let x1 = create(&env, led_by("x1", &x)).await;
    let x2 = create(&env, led_by("x2", &x)).await;
    let dx = lead(
        &env,
        &create_department(&env, env.root.key, "DX", "DX", 0).await,
        &x,
    )
    .await;
    env.dir
        .delete_user(
            &env.caller,
            &open(&x),
            Handover {
                successor: Some(open(&x1)),
                transfers: vec![],
            },
        )
        .await
        .expect("delete with a report as successor");
    assert_ne!(
        now_of(&env, &x1).await.profile.leader,
        Some(x1.open_id.clone()),
        "nobody leads themselves"
    );
    assert_ne!(
        now_of(&env, &x1).await.profile.leader,
        Some(x.open_id.clone())
    );
    assert_eq!(
        now_of(&env, &x2).await.profile.leader,
        Some(x1.open_id.clone())
    );
    assert_eq!(
        dept_now(&env, &dx).await.fields.leader,
        Some(x1.open_id.clone())
    );
    assert!(now_of(&env, &x).await.status.is_resigned);
}

/// Creates a group owned by `owner`, through the directory.
async fn own_group(env: &Env, name: &str, owner: &User) -> Group {
    env.dir
        .create_group(&env.caller, name, None, Some(&open(owner)))
        .await
        .expect("create a group through the directory")
}

/// The group as stored now.
async fn group_now(env: &Env, g: &Group) -> Group {
    env.store
        .get_group(env.tenant.id, &g.group_id)
        .await
        .expect("get_group must not fail")
        .unwrap_or_else(|| panic!("group {} vanished", g.name))
}

/// The groups a deleted user owned pass to the explicit successor, by default to the user's
/// own leader, and to nobody when there is neither; other groups stay as they are. They go in
/// the one `save` of the deletion: its events come exactly as one save records them (the
/// users, then the departments, then the groups, each an `Updated` group event carrying the
/// hand-over note), and a refused deletion leaves the groups unchanged.
pub async fn check_delete_user_hands_owned_groups_to_the_successor(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let top = create(&env, new_user("top")).await;
    let u = create(&env, led_by("leaver", &top)).await;
    let succ = create(&env, new_user("succ")).await;
    let r = create(&env, led_by("r", &u)).await;
    let d = lead(
        &env,
        &create_department(&env, env.root.key, "D", "D", 0).await,
        &u,
    )
    .await;
    let g1 = own_group(&env, "One", &u).await;
    let g2 = own_group(&env, "Two", &u).await;
    let kept = own_group(&env, "Kept", &top).await;
    let free = env
        .dir
        .create_group(&env.caller, "Free", None, None)
        .await
        .expect("create a group without an owner");
    assert_eq!(
        s.groups_owned_by(env.tenant.id, &u.open_id)
            .await
            .expect("groups_owned_by"),
        vec![g1.clone(), g2.clone()]
    );

    // A refused deletion hands nothing over.
    let mark = event_mark(s).await;
    let refused = env
        .dir
        .delete_user(
            &env.caller,
            &open(&u),
            Handover {
                successor: Some(UserLookup::UserId("nobody".into())),
                transfers: vec![],
            },
        )
        .await;
    assert_bad_reference(&refused, "acceptor", "an unknown successor");
    for g in [&g1, &g2, &kept, &free] {
        assert_eq!(
            &group_now(&env, g).await,
            g,
            "a refused deletion changed nothing"
        );
    }
    assert_eq!(events_since(s, None, mark).await, vec![]);

    let mark = event_mark(s).await;
    env.dir
        .delete_user(
            &env.caller,
            &open(&u),
            Handover {
                successor: Some(UserLookup::UserId("succ".into())),
                transfers: vec![],
            },
        )
        .await
        .expect("delete with a successor");
    for g in [&g1, &g2] {
        assert_eq!(
            group_now(&env, g).await,
            Group {
                owner: Some(succ.open_id.clone()),
                ..g.clone()
            },
            "{} is owned by the successor, and otherwise unchanged",
            g.name
        );
    }
    assert_eq!(group_now(&env, &kept).await, kept);
    assert_eq!(group_now(&env, &free).await, free);
    assert_eq!(
        s.groups_owned_by(env.tenant.id, &u.open_id)
            .await
            .expect("groups_owned_by"),
        vec![],
        "the deleted user owns nothing"
    );
    assert_eq!(
        s.groups_owned_by(env.tenant.id, &succ.open_id)
            .await
            .expect("groups_owned_by")
            .len(),
        2
    );
    assert!(now_of(&env, &u).await.status.is_resigned);
    assert_eq!(
        now_of(&env, &r).await.profile.leader,
        Some(succ.open_id.clone())
    );
    assert_eq!(
        dept_now(&env, &d).await.fields.leader,
        Some(succ.open_id.clone())
    );

    let ev = events_since(s, None, mark).await;
    assert_eq!(
        ev.iter()
            .map(|e| (e.entity, e.action, e.entity_id.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Entity::User, ChangeAction::Deleted, u.open_id.as_str()),
            (Entity::User, ChangeAction::Updated, r.open_id.as_str()),
            (
                Entity::Department,
                ChangeAction::Updated,
                d.open_department_id.as_str()
            ),
            (Entity::Group, ChangeAction::Updated, g1.group_id.as_str()),
            (Entity::Group, ChangeAction::Updated, g2.group_id.as_str()),
        ],
        "the deletion is one save: users, then departments, then groups"
    );
    for e in &ev {
        assert_eq!(e.actor, format!("app:{}", env.caller.app_id));
        assert_eq!(
            e.note, ev[0].note,
            "every event of the deletion carries the same hand-over note"
        );
    }
    assert!(
        ev[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains(succ.open_id.as_str())),
        "the note names the successor: {:?}",
        ev[0].note
    );

    // Without a successor the user's own leader takes the groups over...
    let mid = create(&env, led_by("mid", &top)).await;
    let gm = own_group(&env, "Mid's", &mid).await;
    delete(&env, &mid).await;
    assert_eq!(
        group_now(&env, &gm).await.owner,
        Some(top.open_id.clone()),
        "the leader owns the group by default"
    );
    // ...and with no leader either, nobody does.
    let solo = create(&env, new_user("solo")).await;
    let gs = own_group(&env, "Solo's", &solo).await;
    delete(&env, &solo).await;
    assert_eq!(group_now(&env, &gs).await.owner, None);
    assert_eq!(group_now(&env, &kept).await, kept);
    assert_eq!(
        s.groups_owned_by(env.tenant.id, &top.open_id)
            .await
            .expect("groups_owned_by"),
        vec![
            kept,
            Group {
                owner: Some(top.open_id.clone()),
                ..gm
            }
        ]
    );
}

/// An acceptor (successor or transfer) that has resigned, is the deleted user, or does not
/// exist is `BadReference { acceptor }`, and then NOTHING changed: the user, the reports, the
/// departments, the active count and the event record.
pub async fn check_delete_user_with_a_bad_acceptor_changes_nothing(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let top = create(&env, new_user("top")).await;
    let mut nu = led_by("leaver", &top);
    nu.profile.departments = vec![member_of(a.key)];
    let u = create(&env, nu).await;
    let r = create(&env, led_by("r", &u)).await;
    let d = lead(
        &env,
        &create_department(&env, env.root.key, "D", "D", 0).await,
        &u,
    )
    .await;
    let gone = create(&env, new_user("gone")).await;
    delete(&env, &gone).await;
    let ok = create(&env, new_user("ok")).await;
    let before = (
        now_of(&env, &u).await,
        now_of(&env, &r).await,
        dept_now(&env, &d).await,
    );
    let active = active_users(s, env.tenant.id).await;
    let mark = event_mark(s).await;

    let bad = [
        ("resigned", UserLookup::UserId("gone".into())),
        ("the user", open(&u)),
        ("unknown", UserLookup::UserId("nobody".into())),
        (
            "unknown open id",
            UserLookup::OpenId(RandomIds.open_id().to_string()),
        ),
    ];
    for (what, acceptor) in bad {
        let as_successor = env
            .dir
            .delete_user(
                &env.caller,
                &open(&u),
                Handover {
                    successor: Some(acceptor.clone()),
                    transfers: vec![],
                },
            )
            .await;
        assert_bad_reference(&as_successor, "acceptor", &format!("successor: {what}"));
        let as_transfer = env
            .dir
            .delete_user(
                &env.caller,
                &open(&u),
                Handover {
                    successor: Some(open(&ok)),
                    transfers: vec![("drive".into(), acceptor)],
                },
            )
            .await;
        assert_bad_reference(&as_transfer, "acceptor", &format!("transfer: {what}"));
        assert_eq!(
            (
                now_of(&env, &u).await,
                now_of(&env, &r).await,
                dept_now(&env, &d).await
            ),
            before,
            "a refused deletion ({what}) changed nothing"
        );
    }
    assert_eq!(active_users(s, env.tenant.id).await, active);
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, a.key)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        events_since(s, None, mark).await,
        vec![],
        "and recorded nothing"
    );
}

/// `resurrect_user` brings a resigned user back into the given departments (or the root),
/// with a `Resurrected` event; an active user is `Conflict(UserNotResigned)`, an e-mail taken
/// meanwhile `AlreadyExists(Email)`, the licence cap `LicenceExceeded`, and a refused
/// resurrection leaves the user resigned.
pub async fn check_resurrect_user_restores_a_resigned_user(store: Arc<dyn Store>) {
    let env = env(store.clone(), "Acme", None).await;
    let s = env.store.as_ref();
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    let mut nu = new_user_in("back", a.key);
    nu.profile.email = Some(email("back@example.com"));
    let u = create(&env, nu).await;
    delete(&env, &u).await;
    let active = active_users(s, env.tenant.id).await;

    let mark = event_mark(s).await;
    let back = env
        .dir
        .resurrect_user(&env.caller, &open(&u), Some(vec![member_of(b.key)]), None)
        .await
        .expect("resurrect into B");
    assert!(!back.status.is_resigned);
    assert_eq!(back.resigned_at, None);
    assert_eq!(back.profile.departments, vec![member_of(b.key)]);
    assert_eq!(back.profile.email, u.profile.email);
    assert_eq!(now_of(&env, &u).await, back, "the resurrection is stored");
    assert_eq!(active_users(s, env.tenant.id).await, active + 1);
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, b.key)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        env.dir
            .department_member_count(env.tenant.id, a.key)
            .await
            .expect("count"),
        0
    );
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].action, ChangeAction::Resurrected);
    assert_eq!(ev[0].entity_id, u.open_id.as_str());

    let r = env
        .dir
        .resurrect_user(&env.caller, &open(&u), None, None)
        .await;
    assert_conflict(&r, ConflictKind::UserNotResigned, "an active user");

    // No departments: the root.
    let w = create(&env, new_user_in("w", a.key)).await;
    delete(&env, &w).await;
    let w = env
        .dir
        .resurrect_user(&env.caller, &open(&w), None, None)
        .await
        .expect("resurrect into the root");
    assert_eq!(w.profile.departments, vec![member_of(env.root.key)]);

    // A missing department is refused.
    let v = create(&env, new_user("v")).await;
    delete(&env, &v).await;
    let r = env
        .dir
        .resurrect_user(
            &env.caller,
            &open(&v),
            Some(vec![member_of(DeptKey(b.key.0 + 10_000))]),
            None,
        )
        .await;
    assert_bad_reference(&r, "department_ids", "a missing department");
    assert!(now_of(&env, &v).await.status.is_resigned);

    // The e-mail was taken meanwhile.
    let mut x = new_user("x");
    x.profile.email = Some(email("x@example.com"));
    let x = create(&env, x).await;
    delete(&env, &x).await;
    let mut taker = new_user("taker");
    taker.profile.email = Some(email("X@Example.com"));
    create(&env, taker).await;
    let mark = event_mark(s).await;
    let r = env
        .dir
        .resurrect_user(&env.caller, &open(&x), None, None)
        .await;
    assert_user_exists_err(&r, UniqueKey::Email, "the e-mail was taken meanwhile");
    assert!(
        now_of(&env, &x).await.status.is_resigned,
        "x stays resigned"
    );
    assert_eq!(events_since(s, None, mark).await, vec![]);

    let r = env
        .dir
        .resurrect_user(
            &env.caller,
            &UserLookup::UserId("nobody".into()),
            None,
            None,
        )
        .await;
    assert!(
        matches!(
            r,
            Err(CoreError::NotFound {
                entity: Entity::User,
                ..
            })
        ),
        "an unknown user: {r:?}"
    );

    // The licence cap.
    let capped = crate::support::env(store, "Capped", Some(1)).await;
    let p = create(&capped, new_user("p")).await;
    delete(&capped, &p).await;
    create(&capped, new_user("q")).await;
    let r = capped
        .dir
        .resurrect_user(&capped.caller, &open(&p), None, None)
        .await;
    assert!(
        matches!(r, Err(CoreError::LicenceExceeded)),
        "resurrection past the cap: expected LicenceExceeded, got {r:?}"
    );
    assert!(
        now_of(&capped, &p).await.status.is_resigned,
        "p stays resigned"
    );
    assert_eq!(
        active_users(capped.store.as_ref(), capped.tenant.id).await,
        1
    );
}

/// `logout_user` records the sign-out time (and nothing else changes).
pub async fn check_logout_user_sets_logout_at(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let u = create(&env, new_user("u")).await;
    assert_eq!(u.logout_at, None);
    let before = now_ms();
    env.dir
        .logout_user(&env.caller, &UserLookup::UserId("U".into()))
        .await
        .expect("logout");
    let after = now_ms();
    let got = now_of(&env, &u).await;
    let at = got.logout_at.expect("logout_at is set");
    assert!(
        at >= before && at <= after,
        "logout_at {at} within [{before}, {after}]"
    );
    assert_same_but_updated(
        &got,
        &User {
            logout_at: Some(at),
            ..u.clone()
        },
        "only logout_at changes",
    );
    let r = env
        .dir
        .logout_user(&env.caller, &UserLookup::UserId("nobody".into()))
        .await;
    assert!(matches!(r, Err(CoreError::NotFound { .. })), "{r:?}");
}

/// The JSAPI ticket of an app is the same while it has more than a minute left (on every
/// node, since it is stored), a new one after that, and each app has its own.
pub async fn check_jsapi_ticket_is_the_same_while_valid(store: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock(AtomicI64::new(1_800_000_000_000)));
    let dir = Directory::new(store.clone(), clock.clone(), Arc::new(RandomIds));
    let other_node = Directory::new(store.clone(), clock.clone(), Arc::new(RandomIds));
    let t = dir
        .create_tenant(NewTenant::parse("Acme", None).expect("name"))
        .await
        .expect("tenant");
    let scopes = || Scopes::new([Scope::ContactRead]);
    let c1 = caller(&dir, t.id, scopes(), ContactScope::All).await;
    let c2 = caller(&dir, t.id, scopes(), ContactScope::All).await;

    let (t1, left) = dir.jsapi_ticket(&c1).await.expect("ticket");
    assert_eq!(left, JSAPI_TICKET_TTL_S);
    assert!(!t1.is_empty());
    assert_eq!(
        store.jsapi_ticket(&c1.app_id).await.expect("stored"),
        Some((t1.clone(), 1_800_000_000_000 + JSAPI_TICKET_TTL_S * 1000)),
        "the ticket is stored with its expiry"
    );
    clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    let (again, left) = dir.jsapi_ticket(&c1).await.expect("ticket");
    assert_eq!(again, t1, "the same ticket while valid");
    assert_eq!(left, JSAPI_TICKET_TTL_S - 3600);
    let (elsewhere, _) = other_node.jsapi_ticket(&c1).await.expect("ticket");
    assert_eq!(elsewhere, t1, "another node hands out the same ticket");
    let (t2, _) = dir.jsapi_ticket(&c2).await.expect("ticket");
    assert_ne!(t2, t1, "each app has its own ticket");

    // 30 s before expiry a new ticket is made.
    clock.0.fetch_add(
        (JSAPI_TICKET_TTL_S - 3600) * 1000 - 30_000,
        Ordering::SeqCst,
    );
    let (renewed, left) = dir.jsapi_ticket(&c1).await.expect("ticket");
    assert_ne!(renewed, t1, "a ticket about to expire is not handed out");
    assert_eq!(left, JSAPI_TICKET_TTL_S);
    let (again, _) = other_node.jsapi_ticket(&c1).await.expect("ticket");
    assert_eq!(again, renewed);
}

/// `idempotent` runs the operation once per key: a repeat with the same fingerprint replays
/// the entity id without running it, another fingerprint is `IdempotencyMismatch`, a failed
/// run releases the key so that a retry runs; keys are per operation and per app.
pub async fn check_idempotent_replays_the_first_result_without_running_again(
    store: Arc<dyn Store>,
) {
    let env = env(store, "Acme", None).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let op = |id: &str| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let runs = runs.clone();
        let nu = new_user(id);
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            dir.create_user(&caller, nu)
                .await
                .map(|u| u.open_id.to_string())
        }
    };
    let failing = || {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<String, _>(CoreError::invalid("name", "refused on purpose"))
        }
    };
    let dir = &env.dir;
    let c = &env.caller;

    let first = dir
        .idempotent(c, CREATE, "key-1", "fp-1", op("first"))
        .await
        .expect("first run");
    assert!(!first.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let created = get_user(
        env.store.as_ref(),
        env.tenant.id,
        UserLookup::UserId("first".into()),
    )
    .await
    .expect("the operation ran");
    assert_eq!(first.entity_id, created.open_id.as_str());

    // The dialect records the answer it gave; a replay that comes after the create but
    // before that answer waits for it rather than answering from the user as it is by then.
    let record = {
        let (dir, c, id) = (dir.clone(), c.clone(), first.entity_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            dir.record_idempotent_answer(&c, CREATE, "key-1", &id, "{\"first\":\n1}")
                .await;
        })
    };
    let again = dir
        .idempotent(c, CREATE, "key-1", "fp-1", op("second"))
        .await
        .expect("replay");
    assert!(again.replayed);
    assert_eq!(
        (again.entity_id.as_str(), again.answer.as_deref()),
        (first.entity_id.as_str(), Some("{\"first\":\n1}")),
        "the first run's id and answer are replayed, once the answer is recorded"
    );
    record.await.expect("record the answer");
    let third = dir
        .idempotent(c, CREATE, "key-1", "fp-1", op("second"))
        .await
        .expect("replay");
    assert_eq!(
        (
            third.entity_id.as_str(),
            third.answer.as_deref(),
            third.replayed
        ),
        (first.entity_id.as_str(), Some("{\"first\":\n1}"), true)
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a replay does not run the operation"
    );
    assert_eq!(
        get_user(
            env.store.as_ref(),
            env.tenant.id,
            UserLookup::UserId("second".into())
        )
        .await,
        None
    );

    let r = dir
        .idempotent(c, CREATE, "key-1", "fp-2", op("third"))
        .await;
    assert!(
        matches!(r, Err(CoreError::IdempotencyMismatch)),
        "another fingerprint: expected IdempotencyMismatch, got {r:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A failure releases the key: the retry runs, and is then replayed.
    let r = dir.idempotent(c, CREATE, "key-2", "fp", failing()).await;
    assert!(
        matches!(r, Err(CoreError::Invalid { field: "name", .. })),
        "{r:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let retried = dir
        .idempotent(c, CREATE, "key-2", "fp", op("retried"))
        .await
        .expect("the retry runs");
    assert!(!retried.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    dir.record_idempotent_answer(c, CREATE, "key-2", &retried.entity_id, "{}")
        .await;
    let replayed = dir
        .idempotent(c, CREATE, "key-2", "fp", op("never"))
        .await
        .expect("replay");
    assert_eq!(
        (replayed.entity_id, replayed.replayed),
        (retried.entity_id, true)
    );

    // The key is scoped to the operation and the app.
    let other_op = dir
        .idempotent(c, "feishu.users.other", "key-1", "fp-1", op("other-op"))
        .await
        .expect("another operation");
    assert!(!other_op.replayed);
    let other_app = caller(
        dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
        ContactScope::All,
    )
    .await;
    let mine = dir
        .idempotent(&other_app, CREATE, "key-1", "fp-1", op("other-app"))
        .await
        .expect("another app");
    assert!(!mine.replayed);
    assert_ne!(mine.entity_id, first.entity_id);
    assert_eq!(runs.load(Ordering::SeqCst), 5);

    for bad in [String::new(), "k".repeat(129)] {
        let r = dir.idempotent(c, CREATE, &bad, "fp", op("bad-key")).await;
        assert!(
            matches!(
                r,
                Err(CoreError::Invalid {
                    field: "client_token",
                    ..
                })
            ),
            "key of {} characters: {r:?}",
            bad.len()
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

/// A keyed create whose process dies right after its write committed (here: the operation
/// panics before `idempotent` can complete the key) has still completed its key, because the
/// store records the key's result in the create's own transaction: the client's retry is
/// answered with the entity that was created, instead of waiting out the claim and then
/// creating it a second time (or being refused as a duplicate of itself).
pub async fn check_a_keyed_create_that_dies_after_its_commit_is_replayed(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));

    // Each create runs in a task of its own, as the Feishu handlers run them; the panic
    // after the write stands for the process dying there.
    let dies_after = |what: &'static str| {
        let dir = env.dir.clone();
        let caller = env.caller.clone();
        let root = env.root.key;
        let runs = runs.clone();
        let created = created.clone();
        tokio::spawn(async move {
            let c = caller.clone();
            let d = dir.clone();
            dir.idempotent(&caller, CREATE, what, "fp", move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let id = if what == "user" {
                    d.create_user(&c, new_user("keyed-user"))
                        .await?
                        .open_id
                        .to_string()
                } else {
                    d.create_department(
                        &c,
                        roster_core::NewDepartment {
                            parent: root,
                            department_id: None,
                            fields: roster_core::DepartmentFields {
                                name: "Keyed".into(),
                                ..roster_core::DepartmentFields::default()
                            },
                            order_after_siblings: true,
                        },
                    )
                    .await?
                    .open_department_id
                    .to_string()
                };
                created.lock().expect("ids").push(id);
                panic!("the process dies after the {what} was written");
            })
            .await
        })
    };
    for what in ["user", "department"] {
        let died = dies_after(what).await;
        assert!(
            died.is_err_and(|e| e.is_panic()),
            "the {what} create panicked"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let ids = created.lock().expect("ids").clone();
    assert_eq!(ids.len(), 2, "both creates wrote their entity");

    for (what, id) in ["user", "department"].into_iter().zip(&ids) {
        // The retry must not run the operation: it would create the entity again.
        let retry = env
            .dir
            .idempotent(&env.caller, CREATE, what, "fp", || async {
                Err::<String, _>(CoreError::invalid("retry", "must not run"))
            })
            .await
            .unwrap_or_else(|e| panic!("the {what} retry: {e:?}"));
        // No answer was recorded: after waiting for one, the retry is told to render the
        // entity.
        assert_eq!(
            (retry.entity_id.as_str(), retry.replayed, retry.answer),
            (id.as_str(), true, None),
            "the {what} retry answers with the entity the first request created"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// Inside the write, a department may not start naming a resigned user (as leader, deputy
/// or HRBP: `Gone`), and resigning a user that a department outside the same save still
/// names is `Stale` (the core reads again and takes the user off that department too).
/// Together they close the race of a department write and a delete of a user it names,
/// which the core's checks before the write cannot see. Users a department named before the
/// write are not checked again.
pub async fn check_department_writes_and_deletes_agree_on_who_is_active(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.as_ref();
    let gone = create(&env, new_user("gone")).await;
    let kept = create(&env, new_user("kept")).await;
    delete(&env, &gone).await;

    for (field, set) in [
        ("leader_user_id", 0),
        ("leader_user_id", 1),
        ("department_hrbps", 2),
    ] {
        let mut d = crate::support::department(env.tenant.id, env.root.key, "NEW", "New", 0);
        match set {
            0 => d.fields.leader = Some(gone.open_id.clone()),
            1 => d.fields.deputies = vec![gone.open_id.clone()],
            _ => d.fields.hrbps = vec![kept.open_id.clone(), gone.open_id.clone()],
        }
        let r = s.insert_department(&d, &crate::support::cli()).await;
        assert!(
            matches!(r, Err(StoreError::Gone(f)) if f == field),
            "insert naming a resigned user ({set}): {r:?}"
        );
    }

    let d = create_department(&env, env.root.key, "HR", "HR", 0).await;
    let mut named = d.clone();
    named.fields.hrbps = vec![kept.open_id.clone(), gone.open_id.clone()];
    let r = s.update_department(&named, &crate::support::cli()).await;
    assert!(
        matches!(r, Err(StoreError::Gone("department_hrbps"))),
        "a save adding a resigned HRBP: {r:?}"
    );
    named.fields.hrbps = vec![kept.open_id.clone()];
    s.update_department(&named, &crate::support::cli())
        .await
        .expect("an active HRBP is fine");

    // `kept` is named by HR; a save resigning it without HR is refused as Stale...
    let mut resigned = now_of(&env, &kept).await;
    resigned.status.is_resigned = true;
    resigned.resigned_at = Some(now_ms());
    let r = s
        .save(
            env.tenant.id,
            std::slice::from_ref(&resigned),
            &[],
            &[],
            &crate::support::cli(),
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::Stale)),
        "resigning a named HRBP: {r:?}"
    );
    assert!(
        !now_of(&env, &kept).await.status.is_resigned,
        "nothing was written"
    );
    // ...and the directory's delete, which takes it off HR in the same save, goes through.
    delete(&env, &kept).await;
    assert!(dept_now(&env, &d).await.fields.hrbps.is_empty());
}

/// A request whose key is claimed by a request still running waits for it and replays its
/// result; with another fingerprint it is refused at once; if the first never finishes, it
/// gives up with `Conflict(InFlight)`; in no case does it run the operation.
pub async fn check_idempotent_waits_for_a_request_in_flight(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let s = env.store.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let op = || {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, CoreError>("ou_from_the_second_request".to_owned())
        }
    };
    let busy = idem_key(env.tenant.id, &env.caller.app_id, CREATE, "busy");
    assert_eq!(
        s.claim_idempotency_key(&busy, "fp", now_ms())
            .await
            .expect("claim"),
        IdempotencyClaim::Claimed
    );
    let finisher = {
        let s = s.clone();
        let busy = busy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            s.complete_idempotency_key(&busy, "ou_from_the_first_request")
                .await
                .expect("complete");
        })
    };
    let waited = env
        .dir
        .idempotent(&env.caller, CREATE, "busy", "fp", op())
        .await
        .expect("waits for the first request");
    finisher.await.expect("the finisher ran");
    assert_eq!(waited.entity_id, "ou_from_the_first_request");
    assert!(waited.replayed);

    let stuck = idem_key(env.tenant.id, &env.caller.app_id, CREATE, "stuck");
    s.claim_idempotency_key(&stuck, "fp", now_ms())
        .await
        .expect("claim");
    let r = env
        .dir
        .idempotent(&env.caller, CREATE, "stuck", "fp-other", op())
        .await;
    assert!(matches!(r, Err(CoreError::IdempotencyMismatch)), "{r:?}");
    let r = env
        .dir
        .idempotent(&env.caller, CREATE, "stuck", "fp", op())
        .await;
    assert_conflict(&r, ConflictKind::InFlight, "a request that never finishes");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the operation never ran");
}

/// `users_by_contact` answers per e-mail and per mobile, in request order: the active holder
/// wins; without `include_resigned` resigned holders are not returned, with it the most
/// recently resigned holder is; an app scoped to a department gets no active user outside.
pub async fn check_users_by_contact_prefers_active_holders_and_includes_resigned_on_request(
    store: Arc<dyn Store>,
) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    let with_email = |id: &str, e: &str, dept: DeptKey| {
        let mut u = new_user_in(id, dept);
        u.profile.email = Some(email(e));
        u
    };
    let early = create(&env, with_email("early", "shared@example.com", a.key)).await;
    delete(&env, &early).await;
    let holder = create(&env, with_email("holder", "Shared@Example.com", b.key)).await;
    let left1 = create(&env, with_email("left1", "left@example.com", a.key)).await;
    delete(&env, &left1).await;
    let left2 = create(&env, with_email("left2", "left@example.com", a.key)).await;
    delete(&env, &left2).await;
    let left2 = now_of(&env, &left2).await;
    let mut phone = new_user_in("phone", a.key);
    phone.profile.mobile = Some(mobile(801));
    let phone = create(&env, phone).await;

    let emails = [
        email("SHARED@example.com"),
        email("left@example.com"),
        email("nobody@example.com"),
    ];
    let mobiles = [mobile(899), mobile(801)];
    let (by_email, by_mobile) = env
        .dir
        .users_by_contact(&env.caller, &emails, &mobiles, false)
        .await
        .expect("by contact");
    assert_eq!(by_email, vec![Some(holder.clone()), None, None]);
    assert_eq!(by_mobile, vec![None, Some(phone.clone())]);
    let (by_email, by_mobile) = env
        .dir
        .users_by_contact(&env.caller, &emails, &mobiles, true)
        .await
        .expect("by contact");
    assert_eq!(
        by_email,
        vec![Some(holder.clone()), Some(left2), None],
        "the active holder, else the most recently resigned one"
    );
    assert_eq!(by_mobile, vec![None, Some(phone.clone())]);

    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;
    let (by_email, by_mobile) = env
        .dir
        .users_by_contact(&scoped, &emails[..1], &mobiles, false)
        .await
        .expect("by contact");
    assert_eq!(
        by_email,
        vec![None],
        "the holder is outside the app's scope"
    );
    assert_eq!(by_mobile, vec![None, Some(phone)]);
}

/// An app limited to some departments cannot take a user out of a department outside them,
/// and cannot name a leader it cannot see (that user is "no such user" to it), on create
/// and on patch.
pub async fn check_a_scoped_app_cannot_reach_outside_its_departments(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let o = create_department(&env, env.root.key, "O", "O", 0).await;
    let mut both = new_user_in("both", a.key);
    both.profile.departments.push(roster_core::Membership {
        is_primary: false,
        ..member_of(o.key)
    });
    let both = create(&env, both).await;
    let outsider = create(&env, new_user_in("outsider", o.key)).await;
    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;

    let dropped = env
        .dir
        .patch_user(
            &scoped,
            &open(&both),
            UserPatch {
                departments: Some(vec![member_of(a.key)]),
                ..UserPatch::default()
            },
        )
        .await;
    assert!(
        matches!(dropped, Err(CoreError::Forbidden(_))),
        "leaving a department outside the scope: {dropped:?}"
    );
    assert_eq!(now_of(&env, &both).await.profile.departments.len(), 2);

    let led = env
        .dir
        .patch_user(
            &scoped,
            &open(&both),
            UserPatch {
                leader: Some(Some(open(&outsider))),
                ..UserPatch::default()
            },
        )
        .await;
    assert_bad_reference(&led, "leader_user_id", "a leader outside the scope");
    let mut new = new_user_in("new", a.key);
    new.leader = Some(open(&outsider));
    let created = env.dir.create_user(&scoped, new).await;
    assert_bad_reference(
        &created,
        "leader_user_id",
        "creating under an unseen leader",
    );

    // Every other reference the app makes resolves only to users it may see: a dotted-line
    // leader, a department's leader (the adapters resolve it through `user_visible_to`) and
    // a hand-over's acceptors.
    let dotted = env
        .dir
        .dotted_line_leaders(&scoped, &[open(&outsider)])
        .await;
    assert_bad_reference(
        &dotted,
        "dotted_line_leader_user_ids",
        "an unseen dotted-line leader",
    );
    let seen = env
        .dir
        .user_visible_to(&scoped, &open(&outsider))
        .await
        .expect("read");
    assert!(
        seen.is_none(),
        "an unseen user resolves to nobody: {seen:?}"
    );
    let seen = env
        .dir
        .user_visible_to(&scoped, &open(&both))
        .await
        .expect("read");
    assert_eq!(seen.map(|u| u.key), Some(both.key));
    let inner = create(&env, new_user_in("inner", a.key)).await;
    for handover in [
        Handover {
            successor: Some(open(&outsider)),
            transfers: vec![],
        },
        Handover {
            successor: None,
            transfers: vec![("docs".into(), open(&outsider))],
        },
    ] {
        let deleted = env.dir.delete_user(&scoped, &open(&inner), handover).await;
        assert_bad_reference(&deleted, "acceptor", "an unseen acceptor");
        assert!(!now_of(&env, &inner).await.status.is_resigned);
    }
}

/// Name search and department member lists through the directory: only users the app's
/// contact scope covers, a page at a time with a correct "more" flag; a department outside
/// the scope is `Forbidden`; an empty query is `Invalid`; batch reads leave out invisible
/// users.
pub async fn check_search_and_member_lists_respect_the_contact_scope(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    let named = |id: &str, name: &str, dept: DeptKey| {
        let mut u = new_user_in(id, dept);
        name.clone_into(&mut u.profile.name);
        u
    };
    let mut in_a = Vec::new();
    let mut in_b = Vec::new();
    for i in 0..3 {
        in_a.push(
            create(
                &env,
                named(&format!("a{i}"), &format!("Zed Alpha {i}"), a.key),
            )
            .await,
        );
        in_b.push(
            create(
                &env,
                named(&format!("b{i}"), &format!("Zed Beta {i}"), b.key),
            )
            .await,
        );
    }
    let mut both = named("both", "Zed Both", b.key);
    both.profile.departments.push(roster_core::Membership {
        is_primary: false,
        ..member_of(a.key)
    });
    let both = create(&env, both).await;
    in_a.push(both.clone());
    let gone = create(&env, named("gone", "Zed Gone", a.key)).await;
    delete(&env, &gone).await;
    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;

    let mut want_all: Vec<User> = in_a.iter().chain(in_b.iter()).cloned().collect();
    want_all.sort_by_key(|u| u.key);
    for (who, c, want) in [
        ("scoped", &scoped, in_a.clone()),
        ("everything", &env.caller, want_all),
    ] {
        let mut got: Vec<User> = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = env
                .dir
                .search_users(c, "ZED", after, 2)
                .await
                .expect("search");
            assert!(page.len() <= 2);
            if next.is_some() {
                assert_eq!(page.len(), 2, "{who}: a page before the last is full");
            }
            got.extend(page.into_iter().map(|(u, _)| u));
            after = next;
            if after.is_none() {
                break;
            }
        }
        // Ranked order is by matching term, then key (crate::search checks the order).
        got.sort_by_key(|u| u.key);
        assert_eq!(got, want, "{who}: every visible active match once");
    }

    let mut got = Vec::new();
    let mut after = None;
    loop {
        let (page, more) = env
            .dir
            .department_users(&scoped, &DeptLookup::Key(a.key), after, 3)
            .await
            .expect("members of A");
        after = page.last().map(|u| u.key);
        got.extend(page);
        if !more {
            break;
        }
    }
    assert_eq!(got, in_a, "A's active direct members");
    let r = env
        .dir
        .department_users(&scoped, &DeptLookup::Key(b.key), None, 10)
        .await;
    assert!(
        matches!(r, Err(CoreError::Forbidden(_))),
        "members of B: {r:?}"
    );
    let r = env.dir.search_users(&scoped, "   ", None, 10).await;
    assert!(
        matches!(r, Err(CoreError::Invalid { field: "query", .. })),
        "{r:?}"
    );

    let got = env
        .dir
        .get_users(&scoped, &[open(&in_b[0]), open(&in_a[0]), open(&both)])
        .await
        .expect("get_users");
    let mut got: Vec<String> = got.into_iter().map(|u| u.user_id.to_string()).collect();
    got.sort();
    assert_eq!(
        got,
        vec!["a0".to_owned(), "both".to_owned()],
        "b0 is outside the scope"
    );
}

/// A search by an app limited to one department, where thousands of matches lie outside it,
/// ends each page after a bounded number of candidates (possibly short or empty, with a place
/// to resume from) instead of reading every invisible match; walking the pages still finds
/// every visible match exactly once.
pub async fn check_scoped_search_bounds_the_candidates_of_a_page(store: Arc<dyn Store>) {
    let env = env(store, "Acme", None).await;
    let a = create_department(&env, env.root.key, "A", "A", 0).await;
    let b = create_department(&env, env.root.key, "B", "B", 0).await;
    // More invisible matches than one page may examine, ranked before the visible ones
    // (same term, lower keys), and two visible matches after them.
    let outside: Vec<_> = (0..5_200)
        .map(|i| {
            let mut u = new_user_in(&format!("out{i}"), b.key);
            u.profile.name = format!("Quill {i}");
            Ok(u)
        })
        .collect();
    let report = env
        .dir
        .create_users(&env.caller, outside, roster_core::BatchMode::Atomic)
        .await
        .expect("create the invisible matches");
    assert_eq!(report.ok_count(), 5_200);
    let mut want = Vec::new();
    for i in 0..2 {
        let mut u = new_user_in(&format!("in{i}"), a.key);
        u.profile.name = format!("Quill inside {i}");
        want.push(create(&env, u).await.key);
    }
    let scoped = caller(
        &env.dir,
        env.tenant.id,
        Scopes::new([Scope::ContactRead]),
        ContactScope::Departments(vec![a.key]),
    )
    .await;
    let mut got = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (page, next) = env
            .dir
            .search_users(&scoped, "quill", after, 1)
            .await
            .expect("search");
        pages += 1;
        assert!(page.len() <= 1);
        if pages == 1 {
            assert!(
                page.is_empty() && next.is_some(),
                "the first page stops at the budget, before any visible match, and says where \
                 to resume, rather than reading all 5 200 invisible matches"
            );
        }
        got.extend(page.into_iter().map(|(u, _)| u.key));
        after = next;
        if after.is_none() {
            break;
        }
        assert!(pages < 10, "the walk ends");
    }
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "every visible match exactly once");
}
