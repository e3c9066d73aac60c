package engage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/regulation/forget"
)

// ctEnv is a testEnv whose events are stored in the event log (computed traits read them there),
// with the service of computed traits on a clock the test moves.
type ctEnv struct {
	*testEnv
	tr    *Traits
	src   string
	clock time.Time
}

func newCT(t *testing.T) *ctEnv {
	t.Helper()
	e := &ctEnv{testEnv: mustOpen(t)}
	e.clock = e.now
	e.tr = NewTraits(e.s, nil)
	e.tr.Now = func() time.Time { return e.clock }
	e.src = e.source(e.ws)
	return e
}

func (e *ctEnv) source(ws string) string {
	e.t.Helper()
	src := id.New("src")
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES (?, ?, 'javascript', 'S', TRUE, '{}', '[]', ?, ?)`, src, ws, db.Now(), db.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return src
}

// event stores one event of a user (userId, or anonymousId when it starts with "anon") that
// happened ago before the clock, and resolves it.
func (e *ctEnv) event(typ ingest.Type, who, name string, props map[string]any, ago time.Duration, extra map[string]any) {
	e.t.Helper()
	at := e.clock.Add(-ago)
	doc := map[string]any{"type": strings.ToLower(string(typ)), "properties": props}
	if props == nil {
		delete(doc, "properties")
	}
	for k, v := range extra {
		doc[k] = v
	}
	ev := &ingest.Event{ID: id.New(ingest.EventPrefix), WorkspaceID: e.ws, SourceID: e.src, MessageID: id.New("m"), Type: typ,
		Status: ingest.Accepted, ReceivedAt: e.clock, Timestamp: &at}
	if name != "" {
		ev.EventName = &name
		doc["event"] = name
	}
	for _, w := range strings.Split(who, "+") {
		w := w
		if strings.HasPrefix(w, "anon") {
			ev.AnonymousID = &w
			doc["anonymousId"] = w
		} else if w != "" {
			ev.UserID = &w
			doc["userId"] = w
		}
	}
	ev.Payload, _ = json.Marshal(doc)
	ctx := context.Background()
	if err := e.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id, status,
			received_at, timestamp, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.ID, ev.WorkspaceID, ev.SourceID, ev.MessageID,
			string(ev.Type), ev.EventName, ev.UserID, ev.AnonymousID, ev.Status, db.Time{Time: ev.ReceivedAt}, db.Time{Time: at}, string(ev.Payload))
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Resolve(ctx, []*ingest.Event{ev}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ctEnv) track(who, name string, props map[string]any, ago time.Duration) {
	e.t.Helper()
	e.event(ingest.Track, who, name, props, ago, nil)
}

func (e *ctEnv) settle() {
	e.t.Helper()
	if err := e.tr.Settle(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// trait adds a computed trait as Create does (enabled, to be backfilled) and computes it.
func (e *ctEnv) trait(key string, d Definition) *ComputedTrait {
	e.t.Helper()
	var errs apperr.UserErrors
	validateDefinition(&errs, "definition", &d)
	if len(errs) > 0 {
		e.t.Fatalf("definition of %s: %v", key, errs)
	}
	c := &ComputedTrait{ID: id.New(ComputedTraitPrefix), WorkspaceID: e.ws, Key: key, Kind: d.Kind, DefinitionRaw: marshal(d), Enabled: true, Version: 1}
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO computed_traits (id, workspace_id, key, name, description, kind, definition, enabled, version,
			pass_cursor, pass, created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, ?, TRUE, 1, '', 'BACKFILL', ?, ?)`,
			c.ID, c.WorkspaceID, c.Key, key, string(c.Kind), c.DefinitionRaw, db.Now(), db.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	e.settle()
	return c
}

// value is the value of a computed trait (by key) of the profile holding a user id or anonymous
// id ("" when it has none); it checks that profile_traits holds the same.
func (e *ctEnv) value(key, who string) string {
	e.t.Helper()
	typ := "user_id"
	if strings.HasPrefix(who, "anon") {
		typ = "anonymous_id"
	}
	p := e.profileOf(typ, who)
	if p == "" {
		e.t.Fatalf("no profile holds %s", who)
	}
	var v, mirror []string
	if err := e.db.Select(context.Background(), &v, `SELECT v.value FROM computed_trait_values v JOIN computed_traits c ON c.id = v.computed_trait_id
		WHERE c.key = ? AND v.profile_id = ?`, key, p); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.Select(context.Background(), &mirror, `SELECT value FROM profile_traits WHERE name = ? AND profile_id = ? AND event_id = ''
		AND source_id IS NULL`, key, p); err != nil {
		e.t.Fatal(err)
	}
	if fmt.Sprint(v) != fmt.Sprint(mirror) {
		e.t.Errorf("%s of %s: computed %v, profile_traits %v", key, who, v, mirror)
	}
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

const day = 24 * time.Hour

func str(s string) *string { return &s }

func days(n int) *Window { return &Window{Amount: n, Unit: Days} }

// TestComputedTraitKinds computes each kind with its window and conditions over one set of
// events.
func TestComputedTraitKinds(t *testing.T) {
	e := newCT(t)
	order := func(who string, price any, category string, ago time.Duration) {
		e.track(who, "Order Completed", map[string]any{"price": price, "category": category, "item": map[string]any{"sku": "S-" + category}}, ago)
	}
	order("u1", 20, "shoes", 40*day)
	order("u1", 30, "hats", 2*day)
	order("u1", "10", "shoes", 1*day) // a numeric string counts as a number
	e.track("u1", "Viewed", map[string]any{"price": 1000}, time.Hour)
	e.event(ingest.Page, "u1", "", map[string]any{"path": "/pricing"}, time.Hour, nil)
	order("u2", 5, "socks", 3*day)
	e.track("u3", "Viewed", nil, time.Hour)
	oc := str("Order Completed")

	for _, c := range []struct {
		key  string
		d    Definition
		u1   string
		u2   string
		u3   string
		desc string
	}{
		{"orders_30d", Definition{Kind: EventCounter, EventName: oc, Window: days(30)}, "2", "1", "", "counter within a window"},
		{"orders_all", Definition{Kind: EventCounter, EventName: oc}, "3", "1", "", "counter over all time"},
		{"events_all", Definition{Kind: EventCounter}, "5", "1", "1", "every event"},
		{"pages_all", Definition{Kind: EventCounter, EventType: ptrType(ingest.Page)}, "1", "", "", "by event type"},
		{"big_orders", Definition{Kind: EventCounter, EventName: oc, Conditions: []PropertyCondition{{Path: "price", Operator: GreaterThan, Value: str("15")}}},
			"2", "", "", "counter with a numeric condition"},
		{"shoe_orders_30d", Definition{Kind: EventCounter, EventName: oc, Window: days(30),
			Conditions: []PropertyCondition{{Path: "category", Operator: Equals, Value: str("shoes")}}}, "1", "", "", "equals within a window"},
		{"not_shoes", Definition{Kind: EventCounter, EventName: oc, Conditions: []PropertyCondition{{Path: "properties.category", Operator: NotEquals, Value: str("shoes")}}},
			"1", "1", "", "not equals, with the properties. prefix"},
		{"sku_h", Definition{Kind: EventCounter, EventName: oc, Conditions: []PropertyCondition{{Path: "item.sku", Operator: Contains, Value: str("-h")},
			{Path: "item.sku", Operator: StartsWith, Value: str("s-")}}}, "1", "", "", "nested path, contains and starts with (ignoring case)"},
		{"with_coupon", Definition{Kind: EventCounter, EventName: oc, Conditions: []PropertyCondition{{Path: "coupon", Operator: Exists}}}, "", "", "", "exists"},
		{"cheap", Definition{Kind: EventCounter, EventName: oc, Conditions: []PropertyCondition{{Path: "price", Operator: LessThanOrEqual, Value: str("10")},
			{Path: "coupon", Operator: NotExists}}}, "1", "1", "", "less than or equal and not exists"},
		{"spend_30d", Definition{Kind: Aggregation, Aggregation: Sum, Property: "price", EventName: oc, Window: days(30)}, "40", "5", "", "sum"},
		{"min_spend", Definition{Kind: Aggregation, Aggregation: Min, Property: "price", EventName: oc}, "10", "5", "", "min"},
		{"max_spend", Definition{Kind: Aggregation, Aggregation: Max, Property: "price", EventName: oc}, "30", "5", "", "max"},
		{"avg_spend", Definition{Kind: Aggregation, Aggregation: Average, Property: "price", EventName: oc}, "20", "5", "", "average"},
		{"avg_spend_2d", Definition{Kind: Aggregation, Aggregation: Average, Property: "price", EventName: oc, Window: &Window{Amount: 50, Unit: Hours}}, "20", "", "",
			"average within hours"},
		{"fav_category", Definition{Kind: MostFrequent, Property: "category", EventName: oc}, `"shoes"`, `"socks"`, "", "most frequent"},
		{"fav_category_30d", Definition{Kind: MostFrequent, Property: "category", EventName: oc, Window: days(30)}, `"shoes"`, `"socks"`, "",
			"most frequent, a tie going to the latest"},
		{"first_category", Definition{Kind: First, Property: "category", EventName: oc}, `"shoes"`, `"socks"`, "", "first"},
		{"first_category_30d", Definition{Kind: First, Property: "category", EventName: oc, Window: days(30)}, `"hats"`, `"socks"`, "", "first within a window"},
		{"last_price", Definition{Kind: Last, Property: "price"}, "1000", "5", "", "last of any event having the property"},
		{"categories", Definition{Kind: UniqueList, Property: "category", EventName: oc}, `["shoes","hats"]`, `["socks"]`, "", "unique list, in the order first seen"},
		{"category_count", Definition{Kind: UniqueListCount, Property: "category", EventName: oc}, "2", "1", "", "unique list count"},
		{"page_paths", Definition{Kind: UniqueList, Property: "path", EventType: ptrType(ingest.Page)}, `["/pricing"]`, "", "", "unique list of pages"},
	} {
		e.trait(c.key, c.d)
		for who, want := range map[string]string{"u1": c.u1, "u2": c.u2, "u3": c.u3} {
			if got := e.value(c.key, who); got != want {
				t.Errorf("%s (%s) of %s = %q, want %q", c.key, c.desc, who, got, want)
			}
		}
	}

	t.Run("IncrementalAndIdentifyDoesNotClobber", func(t *testing.T) {
		// A new event moves the values of its profile through the follower of identity
		// resolution; an identify call setting a trait of a computed trait's key does not win.
		order("u2", 7, "shoes", time.Minute)
		e.event(ingest.Identify, "u2", "", nil, 0, map[string]any{"traits": map[string]any{"orders_30d": 99}})
		e.settle()
		for key, want := range map[string]string{"orders_30d": "2", "spend_30d": "12", "categories": `["socks","shoes"]`, "last_price": "7"} {
			if got := e.value(key, "u2"); got != want {
				t.Errorf("%s of u2 = %q after a new event, want %q", key, got, want)
			}
		}
	})
}

func ptrType(t ingest.Type) *ingest.Type { return &t }

// TestComputedTraitWindowPasses: values follow events out of their window as time passes, by the
// scheduled recomputation, without new events; counters go to 0, other values go.
func TestComputedTraitWindowPasses(t *testing.T) {
	e := newCT(t)
	e.track("u1", "Viewed", map[string]any{"plan": "pro"}, 6*day)
	e.track("u1", "Viewed", map[string]any{"plan": "team"}, 1*day)
	e.track("u2", "Viewed", map[string]any{"plan": "free"}, 2*day)
	views := e.trait("views_7d", Definition{Kind: EventCounter, EventName: str("Viewed"), Window: days(7)})
	e.trait("plan_7d", Definition{Kind: First, Property: "plan", Window: days(7)})
	e.trait("views_all", Definition{Kind: EventCounter})
	check := func(when string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			key, who, _ := strings.Cut(k, "/")
			if got := e.value(key, who); got != v {
				t.Errorf("%s: %s of %s = %q, want %q", when, key, who, got, v)
			}
		}
	}
	check("at first", map[string]string{"views_7d/u1": "2", "plan_7d/u1": `"pro"`, "views_7d/u2": "1", "plan_7d/u2": `"free"`})
	if n := e.count(`SELECT COUNT(*) FROM computed_traits WHERE id = ? AND pass IS NULL AND last_computed_at IS NOT NULL`, views.ID); n != 1 {
		t.Fatal("the backfill is not done")
	}

	// Not due yet: nothing is recomputed within recomputeEvery of the last pass.
	e.clock = e.clock.Add(2 * day)
	check("2 days later, before the scheduled recomputation", map[string]string{"views_7d/u1": "2"})
	if err := e.tr.Schedule(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	check("2 days later", map[string]string{"views_7d/u1": "1", "plan_7d/u1": `"team"`, "views_7d/u2": "1", "views_all/u1": "2"})

	e.clock = e.clock.Add(6 * day)
	if err := e.tr.Schedule(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle()
	check("8 days later", map[string]string{"views_7d/u1": "0", "plan_7d/u1": "", "views_7d/u2": "0", "plan_7d/u2": "", "views_all/u2": "1"})
	var last []db.Time
	if err := e.db.Select(context.Background(), &last, `SELECT last_computed_at FROM computed_traits WHERE id = ?`, views.ID); err != nil || len(last) != 1 ||
		!last[0].Equal(e.clock) {
		t.Errorf("last_computed_at %v, want the clock %v (%v)", last, e.clock, err)
	}
}

// TestComputedTraitMerge: when two profiles merge, the one that stands is recomputed with both
// profiles' events and the merged one keeps no value.
func TestComputedTraitMerge(t *testing.T) {
	e := newCT(t)
	e.track("anon1", "Viewed", map[string]any{"page": "a"}, 3*day)
	e.track("anon1", "Viewed", map[string]any{"page": "b"}, 2*day)
	e.track("u1", "Viewed", map[string]any{"page": "c"}, 1*day)
	e.trait("views", Definition{Kind: EventCounter, EventName: str("Viewed")})
	e.trait("pages", Definition{Kind: UniqueList, Property: "page"})
	before := []string{e.profileOf("anonymous_id", "anon1"), e.profileOf("user_id", "u1")}
	if e.value("views", "anon1") != "2" || e.value("views", "u1") != "1" {
		t.Fatalf("before the merge: %s, %s", e.value("views", "anon1"), e.value("views", "u1"))
	}
	e.event(ingest.Identify, "u1+anon1", "", nil, 0, nil)
	e.settle()
	if e.profileOf("anonymous_id", "anon1") != e.profileOf("user_id", "u1") {
		t.Fatal("the profiles did not merge")
	}
	if got := e.value("views", "u1"); got != "3" {
		t.Errorf("views after the merge = %s, want 3", got)
	}
	if got := e.value("pages", "u1"); got != `["a","b","c"]` {
		t.Errorf("pages after the merge = %s", got)
	}
	merged := before[0]
	if merged == e.profileOf("user_id", "u1") {
		merged = before[1]
	}
	if n := e.count(`SELECT COUNT(*) FROM computed_trait_values WHERE profile_id = ?`, merged); n != 0 {
		t.Errorf("the merged profile keeps %d values", n)
	}
}

// TestComputedTraitRemoval: a deleted or disabled trait's values go, with their rows in
// profile_traits; a regulation's deletion of a profile takes its computed values.
func TestComputedTraitRemoval(t *testing.T) {
	e := newCT(t)
	e.track("u1", "Viewed", nil, time.Hour)
	e.track("u2", "Viewed", nil, time.Hour)
	c := e.trait("views", Definition{Kind: EventCounter})
	d := e.trait("views_too", Definition{Kind: EventCounter})
	ctx := context.Background()
	if err := e.db.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM computed_traits WHERE id = ?`, c.ID); err != nil {
			return err
		}
		return queueRemoval(ctx, tx, c)
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if n := e.count(`SELECT COUNT(*) FROM computed_trait_values WHERE computed_trait_id = ?`, c.ID); n != 0 {
		t.Errorf("%d values of the deleted trait left", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_traits WHERE name = 'views'`); n != 0 {
		t.Errorf("%d rows of profile_traits of the deleted trait left", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM computed_trait_removals`); n != 0 {
		t.Errorf("%d removals left", n)
	}

	p := e.profileOf("user_id", "u1")
	err := e.db.Tx(ctx, func(tx *db.Tx) error {
		for {
			next, n, _, err := Forget.Run(ctx, tx, forget.Subjects{WorkspaceID: e.ws, UserIDs: []string{"u1"}}, "", 100)
			if err != nil || next == "" || n == 0 {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT COUNT(*) FROM computed_trait_values WHERE profile_id = ?`, p); n != 0 {
		t.Errorf("%d computed values of the forgotten profile left", n)
	}
	if got := e.value("views_too", "u2"); got != "1" {
		t.Errorf("another profile's value: %q", got)
	}

	// Workspace reaping.
	if err := e.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := ReapWorkspaceComputedTraits.Run(ctx, tx, e.ws, 1000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT COUNT(*) FROM computed_traits WHERE workspace_id = ?`, e.ws) + e.count(`SELECT COUNT(*) FROM computed_trait_values WHERE workspace_id = ?`, e.ws); n != 0 {
		t.Errorf("%d rows left after reaping the workspace (%s)", n, d.ID)
	}
}

// TestValidateDefinition: each rule names its field.
func TestValidateDefinition(t *testing.T) {
	for _, c := range []struct {
		d     Definition
		field string
	}{
		{Definition{Kind: "COUNT"}, "definition.kind"},
		{Definition{Kind: EventCounter, Property: "price"}, "definition.property"},
		{Definition{Kind: Last}, "definition.property"},
		{Definition{Kind: Last, Property: "a..b"}, "definition.property"},
		{Definition{Kind: Aggregation, Property: "price"}, "definition.aggregation"},
		{Definition{Kind: Last, Property: "price", Aggregation: Sum}, "definition.aggregation"},
		{Definition{Kind: EventCounter, Window: &Window{Amount: 0, Unit: Days}}, "definition.window.amount"},
		{Definition{Kind: EventCounter, Window: &Window{Amount: 2000, Unit: Days}}, "definition.window.amount"},
		{Definition{Kind: EventCounter, Window: &Window{Amount: 1, Unit: "WEEKS"}}, "definition.window.unit"},
		{Definition{Kind: EventCounter, EventType: ptrType("CLICK")}, "definition.eventType"},
		{Definition{Kind: EventCounter, Conditions: []PropertyCondition{{Path: "", Operator: Exists}}}, "definition.propertyConditions.0.path"},
		{Definition{Kind: EventCounter, Conditions: []PropertyCondition{{Path: "a", Operator: "LIKE", Value: str("x")}}}, "definition.propertyConditions.0.operator"},
		{Definition{Kind: EventCounter, Conditions: []PropertyCondition{{Path: "a", Operator: Equals}}}, "definition.propertyConditions.0.value"},
		{Definition{Kind: EventCounter, Conditions: []PropertyCondition{{Path: "a", Operator: GreaterThan, Value: str("ten")}}}, "definition.propertyConditions.0.value"},
	} {
		var errs apperr.UserErrors
		validateDefinition(&errs, "definition", &c.d)
		if len(errs) != 1 || errs[0].Field != c.field {
			t.Errorf("%+v: %v, want one error on %s", c.d, errs, c.field)
		}
	}
	for _, k := range []string{"", "Orders", "1orders", "orders-30", "orders 30"} {
		var errs apperr.UserErrors
		validateKey(&errs, k)
		if len(errs) != 1 || errs[0].Field != "key" {
			t.Errorf("key %q: %v", k, errs)
		}
	}
	var errs apperr.UserErrors
	validateKey(&errs, "orders_last_30_days")
	if len(errs) != 0 {
		t.Errorf("a snake_case key refused: %v", errs)
	}
}

// TestComputedTraitTouchedOverflow: a workspace with more profiles waiting than maxTouched has its
// traits recomputed by a pass instead, so that what waits stays bounded.
func TestComputedTraitTouchedOverflow(t *testing.T) {
	e := newCT(t)
	e.track("u1", "Viewed", nil, time.Hour)
	c := e.trait("views", Definition{Kind: EventCounter})
	// Changed behind the worker's back: only a pass over every profile finds the difference.
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `UPDATE computed_trait_values SET value = '7' WHERE computed_trait_id = ?`, c.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := &Resolved{WorkspaceID: e.ws}
	for i := range maxTouched + 1 {
		r.Events = append(r.Events, ResolvedEvent{ProfileID: fmt.Sprintf("%s_x%06d", Prefix, i)})
	}
	e.tr.resolved(context.Background(), r)
	e.tr.pmu.Lock()
	p := e.tr.pending[e.ws]
	e.tr.pmu.Unlock()
	if !p.all || len(p.profiles) != 0 {
		t.Fatalf("waiting: all %v, %d profiles", p.all, len(p.profiles))
	}
	e.settle()
	if got := e.value("views", "u1"); got != "1" {
		t.Errorf("after the pass: %q", got)
	}
}
