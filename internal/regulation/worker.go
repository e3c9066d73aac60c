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

// WarehouseDeleter deletes the subjects' rows already loaded into the workspace's warehouses.
type WarehouseDeleter interface {
	// Warehouses lists the warehouses of a workspace, by destination id and name.
	Warehouses(ctx context.Context, workspaceID string) ([]WarehouseStatus, error)
	// Forget deletes the subjects' rows in one warehouse and returns how many went. Its error is
	// masked of secrets and subjects.
	Forget(ctx context.Context, destinationID string, s forget.Subjects) (int64, error)
	// Failed tells whether an error of Forget is the warehouse's (it is retried, then the
	// warehouse FAILED), not this server's own (the regulation stops and is taken up again).
	Failed(err error) bool
}

// warehouseTries is how many times the deletion in one warehouse is tried before it fails.
const warehouseTries = 3

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
	whs, err := s.forgetWarehouses(ctx, r, subjects)
	if err != nil {
		return err
	}
	var warehouseRows int64
	statuses := make([]Status, 0, len(whs))
	for _, w := range whs {
		warehouseRows += w.RowsDeleted
		statuses = append(statuses, w.Status)
	}
	var dests []DestinationStatus
	if types[r.Type].deleteDestinations && s.Destinations != nil {
		dests, err = s.Destinations.DeleteSubjects(ctx, r.WorkspaceID, r.ID, r.SubjectType, clear)
		if err != nil {
			return err
		}
		for _, d := range dests {
			statuses = append(statuses, d.Status)
		}
	}
	status := overall(statuses)
	if dests == nil {
		dests = []DestinationStatus{}
	}
	raw, _ := json.Marshal(dests)
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE regulations SET status = ?, finished_at = ?, destinations = ?, rows_deleted = rows_deleted + ? WHERE id = ?`,
			status, db.Now(), string(raw), warehouseRows, r.ID); err != nil {
			return err
		}
		// Done: the subjects stay as hashes only.
		_, err := tx.Exec(ctx, `UPDATE regulation_subjects SET subject = NULL WHERE regulation_id = ?`, r.ID)
		return err
	})
	if err == nil {
		s.log.Info("regulation carried out", "id", r.ID, "type", string(r.Type), "subjects", r.SubjectCount, "rows", deleted+warehouseRows,
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

// forgetWarehouses deletes the subjects' rows in every warehouse of the workspace, one after
// the other, each tried up to warehouseTries times, with the rows deleted there; a warehouse
// already FINISHED by a worker that stopped is not done again. The deletions are the warehouses' I/O: no transaction of ours is open
// meanwhile.
func (s *Service) forgetWarehouses(ctx context.Context, r *Regulation, subjects forget.Subjects) ([]WarehouseStatus, error) {
	out := []WarehouseStatus{}
	if s.Warehouses == nil {
		return out, nil
	}
	list, err := s.Warehouses.Warehouses(ctx, r.WorkspaceID)
	if err != nil {
		return nil, err
	}
	// Each warehouse's status is kept as soon as it changes (RUNNING while it is being deleted),
	// and the claim renewed with it.
	save := func(list []WarehouseStatus) error {
		raw, _ := json.Marshal(list)
		return s.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE regulations SET warehouses = ?, claimed_at = ? WHERE id = ?`, string(raw), db.Now(), r.ID)
			return err
		})
	}
	done := map[string]WarehouseStatus{}
	for _, w := range r.Warehouses() {
		if w.Status == Finished {
			done[w.DestinationID] = w
		}
	}
	for _, w := range list {
		if d, ok := done[w.DestinationID]; ok {
			out = append(out, d)
			continue
		}
		w.Status, w.UpdatedAt = Running, db.Now()
		if err := save(append(out, w)); err != nil {
			return nil, err
		}
		for try := 1; ; try++ {
			n, err := s.Warehouses.Forget(ctx, w.DestinationID, subjects)
			w.Attempts = try
			if err == nil {
				w.Status, w.RowsDeleted, w.Error = Finished, n, nil
				break
			}
			if !s.Warehouses.Failed(err) {
				return nil, err
			}
			msg := err.Error()
			w.Error = &msg
			if try >= warehouseTries {
				w.Status = Failed
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(s.opts.WarehouseRetry << (try - 1)):
			}
		}
		w.UpdatedAt = db.Now()
		out = append(out, w)
		if err := save(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// claimTTL is how long a worker's claim on a regulation lasts without being renewed (each step
// renews it).
const claimTTL = 5 * time.Minute

func staleClaim() db.Time { return db.Time{Time: time.Now().Add(-claimTTL)} }

// overall is a regulation's status from its warehouses' and destinations': FINISHED when every
// one that supports deletion finished, FAILED when all of them failed, PARTIAL_SUCCESS in between.
func overall(statuses []Status) Status {
	var ok, failed int
	for _, st := range statuses {
		switch st {
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
