-- Issue 5: ranked user search (docs/schema.md, "Migration 0006").
--
-- users.search_text now holds the user's search terms as a JSON array
-- (roster_store_common::search_text). Two structures are derived from it, by triggers, so
-- that every write path that writes the row (inserts, saves, task chunks, imports) keeps
-- them in step (inserts index explicitly, see below):
--   user_search_terms  one row per term of each active user, for exact and prefix matches
--                      through B-tree ranges (and suffix terms for short substrings);
--   users_fts          an FTS5 trigram index over search_text for substrings of three or
--                      more characters (external content: it stores no copy of the text).
-- Resigned users are in neither. A row whose search_text is '' is "not yet computed" and is
-- not indexed either: the old contents are cleared here, and the migration's Rust hook
-- recomputes every user's terms right after (pinyin needs Rust), which indexes them.

UPDATE users SET search_text = '';

CREATE TABLE user_search_terms (
    tenant_id INTEGER NOT NULL,
    term TEXT NOT NULL,
    user_key INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, term, user_key)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE users_fts USING fts5(
    search_text,
    content = 'users',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1',
    detail = 'none'
);

-- New rows are indexed by the store itself, with two statements right after each insert
-- (users.rs, index_new_user): FTS5 writes out its pending entries at every statement
-- savepoint, and an AFTER INSERT trigger opens one per row, which made bulk inserts about
-- three times slower. Updates and deletes are rare and keep their triggers.

-- One trigger for updates, so that the old terms are removed before the new ones are added
-- (a term kept by a rename, such as the e-mail, must survive). Each statement carries its
-- own condition; '[]' stands in for '' so that json_each never sees an empty text.
CREATE TRIGGER users_search_update AFTER UPDATE OF search_text, is_resigned ON users
WHEN old.search_text <> new.search_text OR old.is_resigned <> new.is_resigned
BEGIN
    INSERT INTO users_fts (users_fts, rowid, search_text)
        SELECT 'delete', old.id, old.search_text
        WHERE NOT old.is_resigned AND old.search_text <> '';
    DELETE FROM user_search_terms
        WHERE NOT old.is_resigned AND tenant_id = old.tenant_id AND user_key = old.id
        AND term IN (SELECT value FROM json_each(
            CASE WHEN old.search_text = '' THEN '[]' ELSE old.search_text END));
    INSERT INTO users_fts (rowid, search_text)
        SELECT new.id, new.search_text
        WHERE NOT new.is_resigned AND new.search_text <> '';
    INSERT OR IGNORE INTO user_search_terms (tenant_id, term, user_key)
        SELECT new.tenant_id, value, new.id
        FROM json_each(CASE WHEN new.search_text = '' THEN '[]' ELSE new.search_text END)
        WHERE NOT new.is_resigned;
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users
WHEN NOT old.is_resigned AND old.search_text <> ''
BEGIN
    INSERT INTO users_fts (users_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    DELETE FROM user_search_terms
        WHERE tenant_id = old.tenant_id AND user_key = old.id
        AND term IN (SELECT value FROM json_each(old.search_text));
END;
