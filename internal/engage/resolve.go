package engage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
)

const (
	// sqliteEventsPerTx and postgresEventsPerTx bound the events one transaction resolves. On
	// SQLite the graph is read inside the transaction, on the single writer: fewer events keep
	// each hold short. On PostgreSQL the graph is read before it and the writes do not stop
	// ingest, so more events a transaction spare round trips, which is most of its time there.
	sqliteEventsPerTx   = 300
	postgresEventsPerTx = 2000
	// valuesPerQuery bounds the values of one IN list.
	valuesPerQuery = 500
	// seenGranularity is how precisely an identifier's last_seen_at and a profile's updated_at
	// follow events: rows are written again only when they would move by at least this much.
	seenGranularity = time.Minute
)

// perTx is how many events one transaction of identity resolution takes, by backend.
func (s *Service) perTx() int {
	if s.db.Dialect() == db.Postgres {
		return postgresEventsPerTx
	}
	return sqliteEventsPerTx
}

// Resolve runs identity resolution over events at once, on the caller's goroutine: for tests and
// tools. The follower of the event log does the same with what it reads.
func (s *Service) Resolve(ctx context.Context, events []*ingest.Event) error {
	var order []string
	byWS := map[string][]*ingest.Event{}
	for _, e := range events {
		if e.Status != ingest.Accepted {
			continue
		}
		if _, ok := byWS[e.WorkspaceID]; !ok {
			order = append(order, e.WorkspaceID)
		}
		byWS[e.WorkspaceID] = append(byWS[e.WorkspaceID], e)
	}
	var errs []error
	for _, ws := range order {
		set, ok, err := s.engageSettings(ctx, ws)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		list := byWS[ws]
		for start := 0; start < len(list); start += s.perTx() {
			chunk := []group{{ws: ws, set: set, events: list[start:min(start+s.perTx(), len(list))]}}
			if _, err := s.resolveGroups(ctx, chunk, nil, false); err != nil {
				errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// engageSettings returns a workspace's rules, and false when its plan does not include Engage.
func (s *Service) engageSettings(ctx context.Context, ws string) (*Settings, bool, error) {
	st, err := s.states.get(ctx, ws)
	if err != nil || !st.engage {
		return nil, false, err
	}
	return st.settings, true, nil
}

// prepared is one event ready to resolve: its identifiers by priority, blocked ones left out.
type prepared struct {
	e      *ingest.Event
	ids    []Ident
	prev   string
	traits map[string]traitValue
	at     time.Time // when it happened: its timestamp, else when it was received
}

func prepare(set *Settings, e *ingest.Event) prepared {
	x := extract(e)
	p := prepared{e: e, prev: x.previousID, traits: x.traits, at: e.ReceivedAt}
	if e.Timestamp != nil {
		p.at = *e.Timestamp
	}
	for _, i := range x.idents {
		if !set.blocked(i.Value) {
			p.ids = append(p.ids, i)
		}
	}
	if p.prev != "" && set.blocked(p.prev) {
		p.prev = ""
	}
	return p
}

// byPriority orders identifiers by their type's priority, keeping the event's order among equals.
func byPriority(set *Settings, ids []Ident) {
	sort.SliceStable(ids, func(i, j int) bool {
		ri, rj := set.rule(ids[i].Type), set.rule(ids[j].Type)
		if ri.Priority != rj.Priority {
			return ri.Priority < rj.Priority
		}
		if _, named := set.rules[ids[i].Type]; !named && ids[i].Type != ids[j].Type {
			return ids[i].Type < ids[j].Type
		}
		return false
	})
}

// group is one workspace's events that a transaction resolves, in log order.
type group struct {
	ws     string
	set    *Settings
	events []*ingest.Event
	items  []prepared
	graph  *graph
	before int64 // the graph's version when it was read
}

func newGraph(ws string, set *Settings) *graph {
	return &graph{ws: ws, set: set, owner: map[Ident]*node{}, stored: map[Ident]time.Time{}, nodes: map[string]*node{},
		seen: map[Ident]*seenRow{}, traits: map[traitKey]*traitRow{}}
}

// resolveGroups resolves the groups' events in one transaction, workspace by workspace, and tells
// the followers of profiles (OnResolved) once it has committed. also, when set, runs first in the
// same transaction (the follower of the log moves its cursor there, so that the profiles' writes
// and the cursor commit together or not at all). The transaction runs when some event has
// identifiers, or always when always is set; it reports whether it ran.
func (s *Service) resolveGroups(ctx context.Context, groups []group, also func(tx *db.Tx) error, always bool) (bool, error) {
	var work []*group
	for i := range groups {
		g := &groups[i]
		g.items = g.items[:0]
		for _, e := range g.events {
			if p := prepare(g.set, e); len(p.ids) > 0 || p.prev != "" {
				g.items = append(g.items, p)
			}
		}
		if len(g.items) > 0 {
			work = append(work, g)
		}
	}
	if len(work) == 0 && !always {
		return false, nil
	}
	// Transactions lock workspaces in one order, so that two replicas' never wait for each other.
	sort.Slice(work, func(i, j int) bool { return work[i].ws < work[j].ws })
	// On PostgreSQL the graphs are read before the write transaction, on the read pool, so that
	// the single writer is held only for the writes; the transaction reads a graph again only if
	// another transaction of identity resolution (another replica's) changed it meanwhile. On
	// SQLite they are read in the transaction: every commit empties the read connections' page
	// caches, and the same reads cost several times more there than on the writer's warm one
	// (they were most of identity resolution's time, which then fell seconds behind ingest).
	read := s.db.Reader()
	for _, g := range work {
		if s.db.Dialect() != db.Postgres {
			g.before = -1 // no version is: read in the transaction
			continue
		}
		var err error
		if g.before, err = graphVersion(ctx, read, g.ws); err != nil {
			return false, err
		}
		g.graph = newGraph(g.ws, g.set)
		if err := g.graph.load(ctx, read, g.items, true); err != nil {
			return false, err
		}
	}
	if s.afterRead != nil {
		s.afterRead()
	}
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		for _, g := range work {
			if err := tx.Lock(ctx, "engage:"+g.ws); err != nil {
				return err
			}
			now, err := graphVersion(ctx, &tx.Queryer, g.ws)
			if err != nil {
				return err
			}
			if now != g.before {
				g.graph = newGraph(g.ws, g.set)
				if err := g.graph.load(ctx, &tx.Queryer, g.items, false); err != nil {
					return err
				}
			}
			for i := range g.items {
				g.graph.resolve(&g.items[i])
			}
			if err := g.graph.flush(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO profile_graphs (workspace_id, version) VALUES (?, 1)
				ON CONFLICT (workspace_id) DO UPDATE SET version = profile_graphs.version + 1`, g.ws); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, g := range work {
		s.notifyResolved(ctx, g.graph.resolved())
	}
	return true, nil
}

// Resolved is what one transaction of identity resolution did in a workspace, told to the
// followers of profiles (computed traits, audiences) once it has committed.
type Resolved struct {
	WorkspaceID string
	// Events are the chunk's events with the profile each now belongs to (the one that stands
	// after the chunk's merges), in the order they were resolved.
	Events []ResolvedEvent
	// Merges are the chunk's merges: each merged profile with the one it became part of.
	Merges []ResolvedMerge
}

// ResolvedEvent is one event and the profile it was resolved to.
type ResolvedEvent struct {
	ProfileID string
	Event     *ingest.Event
}

// ResolvedMerge is one profile merged into another.
type ResolvedMerge struct {
	ProfileID       string // the one that stands
	MergedProfileID string
}

// Profiles are the profiles a transaction changed, each once: those its events went to and those
// that others were merged into.
func (r *Resolved) Profiles() []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, e := range r.Events {
		add(e.ProfileID)
	}
	for _, m := range r.Merges {
		add(m.ProfileID)
	}
	return out
}

// OnResolved adds a follower of profiles: f runs after each transaction of identity resolution
// commits, on the follower's goroutine (so it must be quick, or hand its work on), in the order
// the transactions committed. Add followers before Start.
func (s *Service) OnResolved(f func(ctx context.Context, r *Resolved)) {
	s.followers = append(s.followers, f)
}

func (s *Service) notifyResolved(ctx context.Context, r *Resolved) {
	if len(r.Events) == 0 && len(r.Merges) == 0 {
		return
	}
	for _, f := range s.followers {
		f(ctx, r)
	}
}

// resolved is what the chunk did, with every profile as it stands after the chunk.
func (g *graph) resolved() *Resolved {
	r := &Resolved{WorkspaceID: g.ws}
	for _, e := range g.events {
		r.Events = append(r.Events, ResolvedEvent{ProfileID: find(e.n).id, Event: e.e})
	}
	for _, m := range g.merges {
		r.Merges = append(r.Merges, ResolvedMerge{ProfileID: find(m.parent).id, MergedProfileID: m.child.id})
	}
	return r
}

// graphVersion is a workspace's identity graph version (0 before its first profile).
func graphVersion(ctx context.Context, q *db.Queryer, ws string) (int64, error) {
	var v []int64
	if err := q.Select(ctx, &v, `SELECT version FROM profile_graphs WHERE workspace_id = ?`, ws); err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, nil
	}
	return v[0], nil
}

// node is a profile while a chunk is resolved.
type node struct {
	id     string
	idents map[Ident]bool // those loaded or added
	// counts are the profile's identifiers per type: all of them for a profile whose limits an
	// event may test (read with COUNT, not row by row), else those of idents.
	counts     map[string]int
	mergedInto *node
	isNew      bool
	touched    bool
	createdAt  time.Time
	updatedAt  time.Time // as stored, for loaded profiles
	lastEvent  time.Time
}

func find(n *node) *node {
	for n.mergedInto != nil {
		n = n.mergedInto
	}
	return n
}

type seenRow struct {
	owner       *node
	source      string
	first, last time.Time
}

type traitKey struct {
	n    *node
	name string
}

type traitRow struct {
	traitValue
	source, event string
	at            time.Time
}

type mergeRow struct {
	parent, child *node
	event         string
	ids, dropped  []Ident
	at            time.Time
}

type eventRow struct {
	n     *node
	event string
	e     *ingest.Event
}

// graph is the part of a workspace's identity graph that a chunk of events touches, loaded in
// the chunk's transaction, changed in memory event by event, and written back at the end.
type graph struct {
	ws     string
	set    *Settings
	owner  map[Ident]*node
	stored map[Ident]time.Time // last_seen_at of the identifiers loaded
	nodes  map[string]*node
	seen   map[Ident]*seenRow
	traits map[traitKey]*traitRow
	events []eventRow
	merges []mergeRow
	added  []*node
}

// load reads (through q) who owns the chunk's identifiers, and all the identifiers of the profiles whose
// limits an event may test: those an event would add an identifier to or merge. A profile that
// events only reach through identifiers it already holds gains nothing, so its other identifiers
// are not read (nor needed: no count of it can grow).
func (g *graph) load(ctx context.Context, q *db.Queryer, items []prepared, parallel bool) error {
	values := map[string]bool{}
	for _, p := range items {
		for _, i := range p.ids {
			values[i.Value] = true
		}
		if p.prev != "" {
			values[p.prev] = true
		}
	}
	list := make([]string, 0, len(values))
	for v := range values {
		list = append(list, v)
	}
	sort.Strings(list)
	type identRow struct {
		typ, value, profile string
		seen                db.Time
		updated             *db.Time
	}
	// The values as a table of their own, looked up one by one: as an IN list, PostgreSQL's
	// generic plans (and those made before its statistics) read all the workspace's identifiers
	// and filter them. The profile's updated_at comes from a subquery for the same reason (as a
	// join, it hashed the whole table). Rows are scanned by hand: a chunk reads thousands, and
	// reflection was most of its time.
	idents, err := chunked(ctx, list, parallel, func(ctx context.Context, part []string) ([]identRow, error) {
		values := strings.Repeat("(?),", len(part))
		return scanRows(ctx, q, `WITH v (value) AS (VALUES `+values[:len(values)-1]+`) SELECT pi.type, pi.value, pi.profile_id, pi.last_seen_at,
			(SELECT p.updated_at FROM profiles p WHERE p.id = pi.profile_id)
			FROM v CROSS JOIN profile_identifiers pi WHERE pi.workspace_id = ? AND pi.value = v.value`, append(db.Args(part), g.ws),
			func(r *identRow) []any { return []any{&r.typ, &r.value, &r.profile, &r.seen, &r.updated} })
	})
	if err != nil {
		return err
	}
	for _, r := range idents {
		n := g.nodes[r.profile]
		if n == nil {
			n = &node{id: r.profile, idents: map[Ident]bool{}, counts: map[string]int{}}
			if r.updated != nil {
				n.updatedAt = r.updated.Time
			}
			g.nodes[r.profile] = n
		}
		i := Ident{r.typ, r.value}
		n.idents[i] = true
		n.counts[r.typ]++
		g.owner[i] = n
		g.stored[i] = r.seen.Time
	}
	full := map[string]bool{}
	for i := range items {
		owners, unowned := map[string]bool{}, false
		for _, id := range g.candidates(&items[i]) {
			if n := g.owner[id]; n != nil {
				owners[n.id] = true
			} else {
				unowned = true
			}
		}
		if len(owners) > 1 || (unowned && len(owners) == 1) {
			for p := range owners {
				full[p] = true
			}
		}
	}
	ids := make([]string, 0, len(full))
	for p := range full {
		ids = append(ids, p)
	}
	sort.Strings(ids)
	// Limits need only how many identifiers of each type these profiles hold: counted by the
	// database, not read row by row (a profile near a limit holds hundreds). Profile ids are
	// unique across workspaces: with no other condition, the count reads the (profile_id, type)
	// index alone.
	type countRow struct {
		profile, typ string
		n            int
	}
	counts, err := chunked(ctx, ids, parallel, func(ctx context.Context, part []string) ([]countRow, error) {
		return scanRows(ctx, q, `SELECT profile_id, type, COUNT(*) FROM profile_identifiers WHERE profile_id IN (`+
			db.Placeholders(len(part))+`) GROUP BY profile_id, type`, db.Args(part),
			func(r *countRow) []any { return []any{&r.profile, &r.typ, &r.n} })
	})
	if err != nil {
		return err
	}
	fresh := map[*node]bool{}
	for _, r := range counts {
		nd := g.nodes[r.profile]
		if nd == nil { // no identifier of the chunk's: not a candidate
			continue
		}
		if !fresh[nd] {
			fresh[nd] = true
			nd.counts = map[string]int{}
		}
		nd.counts[r.typ] = r.n
	}
	return nil
}

// chunked runs read over list in parts of valuesPerQuery and returns all their rows, in the order
// of the parts. With parallel (reads on the pool, not in a transaction) the parts are read at
// once, each on a connection of its own: on PostgreSQL a chunk of identity resolution reads
// thousands of identifiers, and one query after another kept it seconds behind ingest.
func chunked[T any](ctx context.Context, list []string, parallel bool, read func(context.Context, []string) ([]T, error)) ([]T, error) {
	n := (len(list) + valuesPerQuery - 1) / valuesPerQuery
	parts := make([][]T, n)
	part := func(ctx context.Context, i int) error {
		rows, err := read(ctx, list[i*valuesPerQuery:min((i+1)*valuesPerQuery, len(list))])
		parts[i] = rows
		return err
	}
	if parallel && n > 1 {
		eg, ctx := errgroup.WithContext(ctx)
		eg.SetLimit(maxParallelReads)
		for i := range n {
			eg.Go(func() error { return part(ctx, i) })
		}
		if err := eg.Wait(); err != nil {
			return nil, err
		}
	} else {
		for i := range n {
			if err := part(ctx, i); err != nil {
				return nil, err
			}
		}
	}
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// maxParallelReads bounds the connections of the read pool one chunk of identity resolution takes.
const maxParallelReads = 4

// scanRows runs query and scans each row into a new T through the pointers dest gives.
func scanRows[T any](ctx context.Context, q *db.Queryer, query string, args []any, dest func(*T) []any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var r T
		if err := rows.Scan(dest(&r)...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// candidates are an event's identifiers as matching sees them: an alias call's previousId is a
// user_id if a profile has it as one, else an anonymous_id, ranking after the event's other
// identifiers of its type.
func (g *graph) candidates(p *prepared) []Ident {
	ids := append([]Ident(nil), p.ids...)
	if p.prev != "" {
		prev := Ident{"anonymous_id", p.prev}
		if g.owner[Ident{"user_id", p.prev}] != nil {
			prev.Type = "user_id"
		}
		ids = dedupe(append(ids, prev))
	}
	byPriority(g.set, ids)
	return ids
}

// resolve finds the profile of one event, as Segment's flat matching does: no profile has any of
// its identifiers, a new one is made; one has, the event goes to it; several have, they merge
// into the oldest. When the profile that results would hold more values of an identifier type
// than the type's limit, the event's identifier of the lowest priority is left out and the
// matching runs again (Segment's merge protection).
func (g *graph) resolve(p *prepared) {
	ids := g.candidates(p)
	if len(ids) == 0 {
		return
	}
	var dropped []Ident
	var matched []*node
	for {
		matched = g.matches(ids)
		if len(ids) > 1 && g.exceeds(matched, ids) {
			dropped = append(dropped, ids[len(ids)-1])
			ids = ids[:len(ids)-1]
			continue
		}
		break
	}
	var target *node
	if len(matched) == 0 {
		target = &node{id: id.New(Prefix), idents: map[Ident]bool{}, counts: map[string]int{}, isNew: true, createdAt: p.e.ReceivedAt}
		g.nodes[target.id] = target
		g.added = append(g.added, target)
	} else {
		target = matched[0]
		for _, child := range matched[1:] {
			child.mergedInto = target
			for i := range child.idents {
				target.idents[i] = true
				g.owner[i] = target
			}
			for t, c := range child.counts {
				target.counts[t] += c
			}
			child.idents, child.counts = nil, nil
			g.merges = append(g.merges, mergeRow{parent: target, child: child, event: p.e.ID, ids: ids, dropped: dropped, at: p.e.ReceivedAt})
		}
	}
	target.touched = true
	if p.e.ReceivedAt.After(target.lastEvent) {
		target.lastEvent = p.e.ReceivedAt
	}
	for _, i := range ids {
		row := g.seen[i]
		if row == nil {
			row = &seenRow{first: p.e.ReceivedAt, source: p.e.SourceID}
			g.seen[i] = row
		}
		row.last = p.e.ReceivedAt
		if g.owner[i] == nil {
			g.owner[i] = target
			target.idents[i] = true
			target.counts[i.Type]++
		}
	}
	g.events = append(g.events, eventRow{target, p.e.ID, p.e})
	for name, v := range p.traits {
		k := traitKey{target, name}
		if cur := g.traits[k]; cur != nil && cur.at.After(p.at) {
			continue
		}
		g.traits[k] = &traitRow{traitValue: v, source: p.e.SourceID, event: p.e.ID, at: p.at}
	}
}

// matches returns the profiles that own any of ids, oldest (smallest id) first.
func (g *graph) matches(ids []Ident) []*node {
	var out []*node
	seen := map[*node]bool{}
	for _, i := range ids {
		if n := g.owner[i]; n != nil {
			n = find(n)
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// exceeds tells whether the profile made of matched and ids would hold more values of a type than
// its limit allows (and more than one of them holds already: rules made stricter later do not
// split profiles that exist).
func (g *graph) exceeds(matched []*node, ids []Ident) bool {
	// A value belongs to one profile: the union's count is the matched profiles' counts added up,
	// and the event's values that no profile holds.
	had, count := map[string]int{}, map[string]int{}
	for _, n := range matched {
		for t, c := range n.counts {
			count[t] += c
			had[t] = max(had[t], c)
		}
	}
	added := map[Ident]bool{}
	for _, i := range ids {
		if g.owner[i] == nil && !added[i] {
			added[i] = true
			count[i.Type]++
		}
	}
	for t, c := range count {
		if c > g.set.rule(t).Limit && c > had[t] {
			return true
		}
	}
	return false
}

// flush writes what the chunk changed: new profiles, merges (re-pointing the merged profiles'
// rows), identifiers, traits (the latest value wins), and the events resolved to each profile.
func (g *graph) flush(ctx context.Context, tx *db.Tx) error {
	now := db.Now()
	var rows [][]any
	for _, n := range g.added {
		var into *string
		if n.mergedInto != nil {
			s := find(n).id
			into = &s
		}
		rows = append(rows, []any{n.id, g.ws, into, db.Time{Time: n.createdAt}, now})
	}
	if err := tx.InsertRows(ctx, `INSERT INTO profiles (id, workspace_id, merged_into, created_at, updated_at) VALUES `, 5, rows, ``); err != nil {
		return err
	}
	for _, m := range g.merges {
		parent, child := find(m.parent).id, m.child.id
		if _, err := tx.Exec(ctx, `UPDATE profiles SET merged_into = ?, updated_at = ? WHERE (id = ? OR merged_into = ?) AND workspace_id = ?`,
			parent, now, child, child, g.ws); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE profile_identifiers SET profile_id = ? WHERE profile_id = ? AND workspace_id = ?`,
			`UPDATE profile_merges SET profile_id = ? WHERE profile_id = ? AND workspace_id = ?`,
		} {
			if _, err := tx.Exec(ctx, q, parent, child, g.ws); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, source_id, event_id, updated_at)
			SELECT ?, workspace_id, name, value, text, source_id, event_id, updated_at FROM profile_traits WHERE profile_id = ?
			ON CONFLICT (profile_id, name) DO UPDATE SET value = excluded.value, text = excluded.text, source_id = excluded.source_id,
			event_id = excluded.event_id, updated_at = excluded.updated_at WHERE excluded.updated_at > profile_traits.updated_at`,
			parent, child); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM profile_traits WHERE profile_id = ?`, child); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO profile_merges (id, workspace_id, profile_id, merged_profile_id, event_id, identifiers, dropped, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id.New(MergePrefix), g.ws, parent, child, m.event, marshal(nonNil(m.ids)), marshal(nonNil(m.dropped)),
			db.Time{Time: m.at}); err != nil {
			return err
		}
	}
	merged := map[*node]bool{}
	for _, m := range g.merges {
		merged[m.child] = true
	}
	rows = rows[:0]
	for i, r := range g.seen {
		// An identifier that stays where it was and was seen lately is not written again: last
		// seen is kept to the minute, which spares the writer a row per event.
		if at, ok := g.stored[i]; ok && !merged[g.owner[i]] && g.owner[i].mergedInto == nil && r.last.Sub(at) < seenGranularity {
			continue
		}
		rows = append(rows, []any{g.ws, i.Type, i.Value, find(g.owner[i]).id, r.source, db.Time{Time: r.first}, db.Time{Time: r.last}})
	}
	sortRows(rows)
	if err := tx.InsertRows(ctx, `INSERT INTO profile_identifiers (workspace_id, type, value, profile_id, source_id, first_seen_at, last_seen_at) VALUES `, 7, rows,
		` ON CONFLICT (workspace_id, type, value) DO UPDATE SET profile_id = excluded.profile_id,
		last_seen_at = CASE WHEN excluded.last_seen_at > profile_identifiers.last_seen_at THEN excluded.last_seen_at ELSE profile_identifiers.last_seen_at END`); err != nil {
		return err
	}
	final := map[traitKey]*traitRow{}
	for k, r := range g.traits {
		fk := traitKey{find(k.n), k.name}
		if cur := final[fk]; cur == nil || r.at.After(cur.at) {
			final[fk] = r
		}
	}
	rows = rows[:0]
	for k, r := range final {
		rows = append(rows, []any{k.n.id, g.ws, k.name, r.value, r.text, r.source, r.event, db.Time{Time: r.at}})
	}
	sortRows(rows)
	if err := tx.InsertRows(ctx, `INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, source_id, event_id, updated_at) VALUES `, 8, rows,
		` ON CONFLICT (profile_id, name) DO UPDATE SET value = excluded.value, text = excluded.text, source_id = excluded.source_id,
		event_id = excluded.event_id, updated_at = excluded.updated_at WHERE excluded.updated_at >= profile_traits.updated_at`); err != nil {
		return err
	}
	rows = rows[:0]
	touched := map[string]bool{}
	for _, e := range g.events {
		n := find(e.n)
		rows = append(rows, []any{n.id, e.event})
		if !n.isNew && n.lastEvent.Sub(n.updatedAt) >= seenGranularity {
			touched[n.id] = true
		}
	}
	for _, m := range g.merges {
		if n := find(m.parent); !n.isNew {
			touched[n.id] = true
		}
	}
	if err := tx.InsertRows(ctx, `INSERT INTO profile_events (profile_id, event_id) VALUES `, 2, rows, ` ON CONFLICT (profile_id, event_id) DO NOTHING`); err != nil {
		return err
	}
	list := make([]string, 0, len(touched))
	for p := range touched {
		list = append(list, p)
	}
	sort.Strings(list)
	for start := 0; start < len(list); start += valuesPerQuery {
		part := list[start:min(start+valuesPerQuery, len(list))]
		if _, err := tx.Exec(ctx, `UPDATE profiles SET updated_at = ? WHERE id IN (`+db.Placeholders(len(part))+`)`,
			append([]any{now}, db.Args(part)...)...); err != nil {
			return err
		}
	}
	return nil
}

func nonNil(ids []Ident) []Ident {
	if ids == nil {
		return []Ident{}
	}
	return ids
}

// sortRows orders rows by their first columns, so that concurrent writers lock rows in one order.
func sortRows(rows [][]any) {
	sort.Slice(rows, func(i, j int) bool {
		for c := 0; c < len(rows[i]) && c < 3; c++ {
			a, _ := rows[i][c].(string)
			b, _ := rows[j][c].(string)
			if a != b {
				return a < b
			}
		}
		return false
	})
}
