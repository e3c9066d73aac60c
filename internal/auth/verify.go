package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/mail"
	"github.com/junctioncdp/junction/internal/obs"
)

// Proving an address: a link with a secret is mailed to it, and following it (EmailVerify) proves
// that whoever followed it reads that mailbox. A sign-up on a server with a mail server waits for
// its link before the account exists; an account made otherwise (before a mail server was
// configured) asks for a link with SendVerification.

// VerificationPrefix is the id prefix of pending verifications.
const VerificationPrefix = "evf"

const (
	// verificationTTL is how long a link that verifies an address works.
	verificationTTL = 24 * time.Hour
	// accountMailsPerHour bounds the mail that account acts (sign-up, verification requests) send
	// to one address, so that nobody can flood someone's mailbox through this server.
	accountMailsPerHour = 5
)

// LinkEmailVerification is the fragment key of links that verify an address.
const LinkEmailVerification = "email-verification"

// signUpByMail mails email either a link that creates the account or a reminder that it has one;
// it answers the same either way.
func (s *Service) signUpByMail(ctx context.Context, email, password, name string) (SignUpResult, apperr.UserErrors, error) {
	// The password is hashed whether or not it will be stored, so that the answer takes as long.
	hash, err := hashPassword(password)
	if err != nil {
		return SignUpResult{}, nil, err
	}
	var secret string
	var existing, allowed bool
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if allowed, err = s.allowAccountMail(ctx, tx, email); err != nil || !allowed {
			return err
		}
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM users WHERE email = ?`, email); err != nil {
			return err
		}
		if existing = n > 0; existing {
			return nil
		}
		secret, err = s.storeVerification(ctx, tx, email, nil, name, hash)
		return err
	})
	if err != nil {
		return SignUpResult{}, nil, err
	}
	if !allowed {
		obs.Logger(ctx).Warn("account mail not sent: too many to one address within an hour", "kind", "sign-up")
		return SignUpResult{}, nil, nil
	}
	msg := mail.Message{To: email, Subject: "Confirm your address for Junction", Text: fmt.Sprintf(
		"Hello %s,\n\nSomeone, probably you, signed up for Junction at %s with this address.\n"+
			"Follow this link within 24 hours to confirm it and log in:\n\n%s\n\n"+
			"If it was not you, ignore this message: no account is made without the link.\n",
		name, s.mail.PublicURL(), s.mail.Link(LinkEmailVerification, secret))}
	if existing {
		msg = mail.Message{To: email, Subject: "You already have a Junction account", Text: fmt.Sprintf(
			"Hello,\n\nSomeone, probably you, tried to sign up for Junction at %s with this address, "+
				"which already has an account. Log in with it instead.\n\n"+
				"If it was not you, ignore this message: nothing has changed.\n",
			s.mail.PublicURL())}
	}
	return SignUpResult{EmailSent: s.send(ctx, "sign-up", msg)}, nil, nil
}

// send mails msg, logging (without its text, which may hold a secret) when the mail server does
// not take it. It tells whether the server took it.
func (s *Service) send(ctx context.Context, kind string, msg mail.Message) bool {
	if err := s.mail.Send(ctx, msg); err != nil {
		obs.Logger(ctx).Warn("mail not sent", "kind", kind, "error", err.Error())
		return false
	}
	return true
}

// allowAccountMail records, within tx, one more account mail to email, unless accountMailsPerHour
// went there within the last hour. It also forgets records and links old enough not to matter.
func (s *Service) allowAccountMail(ctx context.Context, tx *db.Tx, email string) (bool, error) {
	now := db.Now()
	if _, err := tx.Exec(ctx, `DELETE FROM account_mails WHERE sent_at < ?`, db.Time{Time: now.Add(-time.Hour)}); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM email_verifications WHERE expires_at < ?`, now); err != nil {
		return false, err
	}
	var n int
	if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM account_mails WHERE email = ?`, email); err != nil {
		return false, err
	}
	if n >= accountMailsPerHour {
		return false, nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO account_mails (email, sent_at) VALUES (?, ?)`, email, now)
	return err == nil, err
}

// storeVerification stores a pending verification of email within tx: for the account userID, or
// (userID nil) a sign-up with its name and password hash. It returns the link's secret.
func (s *Service) storeVerification(ctx context.Context, tx *db.Tx, email string, userID *string, name, passwordHash string) (string, error) {
	secret, hash := newSecret(verificationPrefix)
	now := db.Now()
	var n, p *string
	if userID == nil {
		n, p = &name, &passwordHash
	}
	_, err := tx.Exec(ctx, `INSERT INTO email_verifications (id, token_hash, email, user_id, name, password_hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id.New(VerificationPrefix), hash, email, userID, n, p, now, db.Time{Time: now.Add(verificationTTL)})
	return secret, err
}

// SendVerification mails the viewer a link that verifies their address; sessions only. It is a
// userError when the server sends no mail or the address is verified already.
func (s *Service) SendVerification(ctx context.Context) (bool, apperr.UserErrors, error) {
	v, err := RequireSession(ctx)
	if err != nil {
		return false, nil, err
	}
	var errs apperr.UserErrors
	switch {
	case !s.mail.Enabled():
		errs.Add("", apperr.NotAllowed, "this server sends no mail (no SMTP_URL is configured), so addresses cannot be verified")
	case v.User.EmailVerified():
		errs.Add("", apperr.NotAllowed, "your address %s is verified already", v.User.Email)
	}
	if len(errs) > 0 {
		return false, errs, nil
	}
	var secret string
	allowed := false
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if allowed, err = s.allowAccountMail(ctx, tx, v.User.Email); err != nil || !allowed {
			return err
		}
		userID := v.User.ID
		secret, err = s.storeVerification(ctx, tx, v.User.Email, &userID, "", "")
		return err
	})
	if err != nil {
		return false, nil, err
	}
	if !allowed {
		errs.Add("", apperr.Throttled, "%d messages went to %s within the last hour: try again later", accountMailsPerHour, v.User.Email)
		return false, errs, nil
	}
	return s.send(ctx, "email verification", mail.Message{To: v.User.Email, Subject: "Confirm your address for Junction", Text: fmt.Sprintf(
		"Hello %s,\n\nFollow this link within 24 hours to confirm that this address is yours:\n\n%s\n\n"+
			"If you did not ask for it, ignore this message.\n", v.User.Name, s.mail.Link(LinkEmailVerification, secret))}), nil, nil
}

// EmailVerify follows a link mailed by signUp or SendVerification. For a sign-up it creates the
// account, its address verified, and opens a session (returning its secret); for an account it
// marks the address verified (no session: the link may be opened anywhere). A link works once,
// within verificationTTL; an unknown, used or expired one is a userError on token.
func (s *Service) EmailVerify(ctx context.Context, token string) (string, *User, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	invalid := func() {
		errs.Add("token", apperr.InvalidValue, "the link is unknown, used or expired: ask for a new one")
	}
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, verificationPrefix) {
		invalid()
		return "", nil, errs, nil
	}
	var row struct {
		ID           string   `db:"id"`
		Email        string   `db:"email"`
		UserID       *string  `db:"user_id"`
		Name         *string  `db:"name"`
		PasswordHash *string  `db:"password_hash"`
		ExpiresAt    db.Time  `db:"expires_at"`
		UsedAt       *db.Time `db:"used_at"`
	}
	var secret string
	var u User
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		err := tx.Get(ctx, &row, `SELECT id, email, user_id, name, password_hash, expires_at, used_at
			FROM email_verifications WHERE token_hash = ?`, hashSecret(token))
		if db.IsNoRows(err) || (err == nil && (row.UsedAt != nil || !row.ExpiresAt.After(time.Now()))) {
			invalid()
			return nil
		}
		if err != nil {
			return err
		}
		now := db.Now()
		res, err := tx.Exec(ctx, `UPDATE email_verifications SET used_at = ?, password_hash = NULL WHERE id = ? AND used_at IS NULL`, now, row.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 { // followed twice at once: once counts
			invalid()
			return err
		}
		if row.UserID != nil {
			res, err := tx.Exec(ctx, `UPDATE users SET email_verified_at = ?, updated_at = ? WHERE id = ? AND email = ?`, now, now, *row.UserID, row.Email)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				invalid() // the address changed since the link was sent
				return err
			}
			return tx.Get(ctx, &u, `SELECT * FROM users WHERE id = ?`, *row.UserID)
		}
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM users WHERE email = ?`, row.Email); err != nil {
			return err
		}
		if n > 0 { // another link of the same address was followed first
			errs.Add("token", apperr.Taken, "%s has an account already: log in", row.Email)
			return nil
		}
		u = User{ID: id.New(UserPrefix), Email: row.Email, Name: *row.Name, PasswordHash: *row.PasswordHash,
			EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
		if err := insertUser(ctx, tx, &u); err != nil {
			return err
		}
		secret, err = s.createSession(ctx, tx, u.ID)
		return err
	})
	if err != nil || len(errs) > 0 {
		return "", nil, errs, err
	}
	return secret, &u, nil, nil
}
