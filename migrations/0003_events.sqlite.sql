-- The event log of the tracking API, and the usage counted with it in the same transaction.

-- Every event a source sent, accepted or discarded. Ids are time-sortable, so ORDER BY id DESC is
-- newest first. (source_id, message_id) is unique: a retried request stores nothing twice.
CREATE TABLE events (
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
    payload         TEXT NOT NULL,              -- JSON
    UNIQUE (source_id, message_id)
);
CREATE INDEX events_source ON events (source_id, id);

-- Accepted events per source and day: API calls.
CREATE TABLE usage_daily (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    source_id    TEXT NOT NULL,                 -- kept after the source is deleted
    day          TEXT NOT NULL,                 -- YYYY-MM-DD
    api_calls    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id, day)
);

-- The identities seen per month and source: kind 'u' (userId) or 'a' (anonymousId).
CREATE TABLE mtu_identities (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    month        TEXT NOT NULL,                 -- YYYY-MM
    source_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    first_day    TEXT NOT NULL,
    PRIMARY KEY (workspace_id, month, source_id, kind, value)
);

-- anonymousIds seen together with a userId in a month: they are not counted as MTUs of their own.
CREATE TABLE mtu_links (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    month        TEXT NOT NULL,
    anonymous_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, month, anonymous_id)
);
