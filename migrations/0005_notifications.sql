-- Activity notifications: one row per recipient of a workspace activity, their settings, and
-- their optional webhook channel.

CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,              -- an audit event type, or HEALTH_ISSUE_OPENED / _RESOLVED
    area            TEXT NOT NULL,
    message         TEXT NOT NULL,
    actor_user_id   TEXT,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    audit_event_id  TEXT,
    read_at         TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, read_at, id);

-- Only the types a user turned off are stored: everything is on by default.
CREATE TABLE notification_settings (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type    TEXT NOT NULL,
    in_app  BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, type)
);

CREATE TABLE notification_webhooks (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,                   -- sealed with the server's key
    updated_at TEXT NOT NULL
);
