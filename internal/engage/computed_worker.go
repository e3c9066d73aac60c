package engage

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/reap"
)

// The worker of computed traits: what keeps values current.
//
//   - Incrementally: identity resolution tells (OnResolved) which profiles each of its
//     transactions changed; they are noted in a set per workspace (coalescing repeats) and
//     recomputed for every enabled trait of the workspace. Values of profiles merged into others
//     go: the profile that stands is recomputed with their events. A workspace with more than
//     maxTouched profiles waiting has all its traits recomputed by a pass instead, so that the
//     set stays bounded.
//   - By passes over profiles, in batches whose progress is kept in the trait's row (pass_cursor),
//     so that any process takes a pass over where another left it: a new, changed or re-enabled
//     trait's backfill over every standing profile, and the scheduled recomputation of windowed
//     traits (Schedule, run by the leader) over the profiles holding a value, which moves values as
//     events leave the window.
//   - Removals: the values of deleted and disabled traits are removed in small transactions.

// maxTouched bounds the profiles waiting for recomputation in one workspace.
const maxTouched = 20_000

type touched struct {
	profiles map[string]bool
	merged   []string
	all      bool
}

// resolved is the follower of identity resolution: it notes what changed and wakes the worker.
func (t *Traits) resolved(_ context.Context, r *Resolved) {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	if t.closed {
		return
	}
	p := t.pending[r.WorkspaceID]
	if p == nil {
		p = &touched{profiles: map[string]bool{}}
		t.pending[r.WorkspaceID] = p
	}
	for _, m := range r.Merges {
		if len(p.merged) < maxTouched {
			p.merged = append(p.merged, m.MergedProfileID)
		} else {
			p.all = true
		}
	}
	if !p.all {
		for _, id := range r.Profiles() {
			p.profiles[id] = true
		}
		if len(p.profiles) > maxTouched {
			p.all, p.profiles = true, map[string]bool{}
		}
	}
	t.pokeLocked()
}

// poke wakes the worker (after a change of definitions, or when a pass is due).
func (t *Traits) poke() {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.pokeLocked()
}

func (t *Traits) pokeLocked() {
	if t.closed {
		return
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Start runs the worker until Close.
func (t *Traits) Start() {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.started = true
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go t.run(ctx)
	t.pokeLocked() // passes left unfinished by a process that stopped
}

func (t *Traits) run(ctx context.Context) {
	defer close(t.done)
	for range t.wake {
		if err := t.Settle(ctx); err != nil && ctx.Err() == nil {
			t.log.Error("engage: computing traits failed", "error", err.Error())
			// The work stays pending (passes keep their cursor): try again a little later.
			go func() {
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
					t.poke()
				}
			}()
		}
	}
}

// Close stops the worker at the end of its current batch; passes go on from their cursor at the
// next start, profiles still waiting are recomputed at their next event.
func (t *Traits) Close() {
	t.pmu.Lock()
	if t.closed {
		t.pmu.Unlock()
		return
	}
	t.closed = true
	started := t.started
	if started {
		t.cancel()
		close(t.wake)
	}
	t.pmu.Unlock()
	if started {
		<-t.done
	}
}

// Settle does all the work waiting, on the caller's goroutine, until none is left: the worker
// runs it when woken; tests call it directly.
func (t *Traits) Settle(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.pmu.Lock()
		work := t.pending
		t.pending = map[string]*touched{}
		t.pmu.Unlock()
		did := len(work) > 0
		var errs []error
		for _, ws := range sortedWS(work) {
			if err := t.recomputeTouched(ctx, ws, work[ws]); err != nil {
				errs = append(errs, err)
			}
		}
		// Passes and removals are the leading replica's, as identity resolution is: two replicas
		// would run one pass at once. Another replica's changes wait for the leader's scheduled
		// round, which takes over passes in progress.
		var n int64
		var m int
		if t.s.Gate == nil || t.s.Gate() {
			var err error
			if n, err = t.removeValues(ctx); err != nil {
				errs = append(errs, err)
			}
			if m, err = t.passStep(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if !did && n == 0 && m == 0 {
			return nil
		}
	}
}

func sortedWS(m map[string]*touched) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// enabledTraits are a workspace's enabled traits.
func (t *Traits) enabledTraits(ctx context.Context, ws string) ([]*ComputedTrait, error) {
	var rows []*ComputedTrait
	err := t.db.Select(ctx, &rows, `SELECT * FROM computed_traits WHERE workspace_id = ? AND enabled ORDER BY id`, ws)
	return rows, err
}

// recomputeTouched recomputes the profiles identity resolution changed in a workspace.
func (t *Traits) recomputeTouched(ctx context.Context, ws string, p *touched) error {
	st, err := t.s.states.get(ctx, ws)
	if err != nil || !st.engage {
		return err
	}
	// A workspace without enabled traits has no values to keep (a disabled trait's are being
	// removed whole): its profiles cost one read.
	traits, err := t.enabledTraits(ctx, ws)
	if err != nil || len(traits) == 0 {
		return err
	}
	for start := 0; start < len(p.merged); start += valuesPerQuery {
		part := p.merged[start:min(start+valuesPerQuery, len(p.merged))]
		if err := t.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM computed_trait_values WHERE profile_id IN (`+db.Placeholders(len(part))+`) AND workspace_id = ?`,
				append(db.Args(part), ws)...)
			return err
		}); err != nil {
			return err
		}
	}
	if p.all {
		return t.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE computed_traits SET pass = ?, pass_cursor = '' WHERE workspace_id = ? AND enabled`, Backfill, ws)
			return err
		})
	}
	ids := make([]string, 0, len(p.profiles))
	for id := range p.profiles {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	now := t.Now()
	for start := 0; start < len(ids); start += batchProfiles {
		var standing []string
		part := ids[start:min(start+batchProfiles, len(ids))]
		if err := t.db.Select(ctx, &standing, `SELECT id FROM profiles WHERE id IN (`+db.Placeholders(len(part))+`) AND workspace_id = ?
			AND merged_into IS NULL ORDER BY id`, append(db.Args(part), ws)...); err != nil {
			return err
		}
		if len(standing) == 0 {
			continue
		}
		members, err := t.members(ctx, standing)
		if err != nil {
			return err
		}
		for _, c := range traits {
			values, err := t.compute(ctx, c, members, now)
			if err != nil {
				return err
			}
			if _, err := t.apply(ctx, c, standing, values, true, now, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// passStep computes the next batch of every pass in progress; it returns how many passes moved.
func (t *Traits) passStep(ctx context.Context) (int, error) {
	var traits []*ComputedTrait
	if err := t.db.Select(ctx, &traits, `SELECT * FROM computed_traits WHERE pass IS NOT NULL AND enabled ORDER BY id`); err != nil {
		return 0, err
	}
	moved := 0
	for _, c := range traits {
		st, err := t.s.states.get(ctx, c.WorkspaceID)
		if err != nil {
			return moved, err
		}
		if !st.engage {
			continue
		}
		after := ""
		if c.PassCursor != nil {
			after = *c.PassCursor
		}
		var ids []string
		if *c.Pass == WindowPass {
			// Values only exist for standing profiles (a merged one's go with the merge).
			zero := ""
			if c.Kind.counts() {
				zero = "0"
			}
			err = t.db.Select(ctx, &ids, `SELECT profile_id FROM computed_trait_values WHERE computed_trait_id = ? AND profile_id > ?
				AND value <> ? ORDER BY profile_id LIMIT ?`, c.ID, after, zero, batchProfiles)
		} else {
			err = t.db.Select(ctx, &ids, `SELECT id FROM profiles WHERE workspace_id = ? AND merged_into IS NULL AND id > ? ORDER BY id LIMIT ?`,
				c.WorkspaceID, after, batchProfiles)
		}
		if err != nil {
			return moved, err
		}
		now := t.Now()
		values := map[string]string{}
		if len(ids) > 0 {
			members, err := t.members(ctx, ids)
			if err != nil {
				return moved, err
			}
			if values, err = t.compute(ctx, c, members, now); err != nil {
				return moved, err
			}
			after = ids[len(ids)-1]
		}
		if _, err := t.apply(ctx, c, ids, values, false, now, &after, len(ids) < batchProfiles); err != nil {
			return moved, err
		}
		moved++
	}
	return moved, nil
}

// removeValues removes the values of deleted and disabled traits, in small transactions; it
// returns how many rows went.
func (t *Traits) removeValues(ctx context.Context) (int64, error) {
	var list []struct {
		ID  string `db:"computed_trait_id"`
		Key string `db:"key"`
	}
	if err := t.db.Select(ctx, &list, `SELECT computed_trait_id, key FROM computed_trait_removals ORDER BY computed_trait_id LIMIT 20`); err != nil {
		return 0, err
	}
	var total int64
	for _, r := range list {
		n, err := t.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			// The row in profile_traits goes unless another trait of that key (one made since
			// with the key of a deleted one) holds the profile's value now.
			if _, err := tx.Exec(ctx, `DELETE FROM profile_traits WHERE name = ? AND event_id = ? AND profile_id IN
				(SELECT profile_id FROM computed_trait_values WHERE computed_trait_id = ? ORDER BY profile_id LIMIT ?)
				AND NOT EXISTS (SELECT 1 FROM computed_trait_values v JOIN computed_traits c ON c.id = v.computed_trait_id
					WHERE v.profile_id = profile_traits.profile_id AND c.key = ? AND c.id <> ?)`,
				r.Key, ComputedEventID, r.ID, limit, r.Key, r.ID); err != nil {
				return 0, err
			}
			res, err := tx.Exec(ctx, `DELETE FROM computed_trait_values WHERE computed_trait_id = ? AND profile_id IN
				(SELECT profile_id FROM computed_trait_values WHERE computed_trait_id = ? ORDER BY profile_id LIMIT ?)`, r.ID, r.ID, limit)
			if err != nil {
				return 0, err
			}
			n, err := res.RowsAffected()
			if err == nil && n < int64(limit) {
				_, err = tx.Exec(ctx, `DELETE FROM computed_trait_removals WHERE computed_trait_id = ?`, r.ID)
			}
			return n, err
		})
		total += n + 1
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// recomputeEvery is how often a windowed trait is recomputed for every profile: often enough
// that a profile's value follows its events out of the window within about a fiftieth of the
// window, and at least hourly.
func recomputeEvery(w Window) time.Duration {
	return min(max(w.Duration()/48, time.Minute), time.Hour)
}

// Schedule starts the passes that are due: windowed traits not recomputed for recomputeEvery of
// their window. The leader runs it every minute; the worker does the passes.
func (t *Traits) Schedule(ctx context.Context) error {
	var traits []*ComputedTrait
	if err := t.db.Select(ctx, &traits, `SELECT * FROM computed_traits WHERE enabled AND pass IS NULL ORDER BY id`); err != nil {
		return err
	}
	now := t.Now()
	var due []*ComputedTrait
	for _, c := range traits {
		w := c.Definition().Window
		if w == nil {
			continue
		}
		if c.LastComputedAt == nil || now.Sub(c.LastComputedAt.Time) >= recomputeEvery(*w) {
			due = append(due, c)
		}
	}
	for _, c := range due {
		if err := t.db.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE computed_traits SET pass = ?, pass_cursor = '' WHERE id = ? AND version = ? AND pass IS NULL`,
				WindowPass, c.ID, c.Version)
			return err
		}); err != nil {
			return err
		}
	}
	// Passes marked by a process that stopped are taken over too.
	t.poke()
	return nil
}

// ReapWorkspaceComputedTraits is the reap step of a deleted workspace's computed traits and their
// values (their rows in profile_traits go with the workspace's profiles).
var ReapWorkspaceComputedTraits = reap.Step{Name: "computed traits", Run: func(ctx context.Context, tx *db.Tx, workspaceID string, limit int) (int64, error) {
	return reapAll(ctx, tx, workspaceID, limit,
		`DELETE FROM computed_trait_values WHERE (computed_trait_id, profile_id) IN
			(SELECT computed_trait_id, profile_id FROM computed_trait_values WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM computed_trait_removals WHERE computed_trait_id IN (SELECT computed_trait_id FROM computed_trait_removals WHERE workspace_id = ? LIMIT ?)`,
		`DELETE FROM computed_traits WHERE id IN (SELECT id FROM computed_traits WHERE workspace_id = ? LIMIT ?)`)
}}
