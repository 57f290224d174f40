//! Users on the raw store: field fidelity, lookups, uniqueness among active users, resigned
//! users, best-effort and atomic inserts, and the licence cap.

use std::sync::Arc;

use roster_core::values::{Activation, Country, EmployeeType, Gender, UserType};
use roster_core::{
    CustomAttr, IdGen, Membership, RandomIds, Store, StoreError, TenantId, UniqueKey, UniqueProbe,
    User, UserKey, UserLookup, UserStatus,
};

use crate::support::{
    active_users, assert_duplicate, cli, email, get_user, insert, insert_department, insert_ok,
    mobile, now_ms, plain_user, resign, root, tenant, user_id, username,
};

/// A user with every profile field set to a non-default value, in three departments.
async fn full_user(store: &dyn Store, tenant: TenantId) -> User {
    let r = root(store, tenant).await;
    let a = insert_department(store, tenant, r.key, "A", "A", 0).await;
    let b = insert_department(store, tenant, r.key, "B", "B", 0).await;
    let now = now_ms();
    let mut u = plain_user(tenant, a.key, "Zhang.San");
    let p = &mut u.profile;
    p.name = "张三".into();
    p.en_name = Some("San Zhang".into());
    p.nickname = Some("Sanzi".into());
    p.email = Some(email("Zhang.San@Example.COM"));
    p.enterprise_email = Some(email("zhangsan@corp.example.com"));
    p.mobile = Some(mobile(1));
    p.mobile_visible = true;
    p.gender = Gender::Female;
    p.avatar_key = Some("v2_avatar_key".into());
    p.city = Some("杭州".into());
    p.country = Some(Country::parse("CN").expect("valid country"));
    p.work_station = Some("B2-301".into());
    p.join_time = Some(1_600_000_000);
    p.employee_no = Some("E-0001".into());
    p.employee_type = EmployeeType::Contractor;
    p.job_title = Some("Engineer".into());
    p.custom_attrs = vec![
        CustomAttr {
            kind: Some("GENERIC_USER".into()),
            id: "C-6702376000044400907".into(),
            text: Some("text".into()),
            url: Some("https://m.example.com/x".into()),
            pc_url: Some("https://www.example.com/x".into()),
            option_id: Some("opt1".into()),
            option_value: Some("Option one".into()),
            name: Some("value name".into()),
            picture_url: Some("https://img.example.com/p.png".into()),
            generic_user_id: Some("ou_someone".into()),
            generic_user_type: Some(1),
        },
        CustomAttr {
            id: "C-2".into(),
            text: Some("second".into()),
            ..CustomAttr::default()
        },
    ];
    // The store checks, inside its transaction, that a new user's leader is active.
    p.leader = Some(
        insert_ok(store, &plain_user(tenant, r.key, "Zhang.Boss"))
            .await
            .open_id,
    );
    p.departments = vec![
        Membership {
            department: a.key,
            user_order: 5,
            department_order: 2,
            is_primary: true,
        },
        Membership {
            department: b.key,
            user_order: -1,
            department_order: 7,
            is_primary: false,
        },
        Membership {
            department: r.key,
            user_order: 100,
            department_order: 0,
            is_primary: false,
        },
    ];
    p.username = Some(username("Zhang.San"));
    p.account_expires = Some(1_900_000_000);
    p.activation = Activation::ByAdmin;
    p.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into());
    p.enable_change_password = true;
    p.next_login_change_password = true;
    p.description = Some("Builds things".into());
    p.alias = Some("zs".into());
    p.is_admin = true;
    p.is_auth_admin = true;
    p.user_type = Some(UserType::Analyst);
    p.groups = vec!["0123456789abcdef0123456789abcdef".into(), "g2".into()];
    p.is_tenant_manager = true;
    u.status = UserStatus {
        is_frozen: true,
        is_resigned: false,
        is_activated: true,
        is_exited: true,
        is_unjoin: true,
    };
    u.created_at = now - 5_000;
    u.updated_at = now;
    u.logout_at = Some(now - 1_000);
    u
}

/// `insert_users` then `get_user` returns every field exactly, memberships in order with
/// their orders and primary flag; a user with nothing optional set reads back the same way;
/// `update_user` writes every field, memberships included.
pub async fn check_user_round_trips_every_field(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let full = full_user(s, t.id).await;
    let stored = insert_ok(s, &full).await;
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(stored.key)).await,
        Some(stored.clone()),
        "every field of a full user reads back"
    );

    let r = root(s, t.id).await;
    let mut bare = plain_user(t.id, r.key, "bare");
    bare.status = UserStatus::default();
    let bare = insert_ok(s, &bare).await;
    assert_ne!(bare.key, stored.key);
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(bare.key)).await,
        Some(bare),
        "a user with nothing optional set reads back with nothing set"
    );

    // Change everything: ids that may change, every optional field (some cleared), flags,
    // and the memberships (one dropped, one added, primary moved, orders changed).
    let c = insert_department(s, t.id, r.key, "C", "C", 0).await;
    let mut changed = stored.clone();
    changed.user_id = user_id("li.si");
    let p = &mut changed.profile;
    p.name = "李四".into();
    p.en_name = None;
    p.nickname = Some("Sisi".into());
    p.email = Some(email("li.si@example.com"));
    p.enterprise_email = None;
    p.mobile = None;
    p.mobile_visible = false;
    p.gender = Gender::Male;
    p.avatar_key = None;
    p.city = Some("Shanghai".into());
    p.country = Some(Country::parse("US").expect("valid country"));
    p.work_station = None;
    p.join_time = Some(1_700_000_000);
    p.employee_no = Some("E-0002".into());
    p.employee_type = EmployeeType::Intern;
    p.job_title = None;
    p.custom_attrs.truncate(1);
    p.custom_attrs[0].text = Some("changed".into());
    p.leader = None;
    p.departments = vec![
        Membership {
            department: c.key,
            user_order: 1,
            department_order: 1,
            is_primary: true,
        },
        Membership {
            department: stored.profile.departments[0].department,
            user_order: 6,
            department_order: 3,
            is_primary: false,
        },
    ];
    p.username = Some(username("li.si"));
    p.account_expires = None;
    p.activation = Activation::ByUser;
    p.password_hash = None;
    p.enable_change_password = false;
    p.next_login_change_password = false;
    p.description = None;
    p.alias = None;
    p.is_admin = false;
    p.is_auth_admin = false;
    p.user_type = Some(UserType::Visitor);
    p.groups = vec!["g3".into()];
    p.is_tenant_manager = false;
    changed.status = UserStatus {
        is_frozen: false,
        is_resigned: false,
        is_activated: false,
        is_exited: false,
        is_unjoin: false,
    };
    changed.updated_at = stored.updated_at + 1;
    changed.logout_at = Some(stored.updated_at + 1);
    s.update_user(&changed, &cli())
        .await
        .expect("update every field");
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(stored.key)).await,
        Some(changed.clone()),
        "every field written by update_user reads back"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::UserId("zhang.san".into())).await,
        None,
        "the old user id no longer finds the user"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Email("zhang.san@example.com".into())).await,
        None,
        "the old e-mail no longer finds the user"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Mobile(mobile(1).as_str().into())).await,
        None,
        "the cleared mobile no longer finds the user"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Email("LI.SI@example.com".into())).await,
        Some(changed.clone())
    );
    assert_eq!(
        s.department_member_count(t.id, stored.profile.departments[1].department)
            .await
            .expect("count"),
        0,
        "the dropped membership is gone from the join table"
    );
    assert_eq!(
        s.department_member_count(t.id, c.key).await.expect("count"),
        1
    );
    assert_eq!(
        active_users(s, t.id).await,
        3,
        "updates do not change the active count (the two users and the full user's leader)"
    );
}

/// A user is found by key, open id, union id, user id (any case), e-mail (any case) and
/// mobile; unknown values and other tenants find nothing.
pub async fn check_users_are_found_by_every_lookup(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let mut u = plain_user(t.id, r.key, "Zhang.San");
    u.profile.email = Some(email("Zhang.San@Example.com"));
    u.profile.mobile = Some(mobile(11));
    let mut decoy = plain_user(t.id, r.key, "decoy");
    decoy.profile.email = Some(email("decoy@example.com"));
    decoy.profile.mobile = Some(mobile(12));
    let decoy = insert_ok(s, &decoy).await;
    let u = insert_ok(s, &u).await;

    let lookups = [
        UserLookup::Key(u.key),
        UserLookup::OpenId(u.open_id.to_string()),
        UserLookup::UnionId(u.union_id.to_string()),
        UserLookup::UserId("Zhang.San".into()),
        UserLookup::UserId("zhang.san".into()),
        UserLookup::UserId("ZHANG.SAN".into()),
        UserLookup::Email("Zhang.San@Example.com".into()),
        UserLookup::Email("zhang.san@example.com".into()),
        UserLookup::Email("ZHANG.SAN@EXAMPLE.COM".into()),
        UserLookup::Mobile(mobile(11).as_str().into()),
    ];
    for lookup in &lookups {
        assert_eq!(
            get_user(s, t.id, lookup.clone()).await.as_ref(),
            Some(&u),
            "lookup {lookup:?}"
        );
        assert_eq!(
            get_user(s, other.id, lookup.clone()).await,
            None,
            "another tenant must not see the user through {lookup:?}"
        );
    }
    assert_eq!(
        get_user(s, t.id, UserLookup::Email("decoy@example.com".into())).await,
        Some(decoy)
    );
    for lookup in [
        UserLookup::Key(UserKey(u.key.0 + 1000)),
        UserLookup::OpenId(RandomIds.open_id().to_string()),
        UserLookup::UnionId(RandomIds.union_id().to_string()),
        UserLookup::UserId("nobody".into()),
        UserLookup::Email("nobody@example.com".into()),
        UserLookup::Mobile(mobile(13).as_str().into()),
    ] {
        assert_eq!(
            get_user(s, t.id, lookup.clone()).await,
            None,
            "unknown {lookup:?}"
        );
    }
}

/// `get_user_with_departments` reads the same user as `get_user` together with the
/// departments of its memberships, in membership order (not key order).
pub async fn check_user_with_departments_follows_membership_order(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let stored = insert_ok(s, &full_user(s, t.id).await).await;
    let order: Vec<_> = stored
        .profile
        .departments
        .iter()
        .map(|m| m.department)
        .collect();
    assert_eq!(order.len(), 3, "the full user is in three departments");
    let mut by_key = order.clone();
    by_key.sort_by_key(|k| k.0);
    assert_ne!(by_key, order, "the test needs memberships out of key order");
    for lookup in [
        UserLookup::Key(stored.key),
        UserLookup::UserId("zhang.san".into()),
        UserLookup::Email("zhang.san@example.com".into()),
    ] {
        let (user, depts) = s
            .get_user_with_departments(t.id, &lookup)
            .await
            .expect("read user with departments")
            .unwrap_or_else(|| panic!("user not found by {lookup:?}"));
        assert_eq!(
            user, stored,
            "the same user as get_user, through {lookup:?}"
        );
        let keys: Vec<_> = depts.iter().map(|d| d.key).collect();
        assert_eq!(keys, order, "departments in membership order");
        for d in &depts {
            let alone = s
                .get_department(t.id, &roster_core::DeptLookup::Key(d.key))
                .await
                .expect("get department");
            assert_eq!(
                alone.as_ref(),
                Some(d),
                "the department as get_department reads it"
            );
        }
    }
    // A search page reads its users in a statement of its own (PostgreSQL): the same user,
    // memberships in their order with their orders and main department.
    let query = roster_core::search::SearchQuery::parse("zhang.san@example.com").expect("query");
    let found = s.search_users(t.id, &query, None, 5).await.expect("search");
    let users: Vec<&User> = found.iter().map(|(u, _)| u).collect();
    assert_eq!(users, [&stored], "a search reads the same user as get_user");
    assert!(
        s.get_user_with_departments(t.id, &UserLookup::UserId("nobody".into()))
            .await
            .expect("read unknown user")
            .is_none(),
        "an unknown user is None"
    );
}

/// Resigned users keep their data but release their user id, e-mail, mobile, login name and
/// employee number: a new active user may take them, lookups prefer the active holder (then
/// the most recently resigned one), and resurrecting a user whose values were taken is a
/// `Duplicate` of the clashing key.
pub async fn check_resigned_users_release_their_unique_values(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut a = plain_user(t.id, r.key, "alice");
    a.profile.email = Some(email("alice@example.com"));
    a.profile.mobile = Some(mobile(21));
    a.profile.username = Some(username("alice"));
    a.profile.employee_no = Some("E-21".into());
    let a = insert_ok(s, &a).await;
    let t0 = now_ms();
    let a = resign(s, &a, t0).await;
    assert_eq!(
        active_users(s, t.id).await,
        0,
        "resigning decrements the active count"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(a.key)).await,
        Some(a.clone()),
        "a resigned user still reads back, resigned flag and time included"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Email("alice@example.com".into())).await,
        Some(a.clone()),
        "with no active holder, a lookup by e-mail finds the resigned user"
    );

    // A new user takes every unique value of the resigned one (the user id in another case).
    let mut b = plain_user(t.id, r.key, "ALICE");
    b.profile.email = Some(email("Alice@Example.com"));
    b.profile.mobile = Some(mobile(21));
    b.profile.username = Some(username("Alice"));
    b.profile.employee_no = Some("E-21".into());
    let b = insert_ok(s, &b).await;
    assert_eq!(active_users(s, t.id).await, 1);
    for lookup in [
        UserLookup::UserId("alice".into()),
        UserLookup::Email("alice@example.com".into()),
        UserLookup::Mobile(mobile(21).as_str().into()),
    ] {
        assert_eq!(
            get_user(s, t.id, lookup.clone()).await.as_ref(),
            Some(&b),
            "the active holder wins for {lookup:?}"
        );
    }
    assert_eq!(
        get_user(s, t.id, UserLookup::OpenId(a.open_id.to_string())).await,
        Some(a.clone())
    );

    // Bringing the first one back would make two active holders.
    let mut back = a.clone();
    back.status.is_resigned = false;
    back.resigned_at = None;
    let err = s.update_user(&back, &cli()).await;
    assert!(
        matches!(
            err,
            Err(StoreError::Duplicate(
                UniqueKey::UserId
                    | UniqueKey::Email
                    | UniqueKey::Mobile
                    | UniqueKey::Username
                    | UniqueKey::EmployeeNo
            ))
        ),
        "resurrecting over taken values: expected a Duplicate of a user value, got {err:?}"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(a.key)).await,
        Some(a.clone()),
        "the refused resurrection changed nothing"
    );
    assert_eq!(active_users(s, t.id).await, 1);

    // Among resigned holders, the most recently resigned wins.
    let b = resign(s, &b, t0 + 10_000).await;
    for lookup in [
        UserLookup::UserId("Alice".into()),
        UserLookup::Email("ALICE@example.com".into()),
        UserLookup::Mobile(mobile(21).as_str().into()),
    ] {
        assert_eq!(
            get_user(s, t.id, lookup.clone()).await.as_ref(),
            Some(&b),
            "the most recently resigned holder wins for {lookup:?}"
        );
    }

    // With only the e-mail in common, the clash is named precisely.
    let mut c = plain_user(t.id, r.key, "carol");
    c.profile.email = Some(email("carol@example.com"));
    let c = insert_ok(s, &c).await;
    let c = resign(s, &c, t0 + 20_000).await;
    let mut d = plain_user(t.id, r.key, "dave");
    d.profile.email = Some(email("CAROL@example.com"));
    insert_ok(s, &d).await;
    let mut back = c.clone();
    back.status.is_resigned = false;
    back.resigned_at = None;
    let err = s.update_user(&back, &cli()).await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::Email))),
        "expected Duplicate(Email), got {err:?}"
    );
    assert_eq!(active_users(s, t.id).await, 1, "only dave is active");
}

/// `taken_user_values` reports exactly the probed values that active users hold.
pub async fn check_taken_user_values_reports_only_active_holders(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let mut live = plain_user(t.id, r.key, "Live");
    live.profile.email = Some(email("Live@Example.com"));
    live.profile.mobile = Some(mobile(31));
    live.profile.username = Some(username("LiveName"));
    live.profile.employee_no = Some("E-31".into());
    insert_ok(s, &live).await;
    let mut gone = plain_user(t.id, r.key, "gone");
    gone.profile.email = Some(email("gone@example.com"));
    gone.profile.mobile = Some(mobile(32));
    gone.profile.username = Some(username("gonename"));
    gone.profile.employee_no = Some("E-32".into());
    let gone = insert_ok(s, &gone).await;
    resign(s, &gone, now_ms()).await;
    let mut elsewhere = plain_user(other.id, root(s, other.id).await.key, "elsewhere");
    elsewhere.profile.email = Some(email("elsewhere@example.com"));
    elsewhere.profile.mobile = Some(mobile(33));
    insert_ok(s, &elsewhere).await;

    let probe = UniqueProbe {
        user_ids: vec![
            "live".into(),
            "gone".into(),
            "elsewhere".into(),
            "never".into(),
        ],
        emails: vec![
            "live@example.com".into(),
            "gone@example.com".into(),
            "elsewhere@example.com".into(),
            "never@example.com".into(),
        ],
        mobiles: vec![
            mobile(31).as_str().into(),
            mobile(32).as_str().into(),
            mobile(33).as_str().into(),
            mobile(34).as_str().into(),
        ],
        usernames: vec!["livename".into(), "gonename".into(), "nevername".into()],
        employee_nos: vec!["E-31".into(), "E-32".into(), "E-99".into()],
    };
    let taken = s.taken_user_values(t.id, &probe).await.expect("probe");
    let set = |v: &[&str]| {
        v.iter()
            .map(|x| (*x).to_owned())
            .collect::<std::collections::HashSet<_>>()
    };
    assert_eq!(taken.user_ids, set(&["live"]));
    assert_eq!(taken.emails, set(&["live@example.com"]));
    assert_eq!(taken.mobiles, set(&[mobile(31).as_str()]));
    assert_eq!(taken.usernames, set(&["livename"]));
    assert_eq!(taken.employee_nos, set(&["E-31"]));

    let empty = s
        .taken_user_values(t.id, &UniqueProbe::default())
        .await
        .expect("empty probe");
    assert!(empty.user_ids.is_empty() && empty.emails.is_empty() && empty.mobiles.is_empty());
}

/// Each unique value of an active user, when repeated by a new user, is refused with the
/// `Duplicate` naming exactly that value; unique values are per tenant.
pub async fn check_each_user_unique_value_clash_names_its_key(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut held = plain_user(t.id, r.key, "Holder");
    held.profile.email = Some(email("holder@example.com"));
    held.profile.mobile = Some(mobile(41));
    held.profile.username = Some(username("Holder.Login"));
    held.profile.employee_no = Some("E-41".into());
    let held = insert_ok(s, &held).await;

    for (n, key) in [
        UniqueKey::UserId,
        UniqueKey::Email,
        UniqueKey::Mobile,
        UniqueKey::Username,
        UniqueKey::EmployeeNo,
        UniqueKey::OpenId,
        UniqueKey::UnionId,
    ]
    .into_iter()
    .enumerate()
    {
        let n = u32::try_from(n).expect("small");
        let mut u = plain_user(t.id, r.key, &format!("fresh{n}"));
        u.profile.email = Some(email(&format!("fresh{n}@example.com")));
        u.profile.mobile = Some(mobile(4200 + n));
        u.profile.username = Some(username(&format!("fresh{n}")));
        u.profile.employee_no = Some(format!("F-{n}"));
        match key {
            UniqueKey::UserId => u.user_id = user_id("HOLDER"),
            UniqueKey::Email => u.profile.email = Some(email("HOLDER@example.com")),
            UniqueKey::Mobile => u.profile.mobile = held.profile.mobile.clone(),
            UniqueKey::Username => u.profile.username = Some(username("holder.login")),
            UniqueKey::EmployeeNo => u.profile.employee_no = Some("E-41".into()),
            UniqueKey::OpenId => u.open_id = held.open_id.clone(),
            UniqueKey::UnionId => u.union_id = held.union_id.clone(),
            _ => unreachable!("only user keys are listed"),
        }
        let results = insert(s, t.id, &[u.clone()], false).await;
        assert_duplicate(&results[0], key, &format!("clash on {key:?}"));
        assert_eq!(
            get_user(s, t.id, UserLookup::Email(format!("fresh{n}@example.com"))).await,
            None,
            "the refused user was not written"
        );
    }
    assert_eq!(active_users(s, t.id).await, 1);

    // Another tenant may hold the very same values.
    let other = tenant(s, "Other", None).await;
    let mut twin = held.clone();
    twin.tenant = other.id;
    twin.profile.departments = vec![crate::support::member_of(root(s, other.id).await.key)];
    insert_ok(s, &twin).await;
    assert_eq!(active_users(s, other.id).await, 1);
}

/// Best-effort: a row that clashes with a stored user, or with an earlier row of the same
/// call, fails on its own; the other rows are written and counted.
pub async fn check_best_effort_insert_fails_only_the_duplicate_row(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut existing = plain_user(t.id, r.key, "existing");
    existing.profile.email = Some(email("dup@example.com"));
    insert_ok(s, &existing).await;

    let u1 = plain_user(t.id, r.key, "u1");
    let mut u2 = plain_user(t.id, r.key, "u2");
    u2.profile.email = Some(email("DUP@example.com"));
    let mut u3 = plain_user(t.id, r.key, "u3");
    u3.profile.mobile = Some(mobile(51));
    let mut u4 = plain_user(t.id, r.key, "u4");
    u4.profile.mobile = Some(mobile(51));
    let u5 = plain_user(t.id, r.key, "u5");
    let batch = [u1, u2, u3, u4, u5];
    let results = insert(s, t.id, &batch, false).await;

    assert!(results[0].is_ok(), "u1: {:?}", results[0]);
    assert_duplicate(&results[1], UniqueKey::Email, "u2 repeats a stored e-mail");
    assert!(results[2].is_ok(), "u3: {:?}", results[2]);
    assert_duplicate(&results[3], UniqueKey::Mobile, "u4 repeats u3's mobile");
    assert!(results[4].is_ok(), "u5: {:?}", results[4]);

    for (i, user) in batch.iter().enumerate() {
        let found = get_user(s, t.id, UserLookup::OpenId(user.open_id.to_string())).await;
        match &results[i] {
            Ok(key) => assert_eq!(
                found,
                Some(User {
                    key: *key,
                    ..user.clone()
                }),
                "row {i} was written under the key returned for it"
            ),
            Err(_) => assert_eq!(found, None, "refused row {i} was not written"),
        }
    }
    assert_eq!(active_users(s, t.id).await, 4, "existing + u1, u3, u5");
}

/// Atomic: one clashing row makes the whole call write nothing, and the row is named.
pub async fn check_atomic_insert_with_one_duplicate_writes_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut existing = plain_user(t.id, r.key, "existing");
    existing.profile.email = Some(email("dup@example.com"));
    insert_ok(s, &existing).await;
    let c0 = s.department_member_count(t.id, r.key).await.expect("count");

    let u1 = plain_user(t.id, r.key, "u1");
    let mut u2 = plain_user(t.id, r.key, "u2");
    u2.profile.email = Some(email("Dup@Example.com"));
    let u3 = plain_user(t.id, r.key, "u3");
    let batch = [u1, u2, u3];
    let results = insert(s, t.id, &batch, true).await;
    assert_duplicate(&results[1], UniqueKey::Email, "u2 repeats a stored e-mail");
    for user in &batch {
        assert_eq!(
            get_user(s, t.id, UserLookup::OpenId(user.open_id.to_string())).await,
            None,
            "an atomic call with a refused row writes nothing"
        );
    }
    assert_eq!(active_users(s, t.id).await, 1, "the count is untouched");
    assert_eq!(
        s.department_member_count(t.id, r.key).await.expect("count"),
        c0,
        "no membership rows were left behind"
    );

    // A clash inside the call itself is refused the same way.
    let mut v1 = plain_user(t.id, r.key, "v1");
    v1.profile.mobile = Some(mobile(61));
    let mut v2 = plain_user(t.id, r.key, "v2");
    v2.profile.mobile = Some(mobile(61));
    let results = insert(s, t.id, &[v1.clone(), v2.clone()], true).await;
    assert_duplicate(&results[1], UniqueKey::Mobile, "v2 repeats v1's mobile");
    assert_eq!(
        get_user(s, t.id, UserLookup::OpenId(v1.open_id.to_string())).await,
        None
    );
    assert_eq!(active_users(s, t.id).await, 1);

    // And a clean atomic call writes every row.
    let w = [plain_user(t.id, r.key, "w1"), plain_user(t.id, r.key, "w2")];
    let results = insert(s, t.id, &w, true).await;
    for (i, user) in w.iter().enumerate() {
        let key = *results[i].as_ref().expect("a clean atomic call succeeds");
        assert_eq!(
            get_user(s, t.id, UserLookup::Key(key)).await,
            Some(User {
                key,
                ..user.clone()
            })
        );
    }
    assert_eq!(active_users(s, t.id).await, 3);
}

/// The licence cap: with room for 3, a best-effort call of 5 writes the first 3 and refuses
/// the rest with `LicenceExceeded`; an atomic call past the cap writes nothing; resigning
/// frees room, and a resurrection past the cap is refused.
pub async fn check_licence_cap_limits_active_users(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Capped", Some(3)).await;
    let r = root(s, t.id).await;
    let five: Vec<User> = (0..5)
        .map(|i| plain_user(t.id, r.key, &format!("u{i}")))
        .collect();
    let five_results = insert(s, t.id, &five, false).await;
    for (i, res) in five_results.iter().enumerate() {
        if i < 3 {
            assert!(res.is_ok(), "user {i} fits under the cap: {res:?}");
        } else {
            assert!(
                matches!(res, Err(StoreError::LicenceExceeded)),
                "user {i} is past the cap: expected LicenceExceeded, got {res:?}"
            );
            assert_eq!(
                get_user(s, t.id, UserLookup::OpenId(five[i].open_id.to_string())).await,
                None
            );
        }
    }
    assert_eq!(active_users(s, t.id).await, 3);

    let extra = plain_user(t.id, r.key, "extra");
    let results = insert(s, t.id, std::slice::from_ref(&extra), true).await;
    assert!(
        matches!(results[0], Err(StoreError::LicenceExceeded)),
        "atomic past the cap: expected LicenceExceeded, got {:?}",
        results[0]
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::OpenId(extra.open_id.to_string())).await,
        None
    );

    let stored = |i: usize| User {
        key: *five_results[i].as_ref().expect("written above"),
        ..five[i].clone()
    };
    let (u0, u1) = (stored(0), stored(1));
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(u1.key)).await,
        Some(u1.clone())
    );

    // Resigning frees one place, which a new user takes.
    let u0 = resign(s, &u0, now_ms()).await;
    assert_eq!(
        active_users(s, t.id).await,
        2,
        "resigning decrements the count"
    );
    insert_ok(s, &extra).await;
    assert_eq!(active_users(s, t.id).await, 3);

    // Now u0 cannot come back.
    let mut back = u0.clone();
    back.status.is_resigned = false;
    back.resigned_at = None;
    let err = s.update_user(&back, &cli()).await;
    assert!(
        matches!(err, Err(StoreError::LicenceExceeded)),
        "resurrection past the cap: expected LicenceExceeded, got {err:?}"
    );
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(u0.key)).await,
        Some(u0.clone())
    );
    assert_eq!(active_users(s, t.id).await, 3);

    // Updating a resigned user that stays resigned does not count it either way.
    let mut still_resigned = u0.clone();
    still_resigned.profile.name = "Still resigned".into();
    s.update_user(&still_resigned, &cli())
        .await
        .expect("edit a resigned user without resurrecting it");
    assert_eq!(active_users(s, t.id).await, 3);
    assert_eq!(
        get_user(s, t.id, UserLookup::Key(u0.key)).await,
        Some(still_resigned.clone())
    );
    let u0 = still_resigned;
    back.profile.name = u0.profile.name.clone();

    // Updating an active user without changing its state does not count it twice.
    let mut renamed = u1.clone();
    renamed.profile.name = "Renamed".into();
    s.update_user(&renamed, &cli())
        .await
        .expect("rename an active user");
    assert_eq!(active_users(s, t.id).await, 3);

    // Resigning u1 makes room for u0 again.
    resign(s, &renamed, now_ms()).await;
    assert_eq!(active_users(s, t.id).await, 2);
    s.update_user(&back, &cli())
        .await
        .expect("resurrection within the cap");
    assert_eq!(active_users(s, t.id).await, 3);
    assert_eq!(get_user(s, t.id, UserLookup::Key(u0.key)).await, Some(back));
}
