-- Issue 5: the trigram index's pending list (docs/schema.md, "PostgreSQL migration 0014").
--
-- A GIN index with fastupdate keeps new entries in an unsorted pending list until it holds
-- gin_pending_list_limit (4 MB by default) or VACUUM merges it, and every search reads the
-- whole list. After an import that was 1.5 ms per substring search at a million users, more
-- than the rest of an index lookup of a rare trigram. A quarter of that size keeps inserts
-- batched while a search reads at most 1 MB of it.
ALTER INDEX users_search_trgm_idx SET (gin_pending_list_limit = 1024);
