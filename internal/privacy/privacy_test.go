package privacy

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/secret"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// mustOpenService is the service over a fresh database holding workspace ws_1 on plan, with
// source src_1 and destination dst_1.
func mustOpenService(tb testing.TB, plan string) *Service {
	tb.Helper()
	ctx := context.Background()
	d := testdb.Open(tb)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		tb.Fatal(err)
	}
	now := db.Now()
	err = d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES ('ws_1', 'W', 'w', ?, ?, ?)`, plan, now, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES ('src_1', 'ws_1', 'javascript', 'Web', TRUE, '{}', '[]', ?, ?)`, now, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO destinations (id, workspace_id, catalog_slug, category, name, enabled, settings, created_at, updated_at)
			VALUES ('dst_1', 'ws_1', 'webhook', 'Raw Data', 'Hook', TRUE, '{}', ?, ?)`, now, now)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	box, err := secret.NewBox(make([]byte, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return New(d, nil, box, nil)
}

func event(id, payload string) *ingest.Event {
	name := "Order Completed"
	return &ingest.Event{ID: id, WorkspaceID: "ws_1", SourceID: "src_1", Type: ingest.Track, EventName: &name, Status: ingest.Accepted,
		ReceivedAt: time.Now().UTC(), Payload: []byte(payload)}
}

// ingestOne runs events through the stage, then the listener, as the tracking API does.
func ingestOne(t *testing.T, s *Service, events ...*ingest.Event) {
	t.Helper()
	if err := s.Stage().Process(context.Background(), &ingest.Batch{WorkspaceID: "ws_1", SourceID: "src_1", Events: events}); err != nil {
		t.Fatal(err)
	}
	s.Committed(ingest.Committed{Events: events})
}

func exec(t *testing.T, s *Service, q string) {
	t.Helper()
	if err := s.db.Tx(context.Background(), func(tx *db.Tx) error { _, err := tx.Exec(context.Background(), q); return err }); err != nil {
		t.Fatal(err)
	}
}

type fieldRow struct {
	Recommended *string `db:"recommended"`
	Seen        int64   `db:"seen"`
	Sample      string  `db:"sample"`
}

func field(t *testing.T, s *Service, path string) *fieldRow {
	t.Helper()
	var rows []fieldRow
	if err := s.db.Select(context.Background(), &rows, `SELECT recommended, seen, sample FROM privacy_fields WHERE workspace_id = 'ws_1' AND path = ?`, path); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

// A field's recommendation only grows more severe; a field recommended RED for the first time is
// a health occurrence of its source, once.
func TestListenerRecommendations(t *testing.T) {
	s := mustOpenService(t, "TEAM")
	var occ []health.Occurrence
	s.RecordHealth = func(_ context.Context, o []health.Occurrence) error { occ = append(occ, o...); return nil }
	ingestOne(t, s, event("e1", `{"properties":{"notes":"hello","email":"jane@example.com"}}`), event("e2", `{"properties":{"notes":"hi"}}`))
	if f := field(t, s, "properties.notes"); f == nil || f.Recommended != nil || f.Seen != 2 {
		t.Fatalf("notes after two plain values: %+v", f)
	}
	if f := field(t, s, "properties.email"); f == nil || f.Recommended == nil || *f.Recommended != "YELLOW" || f.Sample != `"jane@example.com"` {
		t.Errorf("email: %+v", f)
	}
	if len(occ) != 0 {
		t.Errorf("occurrences without a RED field: %v", occ)
	}
	ingestOne(t, s, event("e3", `{"properties":{"notes":"4111 1111 1111 1111"}}`))
	if f := field(t, s, "properties.notes"); f.Recommended == nil || *f.Recommended != "RED" || f.Seen != 3 {
		t.Errorf("notes after a card number: %+v", f)
	}
	if len(occ) != 1 || occ[0].ErrorType != HealthNewPIIField || occ[0].TargetID != "src_1" {
		t.Errorf("occurrences: %+v", occ)
	}
	ingestOne(t, s, event("e4", `{"properties":{"notes":"bye"}}`))
	if f := field(t, s, "properties.notes"); f.Recommended == nil || *f.Recommended != "RED" {
		t.Errorf("notes lost its recommendation: %+v", f)
	}
	if len(occ) != 1 {
		t.Errorf("a RED field is new once: %+v", occ)
	}
}

// On FREE nothing is noted or removed.
func TestNothingOnFree(t *testing.T) {
	s := mustOpenService(t, "FREE")
	exec(t, s, `INSERT INTO privacy_source_controls (source_id, workspace_id, block) VALUES ('src_1', 'ws_1', 'RED')`)
	e := event("e1", `{"properties":{"password":"x"}}`)
	ingestOne(t, s, e)
	if len(e.Notes) != 0 || string(e.Payload) != `{"properties":{"password":"x"}}` {
		t.Errorf("on FREE: notes %v, payload %s", e.Notes, e.Payload)
	}
	if f := field(t, s, "properties.password"); f != nil {
		t.Errorf("noted on FREE: %+v", f)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestOutgoing(t *testing.T) {
	s := mustOpenService(t, "TEAM")
	ctx := context.Background()
	raw := []byte(`{"type":"track","properties":{"email":"jane@example.com","password":"x","color":"red","id":12345678901234567}}`)
	if out, changed := s.Outgoing(ctx, "dst_1", raw); changed || string(out) != string(raw) {
		t.Errorf("without controls: %s", out)
	}
	exec(t, s, `INSERT INTO privacy_destination_controls (destination_id, workspace_id, red, yellow, green) VALUES ('dst_1', 'ws_1', 'BLOCK', 'HASH', 'ALLOW')`)
	s.ForgetAll()
	out, changed := s.Outgoing(ctx, "dst_1", raw)
	var got struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(out, &got); err != nil || !changed {
		t.Fatalf("%s %v", out, err)
	}
	var email string
	_ = json.Unmarshal(got.Properties["email"], &email)
	if _, ok := got.Properties["password"]; ok || !hex64.MatchString(email) || string(got.Properties["color"]) != `"red"` ||
		string(got.Properties["id"]) != "12345678901234567" {
		t.Errorf("with controls: %s", out)
	}
	// The salt was made on first use (the controls row was written straight, not by the mutation), kept sealed, and is stable.
	again, _ := s.Outgoing(ctx, "dst_1", raw)
	if string(again) != string(out) {
		t.Errorf("hashes differ between calls: %s %s", out, again)
	}
	var sealed string
	if err := s.db.Get(ctx, &sealed, `SELECT salt FROM privacy_settings WHERE workspace_id = 'ws_1'`); err != nil || len(sealed) < 40 {
		t.Errorf("salt stored as %q (%v)", sealed, err)
	}
	if h := hashValue([]byte("k"), "jane@example.com"); h == hashValue([]byte("other"), "jane@example.com") {
		t.Error("the salt does not key the hash")
	}
}

// Each distinct key is matched once: the cache of keys outlives reloads of the rules while the
// matchers stay the same, and goes when they change.
func TestKeyCacheOutlivesReloads(t *testing.T) {
	s := mustOpenService(t, "TEAM")
	ctx := context.Background()
	load := func() *rules {
		t.Helper()
		r, err := s.cache.rules(ctx, "ws_1")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	expire := func(r *rules) { s.cache.mu.Lock(); r.expires = time.Time{}; s.cache.mu.Unlock() }
	r1 := load()
	if m, ok := r1.key("email"); !ok || m.MatcherID != "email" {
		t.Fatalf("email: %+v", m)
	}
	expire(r1)
	r2 := load()
	if r2 == r1 || r2.keys != r1.keys || r2.keys.n.Load() != 1 {
		t.Errorf("reloaded rules lost the matched keys")
	}
	now := db.Now()
	if err := s.db.Tx(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO privacy_matchers (workspace_id, id, is_default, name, classification, target, key_match, synonyms, pattern, luhn, enabled, created_at, updated_at)
			VALUES ('ws_1', 'email', TRUE, 'Email', 'YELLOW', 'KEY', 'SIMILAR', '[]', '', FALSE, FALSE, ?, ?)`, now, now)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	expire(r2)
	r3 := load()
	if r3.keys == r2.keys {
		t.Error("the key cache survived a change of matchers")
	}
	if m, ok := r3.key("email"); ok {
		t.Errorf("a disabled matcher matched: %+v", m)
	}
}
