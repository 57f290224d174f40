//! Ranked user search (migration 0006; the order is defined in `roster_core::search`).
//!
//! The whole and suffix tiers walk `user_search_terms` (primary key `(tenant_id, term,
//! user_key)`) over the query's prefix range from the cursor on, so a page costs a range
//! scan of about `limit` index entries, whatever the number of users. The substring tier
//! asks the FTS5 trigram index `users_fts` for the rows holding the query's rarest trigrams
//! (see `substring_match`), from the cursor's key on in rowid order, and re-checks the text. A candidate is kept only
//! where `roster_store_common::place_of` puts it, which drops the other rows of a user who
//! matches by several terms, and in the substring tier the users already listed by prefix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use roster_core::search::{SearchCursor, SearchQuery, SearchTier, SUFFIX_MARK};
use roster_core::{StoreError, TenantId, User, UserKey, UserLookup};
use roster_store_common::{decode_profile, place_of, search_text};
use rusqlite::{params, Connection, Transaction};
use rusqlite_migration::HookResult;

use crate::errors::SqlContext;
use crate::snapshot::ReadSnapshot;
use crate::users;

/// Candidate rows read per statement. Most candidates are kept, so one statement usually
/// fills a page; duplicates of a user (one row per matching term) cost a few extra rows.
const MIN_BATCH: usize = 32;

/// One candidate: the user's key, the matching term (empty in the substring tier) and the
/// user's stored terms.
type Candidate = (i64, String, String);

// CROSS JOIN fixes the join order (SQLite never reorders it): the index range drives, and
// users are probed by key. Left to itself the planner may start from a users index on the
// tenant and probe the search structures for each of the tenant's rows.
const TERMS_PAGE: &str = "SELECT t.user_key, t.term, u.search_text \
    FROM user_search_terms t CROSS JOIN users u ON u.id = t.user_key \
    WHERE t.tenant_id = ?1 AND t.term >= ?2 AND t.term < ?3 \
    AND (t.term, t.user_key) > (?4, ?5) \
    ORDER BY t.term, t.user_key LIMIT ?6";

const SUBSTRING_PAGE: &str = "SELECT u.id, '', u.search_text \
    FROM users_fts f CROSS JOIN users u ON u.id = f.rowid \
    WHERE users_fts MATCH ?2 AND f.rowid > ?3 AND u.tenant_id = ?1 AND NOT u.is_resigned \
    AND instr(u.search_text, ?4) > 0 AND instr(u.search_text, ?5) = 0 \
    AND instr(u.search_text, ?6) = 0 \
    ORDER BY f.rowid LIMIT ?7";

/// At most this many of a query's trigrams are probed, spread over the query.
const MAX_PROBES: usize = 8;
/// A probe stops counting a trigram's rows here. Counting costs about 0.1 ms per thousand
/// rows, so the first probe of a very common trigram costs a few milliseconds; its count is
/// then remembered ([`TrigramCounts`]). Trigrams this common are only used when nothing
/// rarer is left.
const PROBE_CAP: i64 = 65_536;

/// How long a probed count is trusted. Trigram frequencies move slowly (an import of a
/// tenth of the directory barely changes which trigrams are rare), so a stale count costs
/// at most a slower query, never a wrong answer.
const COUNT_TTL: Duration = Duration::from_mins(10);
/// Counts remembered at most; past this the cache is emptied and refilled.
const MAX_COUNTS: usize = 100_000;

/// Trigrams held by more rows than this are "common": their counts are loaded in the
/// background for all of them at once, because probing one costs 0.1 ms per thousand rows
/// (several milliseconds for the commonest), while probing a rarer one costs at most 0.1 ms.
const COMMON_ROWS: i64 = 1024;

/// Trigram counts, shared by the store's readers. Two sources: the counts of all common
/// trigrams, read in one background pass over the `users_fts_vocab` table (migration
/// 0012) when the store opens and again when they are older than [`COUNT_TTL`]; and counts
/// probed by searches for the rest, remembered for [`COUNT_TTL`]. Without the first, every
/// query's first execution counted its common trigrams one by one (15-30 ms for a full
/// pinyin name at a million users, against 0.4-3 ms for its repeats).
pub(crate) struct TrigramCounts {
    probed: Mutex<HashMap<String, (i64, Instant)>>,
    /// The common trigrams' counts and when they were read (`None`: never yet).
    common: RwLock<(HashMap<String, i64>, Option<Instant>)>,
    /// Set while a background pass runs, so that only one does.
    loading: AtomicBool,
    /// Counts calls of [`Self::refresh_now`], so that a pass that began before one does not
    /// pass its older counts off as fresh.
    invalidations: AtomicU64,
    /// The store's reader pool; the background pass borrows one reader for its read.
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl TrigramCounts {
    pub(crate) fn new(readers: r2d2::Pool<SqliteConnectionManager>) -> Self {
        Self {
            probed: Mutex::default(),
            common: RwLock::default(),
            loading: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            readers,
        }
    }

    fn get(&self, t: &str) -> Option<i64> {
        if let Some(n) = self.probed.lock().ok().and_then(|map| {
            map.get(t)
                .filter(|(_, at)| at.elapsed() < COUNT_TTL)
                .map(|(n, _)| *n)
        }) {
            return Some(n);
        }
        // A trigram the last pass did not list was held by at most COMMON_ROWS rows then;
        // probing it is cheap, so it is probed for a fresh count.
        self.common.read().ok()?.0.get(t).copied()
    }

    fn put(&self, t: &str, n: i64) {
        // A poisoned lock only means another reader panicked mid-insert; the map is still
        // a valid cache, and skipping the insert is harmless.
        if let Ok(mut map) = self.probed.lock() {
            if map.len() >= MAX_COUNTS {
                map.clear();
            }
            map.insert(t.to_owned(), (n, Instant::now()));
        }
    }

    /// Starts a background pass over the vocabulary now (unless one is running): the data
    /// changed a lot.
    pub(crate) fn refresh_now(self: &Arc<Self>) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut common) = self.common.write() {
            common.1 = None;
        }
        self.refresh_if_stale();
    }

    /// Starts a background pass over the vocabulary when the common counts are missing or
    /// older than [`COUNT_TTL`] and no pass is running. Searches never wait for it: until
    /// it ends they probe as before.
    pub(crate) fn refresh_if_stale(self: &Arc<Self>) {
        let stale = self
            .common
            .read()
            .map_or(true, |c| c.1.is_none_or(|at| at.elapsed() >= COUNT_TTL));
        if !stale || self.loading.swap(true, Ordering::AcqRel) {
            return;
        }
        let counts = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("roster-trigram-counts".into())
            .spawn(move || {
                let generation = counts.invalidations.load(Ordering::Acquire);
                let loaded = counts.load_common();
                // Counts read across a `refresh_now` are kept but stay stale, so that the
                // next search starts a pass that sees the change.
                let read_at =
                    (counts.invalidations.load(Ordering::Acquire) == generation).then(Instant::now);
                if let Ok(mut common) = counts.common.write() {
                    match loaded {
                        Ok(map) => *common = (map, read_at),
                        Err(err) => {
                            // Searches still work by probing; try again after the TTL.
                            tracing::warn!(
                                "failed to read the search index's trigram counts: {err}"
                            );
                            common.1 = Some(Instant::now());
                        }
                    }
                }
                counts.loading.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.loading.store(false, Ordering::Release);
        }
    }

    /// One pass over the FTS5 vocabulary: every trigram held by more than [`COMMON_ROWS`]
    /// rows, with its row count.
    fn load_common(&self) -> Result<HashMap<String, i64>, StoreError> {
        let conn = self.readers.get().map_err(|e| {
            StoreError::Backend(format!("trigram counts: get reader connection: {e}"))
        })?;
        let mut stmt = conn
            .prepare("SELECT term, doc FROM users_fts_vocab WHERE doc > ?1")
            .context("prepare trigram counts")?;
        let rows = stmt
            .query_map([COMMON_ROWS], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .context("read trigram counts")?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .context("read trigram counts")
    }
}

/// The distinct trigrams of a query of three or more characters, in order, at most
/// [`MAX_PROBES`] of them spread evenly over it.
fn trigrams(q: &str) -> Vec<String> {
    let chars: Vec<char> = q.chars().collect();
    let mut all: Vec<String> = Vec::new();
    for t in chars.windows(3).map(|w| w.iter().collect::<String>()) {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    if all.len() > MAX_PROBES {
        let n = all.len();
        all = (0..MAX_PROBES)
            .map(|i| all[i * n / MAX_PROBES].clone())
            .collect();
    }
    all
}

/// The FTS5 query for a substring: its rarest trigrams, each a quoted token, joined by `AND`
/// (the table is `detail=none`, which has no phrase queries). That selects a superset of the
/// rows holding the substring, which `instr` then checks, so any choice of trigrams is
/// correct; the choice decides the cost. FTS5 walks the doclist of every trigram it is
/// given, so one common trigram is expensive (at a million users, `zhangweiming` by six
/// trigrams that hundreds of thousands of users hold took 8 ms, by its two rarest 0.5 ms),
/// while rare ones also leave few candidates to check. So each trigram's rows are counted
/// (up to [`PROBE_CAP`]) and the rarest are used. A sample of the rows would be cheaper but
/// is misleading: values like mobiles and employee numbers are sequential, so any window of
/// keys holds a few digit trigrams very often and the rest hardly at all.
fn substring_match(
    conn: &Connection,
    counts: &TrigramCounts,
    q: &str,
) -> Result<String, StoreError> {
    let quote = |t: &str| format!("\"{t}\"");
    let candidates = trigrams(q);
    if candidates.len() == 1 {
        return Ok(quote(&candidates[0]));
    }
    let mut counted: Vec<(i64, usize, &str)> = Vec::with_capacity(candidates.len());
    for (i, t) in candidates.iter().enumerate() {
        let n = if let Some(n) = counts.get(t) {
            n
        } else {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM users_fts WHERE users_fts MATCH ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.query_row(params![quote(t), PROBE_CAP], |r| r.get(0)))
                .context("probe trigram")?;
            counts.put(t, n);
            n
        };
        // Among equally common trigrams the later ones win: queries start where values
        // start (`139…` of every mobile, `zha…` of every Zhang), so early ones tend to be
        // the commonest beyond the cap.
        counted.push((n, usize::MAX - i, t));
    }
    counted.sort_unstable();
    let Some(&(first_n, _, first)) = counted.first() else {
        return Ok(quote(q));
    };
    // The second trigram should filter independently of the first: overlapping ones tend
    // to come together (every `guoli…` holds both `uol` and `oli`), so the rarest that
    // does not overlap the first is preferred while it is not much commoner. Trigrams at
    // the cap are left out unless there is nothing else (then the matches are likely
    // dense, and a page fills early in rowid order).
    let at = |t: &str| q.find(t).map_or(0, |b| q[..b].chars().count());
    let usable = |n: i64| n < PROBE_CAP && n <= first_n.saturating_mul(16).max(1024);
    let rest = counted.iter().skip(1).filter(|(n, _, _)| usable(*n));
    let apart = rest
        .clone()
        .find(|(_, _, t)| at(t).abs_diff(at(first)) >= 3);
    let mut chosen = vec![quote(first)];
    if let Some((_, _, t)) = apart.or_else(|| rest.clone().next()) {
        chosen.push(quote(t));
    }
    Ok(chosen.join(" AND "))
}

/// The substring tier's FTS5 query, chosen once per search before its first page.
struct Substring<'a> {
    counts: &'a TrigramCounts,
    fts: Option<String>,
}

fn candidates(
    conn: &Connection,
    tenant: TenantId,
    q: &SearchQuery,
    tier: SearchTier,
    after: Option<&SearchCursor>,
    n: usize,
    substring: &mut Substring<'_>,
) -> Result<Vec<Candidate>, StoreError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    if let Some((low, high)) = q.term_range(tier) {
        let (term, key) = after.map_or((low.as_str(), -1), |c| (c.term.as_str(), c.key.0));
        conn.prepare_cached(TERMS_PAGE)
            .context("prepare search terms")?
            .query_map(params![tenant.0, low, high, term, key, n], map)
            .context("search terms")?
            .collect::<Result<_, _>>()
            .context("read search terms")
    } else {
        let text = q.as_str();
        // The trigrams are chosen once per search, before its first substring page.
        let matching = match &substring.fts {
            Some(m) => m.clone(),
            None => substring
                .fts
                .insert(substring_match(conn, substring.counts, text)?)
                .clone(),
        };
        conn.prepare_cached(SUBSTRING_PAGE)
            .context("prepare substring search")?
            .query_map(
                params![
                    tenant.0,
                    matching,
                    after.map_or(-1, |c| c.key.0),
                    text,
                    format!("\"{text}"),
                    format!("\"{SUFFIX_MARK}{text}"),
                    n
                ],
                map,
            )
            .context("substring search")?
            .collect::<Result<_, _>>()
            .context("read substring search")
    }
}

/// The places of the next `limit` matches after `after`, in order.
fn places(
    conn: &Connection,
    counts: &TrigramCounts,
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<SearchCursor>, StoreError> {
    let mut out = Vec::with_capacity(limit);
    let mut cursor = after;
    let mut substring = Substring { counts, fts: None };
    for tier in SearchTier::ALL {
        if out.len() == limit {
            break;
        }
        if cursor.as_ref().is_some_and(|c| c.tier > tier)
            || (tier == SearchTier::Substring && !q.matches_substrings())
        {
            continue;
        }
        let batch = (limit - out.len()).max(MIN_BATCH);
        loop {
            let within = cursor.as_ref().filter(|c| c.tier == tier);
            let rows = candidates(conn, tenant, q, tier, within, batch, &mut substring)?;
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
                    out.push(place);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                break;
            }
        }
    }
    Ok(out)
}

/// A page of matches with their places (see `Store::search_users`).
pub(crate) fn search_users(
    conn: &mut Connection,
    counts: &TrigramCounts,
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<(User, SearchCursor)>, StoreError> {
    let found = {
        let tx = ReadSnapshot::begin(conn, "begin search users")?;
        places(&tx, counts, tenant, q, after, limit)?
    };
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let lookups: Vec<UserLookup> = found.iter().map(|p| UserLookup::Key(p.key)).collect();
    let mut by_key: HashMap<i64, User> = users::get_users(conn, tenant, &lookups)?
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

/// Migration 0006's hook: computes every user's `search_text` (terms need pinyin, which SQL
/// cannot do); the triggers index each row as it is written.
pub(crate) fn backfill(tx: &Transaction<'_>) -> HookResult {
    let mut read = tx.prepare("SELECT id, doc FROM users WHERE search_text = ''")?;
    let rows: Vec<(i64, String)> = read
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE users SET search_text = ?2 WHERE id = ?1")?;
    for (id, doc) in rows {
        // A document that does not decode stays unindexed rather than failing the
        // migration; reading that user fails loudly anyway.
        if let Ok(profile) = decode_profile(&doc) {
            update.execute(params![id, search_text(&profile)])?;
        }
    }
    Ok(())
}

/// The hook of migration 0015: recomputes the search terms of every user whose terms hold
/// text outside ASCII other than the suffix mark U+E000 (found, as in migration 0002's
/// hook, by having fewer characters than bytes) and rewrites those that changed; the triggers of migration 0006 move the index
/// along. ASCII-only terms cannot change, so most rows are only read.
pub(crate) fn reindex_non_ascii(tx: &Transaction<'_>) -> HookResult {
    let rows: Vec<(i64, String, String)> = tx
        .prepare(
            "SELECT id, doc, search_text FROM users \
             WHERE length(replace(search_text, char(57344), '')) \
                <> length(CAST(replace(search_text, char(57344), '') AS BLOB))",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE users SET search_text = ?2 WHERE id = ?1")?;
    for (id, doc, old) in rows {
        // A document that does not decode keeps its terms rather than failing the
        // migration; reading that user fails loudly anyway.
        if let Ok(profile) = decode_profile(&doc) {
            let new = search_text(&profile);
            if new != old {
                update.execute(params![id, new])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{trigrams, TrigramCounts, COMMON_ROWS, MAX_PROBES};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The background pass lists the trigrams held by more than `COMMON_ROWS` rows, with
    /// their exact counts, and leaves the rarer ones to be probed.
    #[test]
    fn common_trigram_counts_load_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let common = COMMON_ROWS + 5;
        let tx = conn.transaction().unwrap();
        for i in 0..common {
            // Only the index is needed here; `users_fts` is an external-content table.
            let text = if i < 3 {
                format!("xyzzy{i}")
            } else {
                format!("zhang{i}")
            };
            tx.execute(
                "INSERT INTO users_fts (rowid, search_text) VALUES (?1, ?2)",
                rusqlite::params![i + 1, text],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let readers = r2d2::Pool::new(r2d2_sqlite::SqliteConnectionManager::file(&path)).unwrap();
        let counts = Arc::new(TrigramCounts::new(readers));
        counts.refresh_if_stale();
        let started = Instant::now();
        while counts.loading.load(Ordering::Acquire) || counts.common.read().unwrap().1.is_none() {
            assert!(started.elapsed() < Duration::from_secs(10), "no pass ended");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(counts.get("zha"), Some(common - 3));
        assert_eq!(counts.get("han"), Some(common - 3));
        // Rare: not listed, so a search probes it.
        assert_eq!(counts.get("xyz"), None);
        // A fresh pass is not started again while the counts are young.
        counts.refresh_if_stale();
        assert!(!counts.loading.load(Ordering::Acquire));
    }

    #[test]
    fn trigrams_are_distinct_in_order_and_spread_over_long_queries() {
        assert_eq!(trigrams("abc"), ["abc"]);
        assert_eq!(trigrams("abcde"), ["abc", "bcd", "cde"]);
        assert_eq!(trigrams("aaaaaa"), ["aaa"]);
        assert_eq!(trigrams("张三丰x"), ["张三丰", "三丰x"]);
        let long = trigrams(&"abcdefghijklmnopqrstuvwxyz".repeat(2));
        assert_eq!(long.len(), MAX_PROBES);
        assert_eq!(long[0], "abc");
        assert_eq!(long[MAX_PROBES - 1], "wxy");
    }
}
