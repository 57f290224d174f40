-- A department's count of active direct members was a join of every membership to its
-- user: at a million users in one department, reading that department (whose rendering
-- carries `member_count`) took 0.35 s warm and over a second under load. The count is now
-- a column kept by triggers in the same transaction as the writes that move it, so every
-- writer (the store's statements, a migration, a future path) keeps it right; SQLite has
-- one writer, so the department row is never contended.
ALTER TABLE departments ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;

UPDATE departments SET member_count = (
    SELECT count(*) FROM user_departments ud JOIN users u ON u.id = ud.user_id
    WHERE ud.department_id = departments.id AND NOT u.is_resigned
);

-- A membership counts while its user is active. Each trigger looks at the user as it is
-- at that moment, so the count comes out right whatever order a save writes the user row
-- and its memberships in. Memberships deleted with their user (the purge's cascade) belong
-- to resigned users, which were not counted.
CREATE TRIGGER user_departments_count_insert AFTER INSERT ON user_departments
BEGIN
    UPDATE departments SET member_count = member_count + 1
    WHERE id = NEW.department_id
      AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND NOT is_resigned);
END;

CREATE TRIGGER user_departments_count_delete AFTER DELETE ON user_departments
BEGIN
    UPDATE departments SET member_count = member_count - 1
    WHERE id = OLD.department_id
      AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id AND NOT is_resigned);
END;

CREATE TRIGGER user_departments_count_move AFTER UPDATE OF user_id, department_id
    ON user_departments
BEGIN
    UPDATE departments SET member_count = member_count - 1
    WHERE id = OLD.department_id
      AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id AND NOT is_resigned);
    UPDATE departments SET member_count = member_count + 1
    WHERE id = NEW.department_id
      AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND NOT is_resigned);
END;

CREATE TRIGGER users_count_resign AFTER UPDATE OF is_resigned ON users
    WHEN OLD.is_resigned IS NOT NEW.is_resigned
BEGIN
    UPDATE departments
    SET member_count = member_count + (CASE WHEN NEW.is_resigned THEN -1 ELSE 1 END)
    WHERE id IN (SELECT department_id FROM user_departments WHERE user_id = NEW.id);
END;

-- A user row deleted while still active (no path does so today) takes its counted
-- memberships with it. SQLite deletes the memberships by the cascade after the user row is
-- gone, when the trigger above can no longer see that the user was active, so this one
-- subtracts them first.
CREATE TRIGGER users_count_delete BEFORE DELETE ON users
    WHEN NOT OLD.is_resigned
BEGIN
    UPDATE departments SET member_count = member_count - 1
    WHERE id IN (SELECT department_id FROM user_departments WHERE user_id = OLD.id);
END;
