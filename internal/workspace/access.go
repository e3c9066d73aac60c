package workspace

import (
	"context"
	"strings"
	"sync"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
)

// Access is what the viewer may do in one workspace: their effective role (for a token, the lesser
// of the token's role and its creator's current role) and their resource grants.
type Access struct {
	WorkspaceID  string
	MembershipID string
	Role         auth.Role
	Grants       []Grant
	Viewer       *auth.Viewer
}

// CanUpdateWorkspace: rename, change the slug; owners and admins.
func (a *Access) CanUpdateWorkspace() bool { return a.Role.AtLeast(auth.Admin) }

// CanDeleteWorkspace: owners.
func (a *Access) CanDeleteWorkspace() bool { return a.Role == auth.Owner }

// CanManageMembers: invite, remove, change roles and grants; owners.
func (a *Access) CanManageMembers() bool { return a.Role == auth.Owner }

// CanChangePlan: owners.
func (a *Access) CanChangePlan() bool { return a.Role == auth.Owner }

// CanAdminister: every resource and setting (sources, destinations, tokens of others, the audit
// trail); owners and admins.
func (a *Access) CanAdminister() bool { return a.Role.AtLeast(auth.Admin) }

// CanReadAll: see every resource; everyone but MINIMAL members.
func (a *Access) CanReadAll() bool { return a.Role.AtLeast(auth.Member) }

// SourceRights tells what the viewer may do with a source with the given id and labels: read it,
// and administer it (change it, its write keys and its connections).
func (a *Access) SourceRights(sourceID string, labels []string) (read, admin bool) {
	if a.CanAdminister() {
		return true, true
	}
	read = a.CanReadAll()
	for _, g := range a.Grants {
		if !g.covers(sourceID, labels) {
			continue
		}
		read = true
		if g.Role == SourceAdmin {
			admin = true
		}
	}
	return read, admin
}

func (g Grant) covers(sourceID string, labels []string) bool {
	if g.SourceID != nil {
		return *g.SourceID == sourceID
	}
	if g.Label != nil {
		for _, l := range labels {
			if strings.EqualFold(l, *g.Label) {
				return true
			}
		}
	}
	return false
}

// errNotFound is the one answer for a workspace that does not exist or is not the viewer's, so that
// the two cannot be told apart.
func errNotFound() error { return apperr.NotFoundf("workspace not found") }

// errForbidden says the viewer is a member without the right.
func errForbidden(what string) error {
	return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to %s", what)
}

type accessCache struct {
	mu sync.Mutex
	m  map[string]*accessEntry
}

// accessEntry is one workspace's access, loaded once however many resolvers ask at the same time.
type accessEntry struct {
	once sync.Once
	a    *Access
	err  error
}

type accessCacheKey struct{}

// WithAccessCache returns a context in which Access results are remembered. The server makes one
// per operation, so rights are read fresh for every request and every websocket operation (a
// removed member loses access at once) but only once within an operation.
func WithAccessCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, accessCacheKey{}, &accessCache{m: map[string]*accessEntry{}})
}

// Access returns the viewer's rights in workspace workspaceID: UNAUTHENTICATED when anonymous,
// NOT_FOUND when the workspace does not exist or the viewer is not in it.
func (s *Service) Access(ctx context.Context, workspaceID string) (*Access, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	entry := &accessEntry{}
	if cache, _ := ctx.Value(accessCacheKey{}).(*accessCache); cache != nil {
		cache.mu.Lock()
		if e, ok := cache.m[workspaceID]; ok {
			entry = e
		} else {
			cache.m[workspaceID] = entry
		}
		cache.mu.Unlock()
	}
	entry.once.Do(func() { entry.a, entry.err = s.loadAccess(ctx, v, workspaceID) })
	if entry.err != nil {
		return nil, entry.err
	}
	if entry.a == nil {
		return nil, errNotFound()
	}
	return entry.a, nil
}

func (s *Service) loadAccess(ctx context.Context, v *auth.Viewer, workspaceID string) (*Access, error) {
	if v.Token != nil && v.Token.WorkspaceID != workspaceID {
		return nil, nil
	}
	var m struct {
		ID   string    `db:"id"`
		Role auth.Role `db:"role"`
	}
	err := s.db.Get(ctx, &m, `SELECT id, role FROM memberships WHERE workspace_id = ? AND user_id = ?`, workspaceID, v.User.ID)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := &Access{WorkspaceID: workspaceID, MembershipID: m.ID, Role: m.Role, Viewer: v}
	if v.Token != nil {
		a.Role = auth.Lesser(v.Token.Role, m.Role)
	}
	if !a.CanAdminister() {
		if err := s.db.Select(ctx, &a.Grants, `SELECT * FROM resource_grants WHERE membership_id = ? ORDER BY id`, m.ID); err != nil {
			return nil, err
		}
	}
	return a, nil
}
