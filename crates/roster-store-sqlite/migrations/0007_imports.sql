-- Bulk imports (docs/schema.md, "Migration 0007"). An import is a `tasks` row of kind
-- 'import_users'; while its upload arrives its status is 'receiving' and `lease_until` is the
-- deadline for its next chunk. Its rows are stored per chunk, as one record each:
-- `input` holds roster_store_common::encode_chunk_inputs (emptied once the chunk is
-- processed), `outcome` encode_chunk_outcomes; a NULL outcome is a chunk still to process.
-- An outcome is only ever written where it is NULL, in the transaction that writes the
-- chunk's users.
CREATE TABLE import_chunks (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    first_row INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    input TEXT NOT NULL,
    outcome TEXT NULL,
    PRIMARY KEY (task_id, seq)
);

