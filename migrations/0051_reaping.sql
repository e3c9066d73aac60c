-- Deleting a source or a workspace marks it and cuts what reaches it at once; internal/reap deletes
-- what it owns afterwards, a batch at a time. The indexes let those batches find their rows.
ALTER TABLE sources ADD COLUMN deleted_at TEXT;
ALTER TABLE workspaces ADD COLUMN deleted_at TEXT;
CREATE INDEX delivery_attempts_source ON delivery_attempts (source_id, id);
CREATE INDEX notifications_workspace ON notifications (workspace_id, id);
