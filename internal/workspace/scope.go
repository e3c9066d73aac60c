package workspace

import (
	"context"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
)

// Every read of a workspace's data takes the viewer's Access to that workspace and puts what it
// allows in the statement's WHERE clause (source.VisibleWhere and its siblings): there is no way
// for the API to load an object first and check it afterwards. What the delivery engine and the
// live publisher read without a viewer goes through functions named Internal..., which graph/
// never calls.

// Ref names an object of a workspace. Dataloaders are keyed by it, so that each workspace's
// objects load with the viewer's access there.
type Ref struct {
	WorkspaceID, ID string
}

// LoadScoped loads the objects refs name with load, once per workspace and with the viewer's access
// to it. Objects of workspaces the viewer is not in, and those load does not return, are absent
// from the result.
func LoadScoped[V any](ctx context.Context, s *Service, refs []Ref, load func(context.Context, *Access, []string) (map[string]V, error)) (map[Ref]V, error) {
	byWorkspace := map[string][]string{}
	var order []string
	for _, r := range refs {
		if _, ok := byWorkspace[r.WorkspaceID]; !ok {
			order = append(order, r.WorkspaceID)
		}
		byWorkspace[r.WorkspaceID] = append(byWorkspace[r.WorkspaceID], r.ID)
	}
	out := make(map[Ref]V, len(refs))
	for _, ws := range order {
		a, err := s.Access(ctx, ws)
		if err != nil {
			if c := apperr.CodeOf(err); c == apperr.NotFound || c == apperr.Unauthenticated {
				continue
			}
			return nil, err
		}
		found, err := load(ctx, a, byWorkspace[ws])
		if err != nil {
			return nil, err
		}
		for id, v := range found {
			out[Ref{WorkspaceID: ws, ID: id}] = v
		}
	}
	return out, nil
}

// AccessVia returns the viewer's access to the workspace of one object, which query (selecting
// the object's workspace_id by its id, args) finds: UNAUTHENTICATED for an anonymous viewer
// before anything is looked up, NOT_FOUND when the object does not exist or the viewer is not in
// its workspace, so that the two cannot be told apart. It reads nothing of the object but the
// workspace it belongs to: the caller then reads the object with the access in its WHERE clause.
func (s *Service) AccessVia(ctx context.Context, q *db.Queryer, query string, args ...any) (*Access, error) {
	if _, err := auth.RequireViewer(ctx); err != nil {
		return nil, err
	}
	var workspaceID string
	if err := q.Get(ctx, &workspaceID, query, args...); err != nil {
		if db.IsNoRows(err) {
			return nil, errNotFound()
		}
		return nil, err
	}
	return s.Access(ctx, workspaceID)
}

// RightsChanged moves the workspace's rights epoch once tx commits: open subscriptions load the
// viewer's access again and re-check what they send. Other domains call it when something they
// own decides rights, such as a source's labels, which label grants match.
func (s *Service) RightsChanged(tx *db.Tx, workspaceID string) { s.rightsChanged(tx, workspaceID) }

// viewerWorkspaces is the condition that the workspace id in column is one of the viewer's (for
// a token, its own).
func viewerWorkspaces(v *auth.Viewer, column string) (string, []any) {
	where, args := column+" IN (SELECT vm.workspace_id FROM memberships vm WHERE vm.user_id = ?)", []any{v.User.ID}
	if v.Token != nil {
		where += " AND " + column + " = ?"
		args = append(args, v.Token.WorkspaceID)
	}
	return where, args
}

// usersWhere is the condition (on alias u) for the people the viewer sees in a workspace with
// access a: its members and themselves; owners and admins, who read the audit trail, also everyone
// it names (who left, or declined an invitation). For others, an object's creator who is no
// longer a member reads as null.
func usersWhere(a *Access) (string, []any) {
	where := "u.id = ? OR EXISTS (SELECT 1 FROM memberships um WHERE um.workspace_id = ? AND um.user_id = u.id)"
	args := []any{a.Viewer.User.ID, a.WorkspaceID}
	if a.CanAdminister() {
		acted, actedArgs := audit.ActedWhere("u.id", a.WorkspaceID)
		where += " OR " + acted
		args = append(args, actedArgs...)
	}
	return "(" + where + ")", args
}

// Users loads people by id as the viewer sees them in the workspace of a, for dataloaders of
// creators, actors and members.
func (s *Service) Users(ctx context.Context, a *Access, ids []string) (map[string]auth.User, error) {
	where, args := usersWhere(a)
	return s.auth.UsersWhere(ctx, ids, where, args...)
}

// User returns a person the viewer may see: themselves, or someone in one of their workspaces
// (for a token, in its workspace); nil otherwise.
func (s *Service) User(ctx context.Context, userID string) (*auth.User, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	shared, args := viewerWorkspaces(v, "sm.workspace_id")
	m, err := s.auth.UsersWhere(ctx, []string{userID},
		"(u.id = ? OR u.id IN (SELECT sm.user_id FROM memberships sm WHERE "+shared+"))", append([]any{v.User.ID}, args...)...)
	if err != nil {
		return nil, err
	}
	if u, ok := m[userID]; ok {
		return &u, nil
	}
	return nil, nil
}

// Inviters loads, by invitation id, who sent the invitations addressed to the viewer, which they
// see before they are a member: for the dataloader of Invitation.invitedBy on their own
// invitations. A token is never an invitee.
func (s *Service) Inviters(ctx context.Context, invitationIDs []string) (map[string]auth.User, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil || v.Token != nil || !v.User.EmailVerified() {
		return map[string]auth.User{}, err
	}
	var rows []struct {
		InvitationID string `db:"invitation_id"`
		InvitedBy    string `db:"invited_by"`
	}
	if err := s.db.Select(ctx, &rows, `SELECT id AS invitation_id, invited_by FROM invitations
		WHERE id IN (`+db.Placeholders(len(invitationIDs))+`) AND email = ? AND invited_by IS NOT NULL`,
		append(db.Args(invitationIDs), v.User.Email)...); err != nil {
		return nil, err
	}
	out := map[string]auth.User{}
	if len(rows) == 0 {
		return out, nil
	}
	userIDs := make([]string, len(rows))
	for i, r := range rows {
		userIDs[i] = r.InvitedBy
	}
	users, err := s.auth.UsersWhere(ctx, userIDs, "TRUE")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if u, ok := users[r.InvitedBy]; ok {
			out[r.InvitationID] = u
		}
	}
	return out, nil
}

// IsInvitee tells whether the viewer, in person, is who inv is addressed to: they opened its link
// (it was read by its secret), or it is addressed to their verified address.
func IsInvitee(v *auth.Viewer, inv *Invitation) bool {
	return v != nil && v.Token == nil && (inv.ByToken || addressedTo(*inv, v))
}
