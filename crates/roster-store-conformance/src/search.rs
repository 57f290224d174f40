//! Ranked user search (`Store::search_users`, `roster_core::search`): what finds a user,
//! the order of results, each user once, cursors that stay correct while users are added,
//! and an index that follows every write.

use std::sync::Arc;

use roster_core::search::{SearchCursor, SearchQuery, SearchTier};
use roster_core::values::{Email, Mobile};
use roster_core::{Store, TenantId, User, UserKey};

use crate::support::{cli, insert_ok, now_ms, plain_user, resign, root, tenant};

/// Every match for `q`, a page of `limit` at a time, checking that places strictly increase
/// and that no user comes twice.
async fn search_all(
    s: &dyn Store,
    t: TenantId,
    q: &str,
    limit: usize,
) -> Vec<(User, SearchCursor)> {
    let query = SearchQuery::parse(q).expect("a valid query");
    let mut out: Vec<(User, SearchCursor)> = Vec::new();
    let mut after: Option<SearchCursor> = None;
    for _ in 0..1000 {
        let page = s
            .search_users(t, &query, after.clone(), limit)
            .await
            .expect("search_users");
        assert!(
            page.len() <= limit,
            "{q}: a page holds at most {limit} users"
        );
        for (u, place) in &page {
            assert_eq!(u.key, place.key, "{q}: a place names its user");
            if let Some(a) = &after {
                assert!(place > a, "{q}: places increase ({a:?} then {place:?})");
            }
            assert!(
                out.iter().all(|(o, _)| o.key != u.key),
                "{q}: {} is listed twice",
                u.user_id
            );
            after = Some(place.clone());
        }
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
    panic!("{q}: paging did not end");
}

/// The custom ids of every match, in order.
async fn ids(s: &dyn Store, t: TenantId, q: &str) -> Vec<String> {
    search_all(s, t, q, 3)
        .await
        .into_iter()
        .map(|(u, _)| u.user_id.to_string())
        .collect()
}

fn named(t: TenantId, dept: roster_core::DeptKey, id: &str, name: &str) -> User {
    let mut u = plain_user(t, dept, id);
    name.clone_into(&mut u.profile.name);
    u
}

/// 张三 is found by its name and any part of it, by its pinyin in full, by a prefix of it and
/// by its initials, in any case; Latin names by any word and, from three characters, by any
/// substring; English names and nicknames too.
pub async fn check_search_finds_names_by_pinyin_initials_and_substrings(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    insert_ok(s, &named(t.id, r.key, "zhang", "张三")).await;
    insert_ok(s, &named(t.id, r.key, "ouyang", "欧阳娜娜")).await;
    insert_ok(s, &named(t.id, r.key, "alice", "Alice Smith")).await;
    let mut bob = named(t.id, r.key, "bob", "Robert");
    bob.profile.en_name = Some("Bob Jones".into());
    bob.profile.nickname = Some("Bobby".into());
    insert_ok(s, &bob).await;
    insert_ok(s, &named(t.id, r.key, "elodie", "ÉLODIE Durand")).await;

    for q in [
        "zhangsan", "ZhangSan", "zhang", "zs", "ZS", "张三", "张", "三", "angs",
    ] {
        assert_eq!(ids(s, t.id, q).await, ["zhang"], "{q}");
    }
    for q in [
        "欧阳娜娜",
        "阳娜",
        "娜娜",
        "娜",
        "ouyangnana",
        "oynn",
        "yangna",
    ] {
        assert_eq!(ids(s, t.id, q).await, ["ouyang"], "{q}");
    }
    for q in ["alice", "ALICE SMITH", "smith", "sm", "lice", "ce smi"] {
        assert_eq!(ids(s, t.id, q).await, ["alice"], "{q}");
    }
    for q in ["rob", "bob jones", "jones", "bobby", "obb"] {
        assert_eq!(ids(s, t.id, q).await, ["bob"], "{q}");
    }
    assert_eq!(
        ids(s, t.id, "élodie").await,
        ["elodie"],
        "non-ASCII folds too"
    );
    assert_eq!(ids(s, t.id, "durand").await, ["elodie"]);
    assert!(
        ids(s, t.id, "ce").await.is_empty(),
        "two letters inside a word are no match: short queries match prefixes only"
    );
    assert!(ids(s, t.id, "nobody").await.is_empty());
    assert!(
        ids(s, t.id, "%").await.is_empty(),
        "% is a literal character"
    );
    assert!(
        ids(s, t.id, "_").await.is_empty(),
        "_ is a literal character"
    );
    insert_ok(s, &named(t.id, r.key, "pct", "Jean-Luc 100%")).await;
    for q in ["%", "luc", "-l", "jean-luc 1", "c 100"] {
        assert_eq!(
            ids(s, t.id, q).await,
            ["pct"],
            "{q}: punctuation starts a word"
        );
    }
    assert!(
        ids(s, t.id, "_").await.is_empty(),
        "_ is a literal character"
    );
    assert!(
        ids(s, t.id, "ertbo").await.is_empty(),
        "a match never spans two terms (robert, bob jones)"
    );
}

/// The e-mail, the mobile (E.164 or, for Chinese numbers, national) and the employee number
/// find their user by the whole value, a prefix or a substring.
pub async fn check_search_finds_email_mobile_and_employee_number(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut u = named(t.id, r.key, "wang", "王五");
    u.profile.email = Some(Email::parse("email", "Wang.Wu@Example.COM").expect("e-mail"));
    u.profile.mobile = Some(Mobile::parse("mobile", "+8613800138000").expect("mobile"));
    u.profile.employee_no = Some("EMP-0042".into());
    insert_ok(s, &u).await;
    for q in [
        "wang.wu@example.com",
        "WANG.WU@",
        "example.com",
        "13800138000",
        "138001",
        "+86138",
        "0013800",
        "emp-0042",
        "EMP",
        "0042",
    ] {
        assert_eq!(ids(s, t.id, q).await, ["wang"], "{q}");
    }
}

/// Exact matches come first, then prefixes (by matching term, then key), then names matched
/// from a later word or character, then other substrings (by key); a user matching in
/// several ways is listed once, at its best place.
pub async fn check_search_ranks_exact_then_prefix_then_substring_once_each(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let ins = |id: &'static str, name: &'static str| async move {
        insert_ok(s, &named(t.id, r.key, id, name)).await
    };
    let caroline = ins("caroline", "Caroline").await;
    let lindqvist = ins("lindqvist", "Lindqvist").await;
    let mut lin = named(t.id, r.key, "lin", "Lin");
    lin.profile.email = Some(Email::parse("email", "lin@example.com").expect("e-mail"));
    lin.profile.en_name = Some("Linus".into());
    let lin = insert_ok(s, &lin).await;
    let mary = ins("mary", "Mary Lin").await;
    let linda = ins("linda", "Linda").await;
    let chinese = ins("chinese", "林").await;
    let _ = ins("other", "Olga").await;

    let found = search_all(s, t.id, "lin", 2).await;
    let got: Vec<&str> = found.iter().map(|(u, _)| u.user_id.as_str()).collect();
    assert_eq!(
        got,
        ["lin", "chinese", "linda", "lindqvist", "mary", "caroline"],
        "exact (lin, pinyin of 林, by key), prefixes by term, a later word, a substring"
    );
    let tiers: Vec<SearchTier> = found.iter().map(|(_, p)| p.tier).collect();
    assert_eq!(
        tiers,
        [
            SearchTier::Whole,
            SearchTier::Whole,
            SearchTier::Whole,
            SearchTier::Whole,
            SearchTier::Suffix,
            SearchTier::Substring
        ]
    );
    assert_eq!(
        found[0].1.term, "lin",
        "Lin matches exactly, not by Linus or the e-mail"
    );
    assert!(lin.key < chinese.key && linda.key > lindqvist.key && mary.key > caroline.key);
}

/// A tier whose first rows are read together with the tier before it (PostgreSQL reads the
/// suffix tier's first rows with the whole tier's page, as many as that page's `LIMIT` had
/// room for) goes on from its last row when the page needs more: thirty whole matches, each
/// by two terms (the second dropped as a worse place), and forty-five later-word matches
/// come in order, each once, for a page of a hundred as for small pages.
pub async fn check_search_reads_on_past_a_short_first_page_of_a_later_tier(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut expected = Vec::new();
    for i in 0..75 {
        let id = format!("u{i:02}");
        let u = if i < 30 {
            let mut u = named(t.id, r.key, &id, &format!("Lin{i:02}"));
            u.profile.en_name = Some(format!("Lina{i:02}"));
            u
        } else {
            named(t.id, r.key, &id, &format!("Mary Lin{i:02}"))
        };
        insert_ok(s, &u).await;
        expected.push(id);
    }
    for limit in [100, 3, 32] {
        let found = search_all(s, t.id, "lin", limit).await;
        let got: Vec<&str> = found.iter().map(|(u, _)| u.user_id.as_str()).collect();
        assert_eq!(got, expected, "pages of {limit}");
        let suffix = found
            .iter()
            .filter(|(_, p)| p.tier == SearchTier::Suffix)
            .count();
        assert_eq!(suffix, 45, "pages of {limit}: the later-word matches");
        // A short page says there is no more (the directory's `has_more`), so each page
        // but the last is full.
        let query = SearchQuery::parse("lin").expect("a valid query");
        let first = s
            .search_users(t.id, &query, None, limit)
            .await
            .expect("search_users");
        assert_eq!(first.len(), limit.min(75), "a first page of {limit}");
    }
}

/// Paging by cursor while users are added between pages: every user that existed before
/// the first page is listed exactly once, in order, and new users appear only after the
/// place already reached.
pub async fn check_search_cursors_stay_correct_while_users_are_added(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let r = root(s, t.id).await;
    let mut before = Vec::new();
    for (i, name) in [
        "Team",
        "Teamster",
        "Team Lead",
        "Steamer",
        "Red Team",
        "Teammate",
        "Esteem Team",
        "Teamwork",
    ]
    .into_iter()
    .enumerate()
    {
        before.push(insert_ok(s, &named(t.id, r.key, &format!("old{i}"), name)).await);
    }
    let query = SearchQuery::parse("team").expect("query");
    let mut seen: Vec<(User, SearchCursor)> = Vec::new();
    let mut after: Option<SearchCursor> = None;
    let mut added = 0;
    loop {
        let page = s
            .search_users(t.id, &query, after.clone(), 2)
            .await
            .expect("search page");
        if page.is_empty() {
            break;
        }
        for (u, place) in page {
            if let Some(a) = &after {
                assert!(&place > a, "places increase");
            }
            after = Some(place.clone());
            seen.push((u, place));
        }
        // Between the first pages, add users that rank before, at and after the place
        // reached (later pages add none, so that paging ends).
        if added >= 18 {
            continue;
        }
        for name in ["Team", "Teamaa", "Teamzz", "Ateam", "Zteam", "Dream Team"] {
            insert_ok(s, &named(t.id, r.key, &format!("new{added}"), name)).await;
            added += 1;
        }
        assert!(seen.len() < 200, "paging did not end");
    }
    for u in &before {
        let n = seen.iter().filter(|(x, _)| x.key == u.key).count();
        assert_eq!(n, 1, "{} ({}) is listed once", u.user_id, u.profile.name);
    }
    let mut keys: Vec<UserKey> = seen.iter().map(|(u, _)| u.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), seen.len(), "no user is listed twice");
}

/// Resigned users and other tenants' users are never found; a resurrected user is found
/// again; a rename changes what finds the user, and the terms it kept still find it.
pub async fn check_search_follows_resignations_renames_and_tenants(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let r = root(s, t.id).await;
    let mut zhang = named(t.id, r.key, "zhang", "张三");
    zhang.profile.email = Some(Email::parse("email", "san@example.com").expect("e-mail"));
    let zhang = insert_ok(s, &zhang).await;
    let gone = insert_ok(s, &named(t.id, r.key, "gone", "张三丰")).await;
    insert_ok(
        s,
        &named(other.id, root(s, other.id).await.key, "twin", "张三"),
    )
    .await;

    assert_eq!(ids(s, t.id, "zs").await, ["zhang", "gone"]);
    let gone = resign(s, &gone, now_ms()).await;
    assert_eq!(
        ids(s, t.id, "zs").await,
        ["zhang"],
        "resigned users are not found"
    );
    assert!(ids(s, t.id, "三丰").await.is_empty());
    assert_eq!(
        ids(s, other.id, "张三").await,
        ["twin"],
        "tenants are apart"
    );

    let mut back = gone.clone();
    back.status.is_resigned = false;
    back.resigned_at = None;
    s.update_user(&back, &cli()).await.expect("resurrect");
    assert_eq!(
        ids(s, t.id, "zsf").await,
        ["gone"],
        "a resurrected user is found again"
    );

    let mut renamed = zhang.clone();
    renamed.profile.name = "李四".into();
    s.update_user(&renamed, &cli()).await.expect("rename");
    assert_eq!(
        ids(s, t.id, "zs").await,
        ["gone"],
        "the old name no longer finds it"
    );
    assert_eq!(
        ids(s, t.id, "zhangsan").await,
        ["gone"],
        "only 张三丰 is left"
    );
    assert_eq!(ids(s, t.id, "lisi").await, ["zhang"], "the new name does");
    assert_eq!(ids(s, t.id, "ls").await, ["zhang"]);
    assert_eq!(
        ids(s, t.id, "san@example").await,
        ["zhang"],
        "an unchanged term (the e-mail) survives the rename"
    );
}
