-- Data written before four fixes, brought in line with what the fixed code writes, so that
-- an upgraded directory keeps the promises a new one does (docs/schema.md "Migration 0017
-- (SQLite; PostgreSQL 0013)"). Each statement touches only rows the fix would have written
-- differently, and is a no-op on a new database.

-- 1. A delivered invitation keeps no body: the body held the activation link, whose token
--    must not outlive the delivery at rest (roster_store_common::DELIVERED_BODY).
UPDATE outbox
   SET body = '(delivered; the body, which held the activation link, is not kept)'
 WHERE sent_at IS NOT NULL
   AND body <> '(delivered; the body, which held the activation link, is not kept)';

-- 2. Change events record that a password is set, never its hash
--    (roster_store_common::REDACTED in user snapshots).
UPDATE change_events
   SET before = json_set(before, '$.profile.password_hash', '(redacted)')
 WHERE instr(before, '"password_hash"') > 0
   AND json_valid(before)
   AND json_extract(before, '$.profile.password_hash') IS NOT NULL
   AND json_extract(before, '$.profile.password_hash') <> '(redacted)';
UPDATE change_events
   SET after = json_set(after, '$.profile.password_hash', '(redacted)')
 WHERE instr(after, '"password_hash"') > 0
   AND json_valid(after)
   AND json_extract(after, '$.profile.password_hash') IS NOT NULL
   AND json_extract(after, '$.profile.password_hash') <> '(redacted)';

-- 3. A deleted user leaves every active user's dotted-line leaders (until this fix it was
--    only hidden when answering, and came back when the user was resurrected). The list
--    keeps its order; an emptied list is dropped from the document, as the store writes it.
UPDATE users
   SET doc = CASE
       WHEN (SELECT count(*) FROM json_each(users.doc, '$.dotted_line_leaders') AS j
              WHERE NOT EXISTS (
                  SELECT 1 FROM users AS r
                   WHERE r.tenant_id = users.tenant_id AND r.open_id = j.value
                     AND r.is_resigned)) = 0
       THEN json_remove(users.doc, '$.dotted_line_leaders')
       ELSE json_set(users.doc, '$.dotted_line_leaders', json((
           SELECT json_group_array(value) FROM (
               SELECT j.value FROM json_each(users.doc, '$.dotted_line_leaders') AS j
                WHERE NOT EXISTS (
                    SELECT 1 FROM users AS r
                     WHERE r.tenant_id = users.tenant_id AND r.open_id = j.value
                       AND r.is_resigned)
                ORDER BY j.key))))
       END
 WHERE instr(doc, '"dotted_line_leaders"') > 0
   AND NOT is_resigned
   AND EXISTS (
       SELECT 1 FROM json_each(users.doc, '$.dotted_line_leaders') AS j
         JOIN users AS r ON r.tenant_id = users.tenant_id AND r.open_id = j.value
        WHERE r.is_resigned);

-- 4. A resigned user remembers the departments it left (`former_departments`), so that an
--    app limited to some departments still sees the user it deleted. A user deleted before
--    that fix gets them from its latest deletion's change event (the `before` snapshot names
--    the departments by key); the change log is read once, not once per user.
UPDATE users
   SET doc = json_set(users.doc, '$.former_departments', json(d.departments))
  FROM (SELECT tenant_id, entity_id, json_extract(before, '$.departments') AS departments,
               max(id) AS latest
          FROM change_events
         WHERE entity = 'user' AND action = 'deleted' AND json_valid(before)
         GROUP BY tenant_id, entity_id) AS d
 WHERE users.tenant_id = d.tenant_id
   AND users.open_id = d.entity_id
   AND users.is_resigned
   AND instr(users.doc, '"former_departments"') = 0
   AND json_type(d.departments) = 'array'
   AND json_array_length(d.departments) > 0;
