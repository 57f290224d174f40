-- Issue 5: a tenant's active users in key order (docs/schema.md, "PostgreSQL migration 0016").
--
-- The substring search's walk and the export page through a tenant's active users by key
-- (`tenant_id = $1 AND NOT is_resigned AND id > $2 ORDER BY id`). Through the primary key
-- alone that reads every tenant's rows and filters them, so in a database shared by a large
-- tenant and a small one, the small tenant's walk or export read the large tenant's rows
-- first (all of them, for a walk to the end). This index holds only what those statements
-- read, in their order.
CREATE INDEX users_active_key_idx ON users (tenant_id, id) WHERE NOT is_resigned;
