package protocols

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// SchemaEvent is one event of a source's schema.
type SchemaEvent struct {
	SourceID    string      `db:"source_id"`
	WorkspaceID string      `db:"workspace_id"`
	Type        ingest.Type `db:"event_type"`
	Name        string      `db:"event_name"`
	FirstSeenAt db.Time     `db:"first_seen_at"`
	LastSeenAt  db.Time     `db:"last_seen_at"`
	ArchivedAt  *db.Time    `db:"archived_at"`
	Blocked     *db.Time    `db:"first_blocked_at"`
	Key         string      `db:"event_key"`
	Counts      Counts      `db:"-"`
	Planned     bool        `db:"-"`
	Keys        []SchemaKey `db:"-"`
}

// Counts are how often something was seen lately, and how often blocked.
type Counts struct {
	Last24Hours, Last7Days               int64
	BlockedLast24Hours, BlockedLast7Days int64
}

// SchemaKey is one property or trait key of an event of a source's schema.
type SchemaKey struct {
	Field       string  `db:"field"`
	Path        string  `db:"path"`
	TypeBits    int64   `db:"types"`
	FirstSeenAt db.Time `db:"first_seen_at"`
	LastSeenAt  db.Time `db:"last_seen_at"`
	Counts      Counts  `db:"-"`
	Planned     bool    `db:"-"`
}

// Types names the JSON types seen.
func (k *SchemaKey) Types() []string {
	var out []string
	for _, t := range typeNames {
		if k.TypeBits&t.bit != 0 {
			out = append(out, t.name)
		}
	}
	return out
}

// SchemaFilter narrows a source's schema.
type SchemaFilter struct {
	Type            ingest.Type
	Search          string
	IncludeArchived bool
}

// Schema pages through the events of a source's schema (by type, then name), with their keys,
// counts over 24 hours and 7 days, and whether its plan plans them; the viewer must see the source.
func (s *Service) Schema(ctx context.Context, src *source.Source, f SchemaFilter, args relay.Args, count bool) (relay.Page[SchemaEvent], error) {
	a, _, err := s.sources.Rights(ctx, src)
	if err != nil {
		return relay.Page[SchemaEvent]{}, err
	}
	where, qargs := source.VisibleIDWhere(a, "e.source_id")
	where = "e.workspace_id = ? AND e.source_id = ? AND " + where
	qargs = append([]any{a.WorkspaceID, src.ID}, qargs...)
	if !f.IncludeArchived {
		where += " AND e.archived_at IS NULL"
	}
	if f.Type != "" {
		where += " AND e.event_type = ?"
		qargs = append(qargs, string(f.Type))
	}
	if f.Search != "" {
		where += " AND LOWER(e.event_name) LIKE ? ESCAPE '\\'"
		qargs = append(qargs, "%"+likeEscape(strings.ToLower(f.Search))+"%")
	}
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[SchemaEvent]{
		Select: "SELECT e.* FROM schema_events e", Where: where, Args: qargs,
		IDColumn: "e.event_key", Count: count,
		ID: func(e SchemaEvent) string { return RuleKey(e.Type, e.Name) },
	}, args)
	if err != nil || len(page.Edges) == 0 {
		return page, err
	}
	if err := s.fillSchema(ctx, src, page.Edges); err != nil {
		return page, err
	}
	return page, nil
}

// fillSchema loads the keys and counts of a page of schema events, in a fixed number of queries,
// and marks what the source's plan plans.
func (s *Service) fillSchema(ctx context.Context, src *source.Source, edges []relay.Edge[SchemaEvent]) error {
	keys := make([]any, len(edges))
	index := map[string]*SchemaEvent{}
	for i := range edges {
		e := &edges[i].Node
		k := RuleKey(e.Type, e.Name)
		keys[i] = k
		index[k] = e
		e.Keys = []SchemaKey{}
	}
	r := s.db.Reader()
	var rows []struct {
		SchemaKey
		Type ingest.Type `db:"event_type"`
		Name string      `db:"event_name"`
	}
	if err := r.Select(ctx, &rows, `SELECT event_type, event_name, field, path, types, first_seen_at, last_seen_at FROM schema_keys
		WHERE source_id = ? AND (event_type || ':' || event_name) IN (`+db.Placeholders(len(keys))+`) ORDER BY event_type, event_name, field, path`,
		append([]any{src.ID}, keys...)...); err != nil {
		return err
	}
	for _, row := range rows {
		if e := index[RuleKey(row.Type, row.Name)]; e != nil {
			e.Keys = append(e.Keys, row.SchemaKey)
		}
	}
	now := time.Now()
	day, week := hourOf(now.Add(-23*time.Hour)), hourOf(now.Add(-167*time.Hour))
	var counts []struct {
		Type                    ingest.Type `db:"event_type"`
		Name                    string      `db:"event_name"`
		Field                   string      `db:"field"`
		Path                    string      `db:"path"`
		N24, N7, Blocked24, Bl7 int64
	}
	if err := r.Select(ctx, &counts, `SELECT event_type, event_name, field, path,
		SUM(CASE WHEN hour >= ? THEN n ELSE 0 END) AS n24, SUM(n) AS n7,
		SUM(CASE WHEN hour >= ? THEN blocked ELSE 0 END) AS blocked24, SUM(blocked) AS bl7
		FROM schema_counts WHERE source_id = ? AND hour >= ? AND (event_type || ':' || event_name) IN (`+db.Placeholders(len(keys))+`)
		GROUP BY event_type, event_name, field, path`, append([]any{day, day, src.ID, week}, keys...)...); err != nil {
		return err
	}
	for _, c := range counts {
		e := index[RuleKey(c.Type, c.Name)]
		if e == nil {
			continue
		}
		cnt := Counts{Last24Hours: c.N24, Last7Days: c.N7, BlockedLast24Hours: c.Blocked24, BlockedLast7Days: c.Bl7}
		if c.Field == "" {
			e.Counts = cnt
			continue
		}
		for i := range e.Keys {
			if e.Keys[i].Field == c.Field && e.Keys[i].Path == c.Path {
				e.Keys[i].Counts = cnt
			}
		}
	}
	plan, err := s.planOfSource(ctx, src.ID)
	if err != nil || plan == nil {
		return err
	}
	for i := range edges {
		e := &edges[i].Node
		rule := plan.rules[ruleID{e.Type, e.Name}]
		if rule == nil {
			continue
		}
		e.Planned = true
		rule.compile()
		for j := range e.Keys {
			top, _, _ := strings.Cut(e.Keys[j].Path, ".")
			e.Keys[j].Planned = e.Keys[j].Field == rule.field && (rule.closed && rule.planned == nil || rule.isPlanned(top))
			if rule.closed {
				m, _, _ := plannedKeys(mustDoc(rule.rule.schema(rule.field)))
				e.Keys[j].Planned = m[top]
			}
		}
	}
	return nil
}

func mustDoc(text *string) any {
	if text == nil {
		return nil
	}
	doc, _, _ := parseSchema(*text)
	if m, ok := doc.(map[string]any); ok {
		delete(m, "additionalProperties")
		return m
	}
	return doc
}

// planOfSource is the compiled plan a source is connected to, nil when none.
func (s *Service) planOfSource(ctx context.Context, sourceID string) (*compiledPlan, error) {
	var row struct {
		PlanID  string `db:"plan_id"`
		Version int64  `db:"version"`
	}
	err := s.db.Get(ctx, &row, `SELECT p.id AS plan_id, p.version FROM source_protocols sp JOIN tracking_plans p ON p.id = sp.plan_id WHERE sp.source_id = ?`, sourceID)
	if db.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.compiledPlan(ctx, row.PlanID, row.Version)
}

// Archive hides an event from a source's schema (archived) or shows it again; its data stays.
// Owners and admins.
func (s *Service) Archive(ctx context.Context, sourceID string, typ ingest.Type, name string, archived bool) (*SchemaEvent, apperr.UserErrors, error) {
	var errs apperr.UserErrors
	var out SchemaEvent
	err := s.db.Tx(ctx, func(tx *db.Tx) error {
		srcObj, err := s.sources.Get(ctx, sourceID)
		if err != nil {
			return err
		}
		a, _, err := s.sources.Rights(ctx, srcObj)
		if err != nil {
			return err
		}
		if !a.CanAdminister() { // the schema is every plan's: archiving needs no Protocols
			return apperr.New(apperr.Forbidden, "your role in this workspace does not allow you to archive events of a source's schema")
		}
		var at any
		if archived {
			at = db.Now()
		}
		res, err := tx.Exec(ctx, `UPDATE schema_events SET archived_at = ? WHERE source_id = ? AND event_type = ? AND event_name = ?`, at, srcObj.ID, string(typ), name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			errs.Add("eventName", apperr.InvalidValue, "the source's schema has no %s event %q", typ, name)
			return nil
		}
		if err := tx.Get(ctx, &out, `SELECT * FROM schema_events WHERE source_id = ? AND event_type = ? AND event_name = ?`, srcObj.ID, string(typ), name); err != nil {
			return err
		}
		return audit.Record(ctx, tx, srcObj.WorkspaceID, EventSchemaArchived, "Source", srcObj.ID,
			map[string]any{"name": srcObj.Name, "event": RuleKey(typ, name), "archived": archived})
	})
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	out.Keys = []SchemaKey{}
	return &out, nil, nil
}

// ViolationGroup is a source's violations of one kind on one field of one event, over a period.
type ViolationGroup struct {
	SourceID    string      `db:"source_id"`
	WorkspaceID string      `db:"workspace_id"`
	Type        ingest.Type `db:"event_type"`
	EventName   string      `db:"event_name"`
	Field       string      `db:"field"`
	Violation   string      `db:"violation_type"`
	Message     string      `db:"message"`
	FirstSeenAt db.Time     `db:"first_seen_at"`
	LastSeenAt  db.Time     `db:"last_seen_at"`
	Count       int64       `db:"total"`
	Key         string      `db:"vkey"`
	Samples     []Sample    `db:"-"`
}

// Sample is an event that had a violation, as it arrived.
type Sample struct {
	EventID    string  `db:"event_id"`
	ReceivedAt db.Time `db:"received_at"`
	Payload    string  `db:"payload"`
	// WorkspaceID is the violation's, for masking the payload.
	WorkspaceID string `db:"-"`
}

// ViolationFilter narrows violations: received in [Since, Until), of an event name.
type ViolationFilter struct {
	Since, Until *time.Time
	EventName    *string
}

// SourceViolations pages through a source's violations, most recently seen first.
func (s *Service) SourceViolations(ctx context.Context, src *source.Source, f ViolationFilter, args relay.Args, count bool) (relay.Page[ViolationGroup], error) {
	a, _, err := s.sources.Rights(ctx, src)
	if err != nil {
		return relay.Page[ViolationGroup]{}, err
	}
	return s.violations(ctx, a, "k.source_id = ?", []any{src.ID}, f, args, count)
}

// PlanViolations pages through the violations of the sources connected to a plan that the
// viewer sees.
func (s *Service) PlanViolations(ctx context.Context, p *Plan, f ViolationFilter, args relay.Args, count bool) (relay.Page[ViolationGroup], error) {
	a, err := s.workspaces.Access(ctx, p.WorkspaceID)
	if err != nil {
		return relay.Page[ViolationGroup]{}, err
	}
	return s.violations(ctx, a, "k.source_id IN (SELECT sp.source_id FROM source_protocols sp WHERE sp.plan_id = ?)", []any{p.ID}, f, args, count)
}

func (s *Service) violations(ctx context.Context, a *workspace.Access, which string, whichArgs []any, f ViolationFilter, args relay.Args, count bool) (relay.Page[ViolationGroup], error) {
	since := time.Now().Add(-7 * 24 * time.Hour)
	if f.Since != nil {
		since = *f.Since
	}
	until := time.Now().Add(time.Hour)
	if f.Until != nil {
		until = *f.Until
	}
	if !until.After(since) {
		return relay.Page[ViolationGroup]{}, apperr.Invalid("until", "until must be after since")
	}
	visible, vargs := source.VisibleIDWhere(a, "k.source_id")
	inner := `SELECT k.source_id, k.workspace_id, k.event_type, k.event_name, k.field, k.violation_type, k.message, k.first_seen_at, k.last_seen_at,
		(k.source_id || ':' || k.event_type || ':' || k.event_name || ':' || k.field || ':' || k.violation_type) AS vkey, c.total
		FROM violation_keys k JOIN (SELECT source_id, event_type, event_name, field, violation_type, SUM(n) AS total FROM violation_counts
			WHERE hour >= ? AND hour <= ? GROUP BY source_id, event_type, event_name, field, violation_type) c
		ON c.source_id = k.source_id AND c.event_type = k.event_type AND c.event_name = k.event_name AND c.field = k.field AND c.violation_type = k.violation_type
		WHERE k.workspace_id = ? AND ` + which + ` AND ` + visible
	qargs := append(append([]any{hourOf(since), hourOf(until), a.WorkspaceID}, whichArgs...), vargs...)
	if f.EventName != nil {
		inner += " AND k.event_name = ?"
		qargs = append(qargs, *f.EventName)
	}
	page, err := relay.Query(ctx, s.db.Reader(), relay.Spec[ViolationGroup]{
		Select: "SELECT v.* FROM (" + inner + ") v", Args: qargs,
		SortColumn: "v.last_seen_at", IDColumn: "v.vkey", Desc: true, Count: count,
		ID: func(v ViolationGroup) string { return v.Key }, SortKey: func(v ViolationGroup) any { return v.LastSeenAt },
	}, args)
	if err != nil || len(page.Edges) == 0 {
		return page, err
	}
	keys := make([]any, len(page.Edges))
	index := map[string]*ViolationGroup{}
	for i := range page.Edges {
		v := &page.Edges[i].Node
		keys[i] = v.Key
		index[v.Key] = v
		v.Samples = []Sample{}
	}
	var samples []struct {
		Sample
		Key string `db:"vkey"`
	}
	if err := s.db.Select(ctx, &samples, `SELECT event_id, received_at, payload,
		(source_id || ':' || event_type || ':' || event_name || ':' || field || ':' || violation_type) AS vkey FROM violation_samples
		WHERE (source_id || ':' || event_type || ':' || event_name || ':' || field || ':' || violation_type) IN (`+db.Placeholders(len(keys))+`)
		ORDER BY received_at DESC, event_id`, keys...); err != nil {
		return page, err
	}
	for _, x := range samples {
		if v := index[x.Key]; v != nil {
			x.Sample.WorkspaceID = v.WorkspaceID
			v.Samples = append(v.Samples, x.Sample)
		}
	}
	return page, nil
}

// ReplayInput chooses blocked events of a source to replay.
type ReplayInput struct {
	SourceID     string
	Since, Until *time.Time
	EventName    *string
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Matched      int // blocked events in the range not replayed before
	Replayed     int // sent into the pipeline as accepted events
	StillBlocked int // that the current plan still blocks
}

// maxReplay bounds one replay; what is left is replayed by asking again.
const maxReplay = 50_000

// Replay validates a source's blocked events (not replayed before) against its current plan and
// controls, and sends those that now pass into the pipeline as if just received: accepted,
// counted, delivered. Each blocked event is replayed at most once, whoever asks and however often.
// Owners and admins.
func (s *Service) Replay(ctx context.Context, in ReplayInput) (*ReplayResult, apperr.UserErrors, error) {
	src, err := s.sources.Get(ctx, in.SourceID)
	if err != nil {
		return nil, nil, err
	}
	a, _, err := s.sources.Rights(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	if err := s.requireAdmin(ctx, s.db.Reader(), a); err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	if in.Since != nil && in.Until != nil && !in.Until.After(*in.Since) {
		errs.Add("until", apperr.InvalidValue, "until must be after since")
		return nil, errs, nil
	}
	s.cache.forgetSource(src.ID)
	entry, err := s.cache.lookup(ctx, src.ID)
	if err != nil {
		return nil, nil, err
	}
	var plan *compiledPlan
	if entry.enforce {
		if plan, err = s.compiledPlan(ctx, entry.planID, entry.planVersion); err != nil {
			return nil, nil, err
		}
	}
	res := &ReplayResult{}
	lo, hi := "", id.Floor(ingest.EventPrefix, time.Now().Add(time.Hour))
	if in.Since != nil {
		lo = id.Floor(ingest.EventPrefix, *in.Since)
	}
	if in.Until != nil {
		hi = id.Floor(ingest.EventPrefix, *in.Until)
	}
	for res.Matched < maxReplay {
		where := `source_id = ? AND status = 'BLOCKED' AND replayed_at IS NULL AND id > ? AND id < ?`
		qargs := []any{src.ID, lo, hi}
		if in.EventName != nil {
			where += " AND event_name = ?"
			qargs = append(qargs, *in.EventName)
		}
		var rows []ingest.StoredEvent
		if err := s.db.Select(ctx, &rows, `SELECT * FROM events WHERE `+where+` ORDER BY id LIMIT 500`, qargs...); err != nil {
			return nil, nil, err
		}
		if len(rows) == 0 {
			break
		}
		lo = rows[len(rows)-1].ID
		res.Matched += len(rows)
		now := time.Now().UTC()
		var send []*ingest.Event
		for _, row := range rows {
			e := replayed(row, now)
			if plan != nil {
				doc := e.Doc()
				r := plan.check(e.Type, eventName(e, doc), doc, &entry.controls)
				if r.blocked {
					res.StillBlocked++
					continue
				}
				e.Violations = r.violations
				if len(r.omit) > 0 && omit(doc, r.omit) {
					e.Changed()
				}
			}
			send = append(send, e)
		}
		if len(send) > 0 {
			if s.Writer == nil {
				return nil, nil, fmt.Errorf("protocols: no writer to replay with")
			}
			if err := s.Writer.Write(ctx, src.WorkspaceID, send); err != nil {
				return nil, nil, err
			}
			res.Replayed += len(send)
		}
	}
	if res.Matched > 0 {
		err = s.db.Tx(ctx, func(tx *db.Tx) error {
			return audit.Record(ctx, tx, src.WorkspaceID, EventBlockedReplayed, "Source", src.ID,
				map[string]any{"name": src.Name, "matched": res.Matched, "replayed": res.Replayed, "stillBlocked": res.StillBlocked})
		})
	}
	return res, nil, err
}

// replayed makes an accepted event of a stored blocked one, as if received now.
func replayed(row ingest.StoredEvent, now time.Time) *ingest.Event {
	e := &ingest.Event{SourceID: row.SourceID, MessageID: row.MessageID, Type: row.Type, EventName: row.EventName, UserID: row.UserID,
		AnonymousID: row.AnonymousID, Status: ingest.Accepted, ReceivedAt: now, Payload: []byte(row.Payload), ReplayOf: row.ID}
	if row.Timestamp != nil {
		t := row.Timestamp.Time
		e.Timestamp = &t
	}
	doc := e.Doc()
	doc["receivedAt"] = now.Format(time.RFC3339Nano)
	e.Changed()
	return e
}

// CreateFromSchema makes a plan from what a source sent: a rule for each event of its schema
// (archived ones left out), whose properties or traits schema lists the keys seen with the JSON
// types seen, none required. Owners and admins.
func (s *Service) CreateFromSchema(ctx context.Context, sourceID, name, description string) (*Plan, apperr.UserErrors, error) {
	src, err := s.sources.Get(ctx, sourceID)
	if err != nil {
		return nil, nil, err
	}
	a, _, err := s.sources.Rights(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	var errs apperr.UserErrors
	var p *Plan
	err = s.db.Tx(ctx, func(tx *db.Tx) error {
		if err := s.requireAdmin(ctx, &tx.Queryer, a); err != nil {
			return err
		}
		name = strings.TrimSpace(name)
		if name == "" {
			name = src.Name + " tracking plan"
		}
		validateName(&errs, name)
		checkDescription(&errs, "description", description)
		if len(errs) > 0 {
			return nil
		}
		var events []SchemaEvent
		if err := tx.Select(ctx, &events, `SELECT * FROM schema_events WHERE source_id = ? AND archived_at IS NULL ORDER BY event_type, event_name`, src.ID); err != nil {
			return err
		}
		var keys []struct {
			SchemaKey
			Type ingest.Type `db:"event_type"`
			Name string      `db:"event_name"`
		}
		if err := tx.Select(ctx, &keys, `SELECT event_type, event_name, field, path, types, first_seen_at, last_seen_at FROM schema_keys WHERE source_id = ? ORDER BY path`, src.ID); err != nil {
			return err
		}
		byEvent := map[string][]SchemaKey{}
		for _, k := range keys {
			byEvent[RuleKey(k.Type, k.Name)] = append(byEvent[RuleKey(k.Type, k.Name)], k.SchemaKey)
		}
		var err error
		if p, err = s.insertPlan(ctx, tx, a, name, description, nil); err != nil {
			return err
		}
		var rules []Rule
		for _, e := range events {
			if !ruleType(e.Type) || (e.Type == ingest.Track && e.Name == "") {
				continue
			}
			r := Rule{Type: e.Type, EventName: e.Name, Key: RuleKey(e.Type, e.Name), LabelsRaw: "[]"}
			if e.Type == ingest.Identify || e.Type == ingest.Group {
				r.EventName, r.Key = "", RuleKey(e.Type, "")
			}
			field := "properties"
			if e.Type == ingest.Identify || e.Type == ingest.Group {
				field = "traits"
			}
			schema := inferSchema(byEvent[RuleKey(e.Type, e.Name)], field)
			text := marshal(schema)
			if field == "traits" {
				r.Traits = &text
			} else {
				r.Properties = &text
			}
			rules = append(rules, r)
		}
		if len(rules) == 0 {
			return nil
		}
		_, changes, _, err := s.upsertRules(ctx, tx, p, rules)
		if err != nil {
			return err
		}
		p.Version++
		if _, err := tx.Exec(ctx, `UPDATE tracking_plans SET version = ? WHERE id = ?`, p.Version, p.ID); err != nil {
			return err
		}
		return s.recordVersion(ctx, tx, p, fmt.Sprintf("added %d rules from the schema of the source %q", len(rules), src.Name), changes)
	})
	errs2, err := userErrs(err)
	errs = append(errs, errs2...)
	if err != nil || len(errs) > 0 {
		return nil, errs, err
	}
	return p, nil, nil
}

func validateName(errs *apperr.UserErrors, name string) {
	if len([]rune(name)) > 100 {
		errs.Add("name", apperr.TooLong, "name must be at most 100 characters")
	}
}

// inferSchema writes the JSON Schema of an object from the keys seen in it.
func inferSchema(keys []SchemaKey, field string) map[string]any {
	root := map[string]any{"type": "object", "properties": map[string]any{}}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Path < keys[j].Path })
	for _, k := range keys {
		if k.Field != field {
			continue
		}
		parts := strings.Split(k.Path, ".")
		node := root
		for _, p := range parts[:len(parts)-1] {
			props, _ := node["properties"].(map[string]any)
			child, _ := props[p].(map[string]any)
			if child == nil {
				child = map[string]any{"type": "object"}
				props[p] = child
			}
			if _, ok := child["properties"]; !ok {
				child["properties"] = map[string]any{}
			}
			node = child
		}
		props, _ := node["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			node["properties"] = props
		}
		leaf := map[string]any{}
		if old, ok := props[parts[len(parts)-1]].(map[string]any); ok {
			leaf = old
		}
		if t := typeOf(k.TypeBits); t != nil {
			leaf["type"] = t
		}
		props[parts[len(parts)-1]] = leaf
	}
	return root
}

// typeOf is the JSON Schema type for the types seen: integer and number together are number.
func typeOf(bits int64) any {
	if bits&typeNumber != 0 {
		bits &^= typeInteger
	}
	var names []any
	for _, t := range typeNames {
		if bits&t.bit != 0 {
			names = append(names, t.name)
		}
	}
	switch len(names) {
	case 0:
		return nil
	case 1:
		return names[0]
	}
	return names
}

// decodeStored parses stored JSON for the API (numbers exact).
func decodeStored(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}
