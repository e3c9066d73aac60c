-- Engage: computed traits (internal/engage/computed.go), values computed per profile from the
-- events resolved to it, kept current as events arrive and as time windows pass.

-- A computed trait: its key (unique per workspace), its kind and definition (JSON: the event and
-- property conditions, the window, the property and aggregation), and how far its computation is.
CREATE TABLE computed_traits (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key              TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    kind             TEXT NOT NULL,             -- EVENT_COUNTER, AGGREGATION, MOST_FREQUENT, FIRST, LAST, UNIQUE_LIST, UNIQUE_LIST_COUNT
    definition       TEXT NOT NULL,             -- JSON
    enabled          BOOLEAN NOT NULL,
    -- Moves with every change of the definition or of enabled: a pass of an older version stops.
    version          BIGINT NOT NULL,
    -- The pass over profiles in progress, NULL for none: BACKFILL (every standing profile: a new
    -- or changed trait) or WINDOW (the profiles holding a value: the scheduled recomputation of a
    -- windowed trait); and the last profile it has computed (by id).
    pass             TEXT,
    pass_cursor      TEXT,
    last_computed_at TEXT,                      -- when its last pass ended
    created_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (workspace_id, key)
);

-- The current value of each computed trait of each standing profile that has one. The same value
-- is written to profile_traits under the trait's key (source_id NULL, event_id ''), for readers
-- of traits such as audience conditions.
CREATE TABLE computed_trait_values (
    computed_trait_id TEXT NOT NULL,
    profile_id        TEXT NOT NULL,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    value             TEXT NOT NULL,            -- JSON
    computed_at       TEXT NOT NULL,            -- when it took this value
    PRIMARY KEY (computed_trait_id, profile_id)
);
CREATE INDEX computed_trait_values_profile ON computed_trait_values (profile_id);
-- Readers of profiles' values name the workspace and the profiles: (workspace_id, profile_id) serves
-- both (with workspace_id alone, SQLite would read all of a workspace's values for a page).
CREATE INDEX computed_trait_values_workspace ON computed_trait_values (workspace_id, profile_id);

-- Computed traits deleted or disabled whose values (and their rows in profile_traits, under key)
-- are still being removed, in small transactions.
CREATE TABLE computed_trait_removals (
    computed_trait_id TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key               TEXT NOT NULL,
    created_at        TEXT NOT NULL
);
