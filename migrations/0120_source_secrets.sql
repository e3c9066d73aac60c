-- Secret settings of sources (a cloud app's signing secret), AES-256-GCM with (workspace, source,
-- name) as additional data, as destination_secrets. The source's settings keep the mask in their
-- place, so that reading a source needs no second query.
CREATE TABLE source_secrets (
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    PRIMARY KEY (source_id, name)
);
