// Package auth is who is asking: accounts, passwords, sessions and API access tokens, the viewer of
// a request, the throttling of failed log-ins, and the roles that the workspace package turns into
// rights. Secrets are random 256-bit values stored only as hashes; passwords are hashed with argon2id.
package auth

import (
	"context"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
)

// Role is a workspace role. The order of the constants is the order of rights, most first.
type Role string

const (
	Owner   Role = "OWNER"
	Admin   Role = "ADMIN"
	Member  Role = "MEMBER"
	Minimal Role = "MINIMAL"
)

// Rank orders roles: 0 for OWNER (most rights) to 3 for MINIMAL; -1 for an unknown role.
func (r Role) Rank() int {
	switch r {
	case Owner:
		return 0
	case Admin:
		return 1
	case Member:
		return 2
	case Minimal:
		return 3
	}
	return -1
}

// Valid tells whether r is a known role.
func (r Role) Valid() bool { return r.Rank() >= 0 }

// AtLeast tells whether r has at least the rights of other.
func (r Role) AtLeast(other Role) bool { return r.Valid() && other.Valid() && r.Rank() <= other.Rank() }

// Lesser returns the role with fewer rights of a and b.
func Lesser(a, b Role) Role {
	if a.Rank() >= b.Rank() {
		return a
	}
	return b
}

// Viewer is who makes a request: a user with a session, or an access token (on behalf of its
// creator, in its one workspace).
type Viewer struct {
	User      User
	SessionID string // set when authenticated by a session
	Token     *Token // set when authenticated by an access token
	// SessionExpiresAt is when the session ends, when authenticated by a session.
	SessionExpiresAt time.Time
}

// expiresAt is when the viewer's credential stops working; zero for never.
func (v *Viewer) expiresAt() time.Time {
	if v.Token != nil {
		if v.Token.ExpiresAt != nil {
			return v.Token.ExpiresAt.Time
		}
		return time.Time{}
	}
	return v.SessionExpiresAt
}

// ActorIDs returns the user and token ids for the audit trail.
func (v *Viewer) ActorIDs() (userID, tokenID string) {
	if v.Token != nil {
		return v.User.ID, v.Token.ID
	}
	return v.User.ID, ""
}

// CredentialID is the id of the session or token the viewer authenticated with.
func (v *Viewer) CredentialID() string {
	if v.Token != nil {
		return v.Token.ID
	}
	return v.SessionID
}

type viewerKey struct{}

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v *Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// ViewerFrom returns the viewer of ctx, or nil when anonymous.
func ViewerFrom(ctx context.Context) *Viewer {
	v, _ := ctx.Value(viewerKey{}).(*Viewer)
	return v
}

// RequireViewer returns the viewer, or an UNAUTHENTICATED error.
func RequireViewer(ctx context.Context) (*Viewer, error) {
	if v := ViewerFrom(ctx); v != nil {
		return v, nil
	}
	return nil, apperr.New(apperr.Unauthenticated, "log in first: send a session or access token as Authorization: Bearer <token>")
}

// RequireSession returns the viewer when authenticated by a session (not an access token), for
// the few things a token may never do (create workspaces or tokens, change the account).
func RequireSession(ctx context.Context) (*Viewer, error) {
	v, err := RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	if v.Token != nil {
		return nil, apperr.New(apperr.Forbidden, "an access token cannot do this: log in as a person")
	}
	return v, nil
}
