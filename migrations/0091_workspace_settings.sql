-- A workspace's own choices of the Settings tab: retention shorter than the server's (NULL: the
-- server's).
CREATE TABLE workspace_settings (
    workspace_id              TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    events_retention_hours    INTEGER,
    delivered_retention_hours INTEGER,
    failed_retention_hours    INTEGER,
    updated_at                TEXT NOT NULL
);
