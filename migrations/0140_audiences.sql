-- Engage audiences (internal/engage/audience): definitions, current members, the changes of
-- membership (entered, exited), size history, and the destinations they are sent to.

-- An audience: a definition (a tree of conditions, JSON) whose members are kept current. A deleted
-- audience keeps its row (deleted_at) until its members, changes and sizes are drained in small
-- transactions; then the row goes.
CREATE TABLE audiences (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key              TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    definition       TEXT NOT NULL,               -- JSON, the input's shape
    enabled          BOOLEAN NOT NULL,
    windowed         BOOLEAN NOT NULL,            -- a condition has a time window: recomputed on schedule
    size             BIGINT NOT NULL,
    status           TEXT NOT NULL,               -- COMPUTING until the definition's first computation is done, then LIVE
    version          BIGINT NOT NULL,             -- moves at every change of the definition
    computed_version BIGINT NOT NULL,             -- the version last computed over all profiles
    last_computed_at TEXT,
    created_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_at       TEXT
);
-- Keys are unique among the audiences that stand (a deleted one's key may be taken again).
CREATE UNIQUE INDEX audiences_key ON audiences (workspace_id, key) WHERE deleted_at IS NULL;
CREATE INDEX audiences_workspace ON audiences (workspace_id, id);

-- Current members: standing profiles, since when, and the change that recorded their entry.
CREATE TABLE audience_members (
    audience_id  TEXT NOT NULL,
    profile_id   TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    entered_at   TEXT NOT NULL,
    change_id    TEXT NOT NULL,
    PRIMARY KEY (audience_id, profile_id)
);
CREATE INDEX audience_members_profile ON audience_members (profile_id);

-- Every change of membership, in order (ids are time-sortable): what activation sends, once each.
-- Changes every connection has sent are deleted after the event retention period.
CREATE TABLE audience_changes (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    audience_id  TEXT NOT NULL,
    profile_id   TEXT NOT NULL,
    entered      BOOLEAN NOT NULL,              -- false: exited
    at           TEXT NOT NULL
);
CREATE INDEX audience_changes_audience ON audience_changes (audience_id, id);
CREATE INDEX audience_changes_profile ON audience_changes (profile_id);

-- Size history: the size at the end of each minute in which it changed.
CREATE TABLE audience_sizes (
    audience_id TEXT NOT NULL,
    at          TEXT NOT NULL,                  -- the minute
    size        BIGINT NOT NULL,
    PRIMARY KEY (audience_id, at)
);

-- Destinations an audience is sent to, and how far its changes have been sent (activation).
CREATE TABLE audience_destinations (
    audience_id    TEXT NOT NULL,
    destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    mode           TEXT NOT NULL,               -- TRACK (Audience Entered/Exited) or IDENTIFY (a boolean trait)
    last_change_id TEXT NOT NULL,               -- the last change sent
    sync_after     TEXT,                        -- the initial sync of current members: the last profile sent; NULL once done
    created_by     TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (audience_id, destination_id)
);
CREATE INDEX audience_destinations_destination ON audience_destinations (destination_id);

-- Each workspace's Engage source: the source whose events activation sends.
CREATE TABLE engage_sources (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    source_id    TEXT NOT NULL
);
