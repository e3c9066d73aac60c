package auth

import (
	"context"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/mail"
)

// User is a person with an account.
type User struct {
	ID           string `db:"id"`
	Email        string `db:"email"`
	Name         string `db:"name"`
	PasswordHash string `db:"password_hash"`
	// EmailVerifiedAt is when the person followed a link mailed to Email; nil while nothing proves
	// the address is theirs.
	EmailVerifiedAt *db.Time `db:"email_verified_at"`
	CreatedAt       db.Time  `db:"created_at"`
	UpdatedAt       db.Time  `db:"updated_at"`
}

// EmailVerified tells whether the person proved that Email is theirs.
func (u *User) EmailVerified() bool { return u.EmailVerifiedAt != nil }

// Token is an API access token: a credential for programs in one workspace.
type Token struct {
	ID          string   `db:"id"`
	WorkspaceID string   `db:"workspace_id"`
	Name        string   `db:"name"`
	Role        Role     `db:"role"`
	CreatedBy   string   `db:"created_by"`
	CreatedAt   db.Time  `db:"created_at"`
	LastUsedAt  *db.Time `db:"last_used_at"`
	ExpiresAt   *db.Time `db:"expires_at"`
	RevokedAt   *db.Time `db:"revoked_at"`
}

// Policy holds the knobs of sessions and log-in throttling.
type Policy struct {
	SessionTTL time.Duration // how long a session lasts
	// After SlowAfter failed log-ins within Window for one email or one address, each further attempt
	// waits Delay, doubling up to 8 x Delay; after MaxFailures, attempts are refused for Lockout.
	SlowAfter   int
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
	Delay       time.Duration
}

// DefaultPolicy is the policy of a server that sets nothing.
var DefaultPolicy = Policy{SessionTTL: 30 * 24 * time.Hour, SlowAfter: 3, MaxFailures: 10,
	Window: 15 * time.Minute, Lockout: 15 * time.Minute, Delay: 250 * time.Millisecond}

// Service owns accounts and credentials.
type Service struct {
	db       *db.DB
	policy   Policy
	watchers *watchers
	mail     *mail.Mailer
	// OnRevoked, when set, hears the sessions and tokens revoked here, after the commit: other
	// replicas end their websockets too (RevokedElsewhere).
	OnRevoked func(credentialIDs []string)
}

// New returns the service. m sends the mail of sign-up and address verification; when it has no
// SMTP server, addresses are never verified.
func New(d *db.DB, p Policy, m *mail.Mailer) *Service {
	return &Service{db: d, policy: p, watchers: newWatchers(), mail: m}
}

// MailEnabled tells whether the server sends mail (and so verifies addresses).
func (s *Service) MailEnabled() bool { return s.mail.Enabled() }

// Secrets and session ids are prefixed so that the kind is visible without a lookup.
const (
	UserPrefix    = "usr"
	SessionPrefix = "ses"
	TokenPrefix   = "tok"
)

func normaliseEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validateEmail(errs *apperr.UserErrors, field, email string) {
	switch {
	case email == "":
		errs.Add(field, apperr.Required, "%s is required", field)
	case len(email) > 254:
		errs.Add(field, apperr.TooLong, "%s must be at most 254 characters", field)
	case strings.IndexFunc(email, UnsafeRune) >= 0:
		ValidateText(errs, field, email)
	default:
		a, err := netmail.ParseAddress(email)
		if err != nil || a.Address != email || !strings.Contains(email[strings.IndexByte(email, '@')+1:], ".") {
			errs.Add(field, apperr.InvalidValue, "%s must be an email address such as ada@example.com", field)
		}
	}
}

// ValidateName checks a person's or object's display name: 1 to 100 characters after trimming,
// none of them a control character or a bidirectional override (see UnsafeRune).
func ValidateName(errs *apperr.UserErrors, field, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		errs.Add(field, apperr.Required, "%s is required", field)
	case n > 100:
		errs.Add(field, apperr.TooLong, "%s must be at most 100 characters, got %d", field, n)
	default:
		ValidateText(errs, field, name)
	}
}

// UnsafeRune tells whether r may not appear in a name, a label or an address: control characters
// (NUL, line breaks, escape, ...), which can cut or forge text where it is stored, logged or mailed,
// and the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which
// make text display in another order than it is stored ("Admin\u202Etxt.exe").
func UnsafeRune(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// ValidateText adds a userError on field when s holds an UnsafeRune, naming the first one and
// where it is.
func ValidateText(errs *apperr.UserErrors, field, s string) {
	i := 0
	for _, r := range s {
		if UnsafeRune(r) {
			errs.Add(field, apperr.InvalidValue, "%s must not contain control characters or bidirectional overrides, found U+%04X at character %d", field, r, i+1)
			return
		}
		i++
	}
}

// SignUpResult is signUp's answer.
type SignUpResult struct {
	Secret    string // a new session's secret, when one was opened
	User      *User  // the account logged in, with Secret
	EmailSent bool   // a message went to the address (servers with a mail server)
}

// SignUp creates an account, answering alike whether or not the address has one already.
//
// With a mail server, it only mails the address: a link that creates the account (EmailVerify)
// when the address is new, a reminder to log in when it has an account; the answer is the same
// (EmailSent, no session) either way, so nothing is learnt about the address but by its owner.
//
// Without one, nothing can prove an address, and a new address gets its account and a session at
// once, so a free address cannot be hidden. An address that has an account is taken as a log-in
// attempt with these credentials: the right password opens a session, a wrong one gets logIn's
// answer and counts as a failed log-in, so that probing addresses through signUp is slowed and
// locked out exactly as guessing passwords is, and nothing says "already has an account".
func (s *Service) SignUp(ctx context.Context, email, password, name, clientIP string) (SignUpResult, apperr.UserErrors, error) {
	email, name = normaliseEmail(email), strings.TrimSpace(name)
	var errs apperr.UserErrors
	validateEmail(&errs, "email", email)
	validatePassword(&errs, "password", password)
	ValidateName(&errs, "name", name)
	if len(errs) > 0 {
		return SignUpResult{}, errs, nil
	}
	if s.mail.Enabled() {
		return s.signUpByMail(ctx, email, password, name)
	}
	keys := throttleKeys(email, clientIP)
	if errs, err := s.gate(ctx, keys); err != nil || len(errs) > 0 {
		return SignUpResult{}, errs, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return SignUpResult{}, nil, err
	}
	now := db.Now()
	u := &User{ID: id.New(UserPrefix), Email: email, Name: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	var secret string
	taken := false
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM users WHERE email = ?`, email); err != nil {
			return err
		}
		if taken = n > 0; taken {
			return nil
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		secret, err = s.createSession(ctx, tx, u.ID)
		return err
	})
	if err != nil {
		return SignUpResult{}, nil, err
	}
	if taken {
		secret, u, errs, err = s.attempt(ctx, keys, email, password)
		if err != nil || len(errs) > 0 {
			return SignUpResult{}, errs, err
		}
	}
	return SignUpResult{Secret: secret, User: u}, nil, nil
}

// validatePassword checks a new password: 10 to 200 characters.
func validatePassword(errs *apperr.UserErrors, field, password string) {
	switch n := utf8.RuneCountInString(password); {
	case n == 0:
		errs.Add(field, apperr.Required, "%s is required", field)
	case n < 10:
		errs.Add(field, apperr.TooShort, "%s must be at least 10 characters, got %d", field, n)
	case n > 200:
		errs.Add(field, apperr.TooLong, "%s must be at most 200 characters", field)
	}
}

// insertUser stores a new account within tx.
func insertUser(ctx context.Context, tx *db.Tx, u *User) error {
	_, err := tx.Exec(ctx, `INSERT INTO users (id, email, name, password_hash, email_verified_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, u.ID, u.Email, u.Name, u.PasswordHash, u.EmailVerifiedAt, u.CreatedAt, u.UpdatedAt)
	return err
}

func (s *Service) createSession(ctx context.Context, tx *db.Tx, userID string) (string, error) {
	secret, hash := newSecret(sessionPrefix)
	now := db.Now()
	_, err := tx.Exec(ctx, `INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?)`, id.New(SessionPrefix), userID, hash, now, db.Time{Time: now.Add(s.policy.SessionTTL)}, now)
	return secret, err
}

// errWrongCredentials is the one answer to a wrong email or a wrong password.
const wrongCredentials = "the email or password is wrong"

// LogIn checks an email and password and opens a session. Failures are counted per email and per
// client address; past the policy's thresholds attempts are slowed, then refused for a while. The
// answers do not tell whether the email has an account.
func (s *Service) LogIn(ctx context.Context, email, password, clientIP string) (string, *User, apperr.UserErrors, error) {
	email = normaliseEmail(email)
	var errs apperr.UserErrors
	if email == "" {
		errs.Add("email", apperr.Required, "email is required")
	}
	if password == "" {
		errs.Add("password", apperr.Required, "password is required")
	}
	if len(errs) > 0 {
		return "", nil, errs, nil
	}
	keys := throttleKeys(email, clientIP)
	if errs, err := s.gate(ctx, keys); err != nil || len(errs) > 0 {
		return "", nil, errs, err
	}
	return s.attempt(ctx, keys, email, password)
}

// throttleKeys are the counters of failed log-ins an attempt adds to: its email's and its client
// address's.
func throttleKeys(email, clientIP string) []string {
	keys := []string{"email:" + email}
	if clientIP != "" {
		keys = append(keys, "ip:"+clientIP)
	}
	return keys
}

// gate refuses an attempt while one of its keys is locked out, and slows it down after failures.
func (s *Service) gate(ctx context.Context, keys []string) (apperr.UserErrors, error) {
	state, err := s.throttleState(ctx, keys)
	if err != nil {
		return nil, err
	}
	if state.lockedFor > 0 {
		var errs apperr.UserErrors
		errs.Add("", apperr.Throttled, "too many failed log-in attempts: try again in %s", roundUp(state.lockedFor))
		return errs, nil
	}
	if d := s.delayFor(state.failures); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

// attempt checks the password of the account with email and opens a session, or counts a failure
// for keys. A wrong password and an unknown email get the one answer, after the same work.
func (s *Service) attempt(ctx context.Context, keys []string, email, password string) (string, *User, apperr.UserErrors, error) {
	var u User
	err := s.db.Get(ctx, &u, `SELECT * FROM users WHERE email = ?`, email)
	if err != nil && !db.IsNoRows(err) {
		return "", nil, nil, err
	}
	found := err == nil
	hash := dummyHash
	if found {
		hash = u.PasswordHash
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return "", nil, nil, fmt.Errorf("check password of %s: %w", u.ID, err)
	}
	if !ok || !found {
		if err := s.recordFailure(ctx, keys); err != nil {
			return "", nil, nil, err
		}
		var errs apperr.UserErrors
		errs.Add("", apperr.InvalidValue, wrongCredentials)
		return "", nil, errs, nil
	}
	var secret string
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_throttle WHERE key = ?`, keys[0]); err != nil {
			return err
		}
		secret, err = s.createSession(ctx, tx, u.ID)
		return err
	})
	if err != nil {
		return "", nil, nil, err
	}
	return secret, &u, nil, nil
}

func roundUp(d time.Duration) string {
	if m := (d + time.Minute - 1) / time.Minute; m > 1 {
		return fmt.Sprintf("%d minutes", m)
	}
	return "a minute"
}

// LogOut revokes the viewer's session, or all of their sessions, and closes the websockets that
// use them. It returns how many sessions ended.
func (s *Service) LogOut(ctx context.Context, v *Viewer, all bool) (int, error) {
	if v.SessionID == "" {
		return 0, apperr.New(apperr.Forbidden, "logOut ends sessions; an access token is revoked with accessTokenRevoke")
	}
	var ended []string
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		q, args := `SELECT id FROM sessions WHERE id = ? AND revoked_at IS NULL`, []any{v.SessionID}
		if all {
			q, args = `SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL`, []any{v.User.ID}
		}
		if err := tx.Select(ctx, &ended, q, args...); err != nil {
			return err
		}
		for _, sid := range ended {
			if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ?`, db.Now(), sid); err != nil {
				return err
			}
		}
		tx.AfterCommit(func() { s.Revoked(ended...) })
		return nil
	})
	return len(ended), err
}

// ErrBadCredentials is returned by Authenticate for a secret that is unknown, expired or revoked.
var ErrBadCredentials = apperr.New(apperr.Unauthenticated, "the token is invalid, expired or revoked: log in again or use another token")

// Authenticate resolves an Authorization header value to the viewer. An empty header is anonymous
// (nil, nil); anything else that does not name a live session or token is ErrBadCredentials.
func (s *Service) Authenticate(ctx context.Context, header string) (*Viewer, error) {
	if strings.TrimSpace(header) == "" {
		return nil, nil
	}
	secret, ok := bearer(header)
	if !ok {
		return nil, apperr.New(apperr.Unauthenticated, "Authorization: want \"Bearer <token>\"")
	}
	return s.authenticateSecret(ctx, secret)
}

// AuthenticateInitPayload resolves the credentials of a websocket connection_init payload, which
// may be {"Authorization": "Bearer ..."} (GraphiQL's headers) or {"authToken": "..."}. No
// credentials is anonymous (nil, nil).
func (s *Service) AuthenticateInitPayload(ctx context.Context, payload map[string]any) (*Viewer, error) {
	for _, key := range []string{"Authorization", "authorization"} {
		if h, ok := payload[key].(string); ok && h != "" {
			return s.Authenticate(ctx, h)
		}
	}
	if headers, ok := payload["headers"].(map[string]any); ok {
		return s.AuthenticateInitPayload(ctx, headers)
	}
	if t, ok := payload["authToken"].(string); ok && t != "" {
		return s.authenticateSecret(ctx, strings.TrimPrefix(t, "Bearer "))
	}
	return nil, nil
}

// lastUsedGranularity bounds how often a credential's last use is written: reads stay reads.
const lastUsedGranularity = time.Minute

func (s *Service) authenticateSecret(ctx context.Context, secret string) (*Viewer, error) {
	now := time.Now()
	hash := hashSecret(secret)
	switch {
	case strings.HasPrefix(secret, sessionPrefix):
		var row struct {
			SessionID  string   `db:"session_id"`
			ExpiresAt  db.Time  `db:"expires_at"`
			RevokedAt  *db.Time `db:"revoked_at"`
			LastUsedAt db.Time  `db:"last_used_at"`
			User
		}
		err := s.db.Get(ctx, &row, `SELECT s.id AS session_id, s.expires_at, s.revoked_at, s.last_used_at, u.*
			FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?`, hash)
		if db.IsNoRows(err) || (err == nil && (row.RevokedAt != nil || !row.ExpiresAt.After(now))) {
			return nil, ErrBadCredentials
		}
		if err != nil {
			return nil, err
		}
		if now.Sub(row.LastUsedAt.Time) > lastUsedGranularity {
			s.touch(ctx, `UPDATE sessions SET last_used_at = ? WHERE id = ?`, row.SessionID)
		}
		return &Viewer{User: row.User, SessionID: row.SessionID, SessionExpiresAt: row.ExpiresAt.Time}, nil
	case strings.HasPrefix(secret, tokenPrefix):
		var row struct {
			Token
			User `db:"u"`
		}
		err := s.db.Get(ctx, &row, `SELECT `+tokenColumns("t")+`, u.id AS "u.id", u.email AS "u.email", u.name AS "u.name",
			u.password_hash AS "u.password_hash", u.email_verified_at AS "u.email_verified_at",
			u.created_at AS "u.created_at", u.updated_at AS "u.updated_at"
			FROM access_tokens t JOIN users u ON u.id = t.created_by WHERE t.token_hash = ?`, hash)
		if db.IsNoRows(err) || (err == nil && (row.Token.RevokedAt != nil || (row.Token.ExpiresAt != nil && !row.Token.ExpiresAt.After(now)))) {
			return nil, ErrBadCredentials
		}
		if err != nil {
			return nil, err
		}
		if row.Token.LastUsedAt == nil || now.Sub(row.Token.LastUsedAt.Time) > lastUsedGranularity {
			s.touch(ctx, `UPDATE access_tokens SET last_used_at = ? WHERE id = ?`, row.Token.ID)
		}
		tok := row.Token
		return &Viewer{User: row.User, Token: &tok}, nil
	}
	return nil, ErrBadCredentials
}

// touch records a credential's use. A failure is logged by the caller's request, not fatal.
func (s *Service) touch(ctx context.Context, query, credentialID string) {
	_ = s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, query, db.Now(), credentialID)
		return err
	})
}

// UsersWhere loads the users with the given ids that also meet where (a condition on alias u,
// with args), for the workspace package, which decides whom a viewer may see. Missing ids are
// absent from the map.
func (s *Service) UsersWhere(ctx context.Context, ids []string, where string, args ...any) (map[string]User, error) {
	var users []User
	if err := s.db.Select(ctx, &users, `SELECT u.* FROM users u WHERE u.id IN (`+db.Placeholders(len(ids))+`) AND `+where,
		append(db.Args(ids), args...)...); err != nil {
		return nil, err
	}
	out := make(map[string]User, len(users))
	for _, u := range users {
		out[u.ID] = u
	}
	return out, nil
}

// UserByEmail finds an account by email (nil when none).
func (s *Service) UserByEmail(ctx context.Context, q *db.Queryer, email string) (*User, error) {
	var u User
	err := q.Get(ctx, &u, `SELECT * FROM users WHERE email = ?`, normaliseEmail(email))
	if db.IsNoRows(err) {
		return nil, nil
	}
	return &u, err
}

// NormaliseEmail is the stored form of an email address.
func NormaliseEmail(s string) string { return normaliseEmail(s) }

// ValidateEmail checks an email address for a mutation's input.
func ValidateEmail(errs *apperr.UserErrors, field, email string) { validateEmail(errs, field, email) }

// UpdateName renames the viewer.
func (s *Service) UpdateName(ctx context.Context, name string) (*User, apperr.UserErrors, error) {
	v, err := RequireSession(ctx)
	if err != nil {
		return nil, nil, err
	}
	name = strings.TrimSpace(name)
	var errs apperr.UserErrors
	ValidateName(&errs, "name", name)
	if len(errs) > 0 {
		return nil, errs, nil
	}
	u := v.User
	u.Name, u.UpdatedAt = name, db.Now()
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE users SET name = ?, updated_at = ? WHERE id = ?`, u.Name, u.UpdatedAt, u.ID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &u, nil, nil
}

// ChangePassword checks the viewer's current password, sets a new one and ends their other
// sessions (and closes their websockets). It returns how many sessions ended.
func (s *Service) ChangePassword(ctx context.Context, current, next string) (int, apperr.UserErrors, error) {
	v, err := RequireSession(ctx)
	if err != nil {
		return 0, nil, err
	}
	var errs apperr.UserErrors
	var hash string
	if err := s.db.Get(ctx, &hash, `SELECT password_hash FROM users WHERE id = ?`, v.User.ID); err != nil {
		return 0, nil, err
	}
	if ok, err := checkPassword(hash, current); err != nil || !ok {
		errs.Add("currentPassword", apperr.InvalidValue, "currentPassword is wrong")
		return 0, errs, nil
	}
	validatePassword(&errs, "newPassword", next)
	if len(errs) > 0 {
		return 0, errs, nil
	}
	newHash, err := hashPassword(next)
	if err != nil {
		return 0, nil, err
	}
	var ended []string
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, newHash, db.Now(), v.User.ID); err != nil {
			return err
		}
		if err := tx.Select(ctx, &ended, `SELECT id FROM sessions WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`, v.User.ID, v.SessionID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`, db.Now(), v.User.ID, v.SessionID); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.Revoked(ended...) })
		return nil
	})
	return len(ended), nil, err
}
