-- Delivery requests apart from attempts. A request to a vendor that takes batches carries many
-- events; an attempt (one event, one try) points at the request that carried it. The request, its
-- body and its response are stored once however many events it carried, and an attempt no longer
-- keeps a copy of its event: Event Delivery reads the event from the event log. A request carries
-- the events of one source only: it is shown to whoever sees that source, and reaped with it.

CREATE TABLE delivery_requests (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    destination_id   TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    source_id        TEXT NOT NULL,             -- of every event it carried
    events           INTEGER NOT NULL,          -- how many events it carried
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,             -- secrets masked
    headers          TEXT NOT NULL,             -- JSON, secrets and credentials masked
    body             TEXT NOT NULL,             -- secrets masked
    redirects        TEXT NOT NULL,             -- JSON: [{status, url, refused}], in order
    response_status  INTEGER,
    response_headers TEXT,                      -- JSON; only from the destination's own host
    response_body    TEXT,                      -- at most 4 KB; only from the destination's own host
    latency_ms       DOUBLE PRECISION NOT NULL,
    delivered        BOOLEAN NOT NULL,          -- every event it carried was delivered: kept as long as successes
    created_at       TEXT NOT NULL
);
CREATE INDEX delivery_requests_destination ON delivery_requests (destination_id, id);
CREATE INDEX delivery_requests_source ON delivery_requests (source_id, id);

-- Each stored attempt that made a request becomes a request of one event, with the suffix of the
-- attempt's id.
INSERT INTO delivery_requests (id, workspace_id, destination_id, source_id, events, method, url, headers, body, redirects,
    response_status, response_headers, response_body, latency_ms, delivered, created_at)
SELECT 'req_' || substr(id, 5), workspace_id, destination_id, source_id, 1, request_method, request_url, request_headers, request_body, '[]',
    response_status, response_headers, response_body, latency_ms, outcome = 'DELIVERED', created_at
FROM delivery_attempts WHERE request_method <> '';

ALTER TABLE delivery_attempts ADD COLUMN request_id TEXT;
UPDATE delivery_attempts SET request_id = 'req_' || substr(id, 5) WHERE request_method <> '';

ALTER TABLE delivery_attempts DROP COLUMN request_method;
ALTER TABLE delivery_attempts DROP COLUMN request_url;
ALTER TABLE delivery_attempts DROP COLUMN request_headers;
ALTER TABLE delivery_attempts DROP COLUMN request_body;
ALTER TABLE delivery_attempts DROP COLUMN response_status;
ALTER TABLE delivery_attempts DROP COLUMN response_headers;
ALTER TABLE delivery_attempts DROP COLUMN response_body;
ALTER TABLE delivery_attempts DROP COLUMN event_payload;

-- An attempt as Event Delivery shows it: with its request and response.
CREATE VIEW delivery_attempt_records AS
SELECT a.id, a.workspace_id, a.destination_id, a.event_id, a.source_id, a.attempt, a.outcome, a.error_type,
    a.error_message, a.request_id, a.latency_ms, a.end_to_end_ms, a.created_at,
    COALESCE(r.method, '') AS request_method, COALESCE(r.url, '') AS request_url,
    COALESCE(r.headers, '{}') AS request_headers, COALESCE(r.body, '') AS request_body,
    COALESCE(r.redirects, '[]') AS request_redirects, COALESCE(r.events, 0) AS request_events,
    r.response_status, r.response_headers, r.response_body
FROM delivery_attempts a LEFT JOIN delivery_requests r ON r.id = a.request_id;
