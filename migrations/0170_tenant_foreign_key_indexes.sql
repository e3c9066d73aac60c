-- Every column that points at a workspace or a source gets an index that starts with it.
-- Deleting a workspace's or a source's row has its foreign keys look for the rows that point at it
-- in each such table; without an index that look reads the whole table, inside the writer. With
-- 200,000 events, deleting an empty workspace held the writer 109 ms on SQLite, for the events
-- of all the other workspaces. migrations_test checks that no such column goes without.
CREATE INDEX events_workspace ON events (workspace_id, id);
CREATE INDEX delivery_attempts_workspace ON delivery_attempts (workspace_id, id);
CREATE INDEX delivery_requests_workspace ON delivery_requests (workspace_id, id);
CREATE INDEX resource_grants_workspace ON resource_grants (workspace_id);
CREATE INDEX write_keys_workspace ON write_keys (workspace_id);
CREATE INDEX source_protocols_workspace ON source_protocols (workspace_id);
CREATE INDEX source_protocols_forward_blocked_to ON source_protocols (forward_blocked_to);
CREATE INDEX source_protocols_forward_violations_to ON source_protocols (forward_violations_to);
CREATE INDEX schema_events_workspace ON schema_events (workspace_id);
CREATE INDEX warehouse_syncs_workspace ON warehouse_syncs (workspace_id);
CREATE INDEX computed_trait_removals_workspace ON computed_trait_removals (workspace_id);
CREATE INDEX audience_destinations_workspace ON audience_destinations (workspace_id);
