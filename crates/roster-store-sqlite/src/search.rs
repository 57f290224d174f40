//! Ranked user search (migration 0006; the order is defined in `roster_core::search`).
//!
//! The whole and suffix tiers walk `user_search_terms` (primary key `(tenant_id, term,
//! user_key)`) over the query's prefix range from the cursor on, so a page costs a range
//! scan of about `limit` index entries, whatever the number of users. The substring tier
//! asks the FTS5 trigram index `users_fts` for the rows holding every trigram of the query,
//! from the cursor's key on in rowid order, and re-checks the text. A candidate is kept only
//! where `roster_store_common::place_of` puts it, which drops the other rows of a user who
//! matches by several terms, and in the substring tier the users already listed by prefix.

use std::collections::HashMap;

use roster_core::search::{SearchCursor, SearchQuery, SearchTier, SUFFIX_MARK};
use roster_core::{StoreError, TenantId, User, UserKey, UserLookup};
use roster_store_common::{decode_profile, place_of, search_text};
use rusqlite::{params, Connection, Transaction};
use rusqlite_migration::HookResult;

use crate::errors::SqlContext;
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

/// The most trigrams joined by `AND` into one FTS5 query: each costs a doclist walk, and beyond a few
/// the candidates are already few.
const MAX_TRIGRAMS: usize = 6;

/// The FTS5 query for a substring: its distinct trigrams after the first, at most
/// [`MAX_TRIGRAMS`] of them spread over the query, each as a quoted token, joined by `AND` (the table
/// is `detail=none`, which has no phrase queries). The first trigram (and any later copy of
/// it) is left out when there are others because queries start where values start (`139…`
/// of every mobile, `sus…` of every Susan), so it tends to be the most common and its
/// doclist the longest to intersect. That selects a superset of the rows containing the
/// substring; `instr` then checks them.
fn trigram_query(q: &str) -> String {
    let chars: Vec<char> = q.chars().collect();
    let trigram = |i: usize| chars[i..i + 3].iter().collect::<String>();
    let first = trigram(0);
    let mut picked: Vec<String> = Vec::new();
    for t in (1..=chars.len() - 3).map(trigram) {
        if t != first && !picked.contains(&t) {
            picked.push(t);
        }
    }
    if picked.len() > MAX_TRIGRAMS {
        let n = picked.len();
        picked = (0..MAX_TRIGRAMS)
            .map(|i| picked[i * n / MAX_TRIGRAMS].clone())
            .collect();
    }
    if picked.is_empty() {
        picked.push(first);
    }
    picked
        .into_iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn candidates(
    conn: &Connection,
    tenant: TenantId,
    q: &SearchQuery,
    tier: SearchTier,
    after: Option<&SearchCursor>,
    n: usize,
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
        conn.prepare_cached(SUBSTRING_PAGE)
            .context("prepare substring search")?
            .query_map(
                params![
                    tenant.0,
                    trigram_query(text),
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
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<SearchCursor>, StoreError> {
    let mut out = Vec::with_capacity(limit);
    let mut cursor = after;
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
            let rows = candidates(conn, tenant, q, tier, within, batch)?;
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
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<(User, SearchCursor)>, StoreError> {
    let found = {
        let tx = conn.transaction().context("begin search users")?;
        places(&tx, tenant, q, after, limit)?
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

#[cfg(test)]
mod tests {
    use super::trigram_query;

    #[test]
    fn trigram_queries_skip_the_first_trigram_and_repeat_none() {
        assert_eq!(trigram_query("abc"), "\"abc\"");
        assert_eq!(trigram_query("abcd"), "\"bcd\"");
        assert_eq!(trigram_query("abcdef"), "\"bcd\" AND \"cde\" AND \"def\"");
        assert_eq!(
            trigram_query("13977139"),
            "\"397\" AND \"977\" AND \"771\" AND \"713\""
        );
        assert_eq!(trigram_query("aaaaaa"), "\"aaa\"");
        assert_eq!(trigram_query("张三丰x"), "\"三丰x\"");
        assert_eq!(
            trigram_query(&"abcdefghijklmnop".repeat(2))
                .matches(" AND ")
                .count(),
            5
        );
    }
}
