-- Delivery of events to destinations: a cursor per destination over the event log, a table of
-- events waiting for a retry, every attempt (for Event Delivery), and health issues.
-- PostgreSQL's form of 0004_delivery.sqlite.sql: DOUBLE PRECISION where SQLite says REAL (a 4-byte
-- float on PostgreSQL), BIGINT for counters.

-- Events with ids above last_event_id have not been looked at for this destination yet.
CREATE TABLE delivery_cursors (
    destination_id TEXT PRIMARY KEY REFERENCES destinations (id) ON DELETE CASCADE,
    last_event_id  TEXT NOT NULL
);

-- Events whose delivery failed with a retryable error (or that a user asked to re-send).
CREATE TABLE delivery_retries (
    destination_id   TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attempts         INTEGER NOT NULL,          -- attempts made so far
    first_attempt_at TEXT NOT NULL,             -- when the first attempt was made: the age cap counts from it
    next_attempt_at  TEXT NOT NULL,
    PRIMARY KEY (destination_id, event_id)
);
CREATE INDEX delivery_retries_due ON delivery_retries (destination_id, next_attempt_at);

-- One row per attempt to deliver one event to one destination.
CREATE TABLE delivery_attempts (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    destination_id   TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,             -- the event may be pruned before its attempts
    source_id        TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    outcome          TEXT NOT NULL,             -- DELIVERED, RETRYING, FAILED
    error_type       TEXT,
    error_message    TEXT,
    request_method   TEXT NOT NULL,
    request_url      TEXT NOT NULL,
    request_headers  TEXT NOT NULL,             -- JSON, secrets masked
    request_body     TEXT NOT NULL,
    response_status  INTEGER,
    response_headers TEXT,
    response_body    TEXT,                      -- truncated
    latency_ms       DOUBLE PRECISION NOT NULL,           -- of the HTTP request
    end_to_end_ms    DOUBLE PRECISION NOT NULL,           -- from the event's arrival to the end of this attempt
    event_payload    TEXT NOT NULL,             -- the event as it was sent to us
    created_at       TEXT NOT NULL
);
CREATE INDEX delivery_attempts_destination ON delivery_attempts (destination_id, id);
CREATE INDEX delivery_attempts_outcome ON delivery_attempts (destination_id, outcome, id);

-- Repeated or consistent errors of a target, grouped by error type.
CREATE TABLE health_issues (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    target_kind       TEXT NOT NULL,            -- SOURCE or DESTINATION
    target_id         TEXT NOT NULL,
    error_type        TEXT NOT NULL,
    message           TEXT NOT NULL,            -- normalised: ids and numbers replaced
    count             BIGINT NOT NULL,
    first_seen_at     TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    sample_id         TEXT,                     -- a delivery attempt (destinations) or a discarded event (sources)
    status            TEXT NOT NULL,            -- OPEN, ACKNOWLEDGED, RESOLVED
    acknowledged_by   TEXT,
    resolved_at       TEXT
);
CREATE INDEX health_issues_workspace ON health_issues (workspace_id, status, last_seen_at);
CREATE INDEX health_issues_target ON health_issues (target_id, error_type, status);
