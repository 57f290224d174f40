-- Row counts per trigram of the search index, read in one pass (`search::TrigramCounts`
-- loads the common ones in the background), so that a query's first execution need not
-- count the rows of common trigrams one by one. A vocabulary table stores nothing itself.
CREATE VIRTUAL TABLE users_fts_vocab USING fts5vocab(users_fts, row);
