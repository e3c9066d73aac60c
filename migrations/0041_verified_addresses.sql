-- Addresses proved by mail, invitations accepted with a secret, sign-ups waiting for their link,
-- and a record of account mail to bound how much one address gets.

-- When the person followed a link mailed to their address; NULL while nothing proves it is theirs
-- (every account made without a mail server).
ALTER TABLE users ADD COLUMN email_verified_at TEXT;

-- SHA-256 of the invitation's secret (jci_...), shown once to the inviter and mailed to the
-- invitee; the secret itself is never stored. NULL for invitations made before: those are
-- accepted only from a verified address, or revoked and sent again.
ALTER TABLE invitations ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX invitations_token ON invitations (token_hash);

-- Links that verify an address (jcv_...): for an account (user_id), or for a sign-up that makes
-- the account when followed (name and password_hash; user_id NULL).
CREATE TABLE email_verifications (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,          -- SHA-256 of the link's secret
    email         TEXT NOT NULL,                 -- lower-case
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT,
    password_hash TEXT,                          -- argon2id; cleared once the link is used
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT
);
CREATE INDEX email_verifications_expiry ON email_verifications (expires_at);

-- One row per account mail (sign-up, verification request) sent to an address in the last hour.
CREATE TABLE account_mails (
    email   TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX account_mails_email ON account_mails (email, sent_at);
