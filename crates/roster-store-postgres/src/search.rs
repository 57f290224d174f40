//! Ranked user search (migration 0006; the order is defined in `roster_core::search`).
//!
//! The whole and suffix tiers walk `user_search_terms` (primary key `(tenant_id, term,
//! user_key)`, terms in byte order through `COLLATE "C"`) over the query's prefix range from
//! the cursor on. The substring tier reads users in key order from the cursor's key on, by
//! one of two plans chosen per query from a sample of the users' search texts
//! ([`TextSample`]): a walk of the primary key that re-checks each row (cheap when matches
//! are dense), or the `pg_trgm` GIN index `users_search_trgm_idx` asked for the query's two
//! rarest trigrams only (cheap when they are rare). A candidate is kept only where
//! `roster_store_common::place_of` puts it, exactly as on SQLite.
//!
//! Why not let the planner choose: it cannot see how many rows a trigram's posting list
//! holds, nor how many candidates a `LIKE` re-check throws away. Measured at a million users
//! (2026-12-06), plain `LIKE '%q%'` took 0.7-0.9 s for `000000` (every user holds the trigram
//! `000`, a thousand hold the query: a bitmap of a million candidates, sorted), 60-80 ms for
//! `ngting` (ten thousand matches sorted when a walk finds a page in 2 400 rows), and 4-6 ms
//! for `mafangting` (the posting lists of `ang` and `ing`, a third of all users, read in
//! full, where `maf` alone gives 1 200 candidates in 0.1 ms).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use roster_core::search::{SearchCursor, SearchQuery, SearchTier};
use roster_core::{StoreError, TenantId, User, UserKey, UserLookup};
use roster_store_common::{decode_profile, place_of, search_text};
use sqlx::PgPool;

use crate::errors::Context;
use crate::users;

/// Candidate rows read per statement (see the SQLite store).
const MIN_BATCH: usize = 32;
/// Substring candidates read beyond what a page lacks.
const SUBSTRING_SLACK: usize = 4;

/// Users whose `search_text` is computed per statement by the backfill at open.
const BACKFILL_CHUNK: i64 = 1000;

/// Search texts in a sample. Enough to see a trigram or a query held by one user in a few
/// thousand (rarer ones are treated as rare), small enough to count in a few milliseconds.
const SAMPLE_ROWS: i64 = 8000;
/// How long a sample is used. Reading one costs one block-sampled statement and counting
/// its trigrams some milliseconds, so it is refreshed often enough to follow an import.
const SAMPLE_TTL: Duration = Duration::from_mins(1);
/// A walk re-checks a row for about a third of what the index plan pays per candidate (a
/// heap fetch out of key order and the sort), so a walk is chosen while it is expected to
/// read fewer than this many rows per index candidate.
const WALK_ROWS_PER_CANDIDATE: f64 = 3.0;
/// A walk reads at most this many times the rows it is expected to need (and at least
/// [`MIN_WALK_ROWS`], at most [`MAX_WALK_ROWS`]) before the index takes over from where it
/// stopped, so a sample that overrated a query costs a bounded detour.
const WALK_SLACK: f64 = 4.0;
const MIN_WALK_ROWS: f64 = 1024.0;
const MAX_WALK_ROWS: f64 = 65_536.0;
/// Beside the rarest trigram, the index is asked for one that overlaps those taken only
/// while it is held by at most this many times the rows of the rarest.
const TRIGRAM_RATIO: u32 = 8;
/// A trigram held by more than this share of the sample is common: its posting list, read in
/// full, costs more than the candidates it removes, so the index is never asked for it
/// beside a rarer one.
const COMMON_SHARE: f64 = 0.05;

const TERMS_PAGE: &str = "SELECT t.user_key, t.term::text, u.search_text \
    FROM user_search_terms t JOIN users u ON u.id = t.user_key \
    WHERE t.tenant_id = $1 AND t.term >= ($2 COLLATE \"C\") AND t.term < ($3 COLLATE \"C\") \
    AND (t.term, t.user_key) > ($4 COLLATE \"C\", $5) \
    ORDER BY t.term, t.user_key LIMIT $6";

// The walk: the tenant's active users in key order from the cursor, at most $4 of them,
// those holding the query kept. `strpos` is not an operator the trigram index serves, so
// the planner keeps to the primary key, and the outer LIMIT stops the walk at a page.
const SUBSTRING_WALK: &str = "SELECT w.id, ''::text, w.search_text FROM ( \
    SELECT u.id, u.search_text FROM users u \
    WHERE u.tenant_id = $1 AND NOT u.is_resigned AND u.id > $3 ORDER BY u.id LIMIT $4) w \
    WHERE strpos(w.search_text, $2) > 0 ORDER BY w.id LIMIT $5";

// Where a walk of $3 rows from $2 ended: the last key it read, if it read that many.
const WALK_END: &str = "SELECT u.id FROM users u \
    WHERE u.tenant_id = $1 AND NOT u.is_resigned AND u.id > $2 ORDER BY u.id OFFSET $3 LIMIT 1";

// The index plan: the three `LIKE`s name one trigram each (the query's rarest, repeated
// when it has fewer rare ones), which is all the GIN index reads; `strpos` re-checks the
// whole query. `u.id + 0` keeps the planner from walking the primary key in order instead
// (the walk is chosen in Rust, above).
const SUBSTRING_INDEXED: &str = "SELECT u.id, ''::text, u.search_text FROM users u \
    WHERE u.tenant_id = $1 AND NOT u.is_resigned AND u.search_text LIKE $2 \
    AND u.search_text LIKE $3 AND u.search_text LIKE $4 AND strpos(u.search_text, $5) > 0 \
    AND u.id > $6 ORDER BY u.id + 0 LIMIT $7";

/// A random sample of the active users' search texts, with how many of them hold each
/// trigram that `pg_trgm` indexes, shared by all searches of the store and refreshed in the
/// background once it is older than [`SAMPLE_TTL`].
#[derive(Default)]
pub(crate) struct TextSample {
    current: RwLock<Option<Arc<Sample>>>,
    /// Set while a refresh runs, so that only one does.
    loading: AtomicBool,
}

struct Sample {
    texts: Vec<String>,
    /// Sampled texts holding each trigram (three alphanumeric characters).
    trigrams: HashMap<[char; 3], u32>,
    /// Active users in the table, estimated.
    rows: f64,
    read_at: Instant,
}

/// Clears a "sample being read" flag when dropped.
struct Loading<'a>(&'a AtomicBool);

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The substring tier's plan for one query.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Walk the primary key, reading at most `rows` rows before the index takes over with
    /// `then`.
    Walk { rows: i64, then: [String; 3] },
    /// Ask the index for these three trigrams (the rarest repeated when the query has fewer
    /// rare ones).
    Indexed([String; 3]),
    /// Nothing indexable and no estimate: walk to the end.
    WalkAll,
}

/// The query's windows of three alphanumeric characters: the trigrams `pg_trgm` extracts
/// from `LIKE '%q%'` (it splits words at other characters), each once.
fn trigrams(q: &str) -> Vec<[char; 3]> {
    let chars: Vec<char> = q.chars().collect();
    let mut out: Vec<[char; 3]> = Vec::new();
    for w in chars.windows(3) {
        if w.iter().all(|c| c.is_alphanumeric()) {
            let t = [w[0], w[1], w[2]];
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

impl Sample {
    fn of(texts: Vec<String>, rows: f64) -> Self {
        let mut counts: HashMap<[char; 3], u32> = HashMap::new();
        let mut seen: Vec<[char; 3]> = Vec::new();
        for text in &texts {
            seen.clear();
            seen.extend(trigrams(text));
            for t in &seen {
                *counts.entry(*t).or_default() += 1;
            }
        }
        Self {
            texts,
            trigrams: counts,
            rows: rows.max(1.0),
            read_at: Instant::now(),
        }
    }

    /// Chooses the plan for a page of `need` candidates of the substring `q`.
    // Counts of a few thousand rows and pages of a few dozen are exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    fn plan(&self, q: &str, need: usize) -> Plan {
        let n = self.texts.len().max(1) as f64;
        // The rarest trigram, then up to two more: first those that do not overlap the
        // trigrams already taken (an overlapping one, `afa` beside `maf`, is held by much
        // the same users and removes few candidates) while they are not common, then the
        // next rarest of the rest while they are about as rare as the first.
        let mut tris: Vec<(usize, u32, [char; 3])> = trigrams(q)
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i, self.trigrams.get(&t).copied().unwrap_or(0), t))
            .collect();
        tris.sort_by_key(|&(i, c, _)| (c, i));
        #[allow(clippy::cast_possible_truncation)]
        let common = (COMMON_SHARE * n) as u32;
        let chosen = tris.first().map(|&(i0, c, t)| {
            let mut picked: Vec<(usize, [char; 3])> = vec![(i0, t)];
            for &(i, cj, u) in &tris[1..] {
                let apart = picked.iter().all(|&(k, _)| i.abs_diff(k) >= 3);
                if picked.len() < 3 && apart && cj <= common.max(TRIGRAM_RATIO * c.max(1)) {
                    picked.push((i, u));
                }
            }
            for &(i, cj, u) in &tris[1..] {
                let taken = picked.iter().any(|&(k, _)| k == i);
                if picked.len() < 3 && !taken && cj <= TRIGRAM_RATIO * c.max(1) {
                    picked.push((i, u));
                }
            }
            let at = |k: usize| picked.get(k).map_or(t, |p| p.1).iter().collect::<String>();
            (c, [at(0), at(1), at(2)])
        });
        // Rows holding the query, as a share of the sample; none seen counts as half a row.
        let hits = self.texts.iter().filter(|t| t.contains(q)).count();
        let density = (hits as f64).max(0.5) / n;
        let walk_rows = (need as f64 / density).min(self.rows);
        let Some((count, pair)) = chosen else {
            // No trigram to ask the index for: a walk is the only plan.
            return Plan::WalkAll;
        };
        let candidates = f64::from(count).max(0.5) / n * self.rows;
        if hits > 0 && walk_rows <= candidates * WALK_ROWS_PER_CANDIDATE {
            let rows = (walk_rows * WALK_SLACK).clamp(MIN_WALK_ROWS, MAX_WALK_ROWS);
            return Plan::Walk {
                rows: rows as i64,
                then: pair,
            };
        }
        Plan::Indexed(pair)
    }
}

impl TextSample {
    /// The current sample, reading the first one now (a search waits for it once per
    /// process) and starting a background refresh of a stale one. `None` while the first
    /// one is being read by another search, or when it could not be read.
    async fn get(self: &Arc<Self>, pool: &PgPool) -> Option<Arc<Sample>> {
        let current = self.current.read().ok().and_then(|c| c.clone());
        match current {
            Some(sample) => {
                if sample.read_at.elapsed() >= SAMPLE_TTL
                    && !self.loading.swap(true, Ordering::AcqRel)
                {
                    let this = Arc::clone(self);
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let _loading = Loading(&this.loading);
                        this.refresh(&pool).await;
                    });
                }
                Some(sample)
            }
            // Searches that start while the first sample is read use the fallback plan
            // rather than each reading a sample of their own.
            None if self.loading.swap(true, Ordering::AcqRel) => None,
            None => {
                // Cleared however this ends: the search (and this read with it) is dropped
                // when its client hangs up.
                let _loading = Loading(&self.loading);
                self.refresh(pool).await;
                self.current.read().ok().and_then(|c| c.clone())
            }
        }
    }

    async fn refresh(&self, pool: &PgPool) {
        match read_sample(pool).await {
            Ok(sample) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Some(Arc::new(sample));
                }
            }
            // Searches still work without a sample (the index plan for every query); the
            // next search after the TTL tries again.
            Err(err) => tracing::warn!("failed to sample the users' search texts: {err}"),
        }
    }
}

/// Reads a block sample of about [`SAMPLE_ROWS`] active users' search texts.
async fn read_sample(pool: &PgPool) -> Result<Sample, StoreError> {
    // `reltuples` is -1 before the first ANALYZE; the sample then reads the first rows.
    let rows: f64 =
        sqlx::query_scalar("SELECT reltuples::float8 FROM pg_class WHERE oid = 'users'::regclass")
            .fetch_one(pool)
            .await
            .context("count users for the search sample")?;
    #[allow(clippy::cast_precision_loss)]
    let percent = if rows > 0.0 {
        (200.0 * SAMPLE_ROWS as f64 / rows).min(100.0)
    } else {
        100.0
    };
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT search_text FROM users TABLESAMPLE SYSTEM ($1) \
         WHERE NOT is_resigned AND search_text <> '' LIMIT $2",
    )
    .bind(percent)
    .bind(SAMPLE_ROWS)
    .fetch_all(pool)
    .await
    .context("sample the users' search texts")?;
    #[allow(clippy::cast_precision_loss)]
    let rows = rows.max(texts.len() as f64);
    Ok(Sample::of(texts, rows))
}

fn like_trigram(t: &str) -> String {
    // Alphanumeric characters only, so nothing needs escaping.
    format!("%{t}%")
}

/// Substring candidates from key `after` on, in key order: `need` of them, or fewer when
/// the tier has no more.
async fn substring_candidates(
    pool: &PgPool,
    sample: &Arc<TextSample>,
    tenant: TenantId,
    q: &str,
    after: i64,
    need: usize,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    // Without a sample (being read by another search, or unreadable), the index over the
    // first three trigrams.
    let plan = if let Some(s) = sample.get(pool).await {
        s.plan(q, need)
    } else {
        let tris = trigrams(q);
        match tris.first() {
            None => Plan::WalkAll,
            Some(first) => {
                let at = |k: usize| tris.get(k).unwrap_or(first).iter().collect::<String>();
                Plan::Indexed([at(0), at(1), at(2)])
            }
        }
    };
    run_plan(pool, tenant, q, after, need, plan).await
}

/// Runs one plan of the substring tier.
async fn run_plan(
    pool: &PgPool,
    tenant: TenantId,
    q: &str,
    after: i64,
    need: usize,
    plan: Plan,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    let need_i = i64::try_from(need).unwrap_or(i64::MAX);
    let (walk_rows, then) = match plan {
        Plan::Indexed(pair) => return indexed(pool, tenant, q, &pair, after, need_i).await,
        Plan::WalkAll => (i64::MAX, None),
        Plan::Walk { rows, then } => (rows, Some(then)),
    };
    let mut rows: Vec<(i64, String, String)> = sqlx::query_as(SUBSTRING_WALK)
        .bind(tenant.0)
        .bind(q)
        .bind(after)
        .bind(walk_rows)
        .bind(need_i)
        .fetch_all(pool)
        .await
        .context("substring search (walk)")?;
    let Some(pair) = then else {
        return Ok(rows);
    };
    if rows.len() >= need {
        return Ok(rows);
    }
    // The walk read its rows without filling the page: the index goes on from its end.
    let end: Option<i64> = sqlx::query_scalar(WALK_END)
        .bind(tenant.0)
        .bind(after)
        .bind(walk_rows - 1)
        .fetch_optional(pool)
        .await
        .context("substring search (end of walk)")?;
    let Some(end) = end else {
        return Ok(rows);
    };
    let more = indexed(pool, tenant, q, &pair, end, need_i - rows.len() as i64).await?;
    rows.extend(more);
    Ok(rows)
}

async fn indexed(
    pool: &PgPool,
    tenant: TenantId,
    q: &str,
    pair: &[String; 3],
    after: i64,
    need: i64,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    sqlx::query_as(SUBSTRING_INDEXED)
        .bind(tenant.0)
        .bind(like_trigram(&pair[0]))
        .bind(like_trigram(&pair[1]))
        .bind(like_trigram(&pair[2]))
        .bind(q)
        .bind(after)
        .bind(need)
        .fetch_all(pool)
        .await
        .context("substring search (index)")
}

async fn candidates(
    pool: &PgPool,
    sample: &Arc<TextSample>,
    tenant: TenantId,
    q: &SearchQuery,
    tier: SearchTier,
    after: Option<&SearchCursor>,
    n: usize,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    if let Some((low, high)) = q.term_range(tier) {
        let (term, key) = after.map_or((low.clone(), -1), |c| (c.term.clone(), c.key.0));
        sqlx::query_as(TERMS_PAGE)
            .bind(tenant.0)
            .bind(low)
            .bind(high)
            .bind(term)
            .bind(key)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .context("search terms")
    } else {
        substring_candidates(
            pool,
            sample,
            tenant,
            q.as_str(),
            after.map_or(-1, |c| c.key.0),
            n,
        )
        .await
    }
}

/// A page of matches with their places (see `Store::search_users`).
pub(crate) async fn search_users(
    pool: &PgPool,
    sample: &Arc<TextSample>,
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<(User, SearchCursor)>, StoreError> {
    let mut found: Vec<SearchCursor> = Vec::with_capacity(limit);
    let mut cursor = after;
    'tiers: for tier in SearchTier::ALL {
        if found.len() == limit {
            break;
        }
        if cursor.as_ref().is_some_and(|c| c.tier > tier)
            || (tier == SearchTier::Substring && !q.matches_substrings())
        {
            continue;
        }
        // A substring page reads what it lacks and a few more (for users `place_of` drops
        // as already listed by prefix): its walk costs in proportion, unlike a term range.
        let batch = if tier == SearchTier::Substring {
            limit - found.len() + SUBSTRING_SLACK
        } else {
            (limit - found.len()).max(MIN_BATCH)
        };
        loop {
            let within = cursor.as_ref().filter(|c| c.tier == tier);
            let rows = candidates(pool, sample, tenant, q, tier, within, batch).await?;
            let exhausted = rows.len() < batch;
            for (key, term, text) in rows {
                let place = SearchCursor {
                    tier,
                    term,
                    key: UserKey(key),
                };
                let kept =
                    place_of(&text, q).is_some_and(|(t, term)| t == tier && term == place.term);
                cursor = Some(place.clone());
                if kept {
                    found.push(place);
                    if found.len() == limit {
                        break 'tiers;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let lookups: Vec<UserLookup> = found.iter().map(|p| UserLookup::Key(p.key)).collect();
    let mut by_key: HashMap<i64, User> = users::get_users(pool, tenant, &lookups)
        .await?
        .into_iter()
        .map(|u| (u.key.0, u))
        .collect();
    // A user resigned between the two reads is left out rather than shown.
    Ok(found
        .into_iter()
        .filter_map(|p| {
            by_key
                .remove(&p.key.0)
                .filter(|u| !u.status.is_resigned)
                .map(|u| (u, p))
        })
        .collect())
}

/// Computes `search_text` for users that lack it (every user once, right after migration
/// 0006; pinyin needs Rust), a chunk per statement; the triggers index each row as it is
/// written. Safe to run from several nodes at once: a row is only written while still empty.
pub(crate) async fn backfill(pool: &PgPool) -> Result<(), StoreError> {
    let mut last = -1_i64;
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, doc FROM users WHERE search_text = '' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(last)
        .bind(BACKFILL_CHUNK)
        .fetch_all(pool)
        .await
        .context("read users to index")?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut texts = Vec::with_capacity(rows.len());
        for (id, doc) in &rows {
            last = *id;
            // A document that does not decode is indexed with no terms (`[]`), so that the
            // backfill ends; reading that user fails loudly anyway.
            let text = decode_profile(doc).map_or_else(|_| "[]".to_owned(), |p| search_text(&p));
            ids.push(*id);
            texts.push(text);
        }
        sqlx::query(
            "UPDATE users u SET search_text = v.t FROM UNNEST($1::bigint[], $2::text[]) AS v(id, t) \
             WHERE u.id = v.id AND u.search_text = ''",
        )
        .bind(&ids)
        .bind(&texts)
        .execute(pool)
        .await
        .context("index users")?;
    }
}

#[cfg(test)]
mod tests {
    use roster_core::TenantId;

    use super::{run_plan, trigrams, Plan, Sample};

    /// A sample of `n` texts: `common` of them hold `zhangwei` (so `ang` and `wei` are
    /// common), one holds `mafangting`, and every text holds the digits `000` (as every
    /// mobile of a country does) while only `dense` hold `000000`.
    fn sample(n: usize, dense: usize) -> Sample {
        let texts = (0..n)
            .map(|i| {
                let name = if i % 3 == 0 { "zhangwei" } else { "lina" };
                let extra = if i == 7 { " mafangting" } else { "" };
                let digits = if i < dense { "000000" } else { "130009" };
                format!("[\"{name}{extra}\",\"{digits}{i:05}\"]")
            })
            .collect();
        Sample::of(texts, 1_000_000.0)
    }

    #[test]
    fn trigrams_are_the_windows_pg_trgm_indexes() {
        let t =
            |q: &str| -> Vec<String> { trigrams(q).iter().map(|t| t.iter().collect()).collect() };
        assert_eq!(t("ngwei"), ["ngw", "gwe", "wei"]);
        // Punctuation splits words; no window spans it.
        assert_eq!(t("ab.cde"), ["cde"]);
        assert_eq!(t("马芳婷"), ["马芳婷"]);
        assert!(t("a.b").is_empty());
        assert_eq!(t("000000"), ["000"]);
    }

    #[test]
    fn a_query_with_a_rare_trigram_asks_the_index_for_it() {
        let s = sample(6000, 10);
        match s.plan("mafangting", 32) {
            // `maf` and the other trigrams of `fangting` are in one sampled text each;
            // `ang` in a third of them, so it is never asked for.
            Plan::Indexed([a, b, c]) => {
                assert_eq!(a, "maf");
                // Neither the common `ang` nor `afa`/`fan`, which overlap `maf` (held by the
                // same users): trigrams from further along the query.
                assert_eq!((b.as_str(), c.as_str()), ("ngt", "ing"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dense_query_walks_and_a_rare_query_of_common_trigrams_uses_the_index() {
        // `000000` in a fifth of the sample: a page is a short walk, while the index would
        // hand over every user (all hold `000`).
        match sample(6000, 1200).plan("000000", 32) {
            Plan::Walk { rows, then } => {
                assert!((1024..=65_536).contains(&rows), "{rows}");
                assert_eq!(then, ["000".to_owned(), "000".to_owned(), "000".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        // Held by no sampled text: a walk could read the whole table, the index reads the
        // holders of `000` (all), which is still bounded by the table.
        assert!(matches!(
            sample(6000, 0).plan("000000", 32),
            Plan::Indexed(_)
        ));
    }

    #[test]
    fn a_common_trigram_is_not_asked_for_beside_a_rare_one() {
        // Every mobile holds `300`; `004` and `049` are in 2% of the texts and `499` in 0.5%.
        // The index is asked for the rare ones only: `300`'s posting list is the table.
        let texts = (0..8000)
            .map(|i| {
                let tail = match i % 200 {
                    0 => "0499",
                    1..=3 => "0490",
                    _ => "1234",
                };
                format!("[\"+8613000{tail}\"]")
            })
            .collect();
        let s = Sample::of(texts, 1_000_000.0);
        for q in ["3000499", "13000499"] {
            match s.plan(q, 32) {
                Plan::Indexed([a, b, c]) => {
                    assert_eq!(a, "499", "{q}");
                    for t in [&b, &c] {
                        assert!(["004", "049"].contains(&t.as_str()), "{q}: {b} {c}");
                    }
                    assert_ne!(b, c, "{q}");
                }
                other => panic!("{q}: {other:?}"),
            }
        }
        // `304` is in no sampled text, and every other trigram of the query is in 40 or
        // more: the unseen one is asked for alone.
        assert_eq!(
            s.plan("130499", 32),
            Plan::Indexed(["304".to_owned(), "304".to_owned(), "304".to_owned()])
        );
    }

    #[test]
    fn a_query_without_trigrams_walks() {
        assert_eq!(sample(100, 0).plan("a.b", 32), Plan::WalkAll);
    }

    /// Every plan of the substring tier gives the same candidates in the same order: the
    /// walk alone, a walk too short for a page that hands over to the index where it
    /// stopped (the subtle part), the index alone, and all of them from a cursor.
    #[tokio::test]
    async fn every_substring_plan_finds_the_same_users_in_key_order() {
        let Some((store, _)) = crate::test_store_and_options("every_substring_plan")
            .await
            .unwrap()
        else {
            return;
        };
        let pool = store.pool.clone();
        sqlx::raw_sql("INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0), (2, 'Other', 'k2', 0)")
            .execute(&pool)
            .await
            .unwrap();
        // 600 users of tenant 1 and some of tenant 2 between them; every seventh holds
        // `ngting`, and every user holds `000`.
        for id in 1..=700_i64 {
            let tenant = if id % 10 == 5 { 2 } else { 1 };
            let name = if id % 7 == 0 { "fangting" } else { "zhangwei" };
            let text = format!("[\"{name}\",\"13000{id:06}\"]");
            sqlx::query(
                "INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, \
                   name, is_resigned, is_frozen, is_activated, is_exited, is_unjoin, \
                   created_at, updated_at, doc, search_text) \
                 VALUES ($1, $2, 'ou_' || $1, 'on_' || $1, 'u' || $1, 'u' || $1, $3, $4, \
                   false, true, false, false, 0, 0, '{}', $5)",
            )
            .bind(id)
            .bind(tenant)
            .bind(name)
            .bind(id % 50 == 0)
            .bind(text)
            .execute(&pool)
            .await
            .unwrap();
        }
        let expected: Vec<i64> = (1..=700)
            .filter(|id| id % 10 != 5 && id % 7 == 0 && id % 50 != 0)
            .collect();
        let pair = || ["ngt".to_owned(), "tin".to_owned(), "ing".to_owned()];
        let plans = [
            Plan::WalkAll,
            Plan::Walk {
                rows: 5,
                then: pair(),
            },
            Plan::Walk {
                rows: 100_000,
                then: pair(),
            },
            Plan::Indexed(pair()),
        ];
        for plan in plans {
            let label = format!("{plan:?}");
            for (after, need) in [(-1, 1000), (-1, 3), (140, 4), (690, 10)] {
                let found = run_plan(&pool, TenantId(1), "ngting", after, need, plan.clone())
                    .await
                    .unwrap();
                let keys: Vec<i64> = found.iter().map(|r| r.0).collect();
                let want: Vec<i64> = expected
                    .iter()
                    .copied()
                    .filter(|k| *k > after)
                    .take(need)
                    .collect();
                assert_eq!(keys, want, "{label}, after {after}, need {need}");
            }
        }
    }
}
