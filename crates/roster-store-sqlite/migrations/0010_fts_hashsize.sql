-- FTS5 keeps new postings in an in-memory hash and writes them out as a new segment when
-- the hash passes `hashsize` (1 MiB by default) and at every commit; segments are then
-- merged in the background of later writes. A user adds about 150 trigrams, so at the
-- default a bulk import wrote a segment every few hundred users and spent a tenth of its
-- time merging them. 16 MiB lets one import chunk become one segment. The memory is only
-- held while a write transaction has pending postings.
INSERT INTO users_fts (users_fts, rank) VALUES ('hashsize', 16777216);
