package warehouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// mustWarehouse creates a PostgreSQL database to load into, dropped when the test ends, and
// returns how to reach it; it skips the test when no server answers (TEST_DATABASE_URL's, or
// 127.0.0.1:5432).
func mustWarehouse(tb testing.TB) (Conn, *pgx.Conn) {
	tb.Helper()
	ctx := context.Background()
	server := os.Getenv("TEST_DATABASE_URL")
	if !strings.HasPrefix(server, "postgres") {
		server = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Skipf("no PostgreSQL server to load into (%v)", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "wh_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse(server)
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 5432
	}
	password, _ := u.User.Password()
	c := Conn{Host: u.Hostname(), Port: port, Database: name, User: u.User.Username(), Password: password, SSLMode: "disable"}
	u.Path = "/" + name
	check, err := pgx.Connect(ctx, u.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		check.Close(ctx)
		_, _ = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		admin.Close(ctx)
	})
	return c, check
}

func testBatch() *Batch {
	b := NewBatch(Selection{}, time.Now())
	for i := range 20 {
		b.Add("app", &Event{ID: "ev_" + strconv.Itoa(i), Type: "track", Payload: map[string]any{"messageId": "m" + strconv.Itoa(i), "userId": "u",
			"event": "Signed Up", "receivedAt": "2026-12-01T10:00:00Z", "properties": map[string]any{"n": float64(i)}}})
	}
	b.Add("app", &Event{Type: "identify", Payload: map[string]any{"messageId": "i", "userId": "u", "traits": map[string]any{"plan": "pro"}}})
	return b
}

// TestLoadCanceledHalfWay cancels a load after its first table is copied: the warehouse keeps
// nothing of it, its cursor included, and a load after it writes everything once.
func TestLoadCanceledHalfWay(t *testing.T) {
	c, check := mustWarehouse(t)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := connect(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, cursor, err := begin(ctx, conn, "", "dst_1")
	if err != nil || cursor != "" {
		t.Fatalf("begin: %q, %v", cursor, err)
	}
	l := newLoader(tx)
	tables := testBatch().Tables()
	if err := l.evolve(ctx, tables[0]); err != nil {
		t.Fatal(err)
	}
	if err := l.copy(ctx, tables[0]); err != nil {
		t.Fatal(err)
	}
	cancel() // the sync dies half way: its connection goes with it
	rest := &Batch{tables: map[string]*Table{}}
	for _, tb := range tables[1:] {
		rest.tables[tb.Schema+"."+tb.Name] = tb
	}
	if err := l.load(ctx, rest); err == nil {
		t.Fatal("a canceled load went on")
	}
	conn.Close(context.Background())

	var schemas int
	if err := check.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'app'`).Scan(&schemas); err != nil || schemas != 0 {
		t.Fatalf("the canceled load left its schema: %d, %v", schemas, err)
	}
	var cursors int
	if err := check.QueryRow(context.Background(), `SELECT count(*) FROM _junction._junction_syncs`).Scan(&cursors); err != nil || cursors != 0 {
		t.Fatalf("the canceled load left a cursor: %d, %v", cursors, err)
	}

	ctx = context.Background()
	conn, err = connect(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, _, err = begin(ctx, conn, "", "dst_1")
	if err != nil {
		t.Fatal(err)
	}
	l = newLoader(tx)
	if err := l.load(ctx, testBatch()); err != nil {
		t.Fatal(err)
	}
	if err := commit(ctx, tx, "", "dst_1", "whs_1", "ev_19"); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{"tracks": 20, "signed_up": 20, "identifies": 1, "users": 1} {
		var n int
		if err := check.QueryRow(ctx, `SELECT count(*) FROM app.`+table).Scan(&n); err != nil || n != want {
			t.Errorf("app.%s: %d rows, want %d (%v)", table, n, want, err)
		}
	}
	var got string
	if err := check.QueryRow(ctx, `SELECT last_event_id FROM _junction._junction_syncs WHERE destination_id = 'dst_1'`).Scan(&got); err != nil || got != "ev_19" {
		t.Errorf("cursor %q, %v", got, err)
	}
}
