package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/testdb"
	"github.com/junctioncdp/junction/migrations"
)

// benchBareDB opens a fresh database of the backend under test (internal/testdb: a SQLite file with
// the server's pragmas, or a PostgreSQL schema) with the server's schema, and one workspace and
// source to attach events to: the baseline of the ingest benchmarks.
func benchBareDB(b *testing.B) *db.DB {
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
	err = d.Tx(ctx, func(tx *db.Tx) error {
		now := db.Now()
		if _, err := tx.Exec(ctx, `INSERT INTO workspaces (id, name, slug, plan, created_at, updated_at) VALUES ('ws_bare', 'W', 'w', 'FREE', ?, ?)`, now, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, workspace_id, catalog_slug, name, enabled, settings, labels, created_at, updated_at)
			VALUES ('src_bare', 'ws_bare', 'node', 'S', TRUE, '{}', '[]', ?, ?)`, now, now)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchBareInsert stores the events of batch bodies in d: each event's JSON read once (for its
// messageId, type, event name and identities), 1,000 rows per transaction, multi-row INSERTs.
func benchBareInsert(b *testing.B, d *db.DB, bodies [][]byte) {
	b.Helper()
	ctx := context.Background()
	var rows [][]any
	flush := func() {
		err := d.Tx(ctx, func(tx *db.Tx) error {
			return tx.InsertRows(ctx, `INSERT INTO events (id, workspace_id, source_id, message_id, type, event_name, user_id, anonymous_id,
				status, received_at, timestamp, payload) VALUES `, 12, rows, "")
		})
		if err != nil {
			b.Fatal(err)
		}
		rows = rows[:0]
	}
	now := db.FormatTime(time.Now())
	for _, body := range bodies {
		var batch struct {
			Batch []json.RawMessage `json:"batch"`
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			b.Fatal(err)
		}
		for _, raw := range batch.Batch {
			var e struct {
				Type        string `json:"type"`
				Event       string `json:"event"`
				UserID      string `json:"userId"`
				AnonymousID string `json:"anonymousId"`
				MessageID   string `json:"messageId"`
			}
			if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&e); err != nil {
				b.Fatal(err)
			}
			rows = append(rows, []any{id.New("evt"), "ws_bare", "src_bare", e.MessageID, strings.ToUpper(e.Type), e.Event, e.UserID,
				e.AnonymousID, "ACCEPTED", now, now, string(raw)})
			if len(rows) == 1000 {
				flush()
			}
		}
	}
	if len(rows) > 0 {
		flush()
	}
}
