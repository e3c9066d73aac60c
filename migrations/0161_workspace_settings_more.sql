-- More of a workspace's own choices: how long its audit trail and inbox are kept (NULL: the
-- server's; never longer), and the defaults of its new sources (labels as a JSON array, NULL for
-- none; whether they accept events at once, NULL for yes).
ALTER TABLE workspace_settings ADD COLUMN audit_retention_hours INTEGER;
ALTER TABLE workspace_settings ADD COLUMN inbox_retention_hours INTEGER;
ALTER TABLE workspace_settings ADD COLUMN default_source_labels TEXT;
ALTER TABLE workspace_settings ADD COLUMN new_sources_enabled BOOLEAN;
