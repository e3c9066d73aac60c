-- Replicas of the server on one PostgreSQL database (internal/replica). SQLite has one process.

-- replicas: each running process, renewed every second; the live ones share the lanes.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- replica_leases: what one replica at a time does (a destination's delivery lane, the periodic
-- work), held until expires_at and renewed by its owner; another takes it once it expires.
CREATE TABLE replica_leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX replica_leases_owner ON replica_leases (owner);

-- replica_messages: batches of bus messages too large for a NOTIFY (8000 bytes), which then
-- carries the row's id. Read at once by the other replicas, deleted a few minutes later.
CREATE TABLE replica_messages (
    id         BIGSERIAL PRIMARY KEY,
    origin     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
