-- Group owners. It follows the section "Migration 0003 (group owners)" of docs/schema.md and
-- mirrors the SQLite migration of the same number.

-- The open id of the user who owns (manages) the group; NULL for a group without an owner.
-- Existing groups start without one. The index serves groups_owned_by, which the deletion
-- of a user reads to hand the user's groups over to the successor.
ALTER TABLE groups ADD COLUMN owner_open_id TEXT NULL;
CREATE INDEX groups_owner_idx ON groups (tenant_id, owner_open_id);
