-- Privacy Portal: each workspace's matchers (its edits of the defaults and its own), the fields
-- seen in events with their recommended and chosen classification, where they came from, the
-- controls of sources and destinations, the workspace's hashing salt, and who may see PII.

CREATE TABLE privacy_settings (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    salt         TEXT NOT NULL                  -- the HASH control's key, sealed (internal/secret)
);

-- A default matcher's id is its name in privacy.Defaults (stored only once edited); a custom
-- matcher's is pm_...
CREATE TABLE privacy_matchers (
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    is_default     BOOLEAN NOT NULL,
    name           TEXT NOT NULL,
    classification TEXT NOT NULL,
    target         TEXT NOT NULL,               -- KEY, VALUE, KEY_OR_VALUE
    key_match      TEXT NOT NULL,               -- EXACT, SIMILAR
    synonyms       TEXT NOT NULL,               -- JSON array
    pattern        TEXT NOT NULL,               -- Go regexp; '' for none
    luhn           BOOLEAN NOT NULL,
    enabled        BOOLEAN NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

-- A field is a JSON path in properties, traits or context (properties.billing.card_number).
CREATE TABLE privacy_fields (
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    path            TEXT NOT NULL,
    recommended     TEXT,                       -- RED or YELLOW by a matcher; NULL for none
    matcher_id      TEXT,
    matcher_name    TEXT,
    classification  TEXT,                       -- NULL until classified (in the inbox)
    classified_at   TEXT,
    classified_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    seen            BIGINT NOT NULL,
    sample          TEXT NOT NULL,              -- one value, as JSON
    PRIMARY KEY (workspace_id, path)
);
CREATE INDEX privacy_fields_inbox ON privacy_fields (workspace_id, classification, last_seen_at);

-- Where a field came from: by source and event name ('' for events without one).
CREATE TABLE privacy_field_sources (
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    event_name    TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    seen          BIGINT NOT NULL,
    PRIMARY KEY (source_id, path, event_name)
);
CREATE INDEX privacy_field_sources_workspace ON privacy_field_sources (workspace_id, path);

-- Fields a source removes from its events before they are stored: NONE, RED, RED_AND_YELLOW.
CREATE TABLE privacy_source_controls (
    source_id    TEXT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    block        TEXT NOT NULL
);

-- What a destination receives of fields of each classification: ALLOW, BLOCK, HASH.
CREATE TABLE privacy_destination_controls (
    destination_id TEXT PRIMARY KEY REFERENCES destinations (id) ON DELETE CASCADE,
    workspace_id   TEXT NOT NULL,
    red            TEXT NOT NULL,
    yellow         TEXT NOT NULL,
    green          TEXT NOT NULL
);

-- Who sees values of RED and YELLOW fields; members without a row: owners do, others do not.
CREATE TABLE privacy_access (
    membership_id TEXT PRIMARY KEY REFERENCES memberships (id) ON DELETE CASCADE,
    pii_access    BOOLEAN NOT NULL
);
