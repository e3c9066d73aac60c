-- Protocols: tracking plans and their rules, each source's plan and schema controls, blocked
-- events kept in the event log, and what the listeners of commits aggregate: each source's schema
-- (events and keys seen, with counts per hour) and its violations (counts per hour, samples).

CREATE TABLE tracking_plans (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    common_schema TEXT,                         -- JSON Schema applied to every whole event; NULL for none
    version       BIGINT NOT NULL,              -- moves with every change
    created_by    TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_by    TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX tracking_plans_workspace ON tracking_plans (workspace_id, name, id);

-- One rule per event type and name: 'TRACK:Order Completed', 'PAGE:Home', 'IDENTIFY:'.
CREATE TABLE tracking_plan_rules (
    plan_id     TEXT NOT NULL REFERENCES tracking_plans (id) ON DELETE CASCADE,
    rule_key    TEXT NOT NULL,
    type        TEXT NOT NULL,
    event_name  TEXT NOT NULL,                  -- '' for identify and group, and page/screen without name
    description TEXT NOT NULL,
    labels      TEXT NOT NULL,                  -- JSON array of key:value
    properties  TEXT,                           -- JSON Schemas; NULL for none
    traits      TEXT,
    context     TEXT,
    version     BIGINT NOT NULL,                -- the plan's version that last changed the rule
    updated_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plan_id, rule_key)
);

-- Each version of a plan: who made it and which rules it changed.
CREATE TABLE tracking_plan_versions (
    plan_id        TEXT NOT NULL REFERENCES tracking_plans (id) ON DELETE CASCADE,
    version        BIGINT NOT NULL,
    actor_user_id  TEXT,
    actor_token_id TEXT,
    summary        TEXT NOT NULL,               -- what changed, in words
    changes        TEXT NOT NULL,               -- JSON array of {"rule": key, "action": ...}
    created_at     TEXT NOT NULL,
    PRIMARY KEY (plan_id, version)
);

-- A source's tracking plan (at most one) and schema controls.
CREATE TABLE source_protocols (
    source_id                TEXT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    workspace_id             TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    plan_id                  TEXT REFERENCES tracking_plans (id) ON DELETE SET NULL,
    unplanned_events         TEXT NOT NULL,     -- ALLOW, BLOCK
    unplanned_properties     TEXT NOT NULL,     -- ALLOW, OMIT
    violations               TEXT NOT NULL,     -- ALLOW, OMIT_PROPERTIES, BLOCK
    common_schema_violations TEXT NOT NULL,     -- ALLOW, OMIT_PROPERTIES, BLOCK
    forward_blocked_to       TEXT REFERENCES sources (id) ON DELETE SET NULL,
    forward_violations_to    TEXT REFERENCES sources (id) ON DELETE SET NULL,
    updated_at               TEXT NOT NULL
);
CREATE INDEX source_protocols_plan ON source_protocols (plan_id);

-- Blocked events are kept in the event log with their violations (accepted ones with violations
-- carry them too); a replayed blocked event records when.
ALTER TABLE events ADD COLUMN violations TEXT;
ALTER TABLE events ADD COLUMN replayed_at TEXT;
-- A retried request stores a blocked event once, and a blocked event does not keep its fixed
-- resend (same messageId) from being accepted.
CREATE UNIQUE INDEX events_blocked_message ON events (source_id, message_id) WHERE status = 'BLOCKED';

-- Each source's schema: the events seen (type and name; '' for identify and group)...
CREATE TABLE schema_events (
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    event_name    TEXT NOT NULL,
    event_key     TEXT NOT NULL,                -- TYPE:name, for paging
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    archived_at   TEXT,                         -- hidden from the schema; nothing is deleted
    first_blocked_at TEXT,                      -- when one of them was first blocked
    PRIMARY KEY (source_id, event_type, event_name)
);

-- ...their property or trait keys (nested objects' keys by dotted path), with the JSON types seen
-- as bits (null 1, boolean 2, integer 4, number 8, string 16, array 32, object 64)...
CREATE TABLE schema_keys (
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    event_name    TEXT NOT NULL,
    field         TEXT NOT NULL,                -- properties or traits
    path          TEXT NOT NULL,
    types         BIGINT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (source_id, event_type, event_name, field, path)
);

-- ...and how often each was seen per hour (field and path '' for the event itself), kept 7 days.
CREATE TABLE schema_counts (
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    event_name TEXT NOT NULL,
    field      TEXT NOT NULL,
    path       TEXT NOT NULL,
    hour       TEXT NOT NULL,                   -- YYYY-MM-DDTHH, UTC
    n          BIGINT NOT NULL,
    blocked    BIGINT NOT NULL,
    PRIMARY KEY (source_id, event_type, event_name, field, path, hour)
);
CREATE INDEX schema_counts_hour ON schema_counts (hour);

-- Violations per source, event, field and kind: first and last seen and up to three samples...
CREATE TABLE violation_keys (
    source_id      TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_type     TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    field          TEXT NOT NULL,               -- the field's path, such as properties.price
    violation_type TEXT NOT NULL,
    message        TEXT NOT NULL,               -- the latest
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    PRIMARY KEY (source_id, event_type, event_name, field, violation_type)
);
CREATE INDEX violation_keys_workspace ON violation_keys (workspace_id, last_seen_at);

CREATE TABLE violation_samples (
    source_id      TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    event_type     TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    field          TEXT NOT NULL,
    violation_type TEXT NOT NULL,
    slot           BIGINT NOT NULL,             -- 0, 1, 2: the newest replaces the oldest
    event_id       TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    payload        TEXT NOT NULL,               -- as received, before any property was omitted
    PRIMARY KEY (source_id, event_type, event_name, field, violation_type, slot)
);

-- ...and their counts per hour, kept 7 days.
CREATE TABLE violation_counts (
    source_id      TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    event_type     TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    field          TEXT NOT NULL,
    violation_type TEXT NOT NULL,
    hour           TEXT NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (source_id, event_type, event_name, field, violation_type, hour)
);
CREATE INDEX violation_counts_hour ON violation_counts (hour);
