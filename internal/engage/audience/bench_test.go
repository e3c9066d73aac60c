package audience

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// benchEnv is the scale: 100,000 profiles with 1,000,000 events over 58 days (10 each:
// one in five an Order Completed), every third profile on plan "pro". Rows are written in bulk,
// as identity resolution would have left them.
type benchEnv struct {
	*testEnv
	profiles []string
}

func benchSeed(b *testing.B) *benchEnv {
	b.Helper()
	ctx := context.Background()
	d := testdb.Open(b)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	e := &testEnv{db: d, now: now}
	e.eng = engage.New(d, nil, nil)
	e.s = New(d, nil, e.eng, nil, Options{})
	tx := func(f func(tx *db.Tx) error) {
		if err := d.Tx(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	ws, src := id.New("ws"), id.New("src")
	e.ws, e.src = ws, src
	tx(func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, 'W', ?, 'BUSINESS', ?, ?)`, ws, ws, db.Now(), db.Now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES (?, ?, 'http-api', 'S', TRUE, '{}', '[]', ?, ?)`, src, ws, db.Now(), db.Now())
		return err
	})
	const nProfiles, perProfile = 100_000, 10
	be := &benchEnv{testEnv: e}
	start := now.Add(-time.Duration(nProfiles*perProfile) * 5 * time.Second)
	at := db.Time{Time: now}
	for p0 := 0; p0 < nProfiles; p0 += 2000 {
		var profiles, idents, traits, events, links [][]any
		for p := p0; p < p0+2000; p++ {
			pid := id.New(engage.Prefix)
			be.profiles = append(be.profiles, pid)
			user := fmt.Sprintf("user-%d", p)
			profiles = append(profiles, []any{pid, ws, at, at})
			idents = append(idents, []any{ws, "user_id", user, pid, at, at})
			plan := "free"
			if p%3 == 0 {
				plan = "pro"
			}
			traits = append(traits, []any{pid, ws, "plan", `"` + plan + `"`, plan, "evt_x", at})
			for k := 0; k < perProfile; k++ {
				// Events interleave over time: profile p's k-th event at slot k*nProfiles+p.
				t := start.Add(time.Duration(k*nProfiles+p) * 5 * time.Second)
				evID := id.Floor(ingest.EventPrefix, t)
				name := "Viewed"
				if (p+k)%5 == 0 {
					name = "Order Completed"
				}
				payload, _ := json.Marshal(map[string]any{"type": "track", "event": name, "userId": user, "properties": map[string]any{"total": k * 10}})
				events = append(events, []any{evID, ws, src, "m-" + evID, "TRACK", name, user, "ACCEPTED", db.Time{Time: t}, string(payload)})
				links = append(links, []any{pid, evID})
			}
		}
		tx(func(tx *db.Tx) error {
			for _, q := range []struct {
				head string
				cols int
				rows [][]any
			}{
				{`INSERT INTO profiles (id, workspace_id, created_at, updated_at) VALUES `, 4, profiles},
				{`INSERT INTO profile_identifiers (workspace_id, type, value, profile_id, first_seen_at, last_seen_at) VALUES `, 6, idents},
				{`INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, event_id, updated_at) VALUES `, 7, traits},
				{`INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, status, received_at, payload) VALUES `, 10, events},
				{`INSERT INTO profile_events (profile_id, event_id) VALUES `, 2, links},
			} {
				if err := tx.InsertRows(ctx, q.head, q.cols, q.rows, ``); err != nil {
					return err
				}
			}
			return nil
		})
	}
	tx(func(tx *db.Tx) error { _, err := tx.Exec(ctx, `ANALYZE`); return err })
	return be
}

// benchDefinitions: the audience of two conditions, and one trait condition alone as the
// same run's baseline.
var (
	benchTwo = &Condition{And: []*Condition{
		{Trait: &TraitCondition{Name: "plan", Operator: Equals, Value: str("pro")}},
		{Event: &EventCondition{Name: str("Order Completed"), Count: &EventCount{Operator: AtLeast, Value: 1}, Within: &Window{Amount: 30, Unit: Days}}},
	}}
	benchTrait = &Condition{Trait: &TraitCondition{Name: "plan", Operator: Equals, Value: str("pro")}}
)

// BenchmarkAudienceRecompute measures one computation over every profile at the scale:
// the first (every member written) and a recomputation (nothing changed), of the two-condition
// audience and of the trait-only baseline. Reported per computation in seconds.
//
//	go test -run '^$' -bench AudienceRecompute -benchtime 1x -count 3 ./internal/engage/audience/
func BenchmarkAudienceRecompute(b *testing.B) {
	be := benchSeed(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		for _, c := range []struct {
			name string
			def  *Condition
		}{{"two-conditions", benchTwo}, {"trait-baseline", benchTrait}} {
			a := be.insertAudience(b, c.def)
			for _, pass := range []string{"first", "again"} {
				start := time.Now()
				n, err := be.s.computeFull(ctx, a)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), c.name+"-"+pass+"-s")
				if pass == "first" {
					b.ReportMetric(float64(n), c.name+"-members")
				}
			}
		}
	}
}

// BenchmarkAudienceIncremental measures how long after identity resolution starts on an event a
// profile enters the two-condition audience, with the worker running: a new person's identify
// (plan "pro") and Order Completed, resolved as one chunk through engage.Resolve (which commits,
// then notifies the audiences), until their membership row is there. Reported in milliseconds, the
// median and the worst of 20 entries.
//
//	go test -run '^$' -bench AudienceIncremental -benchtime 1x -count 3 ./internal/engage/audience/
func BenchmarkAudienceIncremental(b *testing.B) {
	be := benchSeed(b)
	ctx := context.Background()
	a := be.insertAudience(b, benchTwo)
	if _, err := be.s.computeFull(ctx, a); err != nil {
		b.Fatal(err)
	}
	be.s.Start()
	defer be.s.Close()
	// The worker's first pass computes every audience again (what a stopped process had
	// queued): the entries are measured after it.
	if err := be.s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		var lags []time.Duration
		for len(lags) < 20 {
			user := id.New("u")
			var evs []*ingest.Event
			for _, doc := range []map[string]any{
				{"type": "identify", "userId": user, "traits": map[string]any{"plan": "pro"}},
				{"type": "track", "userId": user, "event": "Order Completed"},
			} {
				typ, name := ingest.Identify, (*string)(nil)
				if doc["type"] == "track" {
					n := "Order Completed"
					typ, name = ingest.Track, &n
				}
				ev := &ingest.Event{ID: id.New(ingest.EventPrefix), WorkspaceID: be.ws, SourceID: be.src, Type: typ, EventName: name,
					UserID: &user, Status: ingest.Accepted, ReceivedAt: time.Now().UTC(), MessageID: id.New("m")}
				ev.Payload, _ = json.Marshal(doc)
				if err := be.db.Tx(ctx, func(tx *db.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, status, received_at, payload)
						VALUES (?, ?, ?, ?, ?, ?, ?, 'ACCEPTED', ?, ?)`, ev.ID, be.ws, be.src, ev.MessageID, string(typ), name, user,
						db.Time{Time: ev.ReceivedAt}, string(ev.Payload))
					return err
				}); err != nil {
					b.Fatal(err)
				}
				evs = append(evs, ev)
			}
			start := time.Now()
			if err := be.eng.Resolve(ctx, evs); err != nil {
				b.Fatal(err)
			}
			for {
				var in int
				if err := be.db.Get(ctx, &in, `SELECT COUNT(*) FROM audience_members am JOIN profile_identifiers pi ON pi.profile_id = am.profile_id
					WHERE am.audience_id = ? AND pi.workspace_id = ? AND pi.type = 'user_id' AND pi.value = ?`, a.ID, be.ws, user); err != nil {
					b.Fatal(err)
				}
				if in > 0 {
					break
				}
				if time.Since(start) > 30*time.Second {
					b.Fatalf("%s never entered", user)
				}
				time.Sleep(time.Millisecond)
			}
			lags = append(lags, time.Since(start))
		}
		sortDurations(lags)
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "median-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
	}
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// insertAudience saves an audience without computing it.
func (be *benchEnv) insertAudience(b *testing.B, def *Condition) *Audience {
	b.Helper()
	raw, _ := json.Marshal(def)
	a := &Audience{ID: id.New(Prefix), WorkspaceID: be.ws, DefinitionRaw: string(raw), Enabled: true, Version: 1}
	if err := be.db.Tx(context.Background(), func(tx *db.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO audiences (id, workspace_id, key, name, description, definition, enabled, windowed, size, status,
			version, computed_version, created_at, updated_at) VALUES (?, ?, ?, 'B', '', ?, TRUE, ?, 0, 'COMPUTING', 1, 0, ?, ?)`,
			a.ID, be.ws, "k"+a.ID[len(a.ID)-10:], a.DefinitionRaw, windowed(def), db.Now(), db.Now())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return a
}
