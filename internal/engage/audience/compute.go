package audience

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/id"
)

const (
	// maxQueued bounds the profiles waiting for an incremental evaluation; beyond it a
	// workspace's queue is replaced by a computation of its audiences over every profile, so
	// that memory stays bounded however far behind the worker is.
	maxQueued = 100_000
	// chunk bounds the profiles of one evaluation query (and of one IN list).
	chunk = 500
	// writeChunk bounds the memberships one write transaction changes (each with its change
	// row), so that it holds the writer for a few milliseconds.
	writeChunk = 250
)

// computer keeps audiences' members current on a goroutine of its own: identity resolution's
// followers hand it the profiles each transaction changed (quickly: a map insert), and it
// evaluates the workspace's audiences for them, computes new or changed audiences over every
// profile, and on schedule recomputes audiences with windows.
type computer struct {
	s *Service

	mu      sync.Mutex
	dirty   map[string]map[string]bool // workspace -> profiles to evaluate
	merged  map[string]map[string]bool // workspace -> profiles merged away: their memberships go
	queued  int
	full    map[string]map[string]bool // workspace -> audiences to compute over every profile ("" for all)
	send    bool                       // a destination was connected: activation has work
	all     bool                       // every audience is to be computed over every profile (at start)
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool

	// step serialises the worker's passes with those tests run by hand.
	step sync.Mutex
}

func newComputer(s *Service) *computer {
	return &computer{s: s, dirty: map[string]map[string]bool{}, merged: map[string]map[string]bool{}, full: map[string]map[string]bool{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (c *computer) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// resolved hears a committed transaction of identity resolution (on the follower's goroutine):
// it only notes the profiles.
func (c *computer) resolved(_ context.Context, r *engage.Resolved) {
	c.mu.Lock()
	ws := r.WorkspaceID
	if c.full[ws][""] {
		c.mu.Unlock()
		return
	}
	set := c.dirty[ws]
	if set == nil {
		set = map[string]bool{}
		c.dirty[ws] = set
	}
	for _, p := range r.Profiles() {
		if !set[p] {
			set[p] = true
			c.queued++
		}
	}
	if len(r.Merges) > 0 {
		m := c.merged[ws]
		if m == nil {
			m = map[string]bool{}
			c.merged[ws] = m
		}
		for _, x := range r.Merges {
			m[x.MergedProfileID] = true
		}
	}
	if c.queued > maxQueued {
		// Too far behind: every profile of the workspace instead.
		c.queued -= len(set)
		delete(c.dirty, ws)
		c.markFull(ws, "")
	}
	c.mu.Unlock()
	c.wakeUp()
}

func (c *computer) markFull(ws, audienceID string) {
	m := c.full[ws]
	if m == nil {
		m = map[string]bool{}
		c.full[ws] = m
	}
	m[audienceID] = true
}

// recompute asks for a computation of an audience over every profile.
func (c *computer) recompute(ws, audienceID string) {
	c.mu.Lock()
	c.markFull(ws, audienceID)
	c.mu.Unlock()
	c.wakeUp()
}

// fullEvery is how often every audience is computed over every profile whatever its definition:
// a safety net for what the incremental evaluations missed (a process that stopped with profiles
// queued).
const fullEvery = 24 * time.Hour

// Start runs the worker until Close. Its first pass computes every audience over every profile:
// the profiles a stopped process had queued are evaluated again.
func (s *Service) Start() {
	s.comp.started = true
	s.comp.mu.Lock()
	s.comp.all = true
	s.comp.mu.Unlock()
	go s.comp.run()
}

// Close stops the worker after its current pass.
func (s *Service) Close() {
	if !s.comp.started {
		return
	}
	close(s.comp.stop)
	<-s.comp.done
}

func (c *computer) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	tick := time.NewTicker(c.s.opt.Every)
	defer tick.Stop()
	scheduled := true
	for {
		if err := c.pass(ctx, scheduled && c.leads()); err != nil && ctx.Err() == nil {
			c.s.log.Error("audiences: computing failed", "error", err.Error())
		}
		scheduled = false
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-tick.C:
			scheduled = true
		}
	}
}

// leads tells whether this replica does the scheduled work (every replica when Gate is unset).
func (c *computer) leads() bool { return c.s.Gate == nil || c.s.Gate() }

// Flush runs the worker's work at once on the caller's goroutine, scheduled work included: for
// tests and tools.
func (s *Service) Flush(ctx context.Context) error { return s.comp.pass(ctx, true) }

// pass does what is queued: incremental evaluations, then computations over every profile; and,
// when scheduled, what is due by time (windows, audiences left computing, deleted audiences,
// activation).
func (c *computer) pass(ctx context.Context, scheduled bool) error {
	c.step.Lock()
	defer c.step.Unlock()
	var errs []error
	if scheduled {
		if err := c.due(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// A computation of every audience over every profile (at start, or when too many profiles
	// waited) is the leader's, as the rest of the computing: another replica leaves it queued
	// until it leads.
	c.mu.Lock()
	all := c.all && c.leads()
	if all {
		c.all = false
	}
	c.mu.Unlock()
	if all {
		if err := c.queueAll(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	full, dirty, merged, send := c.full, c.dirty, c.merged, c.send
	c.full, c.dirty, c.merged, c.queued, c.send = map[string]map[string]bool{}, map[string]map[string]bool{}, map[string]map[string]bool{}, 0, false
	c.mu.Unlock()
	changed := send
	// Incremental evaluations first: they are quick, and entries follow events closely even when
	// a computation over every profile is due.
	for ws := range mergeKeys(dirty, merged) {
		n, err := c.incremental(ctx, ws, dirty[ws], merged[ws])
		changed = changed || n > 0
		if err != nil {
			errs = append(errs, err)
		}
	}
	for ws, set := range full {
		n, err := c.computeWorkspace(ctx, ws, set)
		changed = changed || n > 0
		if err != nil {
			errs = append(errs, err)
		}
	}
	if changed || scheduled {
		if err := c.s.activate(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func mergeKeys(a, b map[string]map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// due queues what time made due: audiences with windows not computed for Recompute, every
// audience not computed for a day, audiences whose last definition was never computed (their
// process stopped), and drains deleted ones.
func (c *computer) due(ctx context.Context) error {
	s := c.s
	var rows []Audience
	cutoff, daily := db.Time{Time: s.now().Add(-s.opt.Recompute)}, db.Time{Time: s.now().Add(-fullEvery)}
	if err := s.db.Select(ctx, &rows, `SELECT id, workspace_id FROM audiences WHERE deleted_at IS NULL AND enabled = TRUE
		AND (computed_version < version OR last_computed_at IS NULL OR last_computed_at <= ? OR (windowed = TRUE AND last_computed_at <= ?))`,
		daily, cutoff); err != nil {
		return err
	}
	c.mu.Lock()
	for _, a := range rows {
		c.markFull(a.WorkspaceID, a.ID)
	}
	c.mu.Unlock()
	return s.drainDeleted(ctx)
}

// queueAll queues every enabled audience for a computation over every profile.
func (c *computer) queueAll(ctx context.Context) error {
	var rows []Audience
	if err := c.s.db.Select(ctx, &rows, `SELECT id, workspace_id FROM audiences WHERE deleted_at IS NULL AND enabled = TRUE`); err != nil {
		return err
	}
	c.mu.Lock()
	for _, a := range rows {
		c.markFull(a.WorkspaceID, a.ID)
	}
	c.mu.Unlock()
	return nil
}

// plan is the workspace's enabled audiences in an order where each comes after those it names.
func (s *Service) plan(ctx context.Context, ws string) ([]Audience, error) {
	var rows []Audience
	if err := s.db.Select(ctx, &rows, `SELECT * FROM audiences WHERE workspace_id = ? AND deleted_at IS NULL AND enabled = TRUE ORDER BY id`, ws); err != nil {
		return nil, err
	}
	byID := map[string]*Audience{}
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	var out []Audience
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(a *Audience)
	visit = func(a *Audience) {
		if state[a.ID] != 0 {
			return // done, or a cycle (refused when saved)
		}
		state[a.ID] = 1
		for _, r := range refs(a.Definition()) {
			if d := byID[r]; d != nil {
				visit(d)
			}
		}
		state[a.ID] = 2
		out = append(out, *a)
	}
	for i := range rows {
		visit(&rows[i])
	}
	return out, nil
}

// dependents are the audiences of list that name one of ids, directly or through others.
func dependents(list []Audience, ids map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range ids {
		out[k] = true
	}
	for _, a := range list { // in dependency order: one pass suffices
		for _, r := range refs(a.Definition()) {
			if out[r] {
				out[a.ID] = true
			}
		}
	}
	return out
}

// computeWorkspace computes audiences of a workspace over every profile (all its audiences when
// set holds ""), and then those that name them. It returns how many memberships changed.
func (c *computer) computeWorkspace(ctx context.Context, ws string, set map[string]bool) (int, error) {
	s := c.s
	list, err := s.plan(ctx, ws)
	if err != nil {
		return 0, err
	}
	if engage.RequirePlan(ctx, s.db.Reader(), ws) != nil {
		return 0, nil
	}
	want := set
	if set[""] {
		want = map[string]bool{}
		for _, a := range list {
			want[a.ID] = true
		}
	}
	todo := dependents(list, want)
	total := 0
	var errs []error
	for i := range list {
		if !todo[list[i].ID] {
			continue
		}
		n, err := s.computeFull(ctx, &list[i])
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// computeFull computes one audience over every standing profile of its workspace: the members are
// read on the read pool, and the differences written in small transactions.
func (s *Service) computeFull(ctx context.Context, a *Audience) (int, error) {
	now := s.now()
	cp := &compiler{dialect: s.db.Dialect(), ws: a.WorkspaceID, now: now, full: true}
	pred := cp.compile(a.Definition())
	var want []string
	if err := s.db.Select(ctx, &want, `SELECT p.id FROM profiles p WHERE p.workspace_id = ? AND p.merged_into IS NULL AND (`+pred+`)`,
		append([]any{a.WorkspaceID}, cp.args...)...); err != nil {
		return 0, err
	}
	var have []string
	if err := s.db.Select(ctx, &have, `SELECT profile_id FROM audience_members WHERE audience_id = ?`, a.ID); err != nil {
		return 0, err
	}
	enter, exit := diff(want, have)
	n, err := s.write(ctx, a, enter, exit, now)
	if err != nil {
		return n, err
	}
	// LIVE once the version computed is still the audience's (it may have changed meanwhile:
	// then its own computation is queued).
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE audiences SET status = CASE WHEN version = ? THEN ? ELSE status END,
			computed_version = CASE WHEN computed_version < ? THEN ? ELSE computed_version END, last_computed_at = ? WHERE id = ?`,
			a.Version, Live, a.Version, a.Version, db.Time{Time: now}, a.ID)
		return err
	})
	s.published(ctx, a.ID)
	return n, err
}

// incremental evaluates a workspace's audiences for the profiles a few transactions of identity
// resolution changed, and drops the memberships of profiles merged into others (silently: the
// profile they became part of is evaluated in their place).
func (c *computer) incremental(ctx context.Context, ws string, profiles, merged map[string]bool) (int, error) {
	s := c.s
	var count int
	if err := s.db.Get(ctx, &count, `SELECT COUNT(*) FROM audiences WHERE workspace_id = ?`, ws); err != nil || count == 0 {
		return 0, err // a workspace without audiences costs a read
	}
	if len(merged) > 0 {
		if err := s.dropMerged(ctx, ws, keys(merged)); err != nil {
			return 0, err
		}
	}
	list, err := s.plan(ctx, ws)
	if err != nil || len(list) == 0 {
		return 0, err
	}
	var ids []string
	for p := range profiles {
		if !merged[p] {
			ids = append(ids, p)
		}
	}
	sort.Strings(ids)
	now := s.now()
	total := 0
	touched := map[string]bool{}
	// Each definition is compiled once for all the chunks: it depends on the audience and now only.
	compiled := make([]*compiler, len(list))
	preds := make([]string, len(list))
	for i := range list {
		compiled[i] = &compiler{dialect: s.db.Dialect(), ws: ws, now: now}
		preds[i] = compiled[i].compile(list[i].Definition())
	}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		for i := range list {
			a, cp, pred := &list[i], compiled[i], preds[i]
			var want []string
			if err := s.db.Select(ctx, &want, `SELECT p.id FROM profiles p WHERE p.workspace_id = ? AND p.merged_into IS NULL AND p.id IN (`+
				db.Placeholders(len(part))+`) AND (`+pred+`)`, append(append([]any{ws}, db.Args(part)...), cp.args...)...); err != nil {
				return total, err
			}
			var have []string
			if err := s.db.Select(ctx, &have, `SELECT profile_id FROM audience_members WHERE audience_id = ? AND profile_id IN (`+
				db.Placeholders(len(part))+`)`, append([]any{a.ID}, db.Args(part)...)...); err != nil {
				return total, err
			}
			enter, exit := diff(want, have)
			n, err := s.write(ctx, a, enter, exit, now)
			total += n
			if err != nil {
				return total, err
			}
			if n > 0 {
				touched[a.ID] = true
			}
		}
	}
	for id := range touched {
		s.published(ctx, id)
	}
	return total, nil
}

// dropMerged deletes the memberships of profiles merged into others.
func (s *Service) dropMerged(ctx context.Context, ws string, ids []string) error {
	now := db.Time{Time: s.now()}
	touched := map[string]bool{}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		err := s.db.Tx(ctx, func(tx *db.Tx) error {
			var gone []string
			if err := tx.Select(ctx, &gone, `DELETE FROM audience_members WHERE workspace_id = ? AND profile_id IN (`+db.Placeholders(len(part))+`)
				RETURNING audience_id`, append([]any{ws}, db.Args(part)...)...); err != nil {
				return err
			}
			count := map[string]int{}
			for _, a := range gone {
				count[a]++
				touched[a] = true
			}
			for a, n := range count {
				if err := resize(ctx, tx, a, -n, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for a := range touched {
		s.published(ctx, a)
	}
	return nil
}

// resize moves an audience's size by delta and records the size of the current minute.
func resize(ctx context.Context, tx *db.Tx, audienceID string, delta int, now db.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE audiences SET size = size + ? WHERE id = ?`, delta, audienceID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO audience_sizes (audience_id, at, size) SELECT id, ?, size FROM audiences WHERE id = ?
		ON CONFLICT (audience_id, at) DO UPDATE SET size = excluded.size`, db.Time{Time: now.Truncate(time.Minute)}, audienceID)
	return err
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// diff returns what is in want and not in have (entering), and the reverse (exiting), sorted.
func diff(want, have []string) (enter, exit []string) {
	w := make(map[string]bool, len(want))
	for _, x := range want {
		w[x] = true
	}
	h := make(map[string]bool, len(have))
	for _, x := range have {
		h[x] = true
		if !w[x] {
			exit = append(exit, x)
		}
	}
	for _, x := range want {
		if !h[x] {
			enter = append(enter, x)
		}
	}
	sort.Strings(enter)
	sort.Strings(exit)
	return enter, exit
}

// write records profiles entering and exiting an audience, writeChunk at a time, each in its own
// transaction: the membership rows, a change row for each (what activation sends), the size and
// the size history. A profile another computation already moved is left alone (the rows decide),
// so that a change is recorded once. It returns how many changes it recorded.
func (s *Service) write(ctx context.Context, a *Audience, enter, exit []string, now time.Time) (int, error) {
	total := 0
	at := db.Time{Time: now}
	for len(enter) > 0 || len(exit) > 0 {
		in := enter[:min(writeChunk, len(enter))]
		enter = enter[len(in):]
		out := exit[:min(writeChunk-len(in), len(exit))]
		exit = exit[len(out):]
		err := s.db.Tx(ctx, func(tx *db.Tx) error {
			// Changes get their ids under the audience's lock, after the largest so far: they
			// commit in id order, which activation's position relies on (replicas may compute
			// one audience at once).
			if err := tx.Lock(ctx, "audience:"+a.ID); err != nil {
				return err
			}
			if s.db.Dialect() == db.Postgres {
				var last *string
				if err := tx.Get(ctx, &last, `SELECT MAX(id) FROM audience_changes WHERE audience_id = ?`, a.ID); err != nil {
					return err
				}
				if last != nil {
					id.Raise(*last)
				}
			}
			// Each entry's change id is made before the insert: the membership keeps it, so that
			// activation's sync of current members sends the very message the change would.
			var entered []struct {
				ProfileID string `db:"profile_id"`
				ChangeID  string `db:"change_id"`
			}
			var exited []string
			if len(in) > 0 {
				rows := make([]string, len(in))
				args := make([]any, 0, 5*len(in))
				for i, p := range in {
					rows[i] = "(?, ?, ?, ?, ?)"
					args = append(args, a.ID, p, a.WorkspaceID, at, id.New(ChangePrefix))
				}
				if err := tx.Select(ctx, &entered, `INSERT INTO audience_members (audience_id, profile_id, workspace_id, entered_at, change_id) VALUES `+
					strings.Join(rows, ", ")+` ON CONFLICT (audience_id, profile_id) DO NOTHING RETURNING profile_id, change_id`, args...); err != nil {
					return err
				}
			}
			if len(out) > 0 {
				if err := tx.Select(ctx, &exited, `DELETE FROM audience_members WHERE audience_id = ? AND profile_id IN (`+
					db.Placeholders(len(out))+`) RETURNING profile_id`, append([]any{a.ID}, db.Args(out)...)...); err != nil {
					return err
				}
			}
			if len(entered)+len(exited) == 0 {
				return nil
			}
			sort.Strings(exited)
			var rows [][]any
			for _, e := range entered {
				rows = append(rows, []any{e.ChangeID, a.WorkspaceID, a.ID, e.ProfileID, true, at})
			}
			for _, p := range exited {
				rows = append(rows, []any{id.New(ChangePrefix), a.WorkspaceID, a.ID, p, false, at})
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i][0].(string) < rows[j][0].(string) })
			if err := tx.InsertRows(ctx, `INSERT INTO audience_changes (id, workspace_id, audience_id, profile_id, entered, at) VALUES `, 6, rows, ``); err != nil {
				return err
			}
			total += len(entered) + len(exited)
			return resize(ctx, tx, a.ID, len(entered)-len(exited), at)
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// published tells the subscribers of an audience that its size or status may have changed,
// after the commit.
func (s *Service) published(ctx context.Context, audienceID string) {
	if s.bus == nil {
		return
	}
	var rows []Audience
	if err := s.db.Select(ctx, &rows, `SELECT * FROM audiences WHERE id = ?`, audienceID); err != nil || len(rows) == 0 {
		return
	}
	s.bus.Publish(Topic(audienceID), &rows[0])
}

// drainDeleted deletes what deleted audiences left, in small transactions, and then their rows.
func (s *Service) drainDeleted(ctx context.Context) error {
	var ids []string
	if err := s.db.Select(ctx, &ids, `SELECT id FROM audiences WHERE deleted_at IS NOT NULL ORDER BY id LIMIT 100`); err != nil {
		return err
	}
	for _, audienceID := range ids {
		if _, err := s.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			return drainAudience(ctx, tx, audienceID, limit)
		}); err != nil {
			return err
		}
	}
	return nil
}

// drainAudience deletes up to limit rows of an audience's members, changes, sizes and
// destinations, and its row once they are gone.
func drainAudience(ctx context.Context, tx *db.Tx, audienceID string, limit int) (int64, error) {
	return deleteInTurn(ctx, tx, audienceID, limit,
		`DELETE FROM audience_members WHERE (audience_id, profile_id) IN (SELECT audience_id, profile_id FROM audience_members WHERE audience_id = ? LIMIT ?)`,
		`DELETE FROM audience_changes WHERE id IN (SELECT id FROM audience_changes WHERE audience_id = ? LIMIT ?)`,
		`DELETE FROM audience_sizes WHERE (audience_id, at) IN (SELECT audience_id, at FROM audience_sizes WHERE audience_id = ? LIMIT ?)`,
		`DELETE FROM audience_destinations WHERE (audience_id, destination_id) IN
			(SELECT audience_id, destination_id FROM audience_destinations WHERE audience_id = ? LIMIT ?)`,
		`DELETE FROM audiences WHERE id IN (SELECT id FROM audiences WHERE id = ? LIMIT ?)`)
}

// deleteInTurn runs statements (each taking an id and a row limit) in order until limit rows
// went, and returns how many did.
func deleteInTurn(ctx context.Context, tx *db.Tx, objectID string, limit int, statements ...string) (int64, error) {
	var total int64
	for _, q := range statements {
		res, err := tx.Exec(ctx, q, objectID, limit-int(total))
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		if total += n; total >= int64(limit) {
			break
		}
	}
	return total, nil
}
