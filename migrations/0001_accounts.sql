-- People, their sessions, workspaces, members, invitations, grants, access tokens and the audit
-- trail. Timestamps are UTC text of fixed width (internal/db.Time); ids are prefixed and
-- time-sortable (internal/id), so ORDER BY id is creation order.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,          -- lower-case
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,                 -- argon2id, PHC string
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,           -- SHA-256 of the token; the token itself is never stored
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_throttle (
    key            TEXT PRIMARY KEY,             -- 'email:<address>' or 'ip:<address>'
    failures       INTEGER NOT NULL,
    window_start   TEXT NOT NULL,
    locked_until   TEXT
);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    plan       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE memberships (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    role_rank    INTEGER NOT NULL,               -- 0 owner .. 3 minimal: lists sort owners first
    created_at   TEXT NOT NULL,
    UNIQUE (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE resource_grants (
    id            TEXT PRIMARY KEY,
    membership_id TEXT NOT NULL REFERENCES memberships (id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    source_id     TEXT,
    label         TEXT,
    created_at    TEXT NOT NULL,
    CHECK ((source_id IS NULL) <> (label IS NULL))
);
CREATE INDEX resource_grants_membership ON resource_grants (membership_id);

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,                  -- lower-case
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    invited_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    responded_at TEXT
);
CREATE INDEX invitations_email ON invitations (email, status);
CREATE INDEX invitations_workspace ON invitations (workspace_id, id);

CREATE TABLE access_tokens (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT
);
CREATE INDEX access_tokens_workspace ON access_tokens (workspace_id, id);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    actor_user_id   TEXT,                        -- the user, or the token's creator
    actor_token_id  TEXT,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    changes         TEXT,                        -- JSON
    created_at      TEXT NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_events_resource ON audit_events (workspace_id, resource_id, id);
