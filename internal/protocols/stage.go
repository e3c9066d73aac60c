package protocols

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/ttlcache"
	"github.com/junctioncdp/junction/internal/workspace"
)

// sourceEntry is what the stage needs of one source: its plan (compiled), its controls, where
// it forwards, and names for Violation Generated events.
type sourceEntry struct {
	planID      string
	planVersion int64
	enforce     bool // the workspace's plan includes Protocols and the source has a tracking plan
	controls    Controls
	sourceName  string
	forwardTo   map[string]bool // the forwarding targets (for forgetting)
}

// sourceCache remembers each source's plan and controls for a short while, as the tracking API
// remembers write keys: changes made through this process drop the entries at once, the TTL
// bounds staleness for anything else (another replica's change).
type sourceCache struct {
	s     *Service
	cache *ttlcache.Cache[*sourceEntry]
}

func newSourceCache(s *Service, ttl time.Duration) *sourceCache {
	c := &sourceCache{s: s}
	c.cache = ttlcache.New(ttl, c.read)
	return c
}

func (c *sourceCache) lookup(ctx context.Context, sourceID string) (*sourceEntry, error) {
	return c.cache.Get(ctx, sourceID)
}

func (c *sourceCache) read(ctx context.Context, sourceID string) (*sourceEntry, error) {
	var row struct {
		WorkspacePlan workspace.Plan `db:"workspace_plan"`
		SourceName    string         `db:"source_name"`
		PlanID        *string        `db:"plan_id"`
		PlanVersion   *int64         `db:"plan_version"`
		Unplanned     *string        `db:"unplanned_events"`
		UnplannedKeys *string        `db:"unplanned_properties"`
		Violations    *string        `db:"violations"`
		Common        *string        `db:"common_schema_violations"`
		FwdBlocked    *string        `db:"forward_blocked_to"`
		FwdViolations *string        `db:"forward_violations_to"`
	}
	err := c.s.db.Get(ctx, &row, `SELECT w.plan AS workspace_plan, s.name AS source_name, sp.plan_id, p.version AS plan_version,
		sp.unplanned_events, sp.unplanned_properties, sp.violations, sp.common_schema_violations,
		fb.id AS forward_blocked_to, fv.id AS forward_violations_to
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		LEFT JOIN source_protocols sp ON sp.source_id = s.id
		LEFT JOIN tracking_plans p ON p.id = sp.plan_id
		LEFT JOIN sources fb ON fb.id = sp.forward_blocked_to AND fb.workspace_id = s.workspace_id AND fb.enabled = TRUE
		LEFT JOIN sources fv ON fv.id = sp.forward_violations_to AND fv.workspace_id = s.workspace_id AND fv.enabled = TRUE
		WHERE s.id = ?`, sourceID)
	e := &sourceEntry{controls: DefaultControls, forwardTo: map[string]bool{}}
	if db.IsNoRows(err) {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	e.sourceName = row.SourceName
	if row.Unplanned != nil {
		e.controls = Controls{UnplannedEvents: *row.Unplanned, UnplannedProperties: *row.UnplannedKeys, Violations: *row.Violations,
			CommonSchemaViolations: *row.Common, ForwardBlockedTo: row.FwdBlocked, ForwardViolationsTo: row.FwdViolations}
		for _, t := range []*string{row.FwdBlocked, row.FwdViolations} {
			if t != nil {
				e.forwardTo[*t] = true
			}
		}
	}
	if row.PlanID != nil && row.PlanVersion != nil && row.WorkspacePlan.Details().Has(workspace.Protocols) {
		e.planID, e.planVersion, e.enforce = *row.PlanID, *row.PlanVersion, true
	}
	return e, nil
}

// forgetSource drops what is cached of a source and of the sources that forward to it (it was
// changed, disabled or deleted).
func (c *sourceCache) forgetSource(sourceID string) {
	c.cache.ForgetIf(func(id string, e *sourceEntry) bool { return id == sourceID || e.forwardTo[sourceID] })
}

// forgetPlan drops the sources of a plan that changed.
func (c *sourceCache) forgetPlan(planID string) {
	c.cache.ForgetIf(func(_ string, e *sourceEntry) bool { return e.planID == planID })
}

// forgetAll drops everything (a workspace was deleted or changed plan).
func (c *sourceCache) forgetAll() { c.cache.ForgetIf(nil) }

// planCache holds the latest compiled version of each plan in use: a version compiles once, on
// first use, whichever request gets there first.
type planCache struct {
	mu    sync.Mutex
	m     map[string]*compiledPlan
	group singleflight.Group
}

func newPlanCache() *planCache { return &planCache{m: map[string]*compiledPlan{}} }

func (s *Service) compiledPlan(ctx context.Context, planID string, version int64) (*compiledPlan, error) {
	c := s.compiled
	c.mu.Lock()
	cp := c.m[planID]
	c.mu.Unlock()
	if cp != nil && cp.version == version {
		return cp, nil
	}
	v, err, _ := c.group.Do(planID, func() (any, error) {
		var p Plan
		if err := s.db.Get(ctx, &p, `SELECT * FROM tracking_plans WHERE id = ?`, planID); err != nil {
			return nil, err
		}
		rules, err := s.allRules(ctx, s.db.Reader(), planID)
		if err != nil {
			return nil, err
		}
		cp, err := newCompiledPlan(&p, rules)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if len(c.m) > 10_000 {
			c.m = map[string]*compiledPlan{}
		}
		c.m[planID] = cp
		c.mu.Unlock()
		return cp, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*compiledPlan), nil
}

// Stage is the ingest.Stage of Protocols: it observes each event for its source's schema, and on
// sources with a tracking plan (in a workspace whose plan includes Protocols) validates it,
// applies the source's controls and forwards what they ask for.
func (s *Service) Stage() ingest.Stage { return stage{s} }

type stage struct{ s *Service }

// note is what the stage observed of one event, for the listener of commits.
type note struct {
	sourceID, eventName string
	typ                 ingest.Type
	keys                []observedKey
	original            []byte // the payload as received, when properties were omitted
	blocked             bool
}

type observedKey struct {
	field, path string
	types       int64
}

// Violation Generated events: at most this many per event, so that one bad event cannot flood
// the source they go to.
const maxForwardedViolations = 20

// maxViolations bounds what is stored with one event.
const maxViolations = 50

func (st stage) Process(ctx context.Context, b *ingest.Batch) error {
	entry, err := st.s.cache.lookup(ctx, b.SourceID)
	if err != nil {
		return err
	}
	var plan *compiledPlan
	if entry.enforce {
		if plan, err = st.s.compiledPlan(ctx, entry.planID, entry.planVersion); err != nil {
			return err
		}
	}
	for _, e := range b.Events {
		if e.Status != ingest.Accepted {
			continue
		}
		if plan == nil {
			// Nothing to check: the keys are read from the payload as it is, without decoding it.
			if name, keys, ok := observeRaw(e); ok {
				e.Notes = append(e.Notes, &note{sourceID: b.SourceID, typ: e.Type, eventName: name, keys: keys})
				continue
			}
		}
		doc := e.Doc()
		name := eventName(e, doc)
		n := &note{sourceID: b.SourceID, typ: e.Type, eventName: name, keys: observe(e.Type, doc)}
		e.Notes = append(e.Notes, n)
		if plan == nil {
			continue
		}
		res := plan.check(e.Type, name, doc, &entry.controls)
		if len(res.violations) == 0 {
			continue
		}
		if len(res.violations) > maxViolations {
			res.violations = res.violations[:maxViolations]
		}
		e.Violations = res.violations
		if fwd := entry.controls.ForwardViolationsTo; fwd != nil && *fwd != b.SourceID {
			for i, v := range res.violations {
				if i == maxForwardedViolations {
					break
				}
				b.Add(violationEvent(e, doc, name, v, *fwd, b.SourceID, entry.sourceName, plan))
			}
		}
		if res.blocked {
			e.Status = ingest.Blocked
			n.blocked = true
			if fwd := entry.controls.ForwardBlockedTo; fwd != nil && *fwd != b.SourceID {
				b.Add(forwarded(e, doc, *fwd, b.SourceID))
			}
			continue
		}
		if len(res.omit) > 0 {
			original := e.Payload
			if omit(doc, res.omit) {
				n.original = original
				e.Changed()
			}
		}
	}
	return nil
}

// eventName is the name a rule matches: a track call's event, a page or screen call's name.
func eventName(e *ingest.Event, doc map[string]any) string {
	switch e.Type {
	case ingest.Track:
		if e.EventName != nil {
			return *e.EventName
		}
	case ingest.Page, ingest.Screen:
		n, _ := doc["name"].(string)
		return n
	}
	return ""
}

// JSON types as bits, as schema_keys stores them.
const (
	typeNull    = 1
	typeBoolean = 2
	typeInteger = 4
	typeNumber  = 8
	typeString  = 16
	typeArray   = 32
	typeObject  = 64
)

var typeNames = []struct {
	bit  int64
	name string
}{{typeNull, "null"}, {typeBoolean, "boolean"}, {typeInteger, "integer"}, {typeNumber, "number"}, {typeString, "string"}, {typeArray, "array"}, {typeObject, "object"}}

func jsonType(v any) int64 {
	switch x := v.(type) {
	case nil:
		return typeNull
	case bool:
		return typeBoolean
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return typeNumber
		}
		return typeInteger
	case float64:
		if x == float64(int64(x)) {
			return typeInteger
		}
		return typeNumber
	case string:
		return typeString
	case []any:
		return typeArray
	case map[string]any:
		return typeObject
	}
	return 0
}

// The schema keeps keys of nested objects to this depth, and at most this many keys of one event.
const (
	maxObservedDepth = 3
	maxObservedKeys  = 200
)

// observe lists the keys an event carries, with their JSON types: properties for track, page and
// screen calls, traits for identify and group calls; nested objects' keys by dotted path.
func observe(typ ingest.Type, doc map[string]any) []observedKey {
	field := observedField(typ)
	if field == "" {
		return nil
	}
	obj, _ := doc[field].(map[string]any)
	if len(obj) == 0 {
		return nil
	}
	keys := make([]observedKey, 0, len(obj))
	var walk func(m map[string]any, prefix string, depth int)
	walk = func(m map[string]any, prefix string, depth int) {
		for k, v := range m {
			if len(keys) >= maxObservedKeys {
				return
			}
			path := k
			if prefix != "" {
				path = prefix + "." + k
			}
			keys = append(keys, observedKey{field: field, path: path, types: jsonType(v)})
			if child, ok := v.(map[string]any); ok && depth+1 < maxObservedDepth {
				walk(child, path, depth+1)
			}
		}
	}
	walk(obj, "", 0)
	return keys
}

// observedField is the object of an event whose keys the schema keeps: traits for identify and
// group calls, none for alias, properties for the others.
func observedField(typ ingest.Type) string {
	switch typ {
	case ingest.Identify, ingest.Group:
		return "traits"
	case ingest.Alias:
		return ""
	}
	return "properties"
}

// kindBits are the bits of schema_keys' types for ingest's JSON kinds.
var kindBits = [...]int64{ingest.KindNull: typeNull, ingest.KindBoolean: typeBoolean, ingest.KindInteger: typeInteger,
	ingest.KindNumber: typeNumber, ingest.KindString: typeString, ingest.KindArray: typeArray, ingest.KindObject: typeObject}

// observeRaw is eventName and observe read from the stored payload without decoding it, for the
// events no plan checks; false when the payload must be decoded instead (see ingest.Event.Fields).
func observeRaw(e *ingest.Event) (name string, keys []observedKey, ok bool) {
	field := observedField(e.Type)
	pageName, fields, ok := e.Fields(field, maxObservedDepth, maxObservedKeys)
	if !ok {
		return "", nil, false
	}
	switch e.Type {
	case ingest.Track:
		if e.EventName != nil {
			name = *e.EventName
		}
	case ingest.Page, ingest.Screen:
		name = pageName
	}
	if field == "" || len(fields) == 0 {
		return name, nil, true
	}
	keys = make([]observedKey, len(fields))
	for i, f := range fields {
		keys[i] = observedKey{field: field, path: f.Path, types: kindBits[f.Kind]}
	}
	return name, keys, true
}

// forwarded is a blocked event as it is sent to the source blocked events are forwarded to: an
// accepted event there, marked with the source it comes from. It goes through no stage there,
// so that forwarding never loops.
func forwarded(e *ingest.Event, doc map[string]any, target, from string) *ingest.Event {
	doc["forwardedFromProject"] = from
	payload, _ := json.Marshal(doc)
	delete(doc, "forwardedFromProject")
	return &ingest.Event{SourceID: target, MessageID: e.MessageID, Type: e.Type, EventName: e.EventName, UserID: e.UserID,
		AnonymousID: e.AnonymousID, Status: ingest.Accepted, ReceivedAt: e.ReceivedAt, Timestamp: e.Timestamp, Payload: payload}
}

// violationEvent is Segment's `Violation Generated` track event for one violation of an event,
// from the user schema-violations. Its messageId is derived from the event's and the violation,
// so that a retried request reports it once.
func violationEvent(e *ingest.Event, doc map[string]any, name string, v ingest.Violation, target, from, sourceName string, plan *compiledPlan) *ingest.Event {
	h := sha256.Sum256([]byte(from + "\x00" + e.MessageID + "\x00" + v.Type + "\x00" + v.Field))
	messageID := "sch-" + hex.EncodeToString(h[:16])
	appVersion := ""
	if ctx, ok := doc["context"].(map[string]any); ok {
		if app, ok := ctx["app"].(map[string]any); ok {
			appVersion, _ = app["version"].(string)
		}
	}
	str := func(k string) string { s, _ := doc[k].(string); return s }
	now := time.Now().UTC()
	user := "schema-violations"
	event := "Violation Generated"
	payload, _ := json.Marshal(map[string]any{
		"type": "track", "event": event, "userId": user, "messageId": messageID,
		"timestamp": now.Format(time.RFC3339Nano), "receivedAt": now.Format(time.RFC3339Nano),
		"context":      map[string]any{"app": nil, "library": map[string]any{"name": "junction-protocols", "version": "1"}},
		"integrations": map[string]any{},
		"properties": map[string]any{
			"appVersion": appVersion, "eventMessageID": e.MessageID, "eventName": name,
			"eventSentAt": str("sentAt"), "eventTimestamp": str("timestamp"), "eventType": strings.ToLower(string(e.Type)),
			"sourceID": from, "sourceName": sourceName, "sourceSlug": slug(sourceName),
			"trackingPlanID": plan.id, "trackingPlanName": plan.name,
			"violationDescription": v.Message, "violationField": v.Field, "violationType": v.Type,
		},
		"forwardedFromProject": from,
	})
	return &ingest.Event{SourceID: target, MessageID: messageID, Type: ingest.Track, EventName: &event, UserID: &user,
		Status: ingest.Accepted, ReceivedAt: now, Timestamp: &now, Payload: payload}
}

// slug writes a source's name as Segment's source slugs look: lower case, words joined by _.
func slug(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// ForgetSource makes the next event of a source, and of those forwarding to it, read its plan and
// controls anew.
func (s *Service) ForgetSource(sourceID string) { s.cache.forgetSource(sourceID) }

// ForgetAll drops every cached source (a workspace was deleted, or its plan changed).
func (s *Service) ForgetAll() { s.cache.forgetAll() }
