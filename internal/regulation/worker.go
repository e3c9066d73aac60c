package regulation

import (
	"context"
	"encoding/json"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// DestinationDeleter sends a regulation's deletion calls to the workspace's connected
// destinations, and returns each destination's status (NOT_SUPPORTED for those whose connector
// has no deletion call).
type DestinationDeleter interface {
	DeleteSubjects(ctx context.Context, workspaceID, regulationID string, subjectType SubjectType, subjects []string) ([]DestinationStatus, error)
}

// Wake makes Run look for regulations to carry out now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run carries out the deletions that are due, at start, when woken and every interval, until ctx
// ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if s.Gate != nil && !s.Gate() {
			// another replica carries them out
		} else if err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("carrying out regulations failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// Once carries out every regulation due by now, one after the other, and returns when they are
// done (or on the first error: the regulation stays RUNNING and is taken up again).
func (s *Service) Once(ctx context.Context) error {
	var due []Regulation
	if err := s.db.Select(ctx, &due, `SELECT * FROM regulations WHERE not_before <= ? AND (status = 'INITIALIZED'
		OR (status = 'RUNNING' AND (claimed_at IS NULL OR claimed_at < ?))) ORDER BY id`, db.Now(), staleClaim()); err != nil {
		return err
	}
	for i := range due {
		if err := s.carryOut(ctx, &due[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) carryOut(ctx context.Context, r *Regulation) error {
	start := time.Now()
	var started bool
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		// One worker at a time: a replica takes over a regulation whose worker stopped renewing its
		// claim (it died, or this process failed on it and tries again).
		now := db.Now()
		res, err := tx.Exec(ctx, `UPDATE regulations SET status = 'RUNNING', started_at = COALESCE(started_at, ?), claimed_at = ?
			WHERE id = ? AND (status = 'INITIALIZED' OR (status = 'RUNNING' AND (claimed_at IS NULL OR claimed_at < ?)))`,
			now, now, r.ID, staleClaim())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		started = n == 1
		return nil
	})
	if err != nil || !started {
		return err // canceled meanwhile
	}
	var clear []string
	if err := s.db.Select(ctx, &clear, `SELECT subject FROM regulation_subjects WHERE regulation_id = ? AND subject IS NOT NULL ORDER BY position`, r.ID); err != nil {
		return err
	}
	subjects := forget.Subjects{WorkspaceID: r.WorkspaceID, Hash: func(kind, v string) string { return "h:" + s.hash(r.WorkspaceID, kind, v) }}
	switch r.SubjectType {
	case UserID:
		subjects.UserIDs = clear
	case AnonymousID:
		subjects.AnonymousIDs = clear
	case Email:
		subjects.Emails = clear
	}
	deleted, err := s.forgetInternal(ctx, r.ID, subjects)
	if err != nil {
		return err
	}
	status := Finished
	var dests []DestinationStatus
	if types[r.Type].deleteDestinations && s.Destinations != nil {
		dests, err = s.Destinations.DeleteSubjects(ctx, r.WorkspaceID, r.ID, r.SubjectType, clear)
		if err != nil {
			return err
		}
		status = overall(dests)
	}
	if dests == nil {
		dests = []DestinationStatus{}
	}
	raw, _ := json.Marshal(dests)
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE regulations SET status = ?, finished_at = ?, destinations = ? WHERE id = ?`,
			status, db.Now(), string(raw), r.ID); err != nil {
			return err
		}
		// Done: the subjects stay as hashes only.
		_, err := tx.Exec(ctx, `UPDATE regulation_subjects SET subject = NULL WHERE regulation_id = ?`, r.ID)
		return err
	})
	if err == nil {
		s.log.Info("regulation carried out", "id", r.ID, "type", string(r.Type), "subjects", r.SubjectCount, "rows", deleted,
			"status", string(status), "took", time.Since(start).String())
	}
	return err
}

// forgetInternal runs every domain's step for the subjects, a bounded batch per transaction, and
// records how many rows went as it goes.
func (s *Service) forgetInternal(ctx context.Context, regulationID string, subjects forget.Subjects) (int64, error) {
	var total int64
	for _, st := range s.steps {
		after := ""
		var deleted int64
		_, err := s.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			next, _, n, err := st.Run(ctx, tx, subjects, after, limit)
			if err != nil {
				return 0, err
			}
			deleted += n
			if after = next; next == "" {
				return 0, nil
			}
			return int64(limit), nil
		})
		if err != nil {
			return total, err
		}
		total += deleted
		// Progress, and the claim renewed.
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE regulations SET rows_deleted = rows_deleted + ?, claimed_at = ? WHERE id = ?`, deleted, db.Now(), regulationID)
			return err
		}); err != nil {
			return total, err
		}
	}
	return total, nil
}

// claimTTL is how long a worker's claim on a regulation lasts without being renewed (each step
// renews it).
const claimTTL = 5 * time.Minute

func staleClaim() db.Time { return db.Time{Time: time.Now().Add(-claimTTL)} }

// overall is a regulation's status from its destinations': FINISHED when every destination that
// supports deletion finished, FAILED when all of them failed, PARTIAL_SUCCESS in between.
func overall(dests []DestinationStatus) Status {
	var ok, failed int
	for _, d := range dests {
		switch d.Status {
		case Finished:
			ok++
		case Failed:
			failed++
		}
	}
	switch {
	case failed == 0:
		return Finished
	case ok == 0:
		return Failed
	}
	return PartialSuccess
}
