//! Reads of several users at once on the raw store: batch lookups, contact lookups,
//! department member pages, name search, and who a user leads.

use std::collections::HashSet;
use std::sync::Arc;

use roster_core::{IdGen, Membership, RandomIds, Store, User, UserKey, UserLookup};

use crate::support::{
    cli, email, insert_department, insert_ok, member_of, mobile, now_ms, plain_user, resign, root,
    tenant,
};

/// Sorts users by key, for comparisons where the order is not part of the contract.
fn by_key(mut users: Vec<User>) -> Vec<User> {
    users.sort_by_key(|u| u.key);
    users
}

/// Keys of users, in the order given.
fn keys(users: &[User]) -> Vec<UserKey> {
    users.iter().map(|u| u.key).collect()
}

/// Reads every page of a key-ordered listing, `limit` at a time, checking each page's size
/// and order.
async fn all_pages<F, Fut>(limit: usize, fetch: F) -> Vec<User>
where
    F: Fn(Option<UserKey>) -> Fut,
    Fut: std::future::Future<Output = Vec<User>>,
{
    let mut out: Vec<User> = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let page = fetch(after).await;
        assert!(page.len() <= limit, "a page holds at most {limit} users");
        for w in page.windows(2) {
            assert!(w[0].key < w[1].key, "a page comes by ascending key");
        }
        if let (Some(a), Some(first)) = (after, page.first()) {
            assert!(first.key > a, "a page starts after its cursor");
        }
        let Some(last) = page.last() else {
            return out;
        };
        after = Some(last.key);
        out.extend(page);
    }
    panic!("paging did not end");
}

/// `get_users` resolves a mix of lookups of every kind in one call: each user found comes
/// once (however many lookups name it), resigned users included, unknown values and other
/// tenants' users left out.
pub async fn check_get_users_resolves_mixed_lookups_each_user_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let mut a = plain_user(t.id, r.key, "Alice");
    a.profile.email = Some(email("alice@example.com"));
    a.profile.mobile = Some(mobile(501));
    let a = insert_ok(s, &a).await;
    let mut b = plain_user(t.id, r.key, "bob");
    b.profile.email = Some(email("Bob@Example.com"));
    let b = insert_ok(s, &b).await;
    let c = insert_ok(s, &plain_user(t.id, r.key, "carol")).await;
    let c = resign(s, &c, now_ms()).await;
    let bystander = insert_ok(s, &plain_user(t.id, r.key, "bystander")).await;
    let x = insert_ok(
        s,
        &plain_user(other.id, root(s, other.id).await.key, "xavier"),
    )
    .await;

    let lookups = [
        UserLookup::Key(a.key),
        UserLookup::Email("bob@example.com".into()),
        UserLookup::OpenId(a.open_id.to_string()),
        UserLookup::Mobile(mobile(501).as_str().into()),
        UserLookup::UserId("ALICE".into()),
        UserLookup::OpenId(c.open_id.to_string()),
        UserLookup::UnionId(b.union_id.to_string()),
        UserLookup::Mobile(mobile(599).as_str().into()),
        UserLookup::UserId("nobody".into()),
        UserLookup::Key(UserKey(x.key.0 + 100_000)),
        UserLookup::OpenId(x.open_id.to_string()),
        UserLookup::OpenId(RandomIds.open_id().to_string()),
    ];
    let got = s.get_users(t.id, &lookups).await.expect("get_users");
    assert_eq!(
        by_key(got),
        by_key(vec![a.clone(), b.clone(), c.clone()]),
        "alice, bob and resigned carol, each once; not the bystander, the unknown values or \
         the other tenant's user"
    );
    assert_ne!(bystander.key, a.key);

    assert_eq!(
        s.get_users(t.id, &[]).await.expect("get_users"),
        vec![],
        "no lookups, no users"
    );
    assert_eq!(
        s.get_users(
            other.id,
            &[
                UserLookup::Key(a.key),
                UserLookup::OpenId(x.open_id.to_string())
            ]
        )
        .await
        .expect("get_users"),
        vec![x],
        "lookups are scoped to the tenant"
    );
}

/// `users_by_contact` returns every user of the tenant, active or resigned, holding one of
/// the folded e-mails or mobiles, each once.
pub async fn check_users_by_contact_returns_active_and_resigned_holders(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    // An e-mail held first by a user who resigned, then by an active user.
    let mut gone = plain_user(t.id, r.key, "gone");
    gone.profile.email = Some(email("Shared@Example.com"));
    let gone = insert_ok(s, &gone).await;
    let gone = resign(s, &gone, now_ms()).await;
    let mut holder = plain_user(t.id, r.key, "holder");
    holder.profile.email = Some(email("shared@example.com"));
    holder.profile.mobile = Some(mobile(601));
    let holder = insert_ok(s, &holder).await;
    // A mobile held only by a resigned user.
    let mut left = plain_user(t.id, r.key, "left");
    left.profile.mobile = Some(mobile(602));
    let left = insert_ok(s, &left).await;
    let left = resign(s, &left, now_ms()).await;
    let mut phone = plain_user(t.id, r.key, "phone");
    phone.profile.mobile = Some(mobile(603));
    let phone = insert_ok(s, &phone).await;
    let mut unrelated = plain_user(t.id, r.key, "unrelated");
    unrelated.profile.email = Some(email("unrelated@example.com"));
    unrelated.profile.mobile = Some(mobile(604));
    insert_ok(s, &unrelated).await;
    let mut twin = plain_user(other.id, root(s, other.id).await.key, "twin");
    twin.profile.email = Some(email("shared@example.com"));
    twin.profile.mobile = Some(mobile(603));
    insert_ok(s, &twin).await;

    let got = s
        .users_by_contact(
            t.id,
            &["shared@example.com".into(), "nobody@example.com".into()],
            &[
                mobile(601).as_str().into(),
                mobile(602).as_str().into(),
                mobile(603).as_str().into(),
                mobile(699).as_str().into(),
            ],
        )
        .await
        .expect("users_by_contact");
    assert_eq!(
        by_key(got),
        by_key(vec![gone, holder.clone(), left, phone]),
        "active and resigned holders, each once (the holder matches by e-mail and mobile); \
         not the unrelated user or the other tenant's twin"
    );
    assert_eq!(
        s.users_by_contact(t.id, &[], &[]).await.expect("empty"),
        vec![]
    );
    assert_eq!(
        s.users_by_contact(t.id, &[], &[mobile(601).as_str().into()])
            .await
            .expect("by mobile only"),
        vec![holder]
    );
}

/// `department_members` pages through a department's active direct members by ascending
/// key: not resigned users, not members of child departments, secondary memberships
/// included; paging stays complete and free of duplicates while users come and go between
/// pages.
pub async fn check_department_members_pages_active_direct_members(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let a = insert_department(s, t.id, r.key, "A", "A", 0).await;
    let a1 = insert_department(s, t.id, a.key, "A1", "A1", 0).await;
    let b = insert_department(s, t.id, r.key, "B", "B", 0).await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(insert_ok(s, &plain_user(t.id, a.key, &format!("a{i}"))).await);
        // Noise between them, so that keys are not contiguous.
        insert_ok(s, &plain_user(t.id, b.key, &format!("b{i}"))).await;
    }
    let mut secondary = plain_user(t.id, b.key, "secondary");
    secondary.profile.departments.push(Membership {
        is_primary: false,
        user_order: 9,
        department_order: 1,
        ..member_of(a.key)
    });
    members.push(insert_ok(s, &secondary).await);
    let gone = insert_ok(s, &plain_user(t.id, a.key, "gone")).await;
    resign(s, &gone, now_ms()).await;
    insert_ok(s, &plain_user(t.id, a1.key, "in-child")).await;

    let list = |after: Option<UserKey>, limit: usize| async move {
        s.department_members(t.id, a.key, after, limit)
            .await
            .expect("department_members")
    };
    assert_eq!(
        list(None, 100).await,
        members,
        "every active direct member, with every field, by ascending key"
    );
    assert_eq!(list(None, 2).await, members[..2].to_vec());
    assert_eq!(list(Some(members[1].key), 2).await, members[2..4].to_vec());
    assert_eq!(list(Some(members[4].key), 2).await, vec![]);
    assert_eq!(
        s.department_members(t.id, r.key, None, 100)
            .await
            .expect("root"),
        vec![],
        "members of children are not direct members of the root"
    );
    let other = tenant(s, "Other", None).await;
    assert_eq!(
        s.department_members(other.id, a.key, None, 100)
            .await
            .expect("other tenant"),
        vec![],
        "another tenant sees no members of this department"
    );

    // Page through with 2 a page while, after the first page, two users join, one of the
    // members not yet read resigns, and one already read leaves the department.
    // Shared with the page closure; a Mutex and an atomic keep the check's future Send.
    let joined = std::sync::Mutex::new(Vec::new());
    let pages = std::sync::atomic::AtomicUsize::new(0);
    let got = all_pages(2, |after| {
        let joined = &joined;
        let pages = &pages;
        let members = &members;
        async move {
            let page = list(after, 2).await;
            if pages.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                for i in 0..2 {
                    let late = insert_ok(s, &plain_user(t.id, a.key, &format!("late{i}"))).await;
                    joined.lock().expect("not poisoned").push(late);
                }
                resign(s, &members[3], now_ms()).await;
                let mut moved = members[0].clone();
                moved.profile.departments = vec![member_of(b.key)];
                s.update_user(&moved, &cli())
                    .await
                    .expect("move a member away");
            }
            pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            page
        }
    })
    .await;
    let ids: Vec<UserKey> = keys(&got);
    let unique: HashSet<UserKey> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no user twice: {ids:?}");
    let mut want = vec![
        members[0].key,
        members[1].key,
        members[2].key,
        members[4].key,
    ];
    want.extend(joined.lock().expect("not poisoned").iter().map(|u| u.key));
    assert_eq!(
        ids, want,
        "the first page as read, then the remaining active members and the late joiners"
    );
}

/// `users_led_by` returns the active users whose leader is the user, and
/// `departments_led_by` the live departments the user leads, both following later changes.
pub async fn check_users_and_departments_led_by_a_user(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let boss = insert_ok(s, &plain_user(t.id, r.key, "boss")).await;
    let peer = insert_ok(s, &plain_user(t.id, r.key, "peer")).await;
    let led = |id: &str, leader: &User| {
        let mut u = plain_user(t.id, r.key, id);
        u.profile.leader = Some(leader.open_id.clone());
        u
    };
    let r1 = insert_ok(s, &led("r1", &boss)).await;
    let r2 = insert_ok(s, &led("r2", &boss)).await;
    let gone = insert_ok(s, &led("gone", &boss)).await;
    resign(s, &gone, now_ms()).await;
    insert_ok(s, &led("p1", &peer)).await;
    // A user of another tenant led by a user there whose open id is the same string as the
    // boss's: no listing of this tenant may show it.
    let other_root = root(s, other.id).await.key;
    let mut twin = plain_user(other.id, other_root, "twin");
    twin.open_id = boss.open_id.clone();
    insert_ok(s, &twin).await;
    let mut far = plain_user(other.id, other_root, "far");
    far.profile.leader = Some(boss.open_id.clone());
    insert_ok(s, &far).await;

    let users_led = |leader: &User| {
        let open = leader.open_id.clone();
        async move { by_key(s.users_led_by(t.id, &open).await.expect("users_led_by")) }
    };
    assert_eq!(users_led(&boss).await, vec![r1.clone(), r2.clone()]);
    assert_eq!(users_led(&r1).await, vec![]);

    let dept = |id: &str, leader: Option<&User>| {
        let mut d = crate::support::department(t.id, r.key, id, id, 0);
        d.fields.leader = leader.map(|u| u.open_id.clone());
        d
    };
    let d1 = s
        .insert_department(&dept("D1", Some(&boss)), &cli())
        .await
        .expect("insert");
    let d2 = s
        .insert_department(&dept("D2", Some(&boss)), &cli())
        .await
        .expect("insert");
    let d3 = s
        .insert_department(&dept("D3", Some(&peer)), &cli())
        .await
        .expect("insert");
    let d4 = s
        .insert_department(&dept("D4", None), &cli())
        .await
        .expect("insert");
    let mut dead = s
        .insert_department(&dept("D5", Some(&boss)), &cli())
        .await
        .expect("insert");
    dead.is_deleted = true;
    s.update_department(&dead, &cli())
        .await
        .expect("soft-delete");
    let mut elsewhere =
        crate::support::department(other.id, root(s, other.id).await.key, "D1", "D1", 0);
    elsewhere.fields.leader = Some(boss.open_id.clone());
    s.insert_department(&elsewhere, &cli())
        .await
        .expect("insert");

    let depts_led = |leader: &User| {
        let open = leader.open_id.clone();
        async move {
            let mut v = s
                .departments_led_by(t.id, &open)
                .await
                .expect("departments_led_by");
            v.sort_by_key(|d| d.key);
            v
        }
    };
    assert_eq!(depts_led(&boss).await, vec![d1.clone(), d2.clone()]);
    assert_eq!(depts_led(&peer).await, vec![d3.clone()]);

    // Leaders change through save: the lists follow.
    let mut r2_moved = r2.clone();
    r2_moved.profile.leader = Some(peer.open_id.clone());
    let mut d2_moved = d2.clone();
    d2_moved.fields.leader = Some(peer.open_id.clone());
    let mut d4_led = d4.clone();
    d4_led.fields.leader = Some(boss.open_id.clone());
    s.save(
        t.id,
        &[r2_moved.clone()],
        &[d2_moved.clone(), d4_led.clone()],
        &[],
        &cli(),
    )
    .await
    .expect("save");
    assert_eq!(users_led(&boss).await, vec![r1]);
    assert_eq!(users_led(&peer).await.len(), 2, "p1 and r2");
    assert_eq!(depts_led(&boss).await, vec![d1, d4_led]);
    assert_eq!(depts_led(&peer).await, vec![d2_moved, d3]);
    let nobody = RandomIds.open_id();
    assert_eq!(
        s.users_led_by(t.id, &nobody).await.expect("users_led_by"),
        vec![]
    );
    assert_eq!(
        s.departments_led_by(t.id, &nobody)
            .await
            .expect("departments_led_by"),
        vec![]
    );
}
