-- Warehouses: destinations that are loaded in syncs rather than sent events one by one. The cursor
-- of what was loaded lives in the warehouse itself (its _junction_syncs table, written in the
-- transaction that loads), so that a sync is loaded exactly once; here are only its history and
-- the schema each source was given.

-- One row per sync of a warehouse: RUNNING, then SUCCEEDED or FAILED.
CREATE TABLE warehouse_syncs (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    trigger_kind   TEXT NOT NULL,               -- SCHEDULE or MANUAL
    status         TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    row_counts     TEXT NOT NULL,               -- JSON: {"schema.table": rows}
    warnings       TEXT NOT NULL,               -- JSON array of strings
    error_type     TEXT,
    error_message  TEXT                         -- masked of the warehouse's secrets
);
CREATE INDEX warehouse_syncs_destination ON warehouse_syncs (destination_id, id);

-- The schema a source loads into in a warehouse, chosen at its first sync from the source's name
-- and kept when the source is renamed.
CREATE TABLE warehouse_schemas (
    destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    source_id      TEXT NOT NULL,
    schema_name    TEXT NOT NULL,
    PRIMARY KEY (destination_id, source_id),
    UNIQUE (destination_id, schema_name)
);
