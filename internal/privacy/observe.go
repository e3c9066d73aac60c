package privacy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/ingest"
)

// rowsPerTx bounds the rows one of the listener's transactions writes.
const rowsPerTx = 300

type span struct {
	first, last time.Time
	n           int64
}

func (sp *span) add(t time.Time) {
	if sp.first.IsZero() || t.Before(sp.first) {
		sp.first = t
	}
	if t.After(sp.last) {
		sp.last = t
	}
	sp.n++
}

type originKey struct{ source, event string }

type fieldAgg struct {
	span
	key     string
	sample  any
	sampled string // the id of the event the sample came from
	origins map[originKey]*span
}

// Committed is the listener of commits (ingest.Listener with Every): it adds up the fields the
// stage noted and stores them, with the matchers' recommendation, in the inbox.
func (s *Service) Committed(c ingest.Committed) {
	byWorkspace := map[string]map[string]*fieldAgg{}
	for _, e := range c.Events {
		if e.Status != ingest.Accepted {
			continue
		}
		var n *note
		for _, x := range e.Notes {
			if nn, ok := x.(*note); ok {
				n = nn
			}
		}
		if n == nil {
			continue
		}
		fields := byWorkspace[e.WorkspaceID]
		if fields == nil {
			fields = map[string]*fieldAgg{}
			byWorkspace[e.WorkspaceID] = fields
		}
		for _, f := range n.fields {
			agg := fields[f.path]
			if agg == nil {
				agg = &fieldAgg{key: f.key, origins: map[originKey]*span{}}
				fields[f.path] = agg
			}
			agg.add(e.ReceivedAt)
			if agg.sample == nil {
				agg.sample, agg.sampled = f.value, e.ID
			}
			ok := originKey{n.sourceID, n.eventName}
			o := agg.origins[ok]
			if o == nil {
				o = &span{}
				agg.origins[ok] = o
			}
			o.add(e.ReceivedAt)
		}
	}
	ctx := context.Background()
	for _, ws := range slices.Sorted(maps.Keys(byWorkspace)) {
		if err := s.store(ctx, ws, byWorkspace[ws]); err != nil {
			s.log.Error("privacy: storing fields failed", "workspace", ws, "error", err.Error())
		}
	}
}

type redField struct{ path, matcher string }

type recommendation struct {
	Match
	ok bool
}

// recommend is a field's recommendation: its key's (matched once per key), or its sample's
// when that is more severe (values are matched once per field and listening period).
func recommend(r *rules, path, key string, sample any) recommendation {
	km, kok := r.keyAt(path, key)
	if kok && km.Classification == Red {
		return recommendation{km, true}
	}
	vm, vok := r.matchers.Value(sample)
	if vok && (!kok || vm.Classification.rank() > km.Classification.rank()) {
		return recommendation{vm, true}
	}
	return recommendation{km, kok}
}

type existing struct {
	Path        string  `db:"path"`
	Recommended *string `db:"recommended"`
}

func (s *Service) store(ctx context.Context, workspaceID string, fields map[string]*fieldAgg) error {
	r, err := s.cache.rules(ctx, workspaceID)
	if err != nil {
		return err
	}
	paths := slices.Sorted(maps.Keys(fields))
	// What was known of these fields, to tell which became RED now.
	before := map[string]string{}
	for start := 0; start < len(paths); start += rowsPerTx {
		chunk := paths[start:min(start+rowsPerTx, len(paths))]
		var rows []existing
		if err := s.db.Select(ctx, &rows, `SELECT path, recommended FROM privacy_fields WHERE workspace_id = ? AND path IN (`+db.Placeholders(len(chunk))+`)`,
			append([]any{workspaceID}, db.Args(chunk)...)...); err != nil {
			return err
		}
		for _, row := range rows {
			before[row.Path] = ""
			if row.Recommended != nil {
				before[row.Path] = *row.Recommended
			}
		}
	}
	var rows, origins [][]any
	freshRed := map[string][]redField{} // source -> fields recommended RED for the first time
	for _, p := range paths {
		agg := fields[p]
		rec := recommend(r, p, agg.key, agg.sample)
		prev, known := before[p]
		if known && Classification(prev).rank() > rec.Classification.rank() {
			rec.ok = false // keep the more severe recommendation made before
		}
		var recommended, matcherID, matcherName any
		if rec.ok {
			recommended, matcherID, matcherName = string(rec.Classification), rec.MatcherID, rec.Name
		}
		sample, _ := json.Marshal(agg.sample)
		if len(sample) > sampleLen {
			sample, _ = json.Marshal(string(sample[:sampleLen]) + "…")
		}
		rows = append(rows, []any{workspaceID, p, recommended, matcherID, matcherName, db.Time{Time: agg.first}, db.Time{Time: agg.last}, agg.n, string(sample), agg.sampled})
		redNow := rec.ok && rec.Classification == Red && prev != string(Red)
		for ok, sp := range agg.origins {
			origins = append(origins, []any{ok.source, p, ok.event, workspaceID, db.Time{Time: sp.first}, db.Time{Time: sp.last}, sp.n})
			if redNow {
				freshRed[ok.source] = append(freshRed[ok.source], redField{p, rec.Name})
			}
		}
	}
	sort.Slice(origins, func(i, j int) bool { return fmt.Sprint(origins[i][:3]) < fmt.Sprint(origins[j][:3]) })
	for start := 0; start < len(rows); start += rowsPerTx {
		chunk := rows[start:min(start+rowsPerTx, len(rows))]
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			return tx.InsertRows(ctx, `INSERT INTO privacy_fields (workspace_id, path, recommended, matcher_id, matcher_name, first_seen_at, last_seen_at, seen, sample, sample_event_id) VALUES `, 10, chunk,
				` ON CONFLICT (workspace_id, path) DO UPDATE SET seen = privacy_fields.seen + excluded.seen, sample = excluded.sample,
				sample_event_id = excluded.sample_event_id,
				recommended = COALESCE(excluded.recommended, privacy_fields.recommended),
				matcher_id = CASE WHEN excluded.recommended IS NULL THEN privacy_fields.matcher_id ELSE excluded.matcher_id END,
				matcher_name = CASE WHEN excluded.recommended IS NULL THEN privacy_fields.matcher_name ELSE excluded.matcher_name END,
				last_seen_at = CASE WHEN excluded.last_seen_at > privacy_fields.last_seen_at THEN excluded.last_seen_at ELSE privacy_fields.last_seen_at END`)
		}); err != nil {
			return err
		}
	}
	for start := 0; start < len(origins); start += rowsPerTx {
		chunk := origins[start:min(start+rowsPerTx, len(origins))]
		if err := s.db.Tx(ctx, func(tx *db.Tx) error {
			return tx.InsertRows(ctx, `INSERT INTO privacy_field_sources (source_id, path, event_name, workspace_id, first_seen_at, last_seen_at, seen) VALUES `, 7, chunk,
				` ON CONFLICT (source_id, path, event_name) DO UPDATE SET seen = privacy_field_sources.seen + excluded.seen,
				last_seen_at = CASE WHEN excluded.last_seen_at > privacy_field_sources.last_seen_at THEN excluded.last_seen_at ELSE privacy_field_sources.last_seen_at END`)
		}); err != nil {
			return err
		}
	}
	if len(freshRed) > 0 {
		s.newRedFields(ctx, workspaceID, freshRed)
	}
	return nil
}

// newRedFields tells the workspace's members (a notification of the PRIVACY area) and its health
// (a NEW_PII_FIELD issue of the source) that fields recommended RED arrived for the first time.
func (s *Service) newRedFields(ctx context.Context, workspaceID string, bySource map[string][]redField) {
	if s.Publish != nil {
		ctx = audit.WithPublisher(ctx, s.Publish)
	}
	var occ []health.Occurrence
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		for _, src := range slices.Sorted(maps.Keys(bySource)) {
			list := make([]string, 0, len(bySource[src]))
			for _, f := range bySource[src] {
				list = append(list, fmt.Sprintf("%s (%s)", f.path, f.matcher))
			}
			sort.Strings(list)
			msg := "new RED fields: " + joinSome(list)
			if err := audit.Notify(ctx, tx, workspaceID, EventNewPIIField, "Source", src, msg, nil, nil); err != nil {
				return err
			}
			occ = append(occ, health.Occurrence{WorkspaceID: workspaceID, TargetKind: health.SourceTarget, TargetID: src,
				ErrorType: HealthNewPIIField, Message: msg, N: len(list), At: time.Now()})
		}
		return nil
	})
	if err != nil {
		s.log.Error("privacy: notifying new PII fields failed", "error", err.Error())
		return
	}
	if s.RecordHealth != nil {
		if err := s.RecordHealth(ctx, occ); err != nil {
			s.log.Error("privacy: recording NEW_PII_FIELD health issues failed", "error", err.Error())
		}
	}
}

// joinSome names the first five fields, and how many more there are.
func joinSome(list []string) string {
	if extra := len(list) - 5; extra > 0 {
		return fmt.Sprintf("%s and %d more", strings.Join(list[:5], "; "), extra)
	}
	return strings.Join(list, "; ")
}
