// Package engage is Segment's Engage (Unify) groundwork: profiles built from the event log by
// identity resolution. A follower of the event log (follow.go: a stored cursor, woken by the
// tracking API's commits, on one replica at a time) reads the identifiers of every accepted event
// of a workspace whose plan includes Engage (user_id, anonymous_id, email, the mobile ids of
// context.device, ga_client_id, and custom ids of context.externalIds), finds the profiles they
// belong to, creates or merges profiles by the workspace's identity resolution rules (priority,
// limit per identifier type, blocked values; Segment's defaults), and keeps each profile's traits
// (the last value of each, with when and from which source) and the events resolved to it.
//
// Readers: the GraphQL API (workspace.profiles, workspace.profile, node) and the Segment-compatible
// Profile API over HTTP (/v1/spaces/{workspace}/collections/users/profiles/...).
//
// Rights: members read profiles; owners and admins change the rules. Engage is part of the
// BUSINESS plan: on other plans no profile is built, none can be read and the rules cannot change.
package engage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Prefix is the id prefix of profiles; MergePrefix that of merges.
const (
	Prefix      = "prf"
	MergePrefix = "prfm"
)

// Profile is one person as identity resolution sees them.
type Profile struct {
	ID          string  `db:"id"`
	WorkspaceID string  `db:"workspace_id"`
	MergedInto  *string `db:"merged_into"`
	CreatedAt   db.Time `db:"created_at"`
	UpdatedAt   db.Time `db:"updated_at"`
}

// Identifier is one of a profile's identifiers (Segment's external ids).
type Identifier struct {
	WorkspaceID string  `db:"workspace_id"`
	Type        string  `db:"type"`
	Value       string  `db:"value"`
	ProfileID   string  `db:"profile_id"`
	SourceID    *string `db:"source_id"`
	FirstSeenAt db.Time `db:"first_seen_at"`
	LastSeenAt  db.Time `db:"last_seen_at"`
}

// Trait is the last value of one of a profile's traits.
type Trait struct {
	ProfileID   string  `db:"profile_id"`
	WorkspaceID string  `db:"workspace_id"`
	Name        string  `db:"name"`
	Value       string  `db:"value"` // JSON
	Text        string  `db:"text"`
	SourceID    *string `db:"source_id"`
	EventID     string  `db:"event_id"`
	UpdatedAt   db.Time `db:"updated_at"`
}

// Merge records that one profile was merged into another.
type Merge struct {
	ID              string  `db:"id"`
	WorkspaceID     string  `db:"workspace_id"`
	ProfileID       string  `db:"profile_id"`
	MergedProfileID string  `db:"merged_profile_id"`
	EventID         string  `db:"event_id"`
	IdentifiersRaw  string  `db:"identifiers"`
	DroppedRaw      string  `db:"dropped"`
	CreatedAt       db.Time `db:"created_at"`
}

// Identifiers are the identifiers of the event that tied the profiles.
func (m *Merge) Identifiers() []Ident { return parseIdents(m.IdentifiersRaw) }

// Dropped are the identifiers left out of the event's resolution because a limit would have been
// exceeded.
func (m *Merge) Dropped() []Ident { return parseIdents(m.DroppedRaw) }

// Service owns profiles, their identifiers, traits, events and merges, and the identity
// resolution rules.
type Service struct {
	db         *db.DB
	workspaces *workspace.Service
	log        *slog.Logger

	states *stateCache
	follow *follower
	// afterRead, in tests, runs between a chunk's read of the graph and its transaction.
	afterRead func()
	// followers run after each transaction of identity resolution (OnResolved).
	followers []func(ctx context.Context, r *Resolved)

	// Gate, when set, tells whether this process resolves (the replica that leads); set it
	// before Start.
	Gate func() bool
}

// New returns the service; Start runs its follower of the event log.
func New(d *db.DB, w *workspace.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: d, workspaces: w, log: log}
	s.states = &stateCache{s: s, ttl: 2 * time.Second, m: map[string]*wsState{}}
	s.follow = newFollower(s)
	return s
}

func errNotOnPlan() error {
	return apperr.New(apperr.Forbidden, "the workspace's plan does not include Engage: it is part of the BUSINESS plan")
}

// wsState is what identity resolution and computed traits need to know of a workspace: whether its plan includes Engage
// and its rules.
type wsState struct {
	engage   bool
	settings *Settings
	at       time.Time
}

// stateCache keeps each workspace's state for a while: the follower of the log and the computed
// traits' worker read it for every batch.
// Changes made in this process apply at once; another replica's within ttl.
type stateCache struct {
	s   *Service
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*wsState
}

func (c *stateCache) get(ctx context.Context, workspaceID string) (*wsState, error) {
	c.mu.Lock()
	st := c.m[workspaceID]
	c.mu.Unlock()
	if st != nil && time.Since(st.at) < c.ttl {
		return st, nil
	}
	var row struct {
		Plan      workspace.Plan `db:"plan"`
		DeletedAt *string        `db:"deleted_at"`
	}
	err := c.s.db.Get(ctx, &row, `SELECT plan, deleted_at FROM workspaces WHERE id = ?`, workspaceID)
	if err != nil && !db.IsNoRows(err) {
		return nil, err
	}
	st = &wsState{at: time.Now()}
	if err == nil && row.DeletedAt == nil && row.Plan.Details().Has(workspace.Engage) {
		st.engage = true
		if st.settings, err = c.s.loadSettings(ctx, c.s.db.Reader(), workspaceID); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.m[workspaceID] = st
	c.mu.Unlock()
	return st, nil
}

// forget drops a workspace's state (its plan or rules changed here).
func (c *stateCache) forget(workspaceID string) {
	c.mu.Lock()
	delete(c.m, workspaceID)
	c.mu.Unlock()
}

// ForgetAll drops every workspace's state (a workspace was deleted or its plan changed).
func (s *Service) ForgetAll() {
	s.states.mu.Lock()
	s.states.m = map[string]*wsState{}
	s.states.mu.Unlock()
}

// hasEngage tells whether a workspace's plan includes Engage.
func hasEngage(ctx context.Context, q *db.Queryer, workspaceID string) (bool, error) {
	var plan workspace.Plan
	if err := q.Get(ctx, &plan, `SELECT plan FROM workspaces WHERE id = ?`, workspaceID); err != nil {
		if db.IsNoRows(err) {
			return false, nil
		}
		return false, err
	}
	return plan.Details().Has(workspace.Engage), nil
}

// readAccess returns the viewer's access to a workspace for reading profiles: members, owners and
// admins (MINIMAL members see none), on a plan that includes Engage.
func (s *Service) readAccess(ctx context.Context, workspaceID string) (*workspace.Access, error) {
	a, err := s.workspaces.Access(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	if err := s.checkRead(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Service) checkRead(ctx context.Context, a *workspace.Access) error {
	if !a.CanReadAll() {
		return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to read profiles")
	}
	ok, err := hasEngage(ctx, s.db.Reader(), a.WorkspaceID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotOnPlan()
	}
	return nil
}
