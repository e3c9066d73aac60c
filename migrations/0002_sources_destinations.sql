-- Sources with their write keys and labels, destinations with their encrypted secret settings, and
-- the connections between them. Booleans are BOOLEAN (SQLite stores 0/1, PostgreSQL booleans).

CREATE TABLE sources (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    catalog_slug TEXT NOT NULL,
    name         TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    settings     TEXT NOT NULL,                 -- JSON object
    labels       TEXT NOT NULL,                 -- JSON array of key:value, as given
    last_seen_at TEXT,
    created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX sources_workspace_name ON sources (workspace_id, name, id);

-- One row per label of a source, for filtering and for label grants.
CREATE TABLE source_labels (
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    label     TEXT NOT NULL,                    -- lower-case key:value
    PRIMARY KEY (source_id, label)
);
CREATE INDEX source_labels_label ON source_labels (label);

CREATE TABLE write_keys (
    key          TEXT PRIMARY KEY,
    source_id    TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX write_keys_source ON write_keys (source_id);

CREATE TABLE destinations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    catalog_slug TEXT NOT NULL,
    category     TEXT NOT NULL,                 -- the catalog entry's first category, for sorting
    name         TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    settings     TEXT NOT NULL,                 -- JSON object without the secret settings
    created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    updated_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX destinations_workspace_name ON destinations (workspace_id, name, id);

-- Secret settings, AES-256-GCM with (workspace, destination, name) as additional data.
CREATE TABLE destination_secrets (
    destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    ciphertext     TEXT NOT NULL,
    PRIMARY KEY (destination_id, name)
);

CREATE TABLE connections (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    source_id      TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    enabled        BOOLEAN NOT NULL,
    created_by     TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (source_id, destination_id)
);
CREATE INDEX connections_destination ON connections (destination_id);
CREATE INDEX connections_workspace ON connections (workspace_id, id);
