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
--    (roster_store_common::REDACTED in user snapshots). Only snapshots that mention a
--    password hash are parsed.
UPDATE change_events
   SET before = jsonb_set(before::jsonb, '{profile,password_hash}', '"(redacted)"')::text
 WHERE strpos(before, '"password_hash"') > 0
   AND before::jsonb #>> '{profile,password_hash}' <> '(redacted)';
UPDATE change_events
   SET after = jsonb_set(after::jsonb, '{profile,password_hash}', '"(redacted)"')::text
 WHERE strpos(after, '"password_hash"') > 0
   AND after::jsonb #>> '{profile,password_hash}' <> '(redacted)';

-- 3. A deleted user leaves every active user's dotted-line leaders (until this fix it was
--    only hidden when answering, and came back when the user was resurrected). The list
--    keeps its order; an emptied list is dropped from the document, as the store writes it.
WITH cleaned AS (
    SELECT u.id,
           coalesce(jsonb_agg(e.v ORDER BY e.ord) FILTER (
               WHERE NOT EXISTS (
                   SELECT 1 FROM users AS r
                    WHERE r.tenant_id = u.tenant_id AND r.open_id = e.v #>> '{}'
                      AND r.is_resigned)),
               '[]'::jsonb) AS kept
      FROM users AS u
     CROSS JOIN LATERAL jsonb_array_elements(u.doc::jsonb -> 'dotted_line_leaders')
           WITH ORDINALITY AS e(v, ord)
     WHERE strpos(u.doc, '"dotted_line_leaders"') > 0
       AND NOT u.is_resigned
     GROUP BY u.id
)
UPDATE users
   SET doc = (CASE WHEN cleaned.kept = '[]'::jsonb
                   THEN users.doc::jsonb - 'dotted_line_leaders'
                   ELSE jsonb_set(users.doc::jsonb, '{dotted_line_leaders}', cleaned.kept)
              END)::text
  FROM cleaned
 WHERE users.id = cleaned.id
   AND jsonb_array_length(cleaned.kept) < jsonb_array_length(users.doc::jsonb -> 'dotted_line_leaders');

-- 4. A resigned user remembers the departments it left (`former_departments`), so that an
--    app limited to some departments still sees the user it deleted. A user deleted before
--    that fix gets them from its latest deletion's change event (the `before` snapshot names
--    the departments by key); the change log is read once, not once per user.
UPDATE users
   SET doc = jsonb_set(users.doc::jsonb, '{former_departments}', d.departments)::text
  FROM (SELECT DISTINCT ON (tenant_id, entity_id)
               tenant_id, entity_id, before::jsonb -> 'departments' AS departments
          FROM change_events
         WHERE entity = 'user' AND action = 'deleted' AND before IS NOT NULL
         ORDER BY tenant_id, entity_id, id DESC) AS d
 WHERE users.tenant_id = d.tenant_id
   AND users.open_id = d.entity_id
   AND users.is_resigned
   AND strpos(users.doc, '"former_departments"') = 0
   AND jsonb_typeof(d.departments) = 'array'
   AND jsonb_array_length(d.departments) > 0;
