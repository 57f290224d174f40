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
