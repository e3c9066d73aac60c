package workspace

import (
	"context"

	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/reap"
)

// Deletion is a workspace the viewer deleted, and how far the deletion of its data got.
type Deletion struct {
	WorkspaceID string  `db:"workspace_id"`
	Name        string  `db:"name"`
	DeletedAt   db.Time `db:"deleted_at"`
	Progress    *reap.Progress
}

// Finished tells whether all of the workspace's data is gone.
func (d *Deletion) Finished() bool { return d.Progress != nil && d.Progress.FinishedAt != nil }

// Deletions lists the workspaces the viewer deleted in the last 30 days, newest first, with the
// progress of their reaping; only they see them (the workspace's members are gone with it).
func (s *Service) Deletions(ctx context.Context) ([]Deletion, error) {
	v, err := auth.RequireViewer(ctx)
	if err != nil {
		return nil, err
	}
	var out []Deletion
	if err := s.db.Select(ctx, &out, `SELECT workspace_id, name, deleted_at FROM workspace_deletions WHERE deleted_by = ? AND deleted_at > ?
		ORDER BY deleted_at DESC, workspace_id LIMIT 100`, v.User.ID, db.Time{Time: db.Now().AddDate(0, 0, -30)}); err != nil {
		return nil, err
	}
	ids := make([]string, len(out))
	for i, d := range out {
		ids[i] = d.WorkspaceID
	}
	progress, err := reap.ProgressOf(ctx, s.db.Reader(), ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if p, ok := progress[out[i].WorkspaceID]; ok {
			out[i].Progress = &p
		}
	}
	if out == nil {
		out = []Deletion{}
	}
	return out, nil
}
