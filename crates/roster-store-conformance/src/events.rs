//! The change-event record on the raw store: every write the `Store` trait documents as
//! recording an event does so in the same transaction (so a refused write records nothing),
//! `save` is one transaction over all of its users and departments, `purge_resigned` deletes
//! for good, and `list_events` pages by id and filters by tenant.

use std::collections::HashMap;
use std::sync::Arc;

use roster_core::{
    Actor, Change, ChangeAction, ChangeEvent, Entity, IdGen, RandomIds, Store, StoreError,
    TenantId, UniqueKey, User, UserKey, UserLookup,
};

use crate::support::{
    active_users, cli, department, email, event_mark, events_since, get_department, get_user,
    insert, insert_department, insert_ok, mobile, now_ms, plain_user, reread, resign, root, tenant,
};

/// The one event about `entity_id` among `events`.
fn event_of<'a>(events: &'a [ChangeEvent], entity_id: &str, what: &str) -> &'a ChangeEvent {
    let found: Vec<&ChangeEvent> = events.iter().filter(|e| e.entity_id == entity_id).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: expected exactly one event for {entity_id}, got {events:#?}"
    );
    found[0]
}

/// `at` is a time in milliseconds around the check's run (not seconds, not zero).
fn assert_at(e: &ChangeEvent, start: i64) {
    let end = now_ms();
    assert!(
        e.at >= start - 60_000 && e.at <= end + 60_000,
        "event {} is dated {}, outside the check's run [{start}, {end}] (ms)",
        e.id,
        e.at
    );
}

/// Ids strictly increase in the order `list_events` returns them.
fn assert_increasing(events: &[ChangeEvent], what: &str) {
    for w in events.windows(2) {
        assert!(
            w[0].id < w[1].id,
            "{what}: events must come oldest first with increasing ids, got {} then {}",
            w[0].id,
            w[1].id
        );
    }
}

/// A snapshot must be present and name the entity (its open id) and the given text.
fn assert_snapshot(snapshot: Option<&str>, open_id: &str, text: &str, what: &str) {
    let snap = snapshot.unwrap_or_else(|| panic!("{what}: the snapshot is missing"));
    assert!(
        snap.contains(open_id),
        "{what}: the snapshot must name the entity {open_id}: {snap}"
    );
    assert!(
        snap.contains(text),
        "{what}: the snapshot must hold {text:?}: {snap}"
    );
}

/// `insert_department` and `insert_users` record one `Created` event per row written, with
/// the change's actor and note, no `before` and an `after` snapshot; refused rows (a
/// duplicate, the licence cap, any row of a refused atomic call) record nothing.
pub async fn check_inserts_record_one_created_event_per_written_row(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let mut holder = plain_user(t.id, r.key, "holder");
    holder.profile.email = Some(email("dup@example.com"));
    insert_ok(s, &holder).await;
    let start = now_ms();

    // A department, with a note.
    let mark = event_mark(s).await;
    let load = Change {
        actor: Actor::Cli,
        note: Some("initial load".into()),
        completes: None,
    };
    let d = s
        .insert_department(&department(t.id, r.key, "D1", "Delta Dept", 0), &load)
        .await
        .expect("insert a department");
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "one department, one event: {ev:#?}");
    let e = &ev[0];
    assert_eq!(e.tenant, t.id);
    assert_eq!(e.entity, Entity::Department);
    assert_eq!(e.entity_id, d.open_department_id.as_str());
    assert_eq!(e.action, ChangeAction::Created);
    assert_eq!(e.actor, "cli", "the actor is recorded as Actor displays it");
    assert_eq!(e.note.as_deref(), Some("initial load"));
    assert_eq!(e.before, None, "a creation has no before");
    assert_snapshot(
        e.after.as_deref(),
        d.open_department_id.as_str(),
        "Delta Dept",
        "department after",
    );
    assert_at(e, start);

    // A refused department records nothing.
    let mark = event_mark(s).await;
    let err = s
        .insert_department(&department(t.id, r.key, "d1", "Another", 0), &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentId))),
        "expected Duplicate(DepartmentId), got {err:?}"
    );
    assert_eq!(events_since(s, None, mark).await, vec![]);

    // Best effort: only the rows written get an event.
    let app_id = RandomIds.app_id();
    let by_app = Change::by(Actor::App(app_id.clone()));
    let mut u1 = plain_user(t.id, r.key, "u1");
    u1.profile.name = "Alpha Written".into();
    let mut u2 = plain_user(t.id, r.key, "u2");
    u2.profile.email = Some(email("DUP@example.com"));
    let mut u3 = plain_user(t.id, r.key, "u3");
    u3.profile.name = "Gamma Written".into();
    u3.profile.mobile = Some(mobile(301));
    let mut u4 = plain_user(t.id, r.key, "u4");
    u4.profile.mobile = Some(mobile(301));
    let batch = [u1.clone(), u2.clone(), u3.clone(), u4.clone()];
    let results = s
        .insert_users(t.id, &batch, false, &by_app)
        .await
        .expect("a best-effort call answers");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err() && results[3].is_err(), "{results:?}");
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 2, "events only for the two rows written: {ev:#?}");
    assert_increasing(&ev, "best-effort insert");
    for (u, name) in [(&u1, "Alpha Written"), (&u3, "Gamma Written")] {
        let e = event_of(&ev, u.open_id.as_str(), "a written row");
        assert_eq!(e.tenant, t.id);
        assert_eq!(e.entity, Entity::User);
        assert_eq!(e.action, ChangeAction::Created);
        assert_eq!(e.actor, format!("app:{app_id}"));
        assert_eq!(e.note, None, "a change without a note records none");
        assert_eq!(e.before, None);
        assert_snapshot(e.after.as_deref(), u.open_id.as_str(), name, "user after");
        assert_at(e, start);
    }

    // Atomic with a refused row: nothing, so no event either.
    let mark = event_mark(s).await;
    let mut dup = plain_user(t.id, r.key, "dup2");
    dup.profile.email = Some(email("dup@example.com"));
    let results = insert(s, t.id, &[plain_user(t.id, r.key, "fine"), dup], true).await;
    assert!(results.iter().any(Result::is_err), "{results:?}");
    assert_eq!(
        events_since(s, None, mark).await,
        vec![],
        "a refused atomic call records no event"
    );

    // A clean atomic call records one per row; another tenant's rows carry its id.
    let w = [plain_user(t.id, r.key, "w1"), plain_user(t.id, r.key, "w2")];
    insert(s, t.id, &w, true).await;
    let o = plain_user(other.id, root(s, other.id).await.key, "o1");
    insert_ok(s, &o).await;
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 3, "{ev:#?}");
    for u in &w {
        assert_eq!(event_of(&ev, u.open_id.as_str(), "atomic row").tenant, t.id);
    }
    let e = event_of(&ev, o.open_id.as_str(), "other tenant's row");
    assert_eq!(e.tenant, other.id);
    assert_eq!(e.action, ChangeAction::Created);

    // Rows refused by the licence cap record nothing.
    let capped = tenant(s, "Capped", Some(1)).await;
    let cr = root(s, capped.id).await;
    let mark = event_mark(s).await;
    let two = [
        plain_user(capped.id, cr.key, "c1"),
        plain_user(capped.id, cr.key, "c2"),
    ];
    let results = insert(s, capped.id, &two, false).await;
    assert!(
        results[0].is_ok() && matches!(results[1], Err(StoreError::LicenceExceeded)),
        "{results:?}"
    );
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].entity_id, two[0].open_id.as_str());
}

/// `save` writes every listed user and department and records one event per entity, the
/// action inferred from the stored row (resigned/deleted flag set → `Deleted`, resigned flag
/// cleared → `Resurrected`, otherwise `Updated`), with distinct `before` and `after`
/// snapshots, the change's note and actor.
pub async fn check_save_records_one_event_per_entity_with_the_inferred_action(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let start = now_ms();
    let mut a = plain_user(t.id, r.key, "ann");
    a.profile.name = "Ann Before".into();
    let a = insert_ok(s, &a).await;
    let mut b = plain_user(t.id, r.key, "bob");
    b.profile.email = Some(email("bob@example.com"));
    let b = insert_ok(s, &b).await;
    let c = insert_ok(s, &plain_user(t.id, r.key, "cid")).await;
    let d = insert_department(s, t.id, r.key, "D", "Dept Before", 0).await;
    let e = insert_department(s, t.id, r.key, "E", "Doomed", 0).await;
    assert_eq!(active_users(s, t.id).await, 3);

    let mark = event_mark(s).await;
    let mut a2 = a.clone();
    a2.profile.name = "Ann After".into();
    a2.updated_at += 1;
    let mut b2 = b.clone();
    b2.status.is_resigned = true;
    b2.resigned_at = Some(now_ms());
    b2.profile.departments.clear();
    let mut d2 = d.clone();
    d2.fields.name = "Dept After".into();
    d2.updated_at += 1;
    let mut e2 = e.clone();
    e2.is_deleted = true;
    let app_id = RandomIds.app_id();
    let change = Change {
        actor: Actor::App(app_id.clone()),
        note: Some("quarterly review".into()),
        completes: None,
    };
    s.save(
        t.id,
        &[a2.clone(), b2.clone()],
        &[d2.clone(), e2.clone()],
        &[],
        &change,
    )
    .await
    .expect("save two users and two departments");

    assert_eq!(
        reread(s, &[&a, &b, &c]).await,
        vec![a2.clone(), b2.clone(), c.clone()]
    );
    assert_eq!(get_department(s, t.id, d.key).await, d2);
    assert_eq!(get_department(s, t.id, e.key).await, e2);
    assert_eq!(
        active_users(s, t.id).await,
        2,
        "the resigned flag drives the count"
    );

    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 4, "one event per saved entity: {ev:#?}");
    assert_increasing(&ev, "save");
    let expected = [
        (a.open_id.as_str(), Entity::User, ChangeAction::Updated),
        (b.open_id.as_str(), Entity::User, ChangeAction::Deleted),
        (
            d.open_department_id.as_str(),
            Entity::Department,
            ChangeAction::Updated,
        ),
        (
            e.open_department_id.as_str(),
            Entity::Department,
            ChangeAction::Deleted,
        ),
    ];
    for (id, entity, action) in expected {
        let ev = event_of(&ev, id, "saved entity");
        assert_eq!((ev.entity, ev.action), (entity, action), "event for {id}");
        assert_eq!(ev.tenant, t.id);
        assert_eq!(ev.actor, format!("app:{app_id}"));
        assert_eq!(ev.note.as_deref(), Some("quarterly review"));
        let (before, after) = (
            ev.before
                .as_deref()
                .expect("a save records the entity before"),
            ev.after
                .as_deref()
                .expect("a save records the entity after"),
        );
        assert_ne!(before, after, "before and after of {id} must differ");
        assert!(
            before.contains(id) && after.contains(id),
            "snapshots name {id}"
        );
        assert_at(ev, start);
    }
    let ea = event_of(&ev, a.open_id.as_str(), "ann");
    assert_snapshot(
        ea.before.as_deref(),
        a.open_id.as_str(),
        "Ann Before",
        "ann before",
    );
    assert_snapshot(
        ea.after.as_deref(),
        a.open_id.as_str(),
        "Ann After",
        "ann after",
    );
    let ed = event_of(&ev, d.open_department_id.as_str(), "dept");
    assert_snapshot(
        ed.before.as_deref(),
        d.open_department_id.as_str(),
        "Dept Before",
        "dept before",
    );
    assert_snapshot(
        ed.after.as_deref(),
        d.open_department_id.as_str(),
        "Dept After",
        "dept after",
    );

    // Clearing the resigned flag is a resurrection; update_user goes through save.
    let mark = event_mark(s).await;
    let mut b3 = b2.clone();
    b3.status.is_resigned = false;
    b3.resigned_at = None;
    b3.profile.departments = vec![crate::support::member_of(r.key)];
    s.update_user(&b3, &Change::by(Actor::System))
        .await
        .expect("resurrect bob");
    assert_eq!(reread(s, &[&b]).await, vec![b3.clone()]);
    assert_eq!(active_users(s, t.id).await, 3);
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].entity_id, b.open_id.as_str());
    assert_eq!(ev[0].action, ChangeAction::Resurrected);
    assert_eq!(ev[0].actor, "system");
    assert_eq!(ev[0].note, None);
    assert!(ev[0].before.is_some() && ev[0].after.is_some());
    assert_ne!(ev[0].before, ev[0].after);

    // Editing a resigned user that stays resigned is an update, not another deletion.
    let c2 = resign(s, &c, now_ms()).await;
    let mark = event_mark(s).await;
    let mut c3 = c2.clone();
    c3.profile.name = "Still gone".into();
    s.update_user(&c3, &cli())
        .await
        .expect("edit a resigned user");
    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].action, ChangeAction::Updated);
    assert_eq!(ev[0].actor, "cli");
}

/// `save` is one transaction: when any listed user or department is refused (a duplicate
/// e-mail, a department name clash, a user that does not exist), nothing is written, the
/// active count is untouched, and no event is recorded.
pub async fn check_save_writes_all_or_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut a = plain_user(t.id, r.key, "a");
    a.profile.email = Some(email("a@example.com"));
    let a = insert_ok(s, &a).await;
    let b = insert_ok(s, &plain_user(t.id, r.key, "b")).await;
    let mut c = plain_user(t.id, r.key, "c");
    c.profile.email = Some(email("c@example.com"));
    let c = insert_ok(s, &c).await;
    let d1 = insert_department(s, t.id, r.key, "D1", "One", 0).await;
    let d2 = insert_department(s, t.id, r.key, "D2", "Two", 0).await;
    let mark = event_mark(s).await;

    let mut a_renamed = a.clone();
    a_renamed.profile.name = "Renamed".into();
    // The first user is fine, the second takes c's e-mail.
    let mut b_clash = b.clone();
    b_clash.profile.email = Some(email("C@Example.com"));
    let err = s
        .save(t.id, &[a_renamed.clone(), b_clash], &[], &[], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::Email))),
        "expected Duplicate(Email), got {err:?}"
    );
    // A user is fine, a department clashes on its name.
    let mut d2_clash = d2.clone();
    d2_clash.fields.name = "One".into();
    let err = s
        .save(t.id, &[a_renamed.clone()], &[d2_clash], &[], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentName))),
        "expected Duplicate(DepartmentName), got {err:?}"
    );
    // A resignation, then a user that does not exist.
    let mut a_resigned = a.clone();
    a_resigned.status.is_resigned = true;
    a_resigned.resigned_at = Some(now_ms());
    let ghost = User {
        key: UserKey(c.key.0 + 100_000),
        ..plain_user(t.id, r.key, "ghost")
    };
    let err = s.save(t.id, &[a_resigned, ghost], &[], &[], &cli()).await;
    assert!(
        matches!(err, Err(StoreError::Backend(_))),
        "a user that does not exist: expected Backend, got {err:?}"
    );

    assert_eq!(
        reread(s, &[&a, &b, &c]).await,
        vec![a.clone(), b.clone(), c.clone()],
        "refused saves wrote nothing"
    );
    assert_eq!(get_department(s, t.id, d1.key).await, d1);
    assert_eq!(get_department(s, t.id, d2.key).await, d2);
    assert_eq!(active_users(s, t.id).await, 3, "the count is untouched");
    assert_eq!(
        events_since(s, None, mark).await,
        vec![],
        "refused saves record no event"
    );

    // The same users without the clash are written together.
    let mut b_ok = b.clone();
    b_ok.profile.email = Some(email("b@example.com"));
    s.save(t.id, &[a_renamed.clone(), b_ok.clone()], &[], &[], &cli())
        .await
        .expect("a clean save");
    assert_eq!(reread(s, &[&a, &b]).await, vec![a_renamed, b_ok]);
    assert_eq!(events_since(s, None, mark).await.len(), 2);
}

/// Clearing the resigned flag through `save` counts against the licence cap: past it the
/// whole save is `LicenceExceeded` and writes nothing (not even the other user listed).
pub async fn check_licence_cap_applies_to_resurrection_through_save(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Capped", Some(2)).await;
    let r = root(s, t.id).await;
    let z = insert_ok(s, &plain_user(t.id, r.key, "z")).await;
    let z = resign(s, &z, now_ms()).await;
    let x = insert_ok(s, &plain_user(t.id, r.key, "x")).await;
    let y = insert_ok(s, &plain_user(t.id, r.key, "y")).await;
    assert_eq!(active_users(s, t.id).await, 2);
    let mark = event_mark(s).await;

    let mut x_renamed = x.clone();
    x_renamed.profile.name = "Renamed".into();
    let mut z_back = z.clone();
    z_back.status.is_resigned = false;
    z_back.resigned_at = None;
    let err = s
        .save(t.id, &[x_renamed.clone(), z_back.clone()], &[], &[], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::LicenceExceeded)),
        "resurrection past the cap: expected LicenceExceeded, got {err:?}"
    );
    assert_eq!(reread(s, &[&x, &z]).await, vec![x.clone(), z.clone()]);
    assert_eq!(active_users(s, t.id).await, 2);
    assert_eq!(events_since(s, None, mark).await, vec![]);

    resign(s, &y, now_ms()).await;
    s.save(t.id, &[x_renamed.clone(), z_back.clone()], &[], &[], &cli())
        .await
        .expect("within the cap once y resigned");
    assert_eq!(reread(s, &[&x, &z]).await, vec![x_renamed, z_back]);
    assert_eq!(active_users(s, t.id).await, 2);
}

/// `purge_resigned` deletes for good (across tenants) the users resigned before the cut-off,
/// each with a `Deleted` event by the system that has a `before` and no `after`; users
/// resigned after the cut-off and active users stay.
pub async fn check_purge_resigned_deletes_users_resigned_before_the_cut_off(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let cut = now_ms();
    let mut old = plain_user(t.id, a.key, "old");
    old.profile.email = Some(email("old@example.com"));
    old.profile.mobile = Some(mobile(401));
    let old = insert_ok(s, &old).await;
    let old = resign(s, &old, cut - 60_000).await;
    let recent = insert_ok(s, &plain_user(t.id, a.key, "recent")).await;
    let recent = resign(s, &recent, cut + 1_000).await;
    let active = insert_ok(s, &plain_user(t.id, a.key, "active")).await;
    let old_other = insert_ok(
        s,
        &plain_user(other.id, root(s, other.id).await.key, "old-other"),
    )
    .await;
    let old_other = resign(s, &old_other, cut - 1).await;
    let mark = event_mark(s).await;

    assert_eq!(
        s.purge_resigned(cut).await.expect("purge"),
        2,
        "old and old-other resigned before the cut-off"
    );
    for (u, tenant) in [(&old, t.id), (&old_other, other.id)] {
        for lookup in [
            UserLookup::Key(u.key),
            UserLookup::OpenId(u.open_id.to_string()),
            UserLookup::UserId(u.user_id.to_string()),
        ] {
            assert_eq!(
                get_user(s, tenant, lookup.clone()).await,
                None,
                "a purged user is gone ({lookup:?})"
            );
        }
    }
    assert_eq!(
        get_user(s, t.id, UserLookup::Email("old@example.com".into())).await,
        None
    );
    assert_eq!(
        reread(s, &[&recent, &active]).await,
        vec![recent.clone(), active.clone()]
    );
    assert_eq!(
        s.department_member_count(t.id, a.key).await.expect("count"),
        1
    );
    assert_eq!(active_users(s, t.id).await, 1);

    let ev = events_since(s, None, mark).await;
    assert_eq!(ev.len(), 2, "one event per purged user: {ev:#?}");
    for (u, tenant) in [(&old, t.id), (&old_other, other.id)] {
        let e = event_of(&ev, u.open_id.as_str(), "purged user");
        assert_eq!(e.tenant, tenant);
        assert_eq!(e.entity, Entity::User);
        assert_eq!(e.action, ChangeAction::Deleted);
        assert_eq!(e.actor, "system", "retention purges are Roster's own doing");
        assert_eq!(e.note.as_deref(), Some("purged after retention"));
        assert!(
            e.before
                .as_deref()
                .is_some_and(|b| b.contains(u.open_id.as_str())),
            "a purge records the user before: {e:?}"
        );
        assert_eq!(e.after, None, "a purge has no after");
    }

    assert_eq!(s.purge_resigned(cut).await.expect("purge again"), 0);
    assert_eq!(events_since(s, None, mark).await.len(), 2);
    // The purged user's values are free (they were since the resignation).
    let mut again = plain_user(t.id, a.key, "old");
    again.profile.email = Some(email("old@example.com"));
    again.profile.mobile = Some(mobile(401));
    insert_ok(s, &again).await;
}

/// `list_events` returns events with an id above `after`, oldest first, at most `limit`, of
/// one tenant or of all; paging by the last id seen reads each event exactly once.
pub async fn check_list_events_pages_by_id_and_filters_by_tenant(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let o = tenant(s, "Other", None).await;
    let (rt, ro) = (root(s, t.id).await, root(s, o.id).await);
    let mark = event_mark(s).await;
    let mut order: Vec<(TenantId, String)> = Vec::new();
    for (i, in_t) in [true, false, true, false, true, false, true, true]
        .into_iter()
        .enumerate()
    {
        let u = if in_t {
            plain_user(t.id, rt.key, &format!("t{i}"))
        } else {
            plain_user(o.id, ro.key, &format!("o{i}"))
        };
        insert_ok(s, &u).await;
        order.push((u.tenant, u.open_id.to_string()));
    }

    let all = s.list_events(None, mark, 1000).await.expect("list");
    assert_eq!(all.len(), 8, "{all:#?}");
    assert_increasing(&all, "all tenants");
    assert!(all[0].id > mark);
    let seen: Vec<(TenantId, String)> = all
        .iter()
        .map(|e| (e.tenant, e.entity_id.clone()))
        .collect();
    assert_eq!(seen, order, "events come in the order of the writes");

    let of_t = s.list_events(Some(t.id), mark, 1000).await.expect("list");
    let want_t: Vec<ChangeEvent> = all.iter().filter(|e| e.tenant == t.id).cloned().collect();
    assert_eq!(want_t.len(), 5);
    assert_eq!(
        of_t, want_t,
        "the tenant filter keeps that tenant's events, in order"
    );
    let of_o = s.list_events(Some(o.id), mark, 1000).await.expect("list");
    assert_eq!(of_o.len(), 3);
    assert!(of_o.iter().all(|e| e.tenant == o.id));

    // Pages of two.
    let mut paged = Vec::new();
    let mut cursor = mark;
    let mut sizes = Vec::new();
    loop {
        let page = s.list_events(Some(t.id), cursor, 2).await.expect("page");
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        assert!(page[0].id > cursor, "a page starts after its cursor");
        cursor = last.id;
        paged.extend(page);
    }
    assert_eq!(sizes, vec![2, 2, 1, 0]);
    assert_eq!(paged, want_t, "paging reads each event once");

    assert_eq!(
        s.list_events(None, mark, 3).await.expect("list"),
        all[..3].to_vec()
    );
    assert_eq!(
        s.list_events(None, all[7].id, 10).await.expect("list"),
        vec![],
        "nothing after the newest event"
    );
    let by_key: HashMap<i64, &ChangeEvent> = all.iter().map(|e| (e.id, e)).collect();
    assert_eq!(by_key.len(), 8, "event ids are unique");
}
