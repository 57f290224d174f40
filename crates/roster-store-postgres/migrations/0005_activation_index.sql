-- Outbox reads attach each message's activation by outbox_id.
CREATE INDEX activations_outbox_idx ON activations (outbox_id);
