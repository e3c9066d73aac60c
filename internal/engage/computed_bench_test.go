package engage

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// BenchmarkComputedTraitPass measures one pass of a computed trait over every profile of a
// workspace (what a backfill and a scheduled recomputation do): 100,000 profiles and 1,000,000
// events by default (CT_BENCH_PROFILES, CT_BENCH_EVENTS_PER_PROFILE change them), half of them
// "Order Completed" spread over 60 days. The data is written straight into the tables.
//
//	go test -run '^$' -bench BenchmarkComputedTraitPass -benchtime 3x ./internal/engage/
func BenchmarkComputedTraitPass(b *testing.B) {
	profiles, per := 100_000, 10
	if v, err := strconv.Atoi(os.Getenv("CT_BENCH_PROFILES")); err == nil {
		profiles = v
	}
	if v, err := strconv.Atoi(os.Getenv("CT_BENCH_EVENTS_PER_PROFILE")); err == nil {
		per = v
	}
	ctx := context.Background()
	d := testdb.Open(b)
	migs, err := db.LoadMigrations(migrations.FS, d.Dialect())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Migrate(ctx, migs); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ws, src := id.New("ws"), id.New("src")
	start := time.Now()
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, 'W', ?, 'BUSINESS', ?, ?)`,
			ws, ws, db.Now(), db.Now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES (?, ?, 'javascript', 'S', TRUE, '{}', '[]', ?, ?)`, src, ws, db.Now(), db.Now())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	const perTx = 2000 // profiles written per transaction
	for p0 := 0; p0 < profiles; p0 += perTx {
		var prows, erows, perows [][]any
		for p := p0; p < min(p0+perTx, profiles); p++ {
			pid := fmt.Sprintf("%s_%08d", Prefix, p)
			prows = append(prows, []any{pid, ws, db.Time{Time: now}, db.Time{Time: now}})
			for i := range per {
				eid := fmt.Sprintf("%s_%08d_%03d", "evt", p, i)
				name := "Viewed"
				if i%2 == 0 {
					name = "Order Completed"
				}
				at := db.Time{Time: now.Add(-time.Duration((p*per+i)%(60*24)) * time.Hour)}
				erows = append(erows, []any{eid, ws, src, eid, "TRACK", name, "u" + strconv.Itoa(p), "ACCEPTED", at, at,
					`{"type":"track","event":"` + name + `","userId":"u` + strconv.Itoa(p) + `","properties":{"revenue":` + strconv.Itoa(i) + `}}`})
				perows = append(perows, []any{pid, eid})
			}
		}
		if err := d.Tx(ctx, func(tx *db.Tx) error {
			if err := tx.InsertRows(ctx, `INSERT INTO profiles (id, workspace_id, created_at, updated_at) VALUES `, 4, prows, ``); err != nil {
				return err
			}
			if err := tx.InsertRows(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, status, received_at,
				timestamp, payload) VALUES `, 11, erows, ``); err != nil {
				return err
			}
			return tx.InsertRows(ctx, `INSERT INTO profile_events (profile_id, event_id) VALUES `, 2, perows, ``)
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d profiles, %d events written in %v", profiles, profiles*per, time.Since(start).Round(time.Millisecond))

	s := New(d, nil, nil)
	tr := NewTraits(s, nil)
	tr.Now = func() time.Time { return now }
	for _, c := range []struct {
		name string
		def  string
	}{
		{"EventCounter", `{"kind":"EVENT_COUNTER","eventName":"Order Completed","conditions":[],"window":{"amount":30,"unit":"DAYS"}}`},
		{"EventCounterWithCondition", `{"kind":"EVENT_COUNTER","eventName":"Order Completed","conditions":[{"path":"revenue","operator":"GREATER_THAN","value":"3"}],"window":{"amount":30,"unit":"DAYS"}}`},
	} {
		trait := id.New(ComputedTraitPrefix)
		if err := d.Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO computed_traits (id, workspace_id, key, name, description, kind, definition, enabled, version,
				created_at, updated_at) VALUES (?, ?, ?, 'T', '', 'EVENT_COUNTER', ?, TRUE, 1, ?, ?)`,
				trait, ws, "t_"+trait[len(trait)-8:], c.def, db.Now(), db.Now())
			return err
		}); err != nil {
			b.Fatal(err)
		}
		// A backfill over every profile (the first writes every value), then the scheduled
		// recomputation's pass over the profiles holding one.
		for _, pass := range []Pass{Backfill, WindowPass} {
			b.Run(c.name+"/"+string(pass), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := d.Tx(ctx, func(tx *db.Tx) error {
						_, err := tx.Exec(ctx, `UPDATE computed_traits SET pass = ?, pass_cursor = '' WHERE id = ?`, pass, trait)
						return err
					}); err != nil {
						b.Fatal(err)
					}
					t0 := time.Now()
					if err := tr.Settle(ctx); err != nil {
						b.Fatal(err)
					}
					var n int
					if err := d.Get(ctx, &n, `SELECT COUNT(*) FROM computed_trait_values WHERE computed_trait_id = ?`, trait); err != nil {
						b.Fatal(err)
					}
					b.Logf("pass %d: %v, %d profiles with a value", i, time.Since(t0).Round(time.Millisecond), n)
				}
			})
		}
	}
}
