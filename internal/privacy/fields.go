package privacy

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// Field is a field seen in events: its recommendation, its classification once chosen, and
// where it came from.
type Field struct {
	WorkspaceID    string          `db:"workspace_id"`
	Path           string          `db:"path"`
	Recommended    *Classification `db:"recommended"`
	MatcherID      *string         `db:"matcher_id"`
	MatcherName    *string         `db:"matcher_name"`
	Classification *Classification `db:"classification"`
	ClassifiedAt   *db.Time        `db:"classified_at"`
	ClassifiedBy   *string         `db:"classified_by"`
	FirstSeenAt    db.Time         `db:"first_seen_at"`
	LastSeenAt     db.Time         `db:"last_seen_at"`
	Seen           int64           `db:"seen"`
	SampleJSON     string          `db:"sample"`
	SampleEventID  *string         `db:"sample_event_id"` // where the sample came from, for regulations

	Origins      []Origin      `db:"-"`
	Destinations []Destination `db:"-"`
	// Matcher is the matcher that recommends it, as the workspace has it now; nil for none.
	Matcher *Matcher `db:"-"`
}

// Sample is the field's sample value.
func (f *Field) Sample() any {
	var v any
	_ = json.Unmarshal([]byte(f.SampleJSON), &v)
	return v
}

// Sensitivity is the classification the field is masked by: its own, or its recommendation.
func (f *Field) Sensitivity() Classification {
	if f.Classification != nil {
		return *f.Classification
	}
	if f.Recommended != nil {
		return *f.Recommended
	}
	return ""
}

// Origin is where a field came from: a source and an event name.
type Origin struct {
	WorkspaceID string  `db:"workspace_id"`
	SourceID    string  `db:"source_id"`
	Path        string  `db:"path"`
	EventName   string  `db:"event_name"`
	FirstSeenAt db.Time `db:"first_seen_at"`
	LastSeenAt  db.Time `db:"last_seen_at"`
	Seen        int64   `db:"seen"`
}

// Destination is a destination a classified field reaches (through an enabled connection of one
// of its sources) and what it receives of it.
type Destination struct {
	WorkspaceID   string
	DestinationID string
	Action        Action
}

// Connections are the destinations the viewer sees that sources lead to by enabled
// connections, by source (destination.Service.ConnectionsBySource, adapted).
type Connections func(ctx context.Context, a *workspace.Access, sourceIDs []string) (map[string][]string, error)

// Filter narrows the inventory.
type Filter struct {
	Classification *Classification
	SourceID       *string
	Search         string
}

func (f Filter) where(args []any) (string, []any) {
	var w []string
	if f.Classification != nil {
		w = append(w, "f.classification = ?")
		args = append(args, string(*f.Classification))
	}
	if f.SourceID != nil {
		w = append(w, "EXISTS (SELECT 1 FROM privacy_field_sources o WHERE o.source_id = ? AND o.workspace_id = f.workspace_id AND o.path = f.path)")
		args = append(args, *f.SourceID)
	}
	if s := strings.TrimSpace(f.Search); s != "" {
		w = append(w, "LOWER(f.path) LIKE ? ESCAPE '\\'")
		args = append(args, "%"+likeEscape(strings.ToLower(s))+"%")
	}
	if len(w) == 0 {
		return "", args
	}
	return " AND " + strings.Join(w, " AND "), args
}

// visible is the condition for the fields the viewer sees: all of the workspace's but for
// MINIMAL members, who see none.
func visible(a *workspace.Access) string {
	if a.CanReadAll() {
		return "TRUE"
	}
	return "FALSE"
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Inbox pages through the fields seen since since (the inbox window ago when nil) and not yet
// classified, by path. Members, owners and admins.
func (s *Service) Inbox(ctx context.Context, workspaceID string, since *time.Time, args relay.Args, count bool) (relay.Page[Field], error) {
	a, err := s.read(ctx, workspaceID)
	if err != nil {
		return relay.Page[Field]{}, err
	}
	from := db.Time{Time: time.Now().Add(-s.InboxWindow)}
	if since != nil {
		from = db.Time{Time: *since}
	}
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[Field]{
		Select: "SELECT f.* FROM privacy_fields f", Where: visible(a) + " AND f.workspace_id = ? AND f.classification IS NULL AND f.last_seen_at >= ?",
		Args: []any{workspaceID, from}, IDColumn: "f.path", Count: count,
		ID: func(f Field) string { return f.Path },
	}, args)
	if err != nil {
		return page, err
	}
	return page, s.fill(ctx, workspaceID, page.Edges, nil)
}

// Inventory pages through the classified fields, by path. Members, owners and admins.
func (s *Service) Inventory(ctx context.Context, workspaceID string, f Filter, args relay.Args, count bool, conns Connections) (relay.Page[Field], error) {
	a, err := s.read(ctx, workspaceID)
	if err != nil {
		return relay.Page[Field]{}, err
	}
	where, qargs := f.where([]any{workspaceID})
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[Field]{
		Select: "SELECT f.* FROM privacy_fields f", Where: visible(a) + " AND f.workspace_id = ? AND f.classification IS NOT NULL" + where,
		Args: qargs, IDColumn: "f.path", Count: count,
		ID: func(f Field) string { return f.Path },
	}, args)
	if err != nil {
		return page, err
	}
	fill := func(ctx context.Context, sourceIDs []string) (map[string][]string, error) {
		return conns(ctx, a, sourceIDs)
	}
	return page, s.fill(ctx, workspaceID, page.Edges, fill)
}

// fill loads the origins of a page of fields, and the destinations they reach when asked, in a
// fixed number of queries.
func (s *Service) fill(ctx context.Context, workspaceID string, edges []relay.Edge[Field], conns func(context.Context, []string) (map[string][]string, error)) error {
	if len(edges) == 0 {
		return nil
	}
	paths := make([]string, len(edges))
	for i, e := range edges {
		paths[i] = e.Node.Path
	}
	var origins []Origin
	if err := s.db.Select(ctx, &origins, `SELECT o.workspace_id, o.source_id, o.path, o.event_name, o.first_seen_at, o.last_seen_at, o.seen
		FROM privacy_field_sources o JOIN sources s ON s.id = o.source_id AND s.deleted_at IS NULL
		WHERE o.workspace_id = ? AND o.path IN (`+db.Placeholders(len(paths))+`) ORDER BY o.path, o.source_id, o.event_name`,
		append([]any{workspaceID}, db.Args(paths)...)...); err != nil {
		return err
	}
	byPath := map[string][]Origin{}
	sourceSet := map[string]bool{}
	for _, o := range origins {
		byPath[o.Path] = append(byPath[o.Path], o)
		sourceSet[o.SourceID] = true
	}
	r, err := s.cache.rules(ctx, workspaceID)
	if err != nil {
		return err
	}
	var reach map[string][]string
	if conns != nil && len(sourceSet) > 0 {
		if reach, err = conns(ctx, slices.Sorted(maps.Keys(sourceSet))); err != nil {
			return err
		}
	}
	ms, err := matchers(ctx, s.db.Reader(), workspaceID)
	if err != nil {
		return err
	}
	byID := map[string]*Matcher{}
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	for i := range edges {
		f := &edges[i].Node
		if f.MatcherID != nil {
			f.Matcher = byID[*f.MatcherID]
		}
		// A recommendation by a matcher since disabled or deleted, or none at all, is the key's
		// by the matchers as they are now (those made from a value stand while their matcher does).
		if f.Matcher == nil || !f.Matcher.Enabled {
			f.Recommended, f.Matcher = nil, nil
			if r.enabled {
				if m, ok := r.keyAt(f.Path, lastKey(f.Path)); ok {
					f.Recommended, f.Matcher = &m.Classification, byID[m.MatcherID]
				}
			}
		}
		f.Origins = nonNilOrigins(byPath[f.Path])
		f.Destinations = []Destination{}
		if reach == nil {
			continue
		}
		seen := map[string]bool{}
		for _, o := range f.Origins {
			for _, d := range reach[o.SourceID] {
				if seen[d] {
					continue
				}
				seen[d] = true
				dc, ok := r.destinations[d]
				if !ok {
					dc = defaultDestinationControls(d, workspaceID)
				}
				f.Destinations = append(f.Destinations, Destination{WorkspaceID: workspaceID, DestinationID: d, Action: dc.action(f.Sensitivity())})
			}
		}
		sort.Slice(f.Destinations, func(a, b int) bool { return f.Destinations[a].DestinationID < f.Destinations[b].DestinationID })
	}
	return nil
}

func nonNilOrigins(o []Origin) []Origin {
	if o == nil {
		return []Origin{}
	}
	return o
}

// Classify moves fields to the inventory with a classification (or changes it). Owners and admins.
func (s *Service) Classify(ctx context.Context, workspaceID string, paths []string, c Classification) (int, apperr.UserErrors, error) {
	a, err := s.admin(ctx, workspaceID)
	if err != nil {
		return 0, nil, err
	}
	if c != Red && c != Yellow && c != Green {
		return 0, apperr.UserErrors{{Field: "classification", Code: apperr.InvalidValue, Message: "classification must be RED, YELLOW or GREEN"}}, nil
	}
	if len(paths) == 0 || len(paths) > maxClassifyFields {
		return 0, apperr.UserErrors{{Field: "fields", Code: apperr.InvalidValue, Message: "give 1 to " + strconv.Itoa(maxClassifyFields) + " fields"}}, nil
	}
	var n int64
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE privacy_fields SET classification = ?, classified_at = ?, classified_by = ?
			WHERE workspace_id = ? AND path IN (`+db.Placeholders(len(paths))+`)`,
			append([]any{string(c), db.Now(), actor(a), workspaceID}, db.Args(paths)...)...)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		if n == 0 {
			return nil
		}
		return audit.Record(ctx, tx, workspaceID, EventFieldsClassified, "Workspace", workspaceID,
			map[string]any{"classification": c, "fields": paths})
	})
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, apperr.UserErrors{{Field: "fields", Code: apperr.InvalidValue, Message: "none of these fields was seen in this workspace"}}, nil
	}
	s.cache.forget(workspaceID)
	return int(n), nil, nil
}

// InventoryCSV is the inventory as CSV, with the filters applied (all pages). Members, owners and
// admins. Samples are left out: the file leaves the server.
func (s *Service) InventoryCSV(ctx context.Context, workspaceID string, f Filter, sourceNames func([]string) map[string]string, conns Connections) (string, error) {
	a, err := s.read(ctx, workspaceID)
	if err != nil {
		return "", err
	}
	where, qargs := f.where([]any{workspaceID})
	var fields []Field
	if err := s.db.Select(ctx, &fields, `SELECT f.* FROM privacy_fields f WHERE `+visible(a)+` AND f.workspace_id = ? AND f.classification IS NOT NULL`+where+` ORDER BY f.path LIMIT 100000`, qargs...); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"field", "classification", "recommended", "matcher", "sources", "event names", "destinations", "first seen", "last seen", "count"})
	fill := func(ctx context.Context, sourceIDs []string) (map[string][]string, error) {
		return conns(ctx, a, sourceIDs)
	}
	for start := 0; start < len(fields); start += 100 {
		chunk := fields[start:min(start+100, len(fields))]
		edges := make([]relay.Edge[Field], len(chunk))
		for i := range chunk {
			edges[i].Node = chunk[i]
		}
		if err := s.fill(ctx, workspaceID, edges, fill); err != nil {
			return "", err
		}
		var ids []string
		for _, e := range edges {
			for _, o := range e.Node.Origins {
				ids = append(ids, o.SourceID)
			}
			for _, d := range e.Node.Destinations {
				ids = append(ids, d.DestinationID)
			}
		}
		names := sourceNames(ids)
		for _, e := range edges {
			fl := e.Node
			srcs, events, dests := set{}, set{}, set{}
			for _, o := range fl.Origins {
				srcs.add(names[o.SourceID])
				if o.EventName != "" {
					events.add(o.EventName)
				}
			}
			for _, d := range fl.Destinations {
				dests.add(names[d.DestinationID] + " (" + string(d.Action) + ")")
			}
			_ = w.Write([]string{fl.Path, string(deref(fl.Classification)), string(deref(fl.Recommended)), deref(fl.MatcherName), srcs.join(), events.join(), dests.join(),
				fl.FirstSeenAt.Format(time.RFC3339), fl.LastSeenAt.Format(time.RFC3339), strconv.FormatInt(fl.Seen, 10)})
		}
	}
	w.Flush()
	return buf.String(), w.Error()
}

type set map[string]bool

func (s set) add(v string) { s[v] = true }
func (s set) join() string { return strings.Join(slices.Sorted(maps.Keys(s)), "; ") }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
