-- Deleting a workspace is visible to whoever deleted it while its data is reaped: who deleted
-- which workspace (workspace package), and how far the reaper got with each deleted object (reap).
CREATE TABLE workspace_deletions (
    workspace_id TEXT PRIMARY KEY,              -- the row of workspaces goes at the end
    name         TEXT NOT NULL,
    deleted_by   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    deleted_at   TEXT NOT NULL
);
CREATE INDEX workspace_deletions_user ON workspace_deletions (deleted_by, deleted_at);

CREATE TABLE reap_progress (
    object_id    TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    steps_done   INTEGER NOT NULL,
    step_count   INTEGER NOT NULL,
    current_step TEXT NOT NULL,
    rows_deleted BIGINT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
