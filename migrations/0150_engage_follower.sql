-- Identity resolution follows the event log (internal/engage): its cursor, and the workspaces it
-- resolves with the progress of each one's backfill.

-- Followers of the event log: events with ids above last_event_id have not been looked at yet.
-- Each follower moves its row in the same transaction as the writes its events made.
CREATE TABLE log_followers (
    name          TEXT PRIMARY KEY,
    last_event_id TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- The workspaces whose events identity resolution follows: those on a plan with Engage. A
-- workspace joins at the follower's cursor of that moment (backfill_until): the follower resolves
-- its events after it, the backfill its stored events up to it.
CREATE TABLE engage_workspaces (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    backfill_after TEXT NOT NULL,               -- the backfill has looked at its events up to here
    backfill_until TEXT NOT NULL,
    backfilled     BIGINT NOT NULL,             -- events the backfill resolved
    joined_at      TEXT NOT NULL,
    backfilled_at  TEXT                         -- NULL while the backfill runs
);
CREATE INDEX engage_workspaces_backfill ON engage_workspaces (joined_at) WHERE backfilled_at IS NULL;
