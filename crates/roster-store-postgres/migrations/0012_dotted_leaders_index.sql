-- A user's dotted-line leaders live in the profile document. Deleting a user removes them
-- from every other user's dotted-line leaders (docs/schema.md "Migration 0016 (SQLite; PostgreSQL 0012)"); this
-- partial index holds only the users that have dotted-line leaders at all, so that the
-- delete reads those instead of the whole tenant.
CREATE INDEX users_dotted_idx ON users (tenant_id)
    WHERE strpos(doc, '"dotted_line_leaders"') > 0;
