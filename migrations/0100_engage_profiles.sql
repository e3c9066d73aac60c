-- Engage: profiles built from the event log by identity resolution (internal/engage).

-- Each workspace's identity resolution rules; a workspace without a row has Segment's defaults.
CREATE TABLE engage_settings (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    identifiers    TEXT NOT NULL,               -- JSON [{"type","priority","limit"}]
    blocked_values TEXT NOT NULL,               -- JSON [{"value","regexp"}]
    updated_by     TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_at     TEXT NOT NULL
);

-- Each workspace's identity graph version: every transaction of identity resolution moves it, so
-- that one that read the graph before taking the writer knows whether another changed it since.
CREATE TABLE profile_graphs (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    version      BIGINT NOT NULL
);

-- A profile: one person as identity resolution sees them. A profile merged into another keeps its
-- row, pointing at the one it became part of (always the one that stands: merges re-point the
-- rows that pointed at the merged profile), so that its id and its events still lead there.
CREATE TABLE profiles (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    merged_into  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL                  -- its last event or merge
);
CREATE INDEX profiles_workspace ON profiles (workspace_id, id);
CREATE INDEX profiles_merged ON profiles (merged_into) WHERE merged_into IS NOT NULL;

-- Identifiers (Segment's external ids): each value of a type belongs to one profile of a workspace.
CREATE TABLE profile_identifiers (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type          TEXT NOT NULL,                -- user_id, email, anonymous_id, ios.idfa, a custom type ...
    value         TEXT NOT NULL,
    profile_id    TEXT NOT NULL,
    source_id     TEXT,                         -- the source that first sent it; NULL once that is deleted
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, type, value)
);
CREATE INDEX profile_identifiers_profile ON profile_identifiers (profile_id);
CREATE INDEX profile_identifiers_value ON profile_identifiers (workspace_id, value);
CREATE INDEX profile_identifiers_source ON profile_identifiers (source_id);

-- Traits: the last value of each, when it was set (the event's time) and by which source and event.
CREATE TABLE profile_traits (
    profile_id   TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,                 -- JSON
    text         TEXT NOT NULL,                 -- a string's text, other values' JSON: for filters
    source_id    TEXT,                          -- NULL once the source is deleted
    event_id     TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (profile_id, name)
);
CREATE INDEX profile_traits_filter ON profile_traits (workspace_id, name, text);
CREATE INDEX profile_traits_source ON profile_traits (source_id);

-- The events resolved to each profile (to the profile of that time: a merged profile's events are
-- found through profiles.merged_into). Rows whose event is gone (retention, deleted sources) are
-- deleted after it.
CREATE TABLE profile_events (
    profile_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (profile_id, event_id)
);
CREATE INDEX profile_events_event ON profile_events (event_id);

-- Merges: which profile was merged into which, by which event and identifiers; and the
-- identifiers left out of that event's resolution because a limit would have been exceeded.
CREATE TABLE profile_merges (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    profile_id        TEXT NOT NULL,            -- the profile that stands
    merged_profile_id TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    identifiers       TEXT NOT NULL,            -- JSON [{"type","value"}] of the event that tied them
    dropped           TEXT NOT NULL,            -- JSON [{"type","value"}] left out of it
    created_at        TEXT NOT NULL
);
CREATE INDEX profile_merges_profile ON profile_merges (profile_id, id);
CREATE INDEX profile_merges_workspace ON profile_merges (workspace_id, id);
