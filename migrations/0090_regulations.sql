-- End-user privacy: regulations (Segment's deletion and suppression requests) and the subjects a
-- workspace suppresses at ingest. Subjects are kept in clear only while their request runs; what
-- stays afterwards is a salted hash (HMAC with the server's key), enough to suppress and to
-- answer "is this person suppressed?" but not to tell who they were.

CREATE TABLE regulations (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type           TEXT NOT NULL,               -- SUPPRESS_ONLY, UNSUPPRESS, DELETE_INTERNAL, DELETE_ONLY, SUPPRESS_WITH_DELETE
    subject_type   TEXT NOT NULL,               -- USER_ID, ANONYMOUS_ID, EMAIL
    subject_count  INTEGER NOT NULL,
    status         TEXT NOT NULL,               -- INITIALIZED, RUNNING, FINISHED, FAILED, PARTIAL_SUCCESS, NOT_SUPPORTED, CANCELED
    not_before     TEXT NOT NULL,               -- the worker starts it from then: until, it can be canceled
    rows_deleted   BIGINT NOT NULL,             -- stored rows deleted or made anonymous so far
    destinations   TEXT NOT NULL,               -- JSON array: each connected destination's status
    error          TEXT,
    created_by     TEXT,                        -- the user, or the token's creator
    created_by_token TEXT,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    claimed_at     TEXT,                        -- the worker carrying it out was alive then (replicas take over a stale claim)
    finished_at    TEXT,
    canceled_at    TEXT
);
CREATE INDEX regulations_workspace ON regulations (workspace_id, id);
CREATE INDEX regulations_status ON regulations (status, not_before);

-- The subjects of a regulation: in clear (subject) until it has finished or was canceled.
CREATE TABLE regulation_subjects (
    regulation_id TEXT NOT NULL REFERENCES regulations (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    subject       TEXT,
    subject_hash  TEXT NOT NULL,
    PRIMARY KEY (regulation_id, position)
);

-- Subjects whose events the tracking API refuses, by salted hash.
CREATE TABLE suppressed_subjects (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    subject_type  TEXT NOT NULL,
    subject_hash  TEXT NOT NULL,
    regulation_id TEXT NOT NULL,                -- the request that suppressed it
    created_at    TEXT NOT NULL,
    PRIMARY KEY (workspace_id, subject_type, subject_hash)
);
CREATE INDEX suppressed_subjects_regulation ON suppressed_subjects (regulation_id);
