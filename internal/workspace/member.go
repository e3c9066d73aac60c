package workspace

import (
	"context"
	"strings"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/relay"
)

// Membership is a person's place in a workspace.
type Membership struct {
	ID          string    `db:"id"`
	WorkspaceID string    `db:"workspace_id"`
	UserID      string    `db:"user_id"`
	Role        auth.Role `db:"role"`
	RoleRank    int       `db:"role_rank"`
	CreatedAt   db.Time   `db:"created_at"`
}

// ResourceRole is the right a grant gives.
type ResourceRole string

const (
	SourceAdmin ResourceRole = "SOURCE_ADMIN"
	SourceRead  ResourceRole = "SOURCE_READ"
)

// Grant gives a member rights on the source with an id, or on every source carrying a label.
type Grant struct {
	ID           string       `db:"id"`
	MembershipID string       `db:"membership_id"`
	WorkspaceID  string       `db:"workspace_id"`
	Role         ResourceRole `db:"role"`
	SourceID     *string      `db:"source_id"`
	Label        *string      `db:"label"`
	CreatedAt    db.Time      `db:"created_at"`
}

// Members pages through a workspace's members, owners first, then by join date.
func (s *Service) Members(ctx context.Context, workspaceID string, role *auth.Role, args relay.Args, count bool) (relay.Page[Membership], error) {
	if _, err := s.Access(ctx, workspaceID); err != nil {
		return relay.Page[Membership]{}, err
	}
	where, qargs := "workspace_id = ?", []any{workspaceID}
	if role != nil {
		where += " AND role = ?"
		qargs = append(qargs, *role)
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Membership]{
		Select: "SELECT * FROM memberships", Where: where, Args: qargs,
		SortColumn: "role_rank", Count: count,
		ID: func(m Membership) string { return m.ID }, SortKey: func(m Membership) any { return m.RoleRank },
	}, args)
}

// Membership returns one membership the viewer may see: of a workspace they are in (nil otherwise).
func (s *Service) Membership(ctx context.Context, membershipID string) (*Membership, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	where, args := viewerWorkspaces(v, "m.workspace_id")
	var m Membership
	err = s.db.Get(ctx, &m, `SELECT m.* FROM memberships m WHERE m.id = ? AND `+where, append([]any{membershipID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// visibleOrNil turns NOT_FOUND into "nothing" for node lookups, keeping other errors.
func visibleOrNil(err error) error {
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil
	}
	return err
}

// GrantsByMembership loads the grants of memberships of the workspace of a, which everyone in it
// sees with its members, for dataloaders.
func (s *Service) GrantsByMembership(ctx context.Context, a *Access, membershipIDs []string) (map[string][]Grant, error) {
	var rows []Grant
	if err := s.db.Select(ctx, &rows, `SELECT * FROM resource_grants WHERE membership_id IN (`+db.Placeholders(len(membershipIDs))+`)
		AND workspace_id = ? ORDER BY id`, append(db.Args(membershipIDs), a.WorkspaceID)...); err != nil {
		return nil, err
	}
	out := map[string][]Grant{}
	for _, g := range rows {
		out[g.MembershipID] = append(out[g.MembershipID], g)
	}
	return out, nil
}

// Grant returns one grant the viewer may see: of a workspace they are in (nil otherwise).
func (s *Service) Grant(ctx context.Context, grantID string) (*Grant, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	where, args := viewerWorkspaces(v, "g.workspace_id")
	var g Grant
	err = s.db.Get(ctx, &g, `SELECT g.* FROM resource_grants g WHERE g.id = ? AND `+where, append([]any{grantID}, args...)...)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// membershipFor loads a membership and the viewer's access to its workspace; NOT_FOUND when either
// is missing.
func (s *Service) membershipFor(ctx context.Context, membershipID string) (*Membership, *Access, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, nil, err
	}
	var m Membership
	err := s.db.Get(ctx, &m, `SELECT * FROM memberships WHERE id = ?`, membershipID)
	if db.IsNoRows(err) {
		return nil, nil, apperr.NotFoundf("membership not found")
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := s.Access(ctx, m.WorkspaceID)
	if err != nil {
		return nil, nil, hide(err, "membership not found")
	}
	return &m, a, nil
}

// hide turns a failed access check into NOT_FOUND for the object at hand, keeping UNAUTHENTICATED:
// an anonymous caller is told to log in, whether or not the object exists.
func hide(err error, notFound string) error {
	if apperr.CodeOf(err) == apperr.Unauthenticated {
		return err
	}
	return apperr.NotFoundf("%s", notFound)
}

// owners counts a workspace's owners within tx.
func owners(ctx context.Context, tx *db.Tx, workspaceID string) (int, error) {
	var n int
	err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM memberships WHERE workspace_id = ? AND role = ?`, workspaceID, auth.Owner)
	return n, err
}

// UpdateRole changes a member's role; owners. The last owner cannot be demoted.
func (s *Service) UpdateRole(ctx context.Context, membershipID string, role auth.Role) (*Membership, apperr.UserErrors, error) {
	m, a, err := s.membershipFor(ctx, membershipID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanManageMembers() {
		return nil, nil, errForbidden("change members' roles")
	}
	var errs apperr.UserErrors
	if !role.Valid() {
		errs.Add("role", apperr.InvalidValue, "role must be OWNER, ADMIN, MEMBER or MINIMAL")
		return nil, errs, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Get(ctx, m, `SELECT * FROM memberships WHERE id = ?`, membershipID); err != nil {
			return err
		}
		if m.Role == role {
			return nil
		}
		if m.Role == auth.Owner {
			if n, err := owners(ctx, tx, m.WorkspaceID); err != nil || n <= 1 {
				if n <= 1 {
					errs.Add("role", apperr.NotAllowed, "the last owner cannot be demoted: make someone else owner first")
				}
				return err
			}
		}
		from := m.Role
		m.Role, m.RoleRank = role, role.Rank()
		if _, err := tx.Exec(ctx, `UPDATE memberships SET role = ?, role_rank = ? WHERE id = ?`, m.Role, m.RoleRank, m.ID); err != nil {
			return err
		}
		s.rightsChanged(tx, m.WorkspaceID)
		return audit.Record(ctx, tx, m.WorkspaceID, EventMemberRoleChanged, "Membership", m.ID, map[string]audit.Change{"role": {From: from, To: role}})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return m, nil, nil
}

// Remove takes a member out of a workspace: owners remove anyone, anyone removes themselves
// (leaves). The last owner can do neither. The member's access tokens of the workspace are revoked
// and their websockets closed.
func (s *Service) Remove(ctx context.Context, membershipID string) (apperr.UserErrors, error) {
	m, a, err := s.membershipFor(ctx, membershipID)
	if err != nil {
		return nil, err
	}
	// Leaving is a person's own act: a token acts for its creator in the workspace but cannot make
	// them leave it.
	self := m.UserID == a.Viewer.User.ID && a.Viewer.Token == nil
	if !self && !a.CanManageMembers() {
		return nil, errForbidden("remove members")
	}
	var errs apperr.UserErrors
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Get(ctx, m, `SELECT * FROM memberships WHERE id = ?`, m.ID); err != nil {
			if db.IsNoRows(err) {
				return apperr.NotFoundf("membership not found")
			}
			return err
		}
		if m.Role == auth.Owner {
			if n, err := owners(ctx, tx, m.WorkspaceID); err != nil || n <= 1 {
				if n <= 1 {
					errs.Add("membershipId", apperr.NotAllowed, "the last owner cannot leave or be removed: make someone else owner first, or delete the workspace")
				}
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM memberships WHERE id = ?`, m.ID); err != nil {
			return err
		}
		revoked, err := s.auth.RevokeTokens(ctx, tx, "workspace_id = ? AND created_by = ?", m.WorkspaceID, m.UserID)
		if err != nil {
			return err
		}
		s.rightsChanged(tx, m.WorkspaceID)
		typ := EventMemberRemoved
		if self {
			typ = EventMemberLeft
		}
		return audit.Record(ctx, tx, m.WorkspaceID, typ, "Membership", m.ID, map[string]any{"userId": m.UserID, "role": m.Role, "revokedAccessTokens": len(revoked)})
	})
	return errs, err
}

// AddGrant gives a member rights on one source or on every source with a label; owners.
func (s *Service) AddGrant(ctx context.Context, membershipID string, role ResourceRole, sourceID, label *string) (*Membership, apperr.UserErrors, error) {
	m, a, err := s.membershipFor(ctx, membershipID)
	if err != nil {
		return nil, nil, err
	}
	if !a.CanManageMembers() {
		return nil, nil, errForbidden("change members' grants")
	}
	var errs apperr.UserErrors
	if role != SourceAdmin && role != SourceRead {
		errs.Add("role", apperr.InvalidValue, "role must be SOURCE_ADMIN or SOURCE_READ")
	}
	switch {
	case (sourceID == nil) == (label == nil):
		errs.Add("sourceId", apperr.InvalidValue, "give exactly one of sourceId and label")
	case label != nil:
		*label = strings.TrimSpace(*label)
		if k, v, ok := strings.Cut(*label, ":"); !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || len(*label) > 100 {
			errs.Add("label", apperr.InvalidValue, "label must be key:value, such as environment:prod, at most 100 characters")
		} else {
			auth.ValidateText(&errs, "label", *label)
		}
	case sourceID != nil:
		if p, ok := id.Prefix(*sourceID); !ok || p != "src" {
			errs.Add("sourceId", apperr.InvalidValue, "sourceId must be the ID of a source (src_...)")
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if sourceID != nil {
			// A grant names a source of its own workspace: one of another workspace answers as
			// one that never existed.
			ok, err := s.Sources.InWorkspace(ctx, &tx.Queryer, m.WorkspaceID, *sourceID)
			if err != nil {
				return err
			}
			if !ok {
				errs.Add("sourceId", apperr.InvalidValue, "sourceId must be the ID of a source of this workspace")
				return nil
			}
		}
		g := Grant{ID: id.New(GrantPrefix), MembershipID: m.ID, WorkspaceID: m.WorkspaceID, Role: role, SourceID: sourceID, Label: label, CreatedAt: db.Now()}
		if _, err := tx.Exec(ctx, `INSERT INTO resource_grants (id, membership_id, workspace_id, role, source_id, label, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.MembershipID, g.WorkspaceID, g.Role, g.SourceID, g.Label, g.CreatedAt); err != nil {
			return err
		}
		s.rightsChanged(tx, m.WorkspaceID)
		return audit.Record(ctx, tx, m.WorkspaceID, EventGrantAdded, "ResourceGrant", g.ID, map[string]any{"membershipId": m.ID, "role": role, "sourceId": sourceID, "label": label})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return m, nil, nil
}

// RemoveGrant takes a grant away; owners.
func (s *Service) RemoveGrant(ctx context.Context, grantID string) (*Membership, apperr.UserErrors, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, nil, err
	}
	var g Grant
	err := s.db.Get(ctx, &g, `SELECT * FROM resource_grants WHERE id = ?`, grantID)
	if db.IsNoRows(err) {
		return nil, nil, apperr.NotFoundf("grant not found")
	}
	if err != nil {
		return nil, nil, err
	}
	m, a, err := s.membershipFor(ctx, g.MembershipID)
	if err != nil {
		return nil, nil, hide(err, "grant not found")
	}
	if !a.CanManageMembers() {
		return nil, nil, errForbidden("change members' grants")
	}
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM resource_grants WHERE id = ?`, g.ID); err != nil {
			return err
		}
		s.rightsChanged(tx, g.WorkspaceID)
		return audit.Record(ctx, tx, g.WorkspaceID, EventGrantRemoved, "ResourceGrant", g.ID, map[string]any{"membershipId": m.ID, "role": g.Role})
	})
	if err != nil {
		return nil, nil, err
	}
	return m, nil, nil
}
