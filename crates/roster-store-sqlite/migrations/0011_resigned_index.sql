-- The periodic purge of resigned users past retention asked for resigned users by
-- `resigned_at` with no index to answer it, so every purge tick (and every start) read the
-- whole users table: at a million users a 2.5 GB scan that also filled the writer's page
-- cache. This partial index holds only resigned users, in the order the purge takes them.
CREATE INDEX users_resigned_idx ON users (resigned_at, id) WHERE is_resigned;
