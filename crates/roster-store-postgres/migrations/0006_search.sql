-- Issue 5: ranked user search (docs/schema.md, "Migration 0006").
--
-- users.search_text now holds the user's search terms as a JSON array
-- (roster_store_common::search_text). Two structures are derived from it inside the
-- database, so that every write path that writes the row (inserts, saves, task chunks,
-- imports, COPY) keeps them in step without knowing they exist:
--   user_search_terms           one row per term of each active user, for exact and prefix
--                               matches through B-tree ranges (byte order, COLLATE "C");
--   users_search_trgm_idx       a pg_trgm GIN index over search_text for substrings of
--                               three or more characters.
-- Resigned users have no terms, and the trigram index is partial on active users. A row
-- whose search_text is '' is "not yet computed": the old contents are cleared here and the
-- store recomputes them in Rust at open (pinyin needs Rust), through
-- users_search_pending_idx. The triggers are per statement, with transition tables, so a
-- bulk insert of many rows costs one INSERT … SELECT rather than one call per row.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

UPDATE users SET search_text = '';

CREATE TABLE user_search_terms (
    tenant_id BIGINT NOT NULL,
    term TEXT COLLATE "C" NOT NULL,
    user_key BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, term, user_key)
);

CREATE INDEX users_search_trgm_idx ON users USING gin (search_text gin_trgm_ops)
    WHERE NOT is_resigned;

CREATE INDEX users_search_pending_idx ON users (id) WHERE search_text = '';

CREATE FUNCTION users_search_terms_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_search_terms (tenant_id, term, user_key)
        SELECT n.tenant_id, t.term, n.id
        FROM new_rows n, jsonb_array_elements_text(COALESCE(NULLIF(n.search_text, ''), '[]')::jsonb) AS t(term)
        WHERE NOT n.is_resigned AND n.search_text <> ''
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

-- '' (not yet computed) reads as no terms, so that the cast never sees an empty text.
-- Old terms go first, so that a term kept by a rename (the e-mail, say) survives.
CREATE FUNCTION users_search_terms_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_search_terms s
        USING old_rows o, new_rows n, jsonb_array_elements_text(COALESCE(NULLIF(o.search_text, ''), '[]')::jsonb) AS t(term)
        WHERE n.id = o.id AND NOT o.is_resigned AND o.search_text <> ''
        AND (o.search_text <> n.search_text OR o.is_resigned <> n.is_resigned)
        AND s.tenant_id = o.tenant_id AND s.term = t.term AND s.user_key = o.id;
    INSERT INTO user_search_terms (tenant_id, term, user_key)
        SELECT n.tenant_id, t.term, n.id
        FROM old_rows o JOIN new_rows n ON n.id = o.id,
            jsonb_array_elements_text(COALESCE(NULLIF(n.search_text, ''), '[]')::jsonb) AS t(term)
        WHERE NOT n.is_resigned AND n.search_text <> ''
        AND (o.search_text <> n.search_text OR o.is_resigned <> n.is_resigned)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION users_search_terms_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_search_terms s
        USING old_rows o, jsonb_array_elements_text(COALESCE(NULLIF(o.search_text, ''), '[]')::jsonb) AS t(term)
        WHERE NOT o.is_resigned AND o.search_text <> ''
        AND s.tenant_id = o.tenant_id AND s.term = t.term AND s.user_key = o.id;
    RETURN NULL;
END $$;

CREATE TRIGGER users_search_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_search_terms_insert();

CREATE TRIGGER users_search_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_search_terms_update();

CREATE TRIGGER users_search_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_search_terms_delete();
