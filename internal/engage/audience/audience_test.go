package audience

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/regulation/forget"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// testEnv is a migrated database with one BUSINESS workspace and a source, identity resolution
// over it, and the audiences' service with a clock the test moves.
type testEnv struct {
	t   *testing.T
	db  *db.DB
	eng *engage.Service
	s   *Service
	ws  string
	src string
	now time.Time
}

func mustOpen(t *testing.T) *testEnv {
	t.Helper()
	d := testdb.Open(t)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Migrate(context.Background(), migs); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, db: d, now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	e.eng = engage.New(d, nil, nil)
	e.s = New(d, nil, e.eng, nil, Options{Now: func() time.Time { return e.now }})
	e.ws, e.src = e.workspace("BUSINESS")
	return e
}

func (e *testEnv) exec(query string, args ...any) {
	e.t.Helper()
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

// workspace adds a workspace on a plan, and a source of it.
func (e *testEnv) workspace(plan string) (string, string) {
	e.t.Helper()
	ws, src := id.New("ws"), id.New("src")
	e.exec(`INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`, ws, "W", ws, plan, db.Now(), db.Now())
	e.exec(`INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
		VALUES (?, ?, 'http-api', 'S', TRUE, '{}', '[]', ?, ?)`, src, ws, db.Now(), db.Now())
	return ws, src
}

// send stores an event of the workspace a second after the previous one (its id made at the
// test's clock, as the tracking API makes them) and resolves it; the audiences hear it.
func (e *testEnv) send(typ ingest.Type, userID string, fields map[string]any) {
	e.t.Helper()
	e.now = e.now.Add(time.Second)
	doc := map[string]any{"type": strings.ToLower(string(typ))}
	for k, v := range fields {
		doc[k] = v
	}
	ev := &ingest.Event{ID: id.Floor(ingest.EventPrefix, e.now), WorkspaceID: e.ws, SourceID: e.src, Type: typ, Status: ingest.Accepted,
		ReceivedAt: e.now, MessageID: id.New("m")}
	if userID != "" {
		doc["userId"] = userID
		ev.UserID = &userID
	}
	if a, ok := fields["anonymousId"].(string); ok {
		ev.AnonymousID = &a
	}
	if name, ok := fields["event"].(string); ok {
		ev.EventName = &name
	}
	ev.Payload, _ = json.Marshal(doc)
	e.exec(`INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, status, received_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.ID, ev.WorkspaceID, ev.SourceID, ev.MessageID, string(ev.Type), ev.EventName, ev.UserID,
		string(ev.Status), db.Time{Time: ev.ReceivedAt}, string(ev.Payload))
	if err := e.eng.Resolve(context.Background(), []*ingest.Event{ev}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) identify(userID string, traits map[string]any) {
	e.t.Helper()
	e.send(ingest.Identify, userID, map[string]any{"traits": traits})
}

func (e *testEnv) track(userID, event string, props map[string]any) {
	e.t.Helper()
	e.send(ingest.Track, userID, map[string]any{"event": event, "properties": props})
}

func (e *testEnv) flush() {
	e.t.Helper()
	if err := e.s.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// audience saves an audience (as Create does, without a viewer) and computes it.
func (e *testEnv) audience(key string, def *Condition) string {
	e.t.Helper()
	var errs apperr.UserErrors
	validate(&errs, "definition", def)
	if len(errs) > 0 {
		e.t.Fatalf("definition of %s: %v", key, errs)
	}
	a := id.New(Prefix)
	b, _ := json.Marshal(def)
	e.exec(`INSERT INTO audiences (id, workspace_id, key, name, description, definition, enabled, windowed, size, status, version, computed_version,
		created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, TRUE, ?, 0, 'COMPUTING', 1, 0, ?, ?)`, a, e.ws, key, key, string(b), windowed(def), db.Now(), db.Now())
	e.s.comp.recompute(e.ws, a)
	e.flush()
	return a
}

// members lists an audience's members by their user ids, sorted.
func (e *testEnv) members(audienceID string) string {
	e.t.Helper()
	var out []string
	if err := e.db.Select(context.Background(), &out, `SELECT pi.value FROM audience_members am JOIN profile_identifiers pi ON pi.profile_id = am.profile_id
		AND pi.type = 'user_id' WHERE am.audience_id = ?`, audienceID); err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(out)
	var size int
	if err := e.db.Get(context.Background(), &size, `SELECT size FROM audiences WHERE id = ?`, audienceID); err != nil {
		e.t.Fatal(err)
	}
	if size != len(out) {
		e.t.Errorf("size %d, but %d members", size, len(out))
	}
	return strings.Join(out, ",")
}

func (e *testEnv) expect(audienceID, want string) {
	e.t.Helper()
	if got := e.members(audienceID); got != want {
		e.t.Errorf("members [%s], want [%s]", got, want)
	}
}

func str(s string) *string { return &s }

func trait(name string, op Operator, value *string) *Condition {
	return &Condition{Trait: &TraitCondition{Name: name, Operator: op, Value: value}}
}

func event(name string, op CountOperator, n int, within *Window, props ...*PropertyCondition) *Condition {
	return &Condition{Event: &EventCondition{Name: &name, Count: &EventCount{Operator: op, Value: n}, Within: within, Properties: props}}
}

// seed gives three people traits and events.
func (e *testEnv) seed() {
	e.identify("ann", map[string]any{"plan": "pro", "age": 34, "email": "ann@example.com"})
	e.identify("bob", map[string]any{"plan": "free", "age": 19, "company": "Acme Corp"})
	e.identify("cat", map[string]any{"age": "unknown"})
	for i := 0; i < 3; i++ {
		e.track("ann", "Order Completed", map[string]any{"total": 20 + i, "currency": "EUR"})
	}
	e.track("bob", "Order Completed", map[string]any{"total": 500, "currency": "USD"})
	e.track("cat", "Viewed", nil)
}

func TestTraitConditions(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	for _, c := range []struct {
		name string
		def  *Condition
		want string
	}{
		{"Equals", trait("plan", Equals, str("pro")), "ann"},
		{"NotEquals", trait("plan", NotEquals, str("pro")), "bob,cat"},
		{"Contains", trait("company", Contains, str("acme")), "bob"},
		{"NotContains", trait("company", NotContains, str("acme")), "ann,cat"},
		{"Exists", trait("plan", Exists, nil), "ann,bob"},
		{"NotExists", trait("plan", NotExists, nil), "cat"},
		{"GreaterThan", trait("age", Greater, str("20")), "ann"},
		{"LessOrEqual", trait("age", LessEqual, str("34")), "ann,bob"}, // cat's age is no number
		{"ComputedTrait", &Condition{ComputedTrait: &TraitCondition{Key: "orders_count", Operator: GreaterEqual, Value: str("2")}}, "ann"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "ComputedTrait" {
				// Computed traits write their value among the profile's traits under their key.
				e.exec(`INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, event_id, updated_at) VALUES (?, ?, 'orders_count', '3', '3', 'x', ?)`,
					e.profileOf("ann"), e.ws, db.Now())
				e.exec(`INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, event_id, updated_at) VALUES (?, ?, 'orders_count', '1', '1', 'x', ?)`,
					e.profileOf("bob"), e.ws, db.Now())
			}
			a := e.audience(strings.ToLower(c.name), c.def)
			e.expect(a, c.want)
		})
	}
}

func (e *testEnv) profileOf(userID string) string {
	e.t.Helper()
	var p string
	if err := e.db.Get(context.Background(), &p, `SELECT profile_id FROM profile_identifiers WHERE workspace_id = ? AND type = 'user_id' AND value = ?`,
		e.ws, userID); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestEventConditions(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	week := &Window{Amount: 7, Unit: Days}
	identify := ingest.Identify
	f := false
	for _, c := range []struct {
		name string
		def  *Condition
		want string
	}{
		{"Performed", event("Order Completed", AtLeast, 1, nil), "ann,bob"},
		{"AtLeast3", event("Order Completed", AtLeast, 3, week), "ann"},
		{"AtMost1", event("Order Completed", AtMost, 1, nil), "bob,cat"},
		{"Exactly1", event("Order Completed", Exactly, 1, nil), "bob"},
		{"Exactly0", event("Order Completed", Exactly, 0, nil), "cat"},
		{"NotPerformed", &Condition{Event: &EventCondition{Name: str("Order Completed"), Performed: &f}}, "cat"},
		{"Property", event("Order Completed", AtLeast, 1, nil, &PropertyCondition{Name: "currency", Operator: Equals, Value: str("USD")}), "bob"},
		{"PropertyNumber", event("Order Completed", AtLeast, 2, nil, &PropertyCondition{Name: "total", Operator: GreaterEqual, Value: str("21")}), "ann"},
		{"AnyTrack", &Condition{Event: &EventCondition{}}, "ann,bob,cat"},
		{"Identify", &Condition{Event: &EventCondition{Type: &identify, Count: &EventCount{Operator: AtLeast, Value: 1}}}, "ann,bob,cat"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.expect(e.audience(strings.ToLower(c.name), c.def), c.want)
		})
	}
}

func TestCombinations(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	bought := event("Order Completed", AtLeast, 1, nil)
	pro := trait("plan", Equals, str("pro"))
	e.expect(e.audience("and", &Condition{And: []*Condition{bought, trait("age", Less, str("30"))}}), "bob")
	e.expect(e.audience("or", &Condition{Or: []*Condition{pro, trait("age", Exists, nil)}}), "ann,bob,cat")
	e.expect(e.audience("not", &Condition{Not: &Condition{Or: []*Condition{pro, trait("plan", NotExists, nil)}}}), "bob")
}

// Members enter as their events arrive, and leave a windowed audience when the window passes
// them by without a new event: the scheduled recomputation, with the clock moved.
func TestIncrementalAndWindows(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	viewed := e.audience("viewed_week", event("Viewed", AtLeast, 1, &Window{Amount: 7, Unit: Days}))
	e.expect(viewed, "cat")

	e.track("dan", "Viewed", nil)
	e.flush()
	e.expect(viewed, "cat,dan")

	e.now = e.now.Add(6 * 24 * time.Hour)
	e.track("dan", "Viewed", nil)
	e.flush()
	e.expect(viewed, "cat,dan")

	// A day and a bit later cat's view is 7 days old; dan's is a day old.
	e.now = e.now.Add(25 * time.Hour)
	e.flush()
	e.expect(viewed, "dan")
	e.now = e.now.Add(7 * 24 * time.Hour)
	e.flush()
	e.expect(viewed, "")

	// Each change is recorded once, and the size history follows.
	var changes []struct {
		Entered bool `db:"entered"`
	}
	if err := e.db.Select(context.Background(), &changes, `SELECT entered FROM audience_changes WHERE audience_id = ? ORDER BY id`, viewed); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(changes); got != "[{true} {true} {false} {false}]" {
		t.Errorf("changes %s", got)
	}
	var sizes []int
	if err := e.db.Select(context.Background(), &sizes, `SELECT size FROM audience_sizes WHERE audience_id = ? ORDER BY at`, viewed); err != nil {
		t.Fatal(err)
	}
	// One point per minute in which the size changed: cat and dan entered in the same minute.
	if got := fmt.Sprint(sizes); got != "[2 1 0]" {
		t.Errorf("size history %s", got)
	}
}

func TestNestedAudience(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	buyers := e.audience("buyers", event("Order Completed", AtLeast, 1, nil))
	nested := e.audience("young_buyers", &Condition{And: []*Condition{{Audience: &MembershipCondition{AudienceID: buyers}}, trait("age", Less, str("30"))}})
	e.expect(nested, "bob")
	// dan buys and is young: he enters both, the nested one after the one it names.
	e.identify("dan", map[string]any{"age": 22})
	e.track("dan", "Order Completed", nil)
	e.flush()
	e.expect(buyers, "ann,bob,dan")
	e.expect(nested, "bob,dan")
	// Cycles are refused.
	var errs apperr.UserErrors
	err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		a := &Audience{ID: buyers, WorkspaceID: e.ws}
		return e.s.checkRefs(context.Background(), tx, &errs, a, &Condition{Audience: &MembershipCondition{AudienceID: nested}})
	})
	if err != nil || len(errs) != 1 || !strings.Contains(errs[0].Message, "cycle") {
		t.Errorf("cycle: %v %v", errs, err)
	}
}

// Merged profiles leave silently; the profile they became part of is evaluated with both's events.
func TestMerge(t *testing.T) {
	e := mustOpen(t)
	twice := e.audience("twice", event("Viewed", AtLeast, 2, nil))
	e.send(ingest.Track, "u1", map[string]any{"event": "Viewed"})
	e.send(ingest.Track, "", map[string]any{"event": "Viewed", "anonymousId": "a1"})
	e.flush()
	e.expect(twice, "")
	e.send(ingest.Identify, "u1", map[string]any{"anonymousId": "a1"})
	e.flush()
	e.expect(twice, "u1")
}

func TestPreview(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	p, errs, err := e.s.previewIn(context.Background(), e.ws, event("Order Completed", AtLeast, 1, nil), 1)
	if err != nil || len(errs) > 0 {
		t.Fatal(errs, err)
	}
	if p.Size != 2 || len(p.Sample) != 1 {
		t.Errorf("preview %+v", p)
	}
	var n int
	if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM audience_members`); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a preview wrote %d members", n)
	}
	_, errs, _ = e.s.previewIn(context.Background(), e.ws, &Condition{And: []*Condition{
		{Event: &EventCondition{Name: str("X"), Count: &EventCount{Operator: AtLeast, Value: -1}}},
		{Trait: &TraitCondition{Name: "plan", Operator: Greater, Value: str("abc")}},
		{Trait: &TraitCondition{Name: "plan"}, Not: &Condition{}},
	}}, 1)
	got := map[string]bool{}
	for _, x := range errs {
		got[x.Field] = true
	}
	for _, f := range []string{"definition.and.0.event.count.value", "definition.and.1.trait.value", "definition.and.2"} {
		if !got[f] {
			t.Errorf("no user error on %s: %v", f, errs)
		}
	}
}

func TestForget(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	buyers := e.audience("buyers", event("Order Completed", AtLeast, 1, nil))
	e.expect(buyers, "ann,bob")
	ann := e.profileOf("ann")
	err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		for {
			next, _, _, err := Forget.Run(context.Background(), tx, forget.Subjects{WorkspaceID: e.ws, Emails: []string{"ann@example.com"}}, "", 100)
			if err != nil || next == "" {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM audience_changes WHERE profile_id = ?`, ann); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d changes of a forgotten profile left", n)
	}
	e.expect(buyers, "bob")
}

func TestReapWorkspace(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	e.audience("buyers", event("Order Completed", AtLeast, 1, nil))
	for {
		var n int64
		err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
			var err error
			n, err = ReapWorkspace.Run(context.Background(), tx, e.ws, 2)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 2 {
			break
		}
	}
	for _, table := range []string{"audiences", "audience_members", "audience_changes", "audience_sizes"} {
		var n int
		if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows left", table, n)
		}
	}
}

// A deleted audience's rows are drained by the scheduled work, and then its row.
func TestDeletedDrained(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	buyers := e.audience("buyers", event("Order Completed", AtLeast, 1, nil))
	e.expect(buyers, "ann,bob")
	e.exec(`UPDATE audiences SET deleted_at = ? WHERE id = ?`, db.Now(), buyers)
	e.flush()
	for _, table := range []string{"audience_members", "audience_changes", "audience_sizes"} {
		var n int
		if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM `+table+` WHERE audience_id = ?`, buyers); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows left", table, n)
		}
	}
	var n int
	if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM audiences WHERE id = ?`, buyers); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the deleted audience's row is left")
	}
}

// Changes every destination was sent go after the retention period; those one has not, stay.
func TestPruneChanges(t *testing.T) {
	e := mustOpen(t)
	e.seed()
	buyers := e.audience("buyers", event("Order Completed", AtLeast, 1, nil))
	viewers := e.audience("viewers", event("Viewed", AtLeast, 1, nil))
	e.exec(`INSERT INTO destinations (id, workspace_id, catalog_slug, category, name, enabled, settings, created_at, updated_at)
		VALUES ('dst_x', ?, 'webhook', 'Raw Data', 'D', TRUE, '{}', ?, ?)`, e.ws, db.Now(), db.Now())
	e.exec(`INSERT INTO audience_destinations (audience_id, destination_id, workspace_id, mode, last_change_id, created_at)
		VALUES (?, 'dst_x', ?, 'TRACK', '', ?)`, viewers, e.ws, db.Now())
	if _, err := e.s.Prune(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	count := func(a string) int {
		var n int
		if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM audience_changes WHERE audience_id = ?`, a); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(buyers) != 0 || count(viewers) != 1 {
		t.Errorf("changes left: buyers %d (want 0), viewers %d (want 1, not sent yet)", count(buyers), count(viewers))
	}
}
