// Package reap deletes, in the background and in small transactions, what deleted sources and
// workspaces leave behind, and what has outlived its retention (Expiry). A deletion commits at once by marking its object deleted and cutting
// what keeps it reachable (write keys, connections, memberships); the rows it owns, which may be
// millions of events, go later, a batch at a time (db.Drain), so that no deletion holds the single writer
// for longer than a batch takes.
//
// Each domain registers the steps that delete its own rows, in order; the package that owns the
// object registers the last step, which deletes the object's row itself.
package reap

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// Kind is a kind of object whose deletion is reaped.
type Kind string

const (
	Source    Kind = "source"
	Workspace Kind = "workspace"
)

// kinds are reaped in this order: a deleted workspace's sources go before the workspace.
var kinds = []Kind{Source, Workspace}

// Step deletes at most limit rows that the deleted object id left behind, in tx, and returns how
// many it deleted: fewer than limit means it has finished.
//
// A step whose rows are found by a read that may be slow sets Find and Apply instead of Run (see
// db.DrainFound): Find returns, outside the writer, the keys of at most limit rows after `after`
// in order, and Apply deletes those rows in tx.
type Step struct {
	Name  string
	Run   func(ctx context.Context, tx *db.Tx, id string, limit int) (int64, error)
	Find  func(ctx context.Context, r *db.Queryer, id, after string, limit int) ([]string, error)
	Apply func(ctx context.Context, tx *db.Tx, id string, keys []string) (int64, error)
}

// deletedKey carries, in a step's context, how many rows the steps before it deleted (Deleted).
type deletedKey struct{}

// Deleted tells a step how many rows the object's earlier steps deleted in this pass of the reaper:
// for a step whose own cost depends on what they left behind (see source.ReapStep). A pass that
// resumes the object's reaping after a restart counts only what it deleted itself.
func Deleted(ctx context.Context) int64 {
	n, _ := ctx.Value(deletedKey{}).(int64)
	return n
}

// drain runs the step for the deleted object id until it has finished.
func (st Step) drain(ctx context.Context, d *db.DB, id string) (int64, error) {
	if st.Run == nil {
		return d.DrainFound(ctx, func(ctx context.Context, r *db.Queryer, after string, limit int) ([]string, error) {
			return st.Find(ctx, r, id, after, limit)
		}, func(ctx context.Context, tx *db.Tx, keys []string) (int64, error) {
			return st.Apply(ctx, tx, id, keys)
		})
	}
	return d.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
		return st.Run(ctx, tx, id, limit)
	})
}

// progress records how far the reaping of an object got, for those who watch it.
func (r *Reaper) progress(ctx context.Context, kind Kind, id string, done, count int, step string, rows int64) error {
	now := db.Now()
	var finished any
	if done == count {
		finished = now
	}
	// A background transaction, as the reaping's own: a record lost with the machine is written
	// again by the reaping that resumes.
	return r.db.BackgroundTx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO reap_progress (object_id, kind, steps_done, step_count, current_step, rows_deleted, updated_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (object_id) DO UPDATE SET steps_done = excluded.steps_done, step_count = excluded.step_count,
			current_step = excluded.current_step, rows_deleted = excluded.rows_deleted, updated_at = excluded.updated_at, finished_at = excluded.finished_at`,
			id, string(kind), done, count, step, rows, now, finished)
		return err
	})
}

// Progress is how far the reaping of one deleted object got.
type Progress struct {
	ObjectID    string   `db:"object_id"`
	StepsDone   int      `db:"steps_done"`
	StepCount   int      `db:"step_count"`
	CurrentStep string   `db:"current_step"`
	RowsDeleted int64    `db:"rows_deleted"`
	UpdatedAt   db.Time  `db:"updated_at"`
	FinishedAt  *db.Time `db:"finished_at"`
}

// ProgressOf returns the progress of the objects with the given ids that reaping has started.
func ProgressOf(ctx context.Context, q *db.Queryer, ids []string) (map[string]Progress, error) {
	out := map[string]Progress{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []Progress
	if err := q.Select(ctx, &rows, `SELECT object_id, steps_done, step_count, current_step, rows_deleted, updated_at, finished_at
		FROM reap_progress WHERE object_id IN (`+db.Placeholders(len(ids))+`)`, db.Args(ids)...); err != nil {
		return nil, err
	}
	for _, p := range rows {
		out[p.ObjectID] = p
	}
	return out, nil
}

// Reaper runs the steps for every deleted object.
type Reaper struct {
	db  *db.DB
	log *slog.Logger

	// once lets one Once run at a time: two (the background loop, and a caller that wants the
	// reaping done now) would delete the same rows in turns, and keep the writer twice as busy.
	once sync.Mutex

	mu       sync.Mutex
	pending  map[Kind]func(ctx context.Context) ([]string, error)
	steps    map[Kind][]Step
	expiries []Expiry
	expired  time.Time // when Run last expired rows
	wake     chan struct{}

	// Gate, when set, tells Run whether to reap now: among replicas, only one reaps.
	Gate func() bool
}

// New returns a reaper; Run starts it.
func New(d *db.DB, log *slog.Logger) *Reaper {
	return &Reaper{db: d, log: log, pending: map[Kind]func(context.Context) ([]string, error){}, steps: map[Kind][]Step{},
		wake: make(chan struct{}, 1)}
}

// Pending names the function that lists the deleted objects of a kind not yet reaped.
func (r *Reaper) Pending(kind Kind, list func(ctx context.Context) ([]string, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[kind] = list
}

// Add appends steps for a kind.
func (r *Reaper) Add(kind Kind, steps ...Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps[kind] = append(r.steps[kind], steps...)
}

// Wake makes Run look for deleted objects now (one was just deleted).
func (r *Reaper) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run reaps at start, when woken, and every interval, until ctx ends.
func (r *Reaper) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if r.Gate == nil || r.Gate() {
			if err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("reaping deleted objects failed", "error", err.Error())
			}
			if now := time.Now(); now.Sub(r.expired) >= ExpiryInterval {
				r.expired = now
				if n, err := r.ExpireOnce(ctx, now); err != nil && ctx.Err() == nil {
					r.log.Error("deleting rows past their retention failed", "error", err.Error())
				} else if n > 0 {
					r.log.Info("rows past their retention deleted", "rows", n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// Once reaps every object deleted so far, and returns when they are gone (or on the first error).
func (r *Reaper) Once(ctx context.Context) error {
	r.once.Lock()
	defer r.once.Unlock()
	for _, kind := range kinds {
		r.mu.Lock()
		list, steps := r.pending[kind], r.steps[kind]
		r.mu.Unlock()
		if list == nil {
			continue
		}
		ids, err := list(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			start := time.Now()
			var total int64
			for i, st := range steps {
				if err := r.progress(ctx, kind, id, i, len(steps), st.Name, total); err != nil {
					return err
				}
				n, err := st.drain(context.WithValue(ctx, deletedKey{}, total), r.db, id)
				total += n
				if err != nil {
					return err
				}
			}
			if err := r.progress(ctx, kind, id, len(steps), len(steps), "", total); err != nil {
				return err
			}
			r.log.Info("deleted object reaped", "kind", string(kind), "id", id, "rows", total, "took", time.Since(start).String())
		}
	}
	return nil
}

// ExpiryInterval is how often Run deletes the rows past their retention.
const ExpiryInterval = time.Hour

// Expiry is a kind of row that is kept for a while only: the rows older than the server's
// retention go, and, in a workspace that keeps them for less, those older than the workspace's.
// Rows are found by their ids, which sort by time (id.Floor of the cutoff bounds them), so each
// transaction deletes one bounded range of the primary key or of a (workspace_id, id) index.
type Expiry struct {
	Name string
	// Floor returns the smallest id made at t: every older row's id is below it.
	Floor func(t time.Time) string
	// Server is how long the server keeps the rows.
	Server time.Duration
	// Own lists the workspaces that keep the rows for less than Server, and for how long.
	Own func(ctx context.Context) (map[string]time.Duration, error)
	// Delete deletes, in tx, at most limit rows whose id is below `below`, of one workspace or
	// of all when workspaceID is "", and returns how many it deleted.
	Delete func(ctx context.Context, tx *db.Tx, workspaceID, below string, limit int) (int64, error)
}

// Expire adds kinds of rows that expire.
func (r *Reaper) Expire(e ...Expiry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expiries = append(r.expiries, e...)
}

// ExpireOnce deletes the rows past their retention at now, a bounded batch per transaction, and
// returns how many went (Run calls it every ExpiryInterval; tests call it with a time of their
// choosing).
func (r *Reaper) ExpireOnce(ctx context.Context, now time.Time) (int64, error) {
	r.mu.Lock()
	expiries := append([]Expiry(nil), r.expiries...)
	r.mu.Unlock()
	var total int64
	for _, e := range expiries {
		below := e.Floor(now.Add(-e.Server))
		n, err := r.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			return e.Delete(ctx, tx, "", below, limit)
		})
		total += n
		if err != nil {
			return total, err
		}
		if e.Own == nil {
			continue
		}
		own, err := e.Own(ctx)
		if err != nil {
			return total, err
		}
		for ws, keep := range own {
			if keep <= 0 || keep >= e.Server {
				continue
			}
			below := e.Floor(now.Add(-keep))
			n, err := r.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
				return e.Delete(ctx, tx, ws, below, limit)
			})
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}
