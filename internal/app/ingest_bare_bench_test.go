package app_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// BenchmarkIngestBareInsert is what BenchmarkIngestBatch is measured against: the same events (100
// per op, from the same generator) written by the same 8 clients straight into the events table of
// the same kind of database, one durable multi-row INSERT per op, with no server, no HTTP, no
// decoding, no usage counting. On PostgreSQL each client has a connection of its own (the database
// commits them side by side); on SQLite there is one writer, as in the server. Run both in one
// invocation, which runs them on SQLite and then on PostgreSQL (internal/testdb):
//
//	go test -run '^$' -bench 'IngestBatch$|IngestBareInsert' -benchtime 8s ./internal/app/
//
// JUNCTION_TEST_BACKENDS=postgres runs the PostgreSQL pair only.
func BenchmarkIngestBareInsert(b *testing.B) {
	const clients, perBatch = 8, 100
	ctx := context.Background()
	url := testdb.URL(b)
	setup, err := db.Open(ctx, url, db.Options{ReadConns: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer setup.Close()
	migs, err := db.LoadMigrations(migrations.FS, setup.Dialect())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := setup.Migrate(ctx, migs); err != nil {
		b.Fatal(err)
	}
	wsID, srcID, now := id.New("ws"), id.New("src"), db.Now()
	if err := setup.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			wsID, "Bench", "bench", "FREE", now, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, srcID, wsID, "javascript", "Bench", true, "{}", "[]", now, now)
		return err
	}); err != nil {
		b.Fatal(err)
	}

	// A pool of its own, with the server's durability: synchronous=FULL in WAL mode on SQLite,
	// synchronous_commit as the server has it on PostgreSQL.
	driver, dsn, conns := "sqlite3", "file:"+setup.Path()+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_txlock=immediate", 1
	if setup.Dialect() == db.Postgres {
		driver, dsn, conns = "pgx", url, clients
	}
	pool, err := sqlx.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxOpenConns(conns)
	pool.SetMaxIdleConns(conns)

	var sb strings.Builder
	sb.WriteString(`INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id,
		status, discard_reason, discard_message, received_at, timestamp, payload) VALUES `)
	for i := range perBatch {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	insert := pool.Rebind(sb.String())

	// The events of one op, decoded once: each op stores them again with new ids and messageIds,
	// so that the clients' time goes to the database.
	type row struct{ typ, event, userID, anonymousID, messageID, payload string }
	gen := newEventGen("bench")
	template := make([]row, perBatch)
	for i := range template {
		payload := gen.event(nil)
		var ev struct{ Type, Event, UserID, AnonymousID, MessageID string }
		if err := json.Unmarshal(payload, &ev); err != nil {
			b.Fatal(err)
		}
		template[i] = row{ev.Type, ev.Event, ev.UserID, ev.AnonymousID, ev.MessageID, string(payload)}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := make([]any, 0, perBatch*14)
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				args = args[:0]
				received := db.FormatTime(time.Now())
				op := "-" + strconv.FormatInt(i, 36)
				for _, r := range template {
					args = append(args, id.New("evt"), wsID, srcID, r.messageID+op, r.typ, r.event, r.userID, r.anonymousID,
						"ACCEPTED", nil, nil, received, received, r.payload)
				}
				if _, err := pool.ExecContext(ctx, insert, args...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
	var stored int
	if err := setup.Get(ctx, &stored, `SELECT COUNT(*) FROM events`); err != nil || stored != b.N*perBatch {
		b.Errorf("%d events stored (%v), want %d", stored, err, b.N*perBatch)
	}
}
