-- junction:foreign-keys=off
-- Deduplication counts only accepted events: a discarded event must not block its corrected resend
-- with the same messageId. Each status has its own unique index. SQLite cannot drop the table's UNIQUE constraint, so the table is
-- rebuilt (with foreign keys off, as SQLite's documented procedure for changing a table says: the
-- rows of delivery_retries that point at events stay).
CREATE TABLE events_new (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    source_id       TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,
    type            TEXT NOT NULL,
    event_name      TEXT,
    user_id         TEXT,
    anonymous_id    TEXT,
    status          TEXT NOT NULL,              -- ACCEPTED or DISCARDED
    discard_reason  TEXT,
    discard_message TEXT,
    received_at     TEXT NOT NULL,
    timestamp       TEXT,
    payload         TEXT NOT NULL               -- JSON
);
INSERT INTO events_new SELECT id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id, status,
    discard_reason, discard_message, received_at, timestamp, payload FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_source ON events (source_id, id);
CREATE UNIQUE INDEX events_accepted_message ON events (source_id, message_id) WHERE status = 'ACCEPTED';
-- A retried request stores its discarded events once too; they just do not block accepted ones.
CREATE UNIQUE INDEX events_discarded_message ON events (source_id, message_id) WHERE status = 'DISCARDED';
-- Deleting events (retention, deleted sources) cascades to their retries: without this index each
-- cascaded delete scans the retry table.
CREATE INDEX delivery_retries_event ON delivery_retries (event_id);
