//! Ranked user search (migration 0006; the order is defined in `roster_core::search`).
//!
//! The whole and suffix tiers walk `user_search_terms` (primary key `(tenant_id, term,
//! user_key)`, terms in byte order through `COLLATE "C"`) over the query's prefix range from
//! the cursor on. The substring tier uses the `pg_trgm` GIN index `users_search_trgm_idx`
//! through `LIKE '%…%'`, by key from the cursor's key on. A candidate is kept only where
//! `roster_store_common::place_of` puts it, exactly as on SQLite.

use std::collections::HashMap;

use roster_core::search::{SearchCursor, SearchQuery, SearchTier};
use roster_core::{StoreError, TenantId, User, UserKey, UserLookup};
use roster_store_common::{decode_profile, place_of, search_text};
use sqlx::PgPool;

use crate::errors::Context;
use crate::users;

/// Candidate rows read per statement (see the SQLite store).
const MIN_BATCH: usize = 32;

/// Users whose `search_text` is computed per statement by the backfill at open.
const BACKFILL_CHUNK: i64 = 1000;

const TERMS_PAGE: &str = "SELECT t.user_key, t.term::text, u.search_text \
    FROM user_search_terms t JOIN users u ON u.id = t.user_key \
    WHERE t.tenant_id = $1 AND t.term >= ($2 COLLATE \"C\") AND t.term < ($3 COLLATE \"C\") \
    AND (t.term, t.user_key) > ($4 COLLATE \"C\", $5) \
    ORDER BY t.term, t.user_key LIMIT $6";

// Only the LIKE filters here (exact, so every row contains the query): with extra
// `strpos` conditions the planner underestimates the matches and sorts every hit of a common
// substring from the trigram index, where walking the primary key finds a page at once.
// Users already listed by prefix are dropped by `place_of` below.
const SUBSTRING_PAGE: &str = "SELECT u.id, ''::text, u.search_text FROM users u \
    WHERE u.tenant_id = $1 AND NOT u.is_resigned AND u.search_text LIKE $2 AND u.id > $3 \
    ORDER BY u.id LIMIT $4";

/// `%q%` for `LIKE`, with the pattern characters of the query escaped (normalised queries
/// hold no backslash, the default escape character).
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if c == '%' || c == '_' {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

async fn candidates(
    pool: &PgPool,
    tenant: TenantId,
    q: &SearchQuery,
    tier: SearchTier,
    after: Option<&SearchCursor>,
    n: usize,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    if let Some((low, high)) = q.term_range(tier) {
        let (term, key) = after.map_or((low.clone(), -1), |c| (c.term.clone(), c.key.0));
        sqlx::query_as(TERMS_PAGE)
            .bind(tenant.0)
            .bind(low)
            .bind(high)
            .bind(term)
            .bind(key)
            .bind(n)
            .fetch_all(pool)
            .await
            .context("search terms")
    } else {
        sqlx::query_as(SUBSTRING_PAGE)
            .bind(tenant.0)
            .bind(like_pattern(q.as_str()))
            .bind(after.map_or(-1, |c| c.key.0))
            .bind(n)
            .fetch_all(pool)
            .await
            .context("substring search")
    }
}

/// A page of matches with their places (see `Store::search_users`).
pub(crate) async fn search_users(
    pool: &PgPool,
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
        let batch = (limit - found.len()).max(MIN_BATCH);
        loop {
            let within = cursor.as_ref().filter(|c| c.tier == tier);
            let rows = candidates(pool, tenant, q, tier, within, batch).await?;
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
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c"), "%a\\%b\\_c%");
    }
}
