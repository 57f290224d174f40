-- Issue 5: the trigram index can be asked for one block of keys at a time (docs/schema.md,
-- "PostgreSQL migration 0017").
--
-- A substring page is the first holders after the cursor in key order. The GIN index hands
-- back every candidate in the table, unordered, so a query whose candidates number in the
-- thousands cost their fetches and a sort (15-40 ms at a million users for `chen.4` or
-- `ming.6`), and a walk in key order cost every row up to the page (the 25th holder of
-- `chen.4` is 40 000 rows from the start). The index now holds, beside each row's trigrams,
-- its block of 16 384 keys (`id >> 14`, through btree_gin), and GIN intersects the block's
-- posting list with the trigrams' by skipping through them, so a statement for one block
-- reads only that block's candidates: `ming.6`, `chen.4` and `chao.5` find a page in 0.7-2.5
-- ms. A statement that names no block (a query with few candidates in the whole table) uses
-- the same index as before, through its trigrams alone.
--
-- The block width is fixed here and in crates/roster-store-postgres/src/search.rs
-- (KEY_BLOCK_SHIFT): the store's statements must spell the expression exactly as the index
-- does, or the planner cannot use it.

CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX users_search_block_trgm_idx ON users
    USING gin ((id >> 14), roster_trigram_text(search_text) gin_trgm_ops)
    WITH (gin_pending_list_limit = 1024)
    WHERE NOT is_resigned;

DROP INDEX users_search_trgm_idx;

-- The blocks from the cursor's on, in one round trip: holders bunch in key order (the
-- e-mails `…yan.99…` are users 9 900-9 999, 99 000-99 999 and 990 000-999 999), so a page
-- can need dozens of blocks of which most hold nothing, and an empty block costs GIN a few
-- descents (tens of µs) but a statement from the store a round trip (0.2-0.3 ms).
-- Returns the holders of up to `blocks` blocks, each block's in key order and the blocks in
-- order, stopping after the block that brings the rows to `need`. `t2` and `t3` are the
-- second and third trigram patterns or NULL (a pattern named twice would cost every
-- candidate a second re-check), hence a statement per count of patterns: a condition that
-- may be NULL (`t2 IS NULL OR … LIKE t2`) is not one the index can serve.
CREATE FUNCTION roster_substring_blocks(
    tenant BIGINT, q TEXT, after_key BIGINT, need INT, blocks INT, t1 TEXT, t2 TEXT, t3 TEXT)
RETURNS TABLE (user_key BIGINT, user_text TEXT)
LANGUAGE plpgsql STABLE
-- The statements' generic plans ask the index for the block (checked at a million users);
-- the custom plans a connection makes for each statement's first five runs cost 0.3-1.8
-- ms of planning each (the trigram expression is long), more than the blocks themselves.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    -- Not `found`, which would shadow PL/pgSQL's own `FOUND` (an error under
    -- `plpgsql.extra_errors = 'shadowed_variables'`).
    block BIGINT := greatest(after_key, 0) >> 14;
    since BIGINT := after_key;
    total INT := 0;
    got INT;
BEGIN
    FOR i IN 1..blocks LOOP
        IF t3 IS NOT NULL THEN
            RETURN QUERY SELECT u.id, u.search_text FROM users u
                WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
                AND strpos(u.search_text, q) > 0 AND u.id + 0 > since AND (u.id >> 14) = block
                AND roster_trigram_text(u.search_text) LIKE t1
                AND roster_trigram_text(u.search_text) LIKE t2
                AND roster_trigram_text(u.search_text) LIKE t3
                ORDER BY u.id + 0 LIMIT need - total;
        ELSIF t2 IS NOT NULL THEN
            RETURN QUERY SELECT u.id, u.search_text FROM users u
                WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
                AND strpos(u.search_text, q) > 0 AND u.id + 0 > since AND (u.id >> 14) = block
                AND roster_trigram_text(u.search_text) LIKE t1
                AND roster_trigram_text(u.search_text) LIKE t2
                ORDER BY u.id + 0 LIMIT need - total;
        ELSE
            RETURN QUERY SELECT u.id, u.search_text FROM users u
                WHERE u.tenant_id + 0 = tenant AND NOT u.is_resigned
                AND strpos(u.search_text, q) > 0 AND u.id + 0 > since AND (u.id >> 14) = block
                AND roster_trigram_text(u.search_text) LIKE t1
                ORDER BY u.id + 0 LIMIT need - total;
        END IF;
        GET DIAGNOSTICS got = ROW_COUNT;
        total := total + got;
        EXIT WHEN total >= need OR block >= (9223372036854775807 >> 14);
        block := block + 1;
        since := (block << 14) - 1;
    END LOOP;
END
$$;
