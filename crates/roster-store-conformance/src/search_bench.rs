//! A quick search benchmark shared by the stores' `search_bench` examples: loads `n`
//! generated users (Chinese names with Latin English names, e-mails, mobiles, employee
//! numbers) straight through `Store::insert_users`, then times searches of four kinds and
//! prints p50/p99 per kind. It is a measuring tool, not a check; `roster-bench` is the
//! project's benchmark.

// A benchmark talks to the person who runs it.
#![allow(clippy::print_stdout)]
// Rates and percentiles are printed as floats; counts are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_core::values::{Email, Mobile};
use roster_core::{
    Actor, Change, DeptLookup, IdGen, Membership, NewTenant, RandomIds, SearchQuery, Store,
    TenantId, User, UserId, UserKey, UserProfile, UserStatus,
};

const SURNAMES: [(&str, &str); 24] = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
];
const GIVEN: [(&str, &str); 32] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀", "xiu"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂", "gui"),
    ("英", "ying"),
    ("华", "hua"),
    ("玉", "yu"),
    ("兰", "lan"),
    ("文", "wen"),
    ("辉", "hui"),
    ("鹏", "peng"),
    ("飞", "fei"),
    ("红", "hong"),
    ("建", "jian"),
];
const FIRST: [&str; 16] = [
    "james", "mary", "john", "linda", "robert", "susan", "michael", "karen", "david", "nancy",
    "william", "betty", "richard", "helen", "thomas", "sandra",
];

/// A small deterministic generator (64-bit LCG), so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn user(t: TenantId, root: roster_core::DeptKey, i: usize, rng: &mut Lcg) -> User {
    let (s, sp) = SURNAMES[rng.next(SURNAMES.len())];
    let (g1, p1) = GIVEN[rng.next(GIVEN.len())];
    let (name, py) = if rng.next(2) == 0 {
        (format!("{s}{g1}"), format!("{p1} {sp}"))
    } else {
        let (g2, p2) = GIVEN[rng.next(GIVEN.len())];
        (format!("{s}{g1}{g2}"), format!("{p1}{p2} {sp}"))
    };
    let first = FIRST[rng.next(FIRST.len())];
    User {
        key: UserKey(0),
        tenant: t,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: UserId::parse(&format!("u{i}")).expect("user id"),
        profile: UserProfile {
            name,
            en_name: Some(format!("{first} {py}")),
            email: Some(
                Email::parse("email", &format!("{first}.{sp}{i}@example.com")).expect("e-mail"),
            ),
            mobile: Some(
                Mobile::parse("mobile", &format!("+86139{:08}", i % 100_000_000)).expect("mobile"),
            ),
            employee_no: Some(format!("E{i:07}")),
            departments: vec![Membership {
                department: root,
                user_order: 0,
                department_order: 0,
                is_primary: true,
            }],
            ..UserProfile::default()
        },
        status: UserStatus {
            is_activated: true,
            ..UserStatus::default()
        },
        created_at: 1,
        updated_at: 1,
        resigned_at: None,
        logout_at: None,
    }
}

/// Makes one query of a kind.
type QueryMaker = Box<dyn Fn(&mut Lcg) -> String>;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Loads `n` users into a fresh tenant of `store` and prints the search latencies.
pub async fn run(store: Arc<dyn Store>, n: usize, queries_per_kind: usize) {
    let s = store.as_ref();
    let mut rng = Lcg(42);
    let t = load(s, n, &mut rng).await;
    // PostgreSQL plans by statistics, which autovacuum gathers a minute or so after a bulk
    // load; `SEARCH_BENCH_SETTLE_S` waits for that before measuring.
    if let Some(secs) = std::env::var("SEARCH_BENCH_SETTLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        println!("waiting {secs} s for statistics");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    measure(s, t, queries_per_kind, &mut rng).await;
}

/// Prints the search latencies over the users of tenant `t`, already loaded.
pub async fn measure_only(store: Arc<dyn Store>, t: TenantId, queries_per_kind: usize) {
    let mut rng = Lcg(7);
    measure(store.as_ref(), t, queries_per_kind, &mut rng).await;
}

async fn load(s: &dyn Store, n: usize, rng: &mut Lcg) -> TenantId {
    let t = s
        .create_tenant(
            &NewTenant::parse("bench", None).expect("tenant"),
            "bench",
            0,
        )
        .await
        .expect("create tenant");
    let root = s
        .get_department(t.id, &DeptLookup::OpenId("0".into()))
        .await
        .expect("root")
        .expect("root exists");
    let change = Change::by(Actor::Cli);
    let started = Instant::now();
    let mut gen_time = Duration::ZERO;
    let mut i = 0;
    while i < n {
        let g = Instant::now();
        let batch: Vec<User> = (i..(i + 10_000).min(n))
            .map(|k| user(t.id, root.key, k, rng))
            .collect();
        gen_time += g.elapsed();
        let res = s
            .insert_users(t.id, &batch, false, &change)
            .await
            .expect("insert");
        assert!(
            res.iter().all(Result::is_ok),
            "every generated user inserts"
        );
        i += batch.len();
    }
    let load = started.elapsed().saturating_sub(gen_time);
    println!(
        "loaded {n} users in {:.1} s through insert_users ({:.0} users/s, generation excluded)",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );
    t.id
}

async fn measure(s: &dyn Store, t: TenantId, queries_per_kind: usize, rng: &mut Lcg) {
    // Queries slower than this are printed, to see what the tail is made of.
    let slow = Duration::from_millis(
        std::env::var("SEARCH_BENCH_SLOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let kinds: [(&str, QueryMaker); 5] = [
        (
            "latin substring (3-5 chars)",
            Box::new(|r: &mut Lcg| {
                let w = FIRST[r.next(FIRST.len())];
                let len = 3 + r.next(3).min(w.len() - 3);
                let at = r.next(w.len() - len + 1);
                w[at..at + len].to_owned()
            }),
        ),
        (
            "2-char CJK name",
            Box::new(|r: &mut Lcg| {
                if r.next(2) == 0 {
                    format!("{}{}", SURNAMES[r.next(24)].0, GIVEN[r.next(32)].0)
                } else {
                    format!("{}{}", GIVEN[r.next(32)].0, GIVEN[r.next(32)].0)
                }
            }),
        ),
        (
            "initials (zs-style)",
            Box::new(|r: &mut Lcg| {
                let s = SURNAMES[r.next(24)].1;
                let g = GIVEN[r.next(32)].1;
                format!("{}{}", &s[..1], &g[..1])
            }),
        ),
        (
            "full pinyin",
            Box::new(|r: &mut Lcg| format!("{}{}", SURNAMES[r.next(24)].1, GIVEN[r.next(32)].1)),
        ),
        (
            "mobile / e-mail prefix",
            Box::new(|r: &mut Lcg| {
                if r.next(2) == 0 {
                    format!("139{:05}", r.next(100_000))
                } else {
                    format!("{}.{}", FIRST[r.next(16)], SURNAMES[r.next(24)].1)
                }
            }),
        ),
    ];
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>10}",
        "query kind", "p50 ms", "p99 ms", "max ms", "avg hits"
    );
    for (kind, make) in &kinds {
        let mut lat = Vec::with_capacity(queries_per_kind);
        let mut hits = 0usize;
        for _ in 0..queries_per_kind {
            let text = make(rng);
            let q = SearchQuery::parse(&text).expect("query");
            let at = Instant::now();
            let page = s.search_users(t, &q, None, 20).await.expect("search");
            let took = at.elapsed();
            if took > slow {
                println!(
                    "  slow: {text:?} took {:.1} ms",
                    took.as_secs_f64() * 1000.0
                );
            }
            lat.push(took);
            hits += page.len();
        }
        lat.sort();
        println!(
            "{kind:<30} {:>8.2} {:>8.2} {:>8.2} {:>10.1}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            hits as f64 / queries_per_kind as f64
        );
    }
}
