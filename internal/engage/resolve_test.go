package engage

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// testEnv is a migrated database with one BUSINESS workspace, and the service over it.
type testEnv struct {
	t   *testing.T
	db  *db.DB
	s   *Service
	ws  string
	now time.Time
}

func mustOpen(t *testing.T) *testEnv {
	t.Helper()
	return mustOpenOn(t, testdb.Open(t))
}

// mustOpenOn migrates d and makes the test's workspace there.
func mustOpenOn(t *testing.T, d *db.DB) *testEnv {
	t.Helper()
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Migrate(context.Background(), migs); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, db: d, s: New(d, nil, nil), now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	e.ws = e.workspace("BUSINESS")
	return e
}

func (e *testEnv) workspace(plan string) string {
	e.t.Helper()
	ws := id.New("ws")
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			ws, "W", ws, plan, db.Now(), db.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return ws
}

// send resolves one event of type typ with the given userId, anonymousId ("" for none) and
// payload fields, a second after the previous one.
func (e *testEnv) send(typ ingest.Type, userID, anonID string, fields map[string]any) *ingest.Event {
	e.t.Helper()
	return e.sendTo(e.ws, typ, userID, anonID, fields)
}

func (e *testEnv) sendTo(ws string, typ ingest.Type, userID, anonID string, fields map[string]any) *ingest.Event {
	e.t.Helper()
	ev := e.build(ws, typ, userID, anonID, fields)
	if err := e.s.Resolve(context.Background(), []*ingest.Event{ev}); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// build makes an accepted event of a workspace, a second after the previous one.
func (e *testEnv) build(ws string, typ ingest.Type, userID, anonID string, fields map[string]any) *ingest.Event {
	e.now = e.now.Add(time.Second)
	doc := map[string]any{"type": strings.ToLower(string(typ))}
	for k, v := range fields {
		doc[k] = v
	}
	ev := &ingest.Event{ID: id.New(ingest.EventPrefix), WorkspaceID: ws, SourceID: "src_test", Type: typ, Status: ingest.Accepted,
		ReceivedAt: e.now}
	if userID != "" {
		ev.UserID = &userID
		doc["userId"] = userID
	}
	if anonID != "" {
		ev.AnonymousID = &anonID
		doc["anonymousId"] = anonID
	}
	if ts, ok := fields["timestamp"].(time.Time); ok {
		ev.Timestamp = &ts
		delete(doc, "timestamp")
	}
	ev.Payload, _ = json.Marshal(doc)
	return ev
}

// profileOf is the standing profile that holds an identifier ("" when none does).
func (e *testEnv) profileOf(typ, value string) string {
	e.t.Helper()
	var p []string
	if err := e.db.Select(context.Background(), &p, `SELECT profile_id FROM profile_identifiers WHERE workspace_id = ? AND type = ? AND value = ?`,
		e.ws, typ, value); err != nil {
		e.t.Fatal(err)
	}
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

// idents lists a profile's identifiers as type:value, sorted.
func (e *testEnv) idents(profileID string) []string {
	e.t.Helper()
	var rows []Identifier
	if err := e.db.Select(context.Background(), &rows, `SELECT * FROM profile_identifiers WHERE profile_id = ?`, profileID); err != nil {
		e.t.Fatal(err)
	}
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Type+":"+r.Value)
	}
	sort.Strings(out)
	return out
}

func (e *testEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Get(context.Background(), &n, q, args...); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *testEnv) standing() int {
	return e.count(`SELECT COUNT(*) FROM profiles WHERE workspace_id = ? AND merged_into IS NULL`, e.ws)
}

func (e *testEnv) merges(profileID string) []Merge {
	e.t.Helper()
	var rows []Merge
	if err := e.db.Select(context.Background(), &rows, `SELECT * FROM profile_merges WHERE profile_id = ? ORDER BY id`, profileID); err != nil {
		e.t.Fatal(err)
	}
	return rows
}

func (e *testEnv) settings(in SettingsInput) {
	e.t.Helper()
	next := DefaultSettings(e.ws)
	if in.Identifiers != nil {
		next.Identifiers = in.Identifiers
	}
	if in.Blocked != nil {
		next.Blocked = in.Blocked
	}
	if errs := validate(next); errs != "" {
		e.t.Fatal(errs)
	}
	if err := e.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO engage_settings (workspace_id, identifiers, blocked_values, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (workspace_id) DO UPDATE SET identifiers = excluded.identifiers, blocked_values = excluded.blocked_values`,
			e.ws, marshal(next.Identifiers), marshal(next.Blocked), db.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	e.s.states.forget(e.ws)
}

func validate(s *Settings) string {
	var errs apperr.UserErrors
	validateSettings(&errs, s)
	var out []string
	for _, x := range errs {
		out = append(out, x.Field+": "+x.Message)
	}
	return strings.Join(out, "; ")
}

func rules(kv ...any) []IdentifierRule {
	var out []IdentifierRule
	for i := 0; i < len(kv); i += 3 {
		out = append(out, IdentifierRule{Type: kv[i].(string), Priority: kv[i+1].(int), Limit: kv[i+2].(int)})
	}
	return out
}

func TestMerge(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Track, "", "a1", map[string]any{"event": "Viewed"})
	anon := e.profileOf("anonymous_id", "a1")
	e.send(ingest.Identify, "u1", "", map[string]any{"traits": map[string]any{"email": "ann@example.com", "plan": "pro"}})
	known := e.profileOf("user_id", "u1")
	if anon == "" || known == "" || anon == known {
		t.Fatalf("two profiles expected before the merge: %q %q", anon, known)
	}
	tie := e.send(ingest.Identify, "u1", "a1", nil)
	if got := e.profileOf("user_id", "u1"); got != anon {
		t.Errorf("after the merge u1 is on %s, want the older profile %s", got, anon)
	}
	if got, want := e.idents(anon), []string{"anonymous_id:a1", "email:ann@example.com", "user_id:u1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("identifiers %v, want %v", got, want)
	}
	if n := e.standing(); n != 1 {
		t.Errorf("%d standing profiles, want 1", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM profiles WHERE id = ? AND merged_into = ?`, known, anon); n != 1 {
		t.Error("the merged profile does not point at the one it became part of")
	}
	m := e.merges(anon)
	if len(m) != 1 || m[0].MergedProfileID != known || m[0].EventID != tie.ID || len(m[0].Identifiers()) != 2 || len(m[0].Dropped()) != 0 {
		t.Fatalf("merge history %+v", m)
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_traits WHERE profile_id = ? AND name IN ('email', 'plan')`, anon); n != 2 {
		t.Errorf("the merged profile's traits did not move: %d of 2", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_traits WHERE profile_id = ?`, known); n != 0 {
		t.Errorf("%d traits left on the merged profile", n)
	}
	// Every event of both stays found from the standing profile.
	if n := e.count(`SELECT COUNT(*) FROM profile_events WHERE profile_id IN (SELECT id FROM profiles WHERE id = ? OR merged_into = ?)`, anon, anon); n != 3 {
		t.Errorf("%d events on the profile, want 3", n)
	}

	t.Run("ChainOfMerges", func(t *testing.T) {
		e.send(ingest.Track, "", "a3", nil)
		third := e.profileOf("anonymous_id", "a3")
		e.send(ingest.Track, "", "a4", map[string]any{"context": map[string]any{"traits": map[string]any{"email": "bob@example.com"}}})
		fourth := e.profileOf("anonymous_id", "a4")
		// An email ties a4's profile to a3's; then a3 to u1's: everything ends on the oldest.
		e.send(ingest.Track, "", "a3", map[string]any{"context": map[string]any{"traits": map[string]any{"email": "bob@example.com"}}})
		if got := e.profileOf("anonymous_id", "a4"); got != third {
			t.Fatalf("a4 on %s, want %s", got, third)
		}
		e.send(ingest.Identify, "u1", "a3", nil)
		for _, i := range []string{"a3", "a4"} {
			if got := e.profileOf("anonymous_id", i); got != anon {
				t.Errorf("%s on %s, want %s", i, got, anon)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM profiles WHERE merged_into = ?`, anon); n != 3 {
			t.Errorf("%d profiles point at the standing one, want 3 (merged ones re-pointed)", n)
		}
		if m := e.merges(anon); len(m) != 3 {
			t.Errorf("merge history of %d, want 3 (the merged profile's own history comes along)", len(m))
		}
		_ = fourth
	})
}

func TestLimitExceeded(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Identify, "u1", "a1", nil)
	first := e.profileOf("user_id", "u1")
	// A second userId on the same device: user_id's limit is 1, so the merge would exceed it; the
	// event's identifier of the lowest priority (anonymous_id) is left out and u2 gets a profile
	// of its own.
	e.send(ingest.Identify, "u2", "a1", nil)
	second := e.profileOf("user_id", "u2")
	if second == "" || second == first {
		t.Fatalf("u2 on %q, want a profile of its own (not %s)", second, first)
	}
	if got := e.profileOf("anonymous_id", "a1"); got != first {
		t.Errorf("a1 moved to %s", got)
	}
	if got, want := e.idents(second), []string{"user_id:u2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("u2's identifiers %v, want %v", got, want)
	}
	if n := e.standing(); n != 2 {
		t.Errorf("%d standing profiles, want 2", n)
	}

	t.Run("OthersLimitFive", func(t *testing.T) {
		for i := 2; i <= 6; i++ {
			e.send(ingest.Identify, "u1", fmt.Sprint("a", i), nil)
		}
		got := e.idents(first)
		n := 0
		for _, x := range got {
			if strings.HasPrefix(x, "anonymous_id:") {
				n++
			}
		}
		if n != 5 {
			t.Errorf("%d anonymous ids on the profile, want the limit, 5: %v", n, got)
		}
		// The sixth anonymousId was dropped from that event (which still resolved to u1's profile).
		if p := e.profileOf("anonymous_id", "a6"); p != "" {
			t.Errorf("a6 on %q, want dropped", p)
		}
	})
}

func TestBlockedValue(t *testing.T) {
	e := mustOpen(t)
	for _, v := range []string{"null", "NULL", "undefined", "anonymous", "-1", "0", "0000-0000", ""} {
		e.send(ingest.Identify, v, "a-"+v, nil)
		if p := e.profileOf("user_id", v); p != "" {
			t.Errorf("the blocked userId %q is on a profile", v)
		}
		if p := e.profileOf("anonymous_id", "a-"+v); p == "" {
			t.Errorf("the anonymousId beside the blocked userId %q has no profile", v)
		}
	}
	// The blocked values tie nothing together.
	if n := e.standing(); n != 8 {
		t.Errorf("%d profiles, want 8 (one per anonymousId)", n)
	}
	e.settings(SettingsInput{Blocked: []BlockedValue{{Value: `^test-`, Regexp: true}, {Value: "guest"}}})
	e.send(ingest.Identify, "test-1", "b1", nil)
	e.send(ingest.Identify, "Guest", "b2", nil)
	e.send(ingest.Identify, "null", "b3", nil) // no longer blocked
	if e.profileOf("user_id", "test-1") != "" || e.profileOf("user_id", "Guest") != "" {
		t.Error("edited blocked values let a value through")
	}
	if e.profileOf("user_id", "null") == "" {
		t.Error("a value no longer blocked was left out")
	}
	var errs apperr.UserErrors
	validateSettings(&errs, &Settings{Blocked: []BlockedValue{{Value: "(", Regexp: true}}})
	if len(errs) != 1 || errs[0].Field != "blockedValues.0.value" {
		t.Errorf("a bad regular expression: %+v", errs)
	}
}

func TestPriority(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Identify, "u1", "", map[string]any{"traits": map[string]any{"email": "ann@example.com"}})
	ann := e.profileOf("user_id", "u1")
	// By default user_id outranks email: an event with another userId and ann's email drops the
	// email (the lowest priority) and resolves to a new profile for u2.
	e.send(ingest.Identify, "u2", "", map[string]any{"traits": map[string]any{"email": "ann@example.com"}})
	if p := e.profileOf("user_id", "u2"); p == ann || p == "" {
		t.Fatalf("u2 on %q", p)
	}
	// With email first, the same event drops the userId instead: it resolves to ann's profile
	// (through the email), and u3 is on no profile.
	e.settings(SettingsInput{Identifiers: rules("email", 1, 5, "user_id", 2, 1, "anonymous_id", 3, 5)})
	ev := e.send(ingest.Identify, "u3", "", map[string]any{"traits": map[string]any{"email": "ann@example.com"}})
	if p := e.profileOf("user_id", "u3"); p != "" {
		t.Errorf("u3 on %s, want dropped", p)
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_events WHERE profile_id = ? AND event_id = ?`, ann, ev.ID); n != 1 {
		t.Error("the event did not resolve to ann's profile")
	}
	var errs apperr.UserErrors
	validateSettings(&errs, &Settings{Identifiers: rules("email", 1, 5, "user_id", 1, 0, "Bad Type", 2, 1)})
	fields := []string{}
	for _, x := range errs {
		fields = append(fields, x.Field)
	}
	if want := []string{"identifiers.1.priority", "identifiers.1.limit", "identifiers.2.type"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("errors on %v, want %v", fields, want)
	}
}

func TestAlias(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Track, "", "a1", nil)
	anon := e.profileOf("anonymous_id", "a1")
	e.send(ingest.Identify, "u1", "", nil)
	known := e.profileOf("user_id", "u1")
	// alias(previousId: a1, userId: u1) ties the two.
	e.send(ingest.Alias, "u1", "", map[string]any{"previousId": "a1"})
	if p := e.profileOf("user_id", "u1"); p != anon || e.profileOf("anonymous_id", "a1") != anon {
		t.Fatalf("alias did not merge: u1 on %s, a1 on %s (profiles %s, %s)", p, e.profileOf("anonymous_id", "a1"), anon, known)
	}
	// A previousId nobody has becomes an anonymous_id of the user's profile.
	e.send(ingest.Alias, "u1", "", map[string]any{"previousId": "old-device"})
	if p := e.profileOf("anonymous_id", "old-device"); p != anon {
		t.Errorf("old-device on %q", p)
	}
	// Aliasing one userId to another is refused by user_id's limit of 1...
	e.send(ingest.Identify, "u2", "", nil)
	other := e.profileOf("user_id", "u2")
	e.send(ingest.Alias, "u1", "", map[string]any{"previousId": "u2"})
	if p := e.profileOf("user_id", "u2"); p != other {
		t.Errorf("u2 moved to %s despite user_id's limit of 1", p)
	}
	// ...and allowed with a limit of 2.
	e.settings(SettingsInput{Identifiers: rules("user_id", 1, 2, "anonymous_id", 2, 5)})
	e.send(ingest.Alias, "u1", "", map[string]any{"previousId": "u2"})
	if p := e.profileOf("user_id", "u2"); p != anon {
		t.Errorf("u2 on %s, want %s", p, anon)
	}
}

func TestTraitsLastValueWins(t *testing.T) {
	e := mustOpen(t)
	later := e.now.Add(time.Hour)
	e.send(ingest.Identify, "u1", "", map[string]any{"traits": map[string]any{"plan": "pro", "age": 30}, "timestamp": later})
	// Arrives after, happened before: it does not overwrite plan.
	e.send(ingest.Identify, "u1", "", map[string]any{"traits": map[string]any{"plan": "free", "name": "Ann"}, "timestamp": later.Add(-time.Minute)})
	e.send(ingest.Track, "u1", "", map[string]any{"event": "Paid", "context": map[string]any{"traits": map[string]any{"age": 31}}, "timestamp": later.Add(time.Minute)})
	p := e.profileOf("user_id", "u1")
	var rows []Trait
	if err := e.db.Select(context.Background(), &rows, `SELECT * FROM profile_traits WHERE profile_id = ? ORDER BY name`, p); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Name] = r.Value
		if r.SourceID == nil || *r.SourceID != "src_test" {
			t.Errorf("trait %s from %v", r.Name, r.SourceID)
		}
	}
	if want := map[string]string{"plan": `"pro"`, "age": "31", "name": `"Ann"`}; !reflect.DeepEqual(got, want) {
		t.Errorf("traits %v, want %v", got, want)
	}
}

func TestExtract(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Track, "", "a1", map[string]any{"event": "Opened", "context": map[string]any{
		"device":       map[string]any{"type": "ios", "id": "dev-1", "advertisingId": "idfa-1", "adTrackingEnabled": true, "token": "push-1"},
		"externalIds":  []any{map[string]any{"id": "+15550100", "type": "phone", "collection": "users", "encoding": "none"}},
		"integrations": map[string]any{"Google Analytics": map[string]any{"clientId": "GA1.2.3"}},
		"traits":       map[string]any{"email": "ann@example.com"},
	}})
	p := e.profileOf("anonymous_id", "a1")
	want := []string{"anonymous_id:a1", "email:ann@example.com", "ga_client_id:GA1.2.3", "ios.id:dev-1", "ios.idfa:idfa-1", "ios.push_token:push-1", "phone:+15550100"}
	if got := e.idents(p); !reflect.DeepEqual(got, want) {
		t.Errorf("identifiers %v, want %v", got, want)
	}
	// No advertising id without ad tracking; no device ids without a known device type.
	e.send(ingest.Track, "", "a2", map[string]any{"event": "Opened", "context": map[string]any{
		"device": map[string]any{"type": "android", "id": "dev-2", "advertisingId": "aaid-2"}}})
	if got, want := e.idents(e.profileOf("anonymous_id", "a2")), []string{"android.id:dev-2", "anonymous_id:a2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("identifiers %v, want %v", got, want)
	}
}

func TestPlanAndIsolation(t *testing.T) {
	e := mustOpen(t)
	team := e.workspace("TEAM")
	other := e.workspace("BUSINESS")
	e.sendTo(team, ingest.Identify, "u1", "a1", nil)
	if n := e.count(`SELECT COUNT(*) FROM profiles WHERE workspace_id = ?`, team); n != 0 {
		t.Errorf("a TEAM workspace has %d profiles", n)
	}
	e.send(ingest.Identify, "u1", "a1", nil)
	e.sendTo(other, ingest.Identify, "u1", "a1", nil)
	e.sendTo(other, ingest.Identify, "u1", "a2", nil)
	if n := e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ?`, e.ws); n != 2 {
		t.Errorf("the other workspace's events reached this one's profiles: %d identifiers", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM profile_identifiers WHERE workspace_id = ?`, other); n != 3 {
		t.Errorf("%d identifiers in the other workspace, want 3", n)
	}
}

func TestPruneFollowsEventRetention(t *testing.T) {
	e := mustOpen(t)
	old := e.send(ingest.Track, "u1", "", map[string]any{"event": "Old"})
	time.Sleep(5 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	e.now = time.Now()
	recent := &ingest.Event{ID: id.New(ingest.EventPrefix), WorkspaceID: e.ws, SourceID: "src_test", Type: ingest.Track, Status: ingest.Accepted,
		ReceivedAt: time.Now(), Payload: []byte(`{"event":"New"}`)}
	u := "u1"
	recent.UserID = &u
	if err := e.s.Resolve(context.Background(), []*ingest.Event{recent}); err != nil {
		t.Fatal(err)
	}
	n, err := e.s.Prune(context.Background(), cutoff)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the old event's row", n, err)
	}
	if e.count(`SELECT COUNT(*) FROM profile_events WHERE event_id = ?`, old.ID) != 0 ||
		e.count(`SELECT COUNT(*) FROM profile_events WHERE event_id = ?`, recent.ID) != 1 {
		t.Error("Prune kept the old row or deleted the recent one")
	}
}

// TestChunkResolvesAsOneByOne: events resolved together in one transaction end in the same
// profiles as the same events resolved one at a time (the chunk reads only part of the graph).
func TestChunkResolvesAsOneByOne(t *testing.T) {
	e := mustOpen(t)
	together := e.workspace("BUSINESS")
	var events []*ingest.Event
	mk := func(ws string, i int) *ingest.Event {
		ev := &ingest.Event{ID: id.New(ingest.EventPrefix), WorkspaceID: ws, SourceID: "src_test", Status: ingest.Accepted,
			ReceivedAt: e.now.Add(time.Duration(i) * time.Second), Type: ingest.Track}
		doc := map[string]any{}
		if i%7 != 0 {
			u := fmt.Sprint("u", i%13)
			ev.UserID = &u
		}
		a := fmt.Sprint("a", (i*5)%17)
		ev.AnonymousID = &a
		if i%5 == 0 {
			doc["context"] = map[string]any{"traits": map[string]any{"email": fmt.Sprint("e", i%4, "@example.com")}}
		}
		if i%11 == 0 {
			ev.Type = ingest.Alias
			doc["previousId"] = fmt.Sprint("a", i%17)
		}
		ev.Payload, _ = json.Marshal(doc)
		return ev
	}
	for i := range 200 {
		ev := mk(e.ws, i)
		if err := e.s.Resolve(context.Background(), []*ingest.Event{ev}); err != nil {
			t.Fatal(err)
		}
		events = append(events, mk(together, i))
	}
	if err := e.s.Resolve(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	partition := func(ws string) []string {
		var rows []Identifier
		if err := e.db.Select(context.Background(), &rows, `SELECT * FROM profile_identifiers WHERE workspace_id = ? ORDER BY type, value`, ws); err != nil {
			t.Fatal(err)
		}
		by := map[string][]string{}
		for _, r := range rows {
			by[r.ProfileID] = append(by[r.ProfileID], r.Type+":"+r.Value)
		}
		var out []string
		for _, ids := range by {
			out = append(out, strings.Join(ids, ","))
		}
		sort.Strings(out)
		return out
	}
	one, all := partition(e.ws), partition(together)
	if !reflect.DeepEqual(one, all) {
		t.Errorf("one by one:\n%s\ntogether:\n%s", strings.Join(one, "\n"), strings.Join(all, "\n"))
	}
	if len(one) < 2 {
		t.Errorf("the events made %d profiles: not a test", len(one))
	}
	n1 := e.count(`SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, e.ws)
	n2 := e.count(`SELECT COUNT(*) FROM profile_merges WHERE workspace_id = ?`, together)
	if n1 != n2 {
		t.Errorf("%d merges one by one, %d together", n1, n2)
	}
	t.Logf("%d profiles, %d merges", len(one), n1)
}

// TestGraphChangedMeanwhile: a chunk reads the graph before its transaction; when another
// transaction changed the graph in between (another replica's), it reads it again in its own.
func TestGraphChangedMeanwhile(t *testing.T) {
	e := mustOpen(t)
	e.send(ingest.Track, "", "a1", nil)
	first := e.profileOf("anonymous_id", "a1")
	e.s.afterRead = func() {
		e.s.afterRead = nil
		e.send(ingest.Identify, "u1", "", nil) // u1's profile, made after the chunk below read the graph
	}
	e.send(ingest.Identify, "u1", "a1", nil)
	if got := e.profileOf("user_id", "u1"); got != first {
		t.Errorf("u1 on %s, want the merged profile %s", got, first)
	}
	if m := e.merges(first); len(m) != 1 {
		t.Errorf("%d merges, want u1's profile merged into a1's", len(m))
	}
	if n := e.standing(); n != 1 {
		t.Errorf("%d standing profiles, want 1 (none left without identifiers)", n)
	}
}

func TestOnResolvedTellsFollowers(t *testing.T) {
	e := mustOpen(t)
	var got []*Resolved
	e.s.OnResolved(func(_ context.Context, r *Resolved) { got = append(got, r) })
	a := e.send(ingest.Track, "", "a1", map[string]any{"event": "Viewed"})
	e.send(ingest.Identify, "u1", "", nil)
	known := e.profileOf("user_id", "u1")
	anon := e.profileOf("anonymous_id", "a1")
	tie := e.send(ingest.Identify, "u1", "a1", nil)
	if len(got) != 3 {
		t.Fatalf("followers told %d times, want once per transaction (3)", len(got))
	}
	if r := got[0]; r.WorkspaceID != e.ws || len(r.Events) != 1 || r.Events[0].Event != a || r.Events[0].ProfileID != anon {
		t.Errorf("first transaction told as %+v", r)
	}
	last := got[2]
	if len(last.Events) != 1 || last.Events[0].Event != tie || last.Events[0].ProfileID != anon {
		t.Errorf("the tying event was told as %+v, want on the standing profile %s", last.Events, anon)
	}
	if len(last.Merges) != 1 || last.Merges[0] != (ResolvedMerge{ProfileID: anon, MergedProfileID: known}) {
		t.Errorf("merges told as %+v", last.Merges)
	}
	if p := last.Profiles(); !reflect.DeepEqual(p, []string{anon}) {
		t.Errorf("profiles changed %v, want [%s]", p, anon)
	}
	// An event without identifiers changes no profile and tells no one.
	e.send(ingest.Track, "", "", nil)
	if len(got) != 3 {
		t.Errorf("an event without identifiers was told")
	}
}
