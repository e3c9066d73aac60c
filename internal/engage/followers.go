package engage

import (
	"context"

	"github.com/junctioncdp/junction/internal/db"
)

// What the followers of profiles in sub-packages (audiences) need of this package: the plan
// check, and the identifiers of profiles for the events they send about them.

// RequirePlan returns FORBIDDEN unless the workspace's plan includes Engage.
func RequirePlan(ctx context.Context, q *db.Queryer, workspaceID string) error {
	ok, err := hasEngage(ctx, q, workspaceID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotOnPlan()
	}
	return nil
}

// IdentifiersOf returns the identifiers of profiles of a workspace (by profile, by type's
// priority), for work that runs without a viewer (activation's events).
func (s *Service) IdentifiersOf(ctx context.Context, workspaceID string, profileIDs []string) (map[string][]Identifier, error) {
	out := map[string][]Identifier{}
	if len(profileIDs) == 0 {
		return out, nil
	}
	var rows []Identifier
	if err := s.db.Select(ctx, &rows, `SELECT * FROM profile_identifiers WHERE profile_id IN (`+db.Placeholders(len(profileIDs))+`)
		AND workspace_id = ? ORDER BY type, value`, append(db.Args(profileIDs), workspaceID)...); err != nil {
		return nil, err
	}
	set, err := s.loadSettings(ctx, s.db.Reader(), workspaceID)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ProfileID] = append(out[r.ProfileID], r)
	}
	for _, list := range out {
		sortByPriority(set, list)
	}
	return out, nil
}
