-- Search terms changed for names outside ASCII (docs/schema.md "Migration 0015"): a name's
-- first Chinese character is read in each of its readings, ü is also spelled v and u, and
-- terms are NFKC-composed. Only users whose terms hold text outside ASCII (other than the
-- suffix mark U+E000, which most names' suffix terms carry) can change; they are
-- marked "not yet computed" here ('' clears their index entries through the migration-0006
-- triggers) and the backfill that runs at every start recomputes them.
UPDATE users SET search_text = '' WHERE search_text ~ '[^\x01-\x7f\ue000]';
