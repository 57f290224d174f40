//! Departments on the raw store: lookups, child order, moves, soft deletion, member counts.

use std::sync::Arc;

use roster_core::{
    ConflictKind, Department, DeptKey, DeptLookup, I18nName, IdGen, Membership, RandomIds, Store,
    StoreError, UniqueKey,
};

use crate::support::{
    cli, department, insert_department, insert_ok, now_ms, plain_user, resign, root, tenant,
};

async fn get(store: &dyn Store, d: &Department, lookup: DeptLookup) -> Option<Department> {
    store
        .get_department(d.tenant, &lookup)
        .await
        .expect("get_department must not fail")
}

async fn children(store: &dyn Store, d: &Department) -> Vec<Department> {
    store
        .child_departments(d.tenant, d.key)
        .await
        .expect("child_departments must not fail")
}

/// A department keeps every field, and is found by key, by open id and by custom id, the
/// latter case-insensitively; other tenants do not see it.
pub async fn check_departments_are_found_by_key_open_id_and_custom_id(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let other = tenant(store.as_ref(), "Other", None).await;
    let r = root(store.as_ref(), t.id).await;

    let mut d = department(t.id, r.key, "Sales-01", "Sales", 7);
    d.fields.i18n_name = I18nName {
        zh_cn: Some("销售".into()),
        ja_jp: Some("営業".into()),
        en_us: Some("Sales".into()),
    };
    // A department may only name an active user of its tenant (checked inside the write).
    let lead = insert_ok(store.as_ref(), &plain_user(t.id, r.key, "lead")).await;
    d.fields.leader = Some(lead.open_id.clone());
    d.created_at = 1_000;
    d.updated_at = 2_000;
    let stored = store
        .insert_department(&d, &cli())
        .await
        .expect("insert a department");
    assert_ne!(stored.key, r.key, "a new department gets a key of its own");
    assert_eq!(
        stored,
        Department {
            key: stored.key,
            ..d.clone()
        },
        "insert_department returns the department as given, with its new key"
    );

    for lookup in [
        DeptLookup::Key(stored.key),
        DeptLookup::OpenId(d.open_department_id.to_string()),
        DeptLookup::CustomId("Sales-01".into()),
        DeptLookup::CustomId("sales-01".into()),
        DeptLookup::CustomId("SALES-01".into()),
    ] {
        assert_eq!(
            get(store.as_ref(), &r, lookup.clone()).await.as_ref(),
            Some(&stored),
            "lookup {lookup:?}"
        );
    }
    for lookup in [
        DeptLookup::Key(DeptKey(stored.key.0 + 1000)),
        DeptLookup::OpenId(RandomIds.open_department_id().to_string()),
        DeptLookup::CustomId("Sales-02".into()),
    ] {
        assert_eq!(
            get(store.as_ref(), &r, lookup.clone()).await,
            None,
            "unknown {lookup:?}"
        );
    }
    for lookup in [
        DeptLookup::Key(stored.key),
        DeptLookup::OpenId(d.open_department_id.to_string()),
        DeptLookup::CustomId("Sales-01".into()),
    ] {
        assert_eq!(
            store
                .get_department(other.id, &lookup)
                .await
                .expect("get_department"),
            None,
            "another tenant must not see {lookup:?}"
        );
    }

    // The same custom id and name are free in another tenant.
    let other_root = root(store.as_ref(), other.id).await;
    insert_department(
        store.as_ref(),
        other.id,
        other_root.key,
        "sales-01",
        "Sales",
        0,
    )
    .await;
}

/// Custom ids are unique case-insensitively per tenant (`Duplicate(DepartmentId)`), names are
/// unique under one parent (`Duplicate(DepartmentName)`) but may repeat under another parent.
pub async fn check_department_unique_values_are_enforced(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let a = insert_department(store.as_ref(), t.id, r.key, "D-A", "Alpha", 0).await;

    let err = store
        .insert_department(&department(t.id, r.key, "d-a", "Another", 0), &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentId))),
        "custom id clash in another case: expected Duplicate(DepartmentId), got {err:?}"
    );
    let err = store
        .insert_department(&department(t.id, r.key, "D-B", "Alpha", 0), &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentName))),
        "name clash under one parent: expected Duplicate(DepartmentName), got {err:?}"
    );
    let mut same_open = department(t.id, r.key, "D-C", "Gamma", 0);
    same_open.open_department_id = a.open_department_id.clone();
    let err = store.insert_department(&same_open, &cli()).await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::OpenDepartmentId))),
        "open id clash: expected Duplicate(OpenDepartmentId), got {err:?}"
    );

    // The same name under another parent is fine.
    insert_department(store.as_ref(), t.id, a.key, "D-A1", "Alpha", 0).await;
    assert_eq!(
        store.count_departments(t.id).await.expect("count"),
        3,
        "root, Alpha and Alpha/Alpha; the refused inserts left nothing"
    );
}

/// Children come by ascending sort order (smaller first, as Feishu documents), then in
/// creation order; deleted children and
/// grandchildren are not listed.
pub async fn check_children_are_ordered_by_sort_order_then_creation(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let zero_a = insert_department(s, t.id, r.key, "c1", "Zero A", 0).await;
    let ten = insert_department(s, t.id, r.key, "c2", "Ten", 10).await;
    let zero_b = insert_department(s, t.id, r.key, "c3", "Zero B", 0).await;
    let five = insert_department(s, t.id, r.key, "c4", "Five", 5).await;
    let negative = insert_department(s, t.id, r.key, "c5", "Minus", -3).await;
    let zero_c = insert_department(s, t.id, r.key, "c6", "Zero C", 0).await;
    let mut gone = insert_department(s, t.id, r.key, "c7", "Gone", 100).await;
    gone.is_deleted = true;
    s.update_department(&gone, &cli())
        .await
        .expect("soft-delete");
    insert_department(s, t.id, ten.key, "c2-1", "Grandchild", 50).await;

    let got: Vec<String> = children(s, &r)
        .await
        .into_iter()
        .map(|d| d.fields.name)
        .collect();
    let want: Vec<String> = [&negative, &zero_a, &zero_b, &zero_c, &five, &ten]
        .iter()
        .map(|d| d.fields.name.clone())
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        children(s, &r).await[5],
        ten,
        "children are returned with every field"
    );
    assert_eq!(s.count_departments(t.id).await.expect("count"), 8);
}

/// A move that would close a cycle with a move committed since the caller read the tree
/// is refused by the store inside its transaction (the core's own check ran on the earlier
/// read), and changes nothing.
pub async fn check_a_move_closing_a_cycle_is_refused_in_the_transaction(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let b = insert_department(s, t.id, r.key, "B", "B", 0).await;
    // Both moves were checked against the tree as it was: A and B side by side.
    let mut a_under_b = a.clone();
    a_under_b.parent = Some(b.key);
    let mut b_under_a = b.clone();
    b_under_a.parent = Some(a.key);
    s.update_department(&a_under_b, &cli())
        .await
        .expect("the first move");
    let second = s.update_department(&b_under_a, &cli()).await;
    assert!(
        matches!(second, Err(StoreError::Conflict(ConflictKind::Cycle))),
        "the second move closes a cycle: {second:?}"
    );
    let stored_b = s
        .get_department(t.id, &DeptLookup::Key(b.key))
        .await
        .expect("read B")
        .expect("B exists");
    assert_eq!(stored_b.parent, Some(r.key), "B stays where it was");
    // A move that closes no cycle still goes through.
    let mut b_renamed = stored_b.clone();
    b_renamed.fields.name = "B2".into();
    s.update_department(&b_renamed, &cli())
        .await
        .expect("a rename");
}

/// The store re-checks inside its transactions what the core checked on an earlier read:
/// a department deleted with a live child or an active member, or a department created or
/// moved under a deleted parent, is `Stale` and writes nothing (the core then reads again
/// and answers properly).
pub async fn check_deleted_departments_never_keep_children_or_members(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let child = insert_department(s, t.id, a.key, "A1", "A1", 0).await;
    let mut a_deleted = a.clone();
    a_deleted.is_deleted = true;
    let r1 = s.update_department(&a_deleted, &cli()).await;
    assert!(matches!(r1, Err(StoreError::Stale)), "a live child: {r1:?}");

    let mut child_deleted = child.clone();
    child_deleted.is_deleted = true;
    s.update_department(&child_deleted, &cli())
        .await
        .expect("an empty department is deleted");
    insert_ok(s, &plain_user(t.id, a.key, "member")).await;
    let r2 = s.update_department(&a_deleted, &cli()).await;
    assert!(
        matches!(r2, Err(StoreError::Stale)),
        "an active member: {r2:?}"
    );
    let stored = get(s, &a, DeptLookup::Key(a.key)).await.expect("A");
    assert!(!stored.is_deleted, "A stays");

    let b = insert_department(s, t.id, r.key, "B", "B", 0).await;
    let mut b_deleted = b.clone();
    b_deleted.is_deleted = true;
    s.update_department(&b_deleted, &cli())
        .await
        .expect("delete B");
    let under_deleted = s
        .insert_department(&department(t.id, b.key, "B1", "B1", 0), &cli())
        .await;
    assert!(
        matches!(under_deleted, Err(StoreError::Stale)),
        "a child of a deleted department: {under_deleted:?}"
    );
    let mut moved = get(s, &a, DeptLookup::Key(a.key)).await.expect("A");
    moved.parent = Some(b.key);
    let r3 = s.update_department(&moved, &cli()).await;
    assert!(
        matches!(r3, Err(StoreError::Stale)),
        "a move under a deleted department: {r3:?}"
    );
}

/// Users never end up in a department deleted after the core checked it, nor under a leader
/// who resigned meanwhile: an insert refuses such a row with `Gone` (the rest of a
/// best-effort batch is written, an atomic batch writes nothing), and a save that moves a
/// user into a deleted department is `Stale`. A leader inserted earlier in the same batch
/// counts as active.
pub async fn check_users_never_join_a_deleted_department_or_a_resigned_leader(
    store: Arc<dyn Store>,
) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let gone = insert_department(s, t.id, r.key, "Gone", "Gone", 0).await;
    let mut deleted = gone.clone();
    deleted.is_deleted = true;
    s.update_department(&deleted, &cli())
        .await
        .expect("delete an empty department");
    let boss = insert_ok(s, &plain_user(t.id, r.key, "boss")).await;
    resign(s, &boss, now_ms()).await;

    let into_gone = plain_user(t.id, gone.key, "into-gone");
    let mut under_resigned = plain_user(t.id, r.key, "under-resigned");
    under_resigned.profile.leader = Some(boss.open_id.clone());
    let fine = plain_user(t.id, r.key, "fine");
    let mut under_fine = plain_user(t.id, r.key, "under-fine");
    under_fine.profile.leader = Some(fine.open_id.clone());
    let batch = [into_gone, under_resigned, fine, under_fine];

    let atomic = s
        .insert_users(t.id, &batch, true, &cli())
        .await
        .expect("an atomic insert answers per user");
    assert!(
        matches!(atomic[0], Err(StoreError::Gone("department_ids"))),
        "a deleted department: {:?}",
        atomic[0]
    );
    assert!(
        matches!(atomic[1], Err(StoreError::Gone("leader_user_id"))),
        "a resigned leader: {:?}",
        atomic[1]
    );
    let lookup = |u: &roster_core::User| roster_core::UserLookup::OpenId(u.open_id.to_string());
    assert!(
        s.get_user(t.id, &lookup(&batch[2]))
            .await
            .expect("read")
            .is_none(),
        "an atomic batch with a refused row writes nothing"
    );

    let results = s
        .insert_users(t.id, &batch, false, &cli())
        .await
        .expect("a best-effort insert answers per user");
    assert!(matches!(
        results[0],
        Err(StoreError::Gone("department_ids"))
    ));
    assert!(matches!(
        results[1],
        Err(StoreError::Gone("leader_user_id"))
    ));
    assert!(
        results[2].is_ok() && results[3].is_ok(),
        "the good rows are written, a leader of the same batch included: {results:?}"
    );
    assert!(s
        .get_user(t.id, &lookup(&batch[0]))
        .await
        .expect("read")
        .is_none());
    let members = s
        .department_member_count(t.id, gone.key)
        .await
        .expect("department_member_count");
    assert_eq!(members, 0, "nobody joined the deleted department");

    let mut mover = s
        .get_user(t.id, &lookup(&batch[2]))
        .await
        .expect("read")
        .expect("fine was written");
    mover.profile.departments.push(Membership {
        department: gone.key,
        user_order: 0,
        department_order: 0,
        is_primary: false,
    });
    mover.updated_at += 1;
    let joined = s.update_user(&mover, &cli()).await;
    assert!(
        matches!(joined, Err(StoreError::Stale)),
        "a move into a deleted department: {joined:?}"
    );
}

/// `update_department` writes the parent (a move), every field and `updated_at`.
pub async fn check_updating_a_department_moves_it_and_changes_its_fields(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let b = insert_department(s, t.id, r.key, "B", "B", 0).await;

    let mut moved = b.clone();
    moved.parent = Some(a.key);
    moved.fields.name = "B renamed".into();
    moved.fields.order = 9;
    moved.fields.i18n_name.en_us = Some("Bee".into());
    moved.fields.leader = Some(insert_ok(s, &plain_user(t.id, r.key, "lead")).await.open_id);
    moved.updated_at = b.updated_at + 5_000;
    s.update_department(&moved, &cli()).await.expect("update");

    assert_eq!(
        get(s, &r, DeptLookup::Key(b.key)).await,
        Some(moved.clone()),
        "every written field reads back"
    );
    assert_eq!(children(s, &r).await, vec![a.clone()]);
    assert_eq!(children(s, &a).await, vec![moved.clone()]);

    // A name clash on update is reported like one on insert.
    let c = insert_department(s, t.id, a.key, "C", "C", 0).await;
    let mut clash = c.clone();
    clash.fields.name = "B renamed".into();
    let err = s.update_department(&clash, &cli()).await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentName))),
        "expected Duplicate(DepartmentName), got {err:?}"
    );
    assert_eq!(get(s, &r, DeptLookup::Key(c.key)).await, Some(c));

    // Clearing the leader and i18n names is written too.
    let mut cleared = moved.clone();
    cleared.fields.leader = None;
    cleared.fields.i18n_name = I18nName::default();
    s.update_department(&cleared, &cli()).await.expect("update");
    assert_eq!(get(s, &r, DeptLookup::Key(b.key)).await, Some(cleared));
}

/// A soft-deleted department still reads by key, leaves lists and counts, and frees its
/// custom id and its name under its parent; a lookup by custom id then finds the new holder.
pub async fn check_soft_deleting_a_department_frees_its_custom_id_and_name(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let old = insert_department(s, t.id, r.key, "D1", "Finance", 0).await;
    let mut deleted = old.clone();
    deleted.is_deleted = true;
    deleted.updated_at += 1;
    s.update_department(&deleted, &cli())
        .await
        .expect("soft-delete");

    assert_eq!(
        get(s, &r, DeptLookup::Key(old.key)).await,
        Some(deleted.clone()),
        "a deleted department still reads by key"
    );
    assert_eq!(
        get(
            s,
            &r,
            DeptLookup::OpenId(old.open_department_id.to_string())
        )
        .await,
        Some(deleted.clone()),
        "and by open id"
    );
    assert!(children(s, &r).await.is_empty());
    assert_eq!(s.count_departments(t.id).await.expect("count"), 1);

    let new = insert_department(s, t.id, r.key, "d1", "Finance", 0).await;
    assert_ne!(new.key, old.key);
    assert_eq!(children(s, &r).await, vec![new.clone()]);
    for id in ["D1", "d1"] {
        assert_eq!(
            get(s, &r, DeptLookup::CustomId(id.into())).await,
            Some(new.clone()),
            "custom id {id} must find the live department, not the deleted one"
        );
    }
}

/// `department_member_count` counts active users with a membership (primary or not) directly
/// in the department: not resigned ones, and not members of child departments.
pub async fn check_department_member_count_counts_only_active_direct_members(
    store: Arc<dyn Store>,
) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let r = root(store.as_ref(), t.id).await;
    let s = store.as_ref();
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let a1 = insert_department(s, t.id, a.key, "A1", "A1", 0).await;
    let b = insert_department(s, t.id, r.key, "B", "B", 0).await;

    insert_ok(s, &plain_user(t.id, a.key, "in-a")).await;
    let gone = insert_ok(s, &plain_user(t.id, a.key, "resigned-in-a")).await;
    resign(s, &gone, now_ms()).await;
    insert_ok(s, &plain_user(t.id, a1.key, "in-a1")).await;
    let mut two = plain_user(t.id, b.key, "in-b-and-a");
    two.profile.departments.push(Membership {
        department: a.key,
        user_order: 3,
        department_order: 1,
        is_primary: false,
    });
    insert_ok(s, &two).await;

    let count = |d: DeptKey| async move {
        s.department_member_count(t.id, d)
            .await
            .expect("department_member_count")
    };
    assert_eq!(count(a.key).await, 2, "in-a and in-b-and-a");
    assert_eq!(count(a1.key).await, 1);
    assert_eq!(count(b.key).await, 1);
    assert_eq!(
        count(r.key).await,
        0,
        "members of children are not direct members"
    );
}
