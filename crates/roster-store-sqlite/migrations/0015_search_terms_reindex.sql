-- Search terms changed for names outside ASCII (docs/schema.md "Migration 0015"): a name's
-- first Chinese character is read in each of its readings, ü is also spelled v and u, and
-- terms are NFKC-composed. Only users whose terms hold text outside ASCII (other than the
-- suffix mark U+E000) can change; the
-- migration's hook (search::reindex_non_ascii) recomputes those and rewrites the ones that
-- differ, and the search triggers of migration 0006 update the index from them.
SELECT 1;
