package audience

import (
	"context"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
)

// maxSample bounds a preview's sample.
const maxSample = 50

// Preview is what a definition would select now, without saving it.
type Preview struct {
	Size   int
	Sample []engage.Profile
}

// Preview computes a definition over the workspace's profiles without writing anything: its size
// and a sample of its profiles, newest first. Members, owners and admins (it reads, and saves
// nothing).
func (s *Service) Preview(ctx context.Context, workspaceID string, def *Condition, sample int) (*Preview, apperr.UserErrors, error) {
	if _, err := s.readAccess(ctx, workspaceID); err != nil {
		return nil, nil, err
	}
	return s.previewIn(ctx, workspaceID, def, sample)
}

func (s *Service) previewIn(ctx context.Context, workspaceID string, def *Condition, sample int) (*Preview, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	validate(&errs, "definition", def)
	if sample < 0 || sample > maxSample {
		errs.Add("sampleSize", apperr.InvalidValue, "sampleSize is 0 to %d", maxSample)
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	if named := refs(def); len(named) > 0 {
		var n int
		if err := s.db.Get(ctx, &n, `SELECT COUNT(*) FROM audiences WHERE workspace_id = ? AND deleted_at IS NULL AND id IN (`+
			db.Placeholders(len(named))+`)`, append([]any{workspaceID}, db.Args(named)...)...); err != nil {
			return nil, nil, err
		}
		if n != len(named) {
			errs.Add("definition", apperr.InvalidValue, "an audience it names is not an audience of this workspace")
			return nil, errs, nil
		}
	}
	cp := &compiler{dialect: s.db.Dialect(), ws: workspaceID, now: s.now(), full: true}
	pred := cp.compile(def)
	where := `p.workspace_id = ? AND p.merged_into IS NULL AND (` + pred + `)`
	args := append([]any{workspaceID}, cp.args...)
	out := &Preview{Sample: []engage.Profile{}}
	if err := s.db.Get(ctx, &out.Size, `SELECT COUNT(*) FROM profiles p WHERE `+where, args...); err != nil {
		return nil, nil, err
	}
	if sample > 0 && out.Size > 0 {
		if err := s.db.Select(ctx, &out.Sample, `SELECT p.* FROM profiles p WHERE `+where+` ORDER BY p.id DESC LIMIT ?`, append(args, sample)...); err != nil {
			return nil, nil, err
		}
	}
	return out, nil, nil
}
