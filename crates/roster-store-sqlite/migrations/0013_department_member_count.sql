-- A department's count of active direct members was a join of every membership to its
-- user: at a million users in one department, reading that department (whose rendering
-- carries `member_count`) took 0.35 s warm and over a second under load. The count is now
-- a column, which the store moves in the same transaction as the writes that change it
-- (`users::MemberCounts`: inserted users, saved users whose memberships or resigned flag
-- change; the purge deletes only resigned users, which are not counted). It is not kept by
-- triggers on `user_departments`: a trigger makes each membership insert open a statement
-- savepoint, at which FTS5 flushes its pending search entries, and that made a million-user
-- import 38% slower.
ALTER TABLE departments ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;

UPDATE departments SET member_count = (
    SELECT count(*) FROM user_departments ud JOIN users u ON u.id = ud.user_id
    WHERE ud.department_id = departments.id AND NOT u.is_resigned
);
