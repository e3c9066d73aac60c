-- Who acted in a workspace: owners and admins see every person its audit trail names (those who
-- left, or declined an invitation), which the people loader asks per person; the trail's actor
-- filter reads the same index.
CREATE INDEX audit_events_actor ON audit_events (workspace_id, actor_user_id);
