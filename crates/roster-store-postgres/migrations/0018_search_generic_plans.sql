-- Issue 5: a search's statements run with generic plans (docs/schema.md, "PostgreSQL
-- migration 0018").
--
-- The store prepares each statement once per connection. PostgreSQL plans a prepared
-- statement afresh for each of its first five runs, then keeps a generic plan only if that
-- looks no dearer than the custom ones, and for two of a search's statements it never did:
--
-- * The term tiers' page (terms in a range, from a cursor, with the suffix tier's first
--   rows after the whole tier's): a custom plan expects one row where the generic plan
--   expects thousands, so every run was planned again, 0.3-0.5 ms for 0.05 ms of
--   execution, in every search. The generic plan is the same walk of the terms' primary
--   key (with the store's sessions' `max_parallel_workers_per_gather = 0`). Through
--   `roster_search_terms` at a million users, `006596`, `zhang`, `zs` and `张三` took
--   0.28, 0.44, 0.30 and 0.28 ms against 0.51, 0.70, 0.56 and 0.52 ms (medians of six
--   runs, alternated).
-- * The substring tier over the whole table: with one `LIKE` pattern (most queries, since
--   the store joins a query's trigrams into one pattern) the generic plan's estimate is
--   5 000 rows against a custom plan's one, so every run was planned again (0.1-0.2 ms with
--   the long trigram expression) for the same bitmap scan of `users_search_block_trgm_idx`.
--   Through `roster_substring_indexed`, `006596`, `huangchenyong` and `mafangting` took
--   0.93, 1.38 and 0.42 ms against 1.08, 1.52 and 0.62 ms.
--
-- Both functions run their statements under `force_generic_plan`, as
-- `roster_substring_blocks` (migration 0017) does for the block statements, and without
-- parallel workers whatever the session says: a generic plan is made once and kept, and
-- the terms' page planned with two workers took 7 ms against 0.2 ms without.

-- The whole tier's page, terms in `[low, high)` after `(after_term, after_key)` in term
-- and key order, at most `lim` rows, then, when `suffix_low` is not NULL and the page fell
-- short, the suffix tier's first rows in `[suffix_low, suffix_high)`, as many as it fell
-- short by. Terms compare in byte order (`COLLATE "C"`), as everywhere in search.
CREATE FUNCTION roster_search_terms(
    tenant BIGINT, low TEXT, high TEXT, after_term TEXT, after_key BIGINT, lim BIGINT,
    suffix_low TEXT, suffix_high TEXT)
RETURNS TABLE (suffix BOOLEAN, user_key BIGINT, term TEXT, user_text TEXT)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    got BIGINT;
BEGIN
    RETURN QUERY SELECT false, t.user_key, t.term::text, u.search_text
        FROM user_search_terms t JOIN users u ON u.id = t.user_key
        WHERE t.tenant_id = tenant AND t.term >= (low COLLATE "C") AND t.term < (high COLLATE "C")
        AND (t.term, t.user_key) > (after_term COLLATE "C", after_key)
        ORDER BY t.term, t.user_key LIMIT lim;
    GET DIAGNOSTICS got = ROW_COUNT;
    IF suffix_low IS NOT NULL AND got < lim THEN
        RETURN QUERY SELECT true, t.user_key, t.term::text, u.search_text
            FROM user_search_terms t JOIN users u ON u.id = t.user_key
            WHERE t.tenant_id = tenant AND t.term >= (suffix_low COLLATE "C")
            AND t.term < (suffix_high COLLATE "C")
            ORDER BY t.term, t.user_key LIMIT lim - got;
    END IF;
END
$$;

-- Returns the tenant's active users after `after_key` holding `q` and matching the trigram
-- patterns, in key order, at most `lim`; `t2` and `t3` are NULL where there are fewer
-- patterns (a statement per count, as in `roster_substring_blocks`, which says why).
CREATE FUNCTION roster_substring_indexed(
    tenant BIGINT, q TEXT, after_key BIGINT, lim BIGINT, t1 TEXT, t2 TEXT, t3 TEXT)
RETURNS TABLE (user_key BIGINT, user_text TEXT)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET max_parallel_workers_per_gather = 0
AS $$
BEGIN
    IF t3 IS NOT NULL THEN
        RETURN QUERY SELECT u.id, u.search_text FROM users u
            WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
            AND strpos(u.search_text, q) > 0 AND u.id + 0 > after_key
            AND roster_trigram_text(u.search_text) LIKE t1
            AND roster_trigram_text(u.search_text) LIKE t2
            AND roster_trigram_text(u.search_text) LIKE t3
            ORDER BY u.id + 0 LIMIT lim;
    ELSIF t2 IS NOT NULL THEN
        RETURN QUERY SELECT u.id, u.search_text FROM users u
            WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
            AND strpos(u.search_text, q) > 0 AND u.id + 0 > after_key
            AND roster_trigram_text(u.search_text) LIKE t1
            AND roster_trigram_text(u.search_text) LIKE t2
            ORDER BY u.id + 0 LIMIT lim;
    ELSE
        RETURN QUERY SELECT u.id, u.search_text FROM users u
            WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
            AND strpos(u.search_text, q) > 0 AND u.id + 0 > after_key
            AND roster_trigram_text(u.search_text) LIKE t1
            ORDER BY u.id + 0 LIMIT lim;
    END IF;
END
$$;

-- The block statements' generic plans likewise, made once per connection.
ALTER FUNCTION roster_substring_blocks(BIGINT, TEXT, BIGINT, INT, INT, TEXT, TEXT, TEXT)
    SET max_parallel_workers_per_gather = 0;
