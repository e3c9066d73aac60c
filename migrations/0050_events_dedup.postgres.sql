-- Deduplication counts only accepted events: a discarded event must not block its corrected resend
-- with the same messageId. Each status has its own unique index.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_source_id_message_id_key;
CREATE UNIQUE INDEX events_accepted_message ON events (source_id, message_id) WHERE status = 'ACCEPTED';
-- A retried request stores its discarded events once too; they just do not block accepted ones.
CREATE UNIQUE INDEX events_discarded_message ON events (source_id, message_id) WHERE status = 'DISCARDED';
-- Deleting events (retention, deleted sources) cascades to their retries: without this index each
-- cascaded delete scans the retry table.
CREATE INDEX delivery_retries_event ON delivery_retries (event_id);
