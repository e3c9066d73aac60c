package engage

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// profileWhere is the condition (on alias p) for the standing profiles the viewer sees in the
// workspace of a: all of them for members, owners and admins; none for MINIMAL members.
func profileWhere(a *workspace.Access) (string, []any) {
	if !a.CanReadAll() {
		return "FALSE", nil
	}
	return "p.workspace_id = ? AND p.merged_into IS NULL", []any{a.WorkspaceID}
}

// TraitFilter keeps the profiles that have a trait, with a value when Value is set (a string
// trait's text, other values' JSON).
type TraitFilter struct {
	Name  string
	Value *string
}

// ListFilter narrows workspace.profiles.
type ListFilter struct {
	// Search matches an identifier's value (any type) from its start, or a profile's id.
	Search string
	Trait  *TraitFilter
	// In keeps the profiles whose ids a subquery selects (with its arguments): made by another
	// part of Engage (an audience's members).
	In *Subquery
}

// Subquery is SQL that selects profile ids, and its arguments.
type Subquery struct {
	SQL  string
	Args []any
}

// List pages through a workspace's profiles, newest first; members, owners and admins, on a plan
// with Engage.
func (s *Service) List(ctx context.Context, workspaceID string, f ListFilter, args relay.Args, count bool) (relay.Page[Profile], error) {
	a, err := s.readAccess(ctx, workspaceID)
	if err != nil {
		return relay.Page[Profile]{}, err
	}
	where, qargs := profileWhere(a)
	if q := strings.TrimSpace(f.Search); q != "" {
		where += ` AND (p.id = ? OR p.id IN (SELECT pi.profile_id FROM profile_identifiers pi WHERE pi.workspace_id = ?
			AND (pi.value = ? OR SUBSTR(pi.value, 1, ?) = ?)))`
		qargs = append(qargs, q, a.WorkspaceID, q, utf8.RuneCountInString(q), q)
	}
	if t := f.Trait; t != nil {
		where += ` AND p.id IN (SELECT pt.profile_id FROM profile_traits pt WHERE pt.workspace_id = ? AND pt.name = ?`
		qargs = append(qargs, a.WorkspaceID, t.Name)
		if t.Value != nil {
			where += ` AND pt.text = ?`
			qargs = append(qargs, *t.Value)
		}
		where += `)`
	}
	if f.In != nil {
		where += ` AND p.id IN (` + f.In.SQL + `)`
		qargs = append(qargs, f.In.Args...)
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Profile]{
		Select: "SELECT p.* FROM profiles p", Where: where, Args: qargs,
		IDColumn: "p.id", Desc: true, Count: count,
		ID: func(p Profile) string { return p.ID },
	}, args)
}

// Lookup returns the profile that holds an identifier (nil when none does); members, owners and
// admins, on a plan with Engage.
func (s *Service) Lookup(ctx context.Context, workspaceID, typ, value string) (*Profile, error) {
	a, err := s.readAccess(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	where, args := profileWhere(a)
	var rows []Profile
	if err := s.db.Select(ctx, &rows, `SELECT p.* FROM profiles p WHERE p.id = (SELECT pi.profile_id FROM profile_identifiers pi
		WHERE pi.workspace_id = ? AND pi.type = ? AND pi.value = ?) AND `+where, append([]any{workspaceID, typ, value}, args...)...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// Get returns a profile by id (nil when the viewer may not see it). A merged profile's id leads
// to the profile it became part of.
func (s *Service) Get(ctx context.Context, profileID string) (*Profile, error) {
	a, err := s.workspaces.AccessVia(ctx, s.db.Reader(), `SELECT workspace_id FROM profiles WHERE id = ?`, profileID)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	if err := s.checkRead(ctx, a); err != nil {
		if c := apperr.CodeOf(err); c == apperr.Forbidden {
			return nil, nil
		}
		return nil, err
	}
	where, args := profileWhere(a)
	var rows []Profile
	if err := s.db.Select(ctx, &rows, `SELECT p.* FROM profiles p WHERE p.id = (SELECT COALESCE(x.merged_into, x.id) FROM profiles x WHERE x.id = ?) AND `+where,
		append([]any{profileID}, args...)...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// readable tells whether the viewer may read profiles in the workspace of a, for loaders (which
// find nothing otherwise).
func (s *Service) readable(ctx context.Context, a *workspace.Access) (bool, error) {
	if !a.CanReadAll() {
		return false, nil
	}
	return hasEngage(ctx, s.db.Reader(), a.WorkspaceID)
}

// IdentifiersByProfile loads the identifiers of standing profiles the viewer sees in the
// workspace of a, by type's priority and then value, for dataloaders.
func (s *Service) IdentifiersByProfile(ctx context.Context, a *workspace.Access, profileIDs []string) (map[string][]Identifier, error) {
	if ok, err := s.readable(ctx, a); err != nil || !ok {
		return map[string][]Identifier{}, err
	}
	return s.IdentifiersOf(ctx, a.WorkspaceID, profileIDs)
}

func sortByPriority(set *Settings, list []Identifier) {
	ids := make([]Ident, len(list))
	for i, x := range list {
		ids[i] = Ident{x.Type, x.Value}
	}
	idx := map[Ident]Identifier{}
	for _, x := range list {
		idx[Ident{x.Type, x.Value}] = x
	}
	byPriority(set, ids)
	for i, x := range ids {
		list[i] = idx[x]
	}
}

// TraitsByProfile loads the traits of standing profiles the viewer sees in the workspace of a, by
// name, for dataloaders.
func (s *Service) TraitsByProfile(ctx context.Context, a *workspace.Access, profileIDs []string) (map[string][]Trait, error) {
	out := map[string][]Trait{}
	if ok, err := s.readable(ctx, a); err != nil || !ok {
		return out, err
	}
	var rows []Trait
	if err := s.db.Select(ctx, &rows, `SELECT * FROM profile_traits WHERE profile_id IN (`+db.Placeholders(len(profileIDs))+`)
		AND workspace_id = ? ORDER BY profile_id, name`, append(db.Args(profileIDs), a.WorkspaceID)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ProfileID] = append(out[r.ProfileID], r)
	}
	return out, nil
}

// Merges pages through the merges into a profile (its own and those of the profiles merged into
// it), newest first.
func (s *Service) Merges(ctx context.Context, p *Profile, args relay.Args, count bool) (relay.Page[Merge], error) {
	a, err := s.readAccess(ctx, p.WorkspaceID)
	if err != nil {
		return relay.Page[Merge]{}, err
	}
	return relay.Query(ctx, s.db.Reader(), relay.Spec[Merge]{
		Select: "SELECT * FROM profile_merges", Where: "workspace_id = ? AND profile_id = ?", Args: []any{a.WorkspaceID, p.ID},
		Desc: true, Count: count, ID: func(m Merge) string { return m.ID },
	}, args)
}

// EventIDs is the subquery (and its arguments) of the ids of the events resolved to a profile,
// for the event log's reader; the viewer must read profiles in its workspace.
func (s *Service) EventIDs(ctx context.Context, p *Profile) (*workspace.Access, string, []any, error) {
	a, err := s.readAccess(ctx, p.WorkspaceID)
	if err != nil {
		return nil, "", nil, err
	}
	return a, `SELECT pe.event_id FROM profile_events pe WHERE pe.profile_id IN
		(SELECT x.id FROM profiles x WHERE (x.id = ? OR x.merged_into = ?) AND x.workspace_id = ?)`, []any{p.ID, p.ID, a.WorkspaceID}, nil
}
