package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/id"
)

// ---------------------------------------------------------------------------------------------
// Helpers: a real PostgreSQL database to load into, made for the test and dropped after it.

// whServerURL is the PostgreSQL server the warehouse tests load into: TEST_DATABASE_URL's, or this
// machine's at 127.0.0.1:5432.
func whServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); strings.HasPrefix(u, "postgres") {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// whDB is a warehouse database of the test's own.
type whDB struct {
	name, host, port, user string
	conn                   *pgx.Conn
}

func whRandom() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// whNewDB creates a database to load into, dropped when the test ends. It skips the test when no
// PostgreSQL server answers.
func whNewDB(tb testing.TB) *whDB {
	tb.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, whServerURL())
	if err != nil {
		tb.Skipf("no PostgreSQL server to load into (%v)", err)
	}
	u, _ := url.Parse(whServerURL())
	w := &whDB{name: "wh_" + whRandom(), host: u.Hostname(), port: u.Port(), user: u.User.Username()}
	if w.port == "" {
		w.port = "5432"
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+w.name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if w.conn != nil {
			w.conn.Close(ctx)
		}
		_, _ = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+w.name+` WITH (FORCE)`)
		admin.Close(ctx)
	})
	u.Path = "/" + w.name
	if w.conn, err = pgx.Connect(ctx, u.String()); err != nil {
		tb.Fatal(err)
	}
	return w
}

// settings are the warehouse destination's settings for this database.
func (w *whDB) settings(extra map[string]any) map[string]any {
	port := 5432.0
	if w.port != "" {
		var p int
		for _, c := range w.port {
			p = p*10 + int(c-'0')
		}
		port = float64(p)
	}
	s := map[string]any{"host": w.host, "port": port, "database": w.name, "user": w.user, "password": "pw-" + w.name, "sslmode": "disable"}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// exec runs a statement in the warehouse.
func (w *whDB) exec(tb testing.TB, q string) {
	tb.Helper()
	if _, err := w.conn.Exec(context.Background(), q); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// count returns a table's rows, -1 when it does not exist.
func (w *whDB) count(tb testing.TB, table string) int {
	tb.Helper()
	var exists bool
	schema, name, _ := strings.Cut(table, ".")
	if err := w.conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2)`,
		schema, name).Scan(&exists); err != nil {
		tb.Fatal(err)
	}
	if !exists {
		return -1
	}
	var n int
	if err := w.conn.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{schema, name}.Sanitize()).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// columns returns a table's columns and their types.
func (w *whDB) columns(tb testing.TB, table string) map[string]string {
	tb.Helper()
	schema, name, _ := strings.Cut(table, ".")
	rows, err := w.conn.Query(context.Background(), `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, schema, name)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var c, t string
		if err := rows.Scan(&c, &t); err != nil {
			tb.Fatal(err)
		}
		out[c] = t
	}
	return out
}

// value reads one value of a query as text ("<null>" for NULL).
func (w *whDB) value(tb testing.TB, q string, args ...any) string {
	tb.Helper()
	var v *string
	if err := w.conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	if v == nil {
		return "<null>"
	}
	return *v
}

// warehouse creates a PostgreSQL warehouse destination and returns its id.
func (e *dlvEnv) warehouse(tb testing.TB, name string, settings map[string]any) string {
	tb.Helper()
	p := e.mutate(tb, "destinationCreate", "DestinationCreateInput", "destination { id kind category }",
		map[string]any{"workspaceId": e.wsID, "catalogId": "cat_postgres", "name": name, "settings": settings})
	if trkStr(p, "destination.kind") != "WAREHOUSE" || trkStr(p, "destination.category") != "Warehouse" {
		tb.Fatalf("a PostgreSQL destination is not a warehouse: %v", p)
	}
	return trkStr(p, "destination.id")
}

const whSyncFields = `id trigger status rowsLoaded tables { schema table rows } warnings errorType errorMessage startedAt finishedAt`

// syncNow syncs a warehouse and returns the sync.
func (e *dlvEnv) syncNow(tb testing.TB, destinationID string) map[string]any {
	tb.Helper()
	p := e.mutate(tb, "warehouseSyncNow", "WarehouseSyncNowInput", "sync { "+whSyncFields+" }", map[string]any{"destinationId": destinationID})
	return trkObj(p, "sync")
}

// tableRows maps "schema.table" to the rows a sync loaded there.
func whTableRows(sync map[string]any) map[string]int {
	out := map[string]int{}
	list, _ := sync["tables"].([]any)
	for _, t := range list {
		out[trkStr(t, "schema")+"."+trkStr(t, "table")] = int(trkPath(t, "rows").(float64))
	}
	return out
}

// whPipe is a workspace whose one source is connected to a warehouse on a database of its own.
type whPipe struct {
	w                 *whDB
	s                 *server
	e                 *dlvEnv
	srcID, key, dstID string
}

// whNewPipe starts a server (loopback allowed, as EGRESS_ALLOW would) with such a workspace; the
// warehouse has the database's settings and extra.
func whNewPipe(tb testing.TB, slug, sourceName string, extra map[string]any) *whPipe {
	tb.Helper()
	p := &whPipe{w: whNewDB(tb)}
	p.s = startServer(tb, allowLoopback)
	p.e = dlvNewEnv(tb, p.s, slug)
	p.srcID, p.key = p.e.source(tb, sourceName)
	p.dstID = p.e.warehouse(tb, "Warehouse", p.w.settings(extra))
	p.e.connect(tb, p.srcID, p.dstID, true)
	return p
}

// ---------------------------------------------------------------------------------------------

// TestWarehouseLoad loads every kind of call into a real PostgreSQL database in Segment's
// warehouse schema, then evolves the schema: a new property adds a column, a value of another
// type keeps the column's first type with a warning, long and reserved names are handled, and a
// sync with nothing new loads nothing.
func TestWarehouseLoad(t *testing.T) {
	p := whNewPipe(t, "whload", "Web App", nil)
	w, s, e, key, dstID := p.w, p.s, p.e, p.key, p.dstID

	long := strings.Repeat("veryLongPropertyName", 5)
	dlvTrack(t, s, key,
		map[string]any{"messageId": "t1", "userId": "u1", "event": "Order Completed", "sentAt": "2026-12-01T10:00:01Z", "timestamp": "2026-12-01T10:00:00Z", "properties": map[string]any{
			"orderId": "o1", "total": 10.5, "coupon": "SAVE", "shipping": map[string]any{"method": "post", "cost": 2},
			"items": []any{"a", "b"}, "user_id": "not me", "from": "reserved word", long: "long"},
			"context": map[string]any{"page": map[string]any{"url": "https://example.com/checkout"}, "ip": "203.0.113.9"}},
		map[string]any{"messageId": "t2", "anonymousId": "a1", "event": "Identifies", "properties": map[string]any{"x": 1}},
		map[string]any{"messageId": "i1", "type": "identify", "userId": "u1", "traits": map[string]any{"email": "u1@example.com", "plan": "free", "firstName": "Ada"}},
		map[string]any{"messageId": "i2", "type": "identify", "userId": "u1", "traits": map[string]any{"plan": "pro"}},
		map[string]any{"messageId": "p1", "type": "page", "userId": "u1", "name": "Home", "properties": map[string]any{"path": "/", "title": "Home"}},
		map[string]any{"messageId": "s1", "type": "screen", "userId": "u1", "name": "Main", "properties": map[string]any{"tab": "feed"}},
		map[string]any{"messageId": "g1", "type": "group", "userId": "u1", "groupId": "acme", "traits": map[string]any{"employees": 12}},
		map[string]any{"messageId": "al1", "type": "alias", "userId": "u1", "previousId": "a1"},
	)

	sync := e.syncNow(t, dstID)
	if sync["status"] != "SUCCEEDED" || sync["trigger"] != "MANUAL" || sync["finishedAt"] == nil {
		t.Fatalf("first sync: %v", sync)
	}
	got := whTableRows(sync)
	for table, want := range map[string]int{"web_app.tracks": 2, "web_app.order_completed": 1, "web_app._identifies": 1, "web_app.identifies": 2,
		"web_app.users": 1, "web_app.pages": 1, "web_app.screens": 1, "web_app.groups": 1, "web_app.aliases": 1} {
		if got[table] != want || w.count(t, table) != want {
			t.Errorf("%s: sync says %d rows, warehouse has %d, want %d", table, got[table], w.count(t, table), want)
		}
	}

	t.Run("Columns", func(t *testing.T) {
		cols := w.columns(t, "web_app.order_completed")
		for c, typ := range map[string]string{"id": "text", "received_at": "timestamp with time zone", "sent_at": "timestamp with time zone",
			"timestamp": "timestamp with time zone", "original_timestamp": "timestamp with time zone", "user_id": "text", "event": "text",
			"event_text": "text", "context_page_url": "text", "context_ip": "text", "order_id": "text", "total": "double precision",
			"shipping_method": "text", "shipping_cost": "double precision", "items": "text", "from": "text", "uuid_ts": "timestamp with time zone"} {
			if cols[c] != typ {
				t.Errorf("order_completed.%s is %q, want %q (columns %v)", c, cols[c], typ, cols)
			}
		}
		for c := range cols {
			if len(c) > 63 {
				t.Errorf("column %s is longer than PostgreSQL takes", c)
			}
		}
		if w.value(t, `SELECT user_id FROM web_app.order_completed`) != "u1" {
			t.Error("a property named user_id replaced the event's userId: Segment drops it")
		}
		if w.value(t, `SELECT event || '|' || event_text FROM web_app.order_completed`) != "order_completed|Order Completed" {
			t.Error("event and event_text")
		}
		if w.value(t, `SELECT items FROM web_app.order_completed`) != `["a","b"]` {
			t.Error("arrays are stored as their JSON")
		}
		longCols := 0
		for c := range cols {
			if strings.HasPrefix(c, "very_long_property_name") {
				longCols++
			}
		}
		if longCols != 1 {
			t.Errorf("the long property made %d columns", longCols)
		}
		if tc := w.columns(t, "web_app.tracks"); tc["order_id"] != "" || tc["event"] != "text" {
			t.Errorf("tracks holds no properties: %v", tc)
		}
		if w.value(t, `SELECT plan || '|' || email || '|' || first_name FROM web_app.users WHERE id = 'u1'`) != "pro|u1@example.com|Ada" {
			t.Error("users keeps the latest traits of each user")
		}
		if w.value(t, `SELECT previous_id FROM web_app.aliases`) != "a1" || w.value(t, `SELECT group_id FROM web_app.groups`) != "acme" ||
			w.value(t, `SELECT name || path FROM web_app.pages`) != "Home/" {
			t.Error("aliases, groups or pages")
		}
	})

	t.Run("Evolution", func(t *testing.T) {
		dlvTrack(t, s, key,
			map[string]any{"messageId": "t3", "userId": "u2", "event": "Order Completed", "properties": map[string]any{"orderId": "o2", "total": "lots", "giftWrap": true}},
			map[string]any{"messageId": "i3", "type": "identify", "userId": "u1", "traits": map[string]any{"plan": "team"}},
		)
		sync := e.syncNow(t, dstID)
		if sync["status"] != "SUCCEEDED" {
			t.Fatalf("sync: %v", sync)
		}
		cols := w.columns(t, "web_app.order_completed")
		if cols["gift_wrap"] != "boolean" || cols["total"] != "double precision" {
			t.Errorf("columns after evolution: %v", cols)
		}
		if v := w.value(t, `SELECT total::text FROM web_app.order_completed WHERE id = 't3'`); v != "<null>" {
			t.Errorf("a text value in a number column: %s", v)
		}
		warnings, _ := sync["warnings"].([]any)
		if len(warnings) != 1 || !strings.Contains(warnings[0].(string), "order_completed.total is double precision") {
			t.Errorf("warnings %v", warnings)
		}
		if w.count(t, "web_app.users") != 1 || w.value(t, `SELECT plan || email FROM web_app.users`) != "teamu1@example.com" {
			t.Error("users is upserted: one row per user, traits not sent again kept")
		}
		is := e.issueOf(t, dstID, "SCHEMA_CONFLICT")
		if is == nil {
			t.Error("a type conflict is a SCHEMA_CONFLICT health issue")
		}
	})

	t.Run("NothingNew", func(t *testing.T) {
		sync := e.syncNow(t, dstID)
		if sync["status"] != "SUCCEEDED" || trkPath(sync, "rowsLoaded").(float64) != 0 {
			t.Fatalf("sync: %v", sync)
		}
		if w.count(t, "web_app.tracks") != 3 || w.count(t, "web_app.order_completed") != 2 {
			t.Error("rows loaded twice")
		}
	})

	t.Run("History", func(t *testing.T) {
		d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Destination { kind warehouseSyncs(first: 2) { totalCount nodes { status rowsLoaded } pageInfo { hasNextPage endCursor } } } } }`,
			map[string]any{"id": dstID})
		if trkStr(d, "node.kind") != "WAREHOUSE" || trkPath(d, "node.warehouseSyncs.totalCount").(float64) != 3 {
			t.Fatalf("history: %v", d)
		}
		nodes := trkPath(d, "node.warehouseSyncs.nodes").([]any)
		if len(nodes) != 2 || trkPath(nodes[0], "rowsLoaded").(float64) != 0 || trkPath(nodes[1], "rowsLoaded").(float64) == 0 {
			t.Errorf("newest first: %v", nodes)
		}
		d = e.gql(t, `query($id: ID!, $after: String) { node(id: $id) { ... on Destination { warehouseSyncs(first: 2, after: $after) { nodes { rowsLoaded } } } } }`,
			map[string]any{"id": dstID, "after": trkStr(d, "node.warehouseSyncs.pageInfo.endCursor")})
		if nodes := trkPath(d, "node.warehouseSyncs.nodes").([]any); len(nodes) != 1 || trkPath(nodes[0], "rowsLoaded").(float64) != 11 {
			t.Errorf("second page: %v", nodes)
		}
		wh := e.webhook(t, "Hook", map[string]any{"url": "https://example.com/hook"}, true)
		d = e.gql(t, `query($id: ID!) { node(id: $id) { ... on Destination { kind warehouseSyncs { totalCount } } } }`, map[string]any{"id": wh})
		if trkStr(d, "node.kind") != "TOOL" || trkPath(d, "node.warehouseSyncs.totalCount").(float64) != 0 {
			t.Errorf("a tool: %v", d)
		}
		r := dlvPost(t, s, e.tok, `mutation($i: WarehouseSyncNowInput!) { warehouseSyncNow(input: $i) { sync { id } userErrors { field message } } }`,
			map[string]any{"i": map[string]any{"destinationId": wh}})
		if errs := trkPath(r.Data, "warehouseSyncNow.userErrors").([]any); len(errs) != 1 || trkStr(errs[0], "field") != "destinationId" {
			t.Errorf("syncing a tool: %s", r.Raw)
		}
	})
}

// TestWarehouseSyncKilledHalfWay makes a sync fail after it has copied some tables (the warehouse
// refuses a users row): nothing of it is loaded, and the next sync loads all of it exactly once.
func TestWarehouseSyncKilledHalfWay(t *testing.T) {
	p := whNewPipe(t, "whkill", "Backend", nil)
	w, s, e, key, dstID := p.w, p.s, p.e, p.key, p.dstID
	dlvTrack(t, s, key, map[string]any{"messageId": "a", "userId": "u1", "event": "Signed Up"},
		map[string]any{"messageId": "b", "type": "identify", "userId": "u1", "traits": map[string]any{"plan": "free"}})
	if sync := e.syncNow(t, dstID); sync["status"] != "SUCCEEDED" {
		t.Fatalf("first sync: %v", sync)
	}
	// The warehouse now refuses user u2: tracks, identifies and signed_up are copied before users
	// (tables load in name order), then the sync fails.
	w.exec(t, `ALTER TABLE backend.users ADD CONSTRAINT no_u2 CHECK (id <> 'u2')`)
	var events []map[string]any
	for i := range 50 {
		events = append(events, map[string]any{"messageId": "t" + string(rune('A'+i%26)) + string(rune('a'+i/26)), "userId": "u2", "event": "Signed Up"})
	}
	events = append(events, map[string]any{"messageId": "c", "type": "identify", "userId": "u2", "traits": map[string]any{"plan": "pro"}})
	dlvTrack(t, s, key, events...)
	cursor := w.value(t, `SELECT last_event_id FROM _junction._junction_syncs`)

	sync := e.syncNow(t, dstID)
	if sync["status"] != "FAILED" || sync["errorType"] != "LOAD_FAILED" || trkPath(sync, "rowsLoaded").(float64) != 0 ||
		!strings.Contains(trkStr(sync, "errorMessage"), "no_u2") {
		t.Fatalf("sync against a refusing warehouse: %v", sync)
	}
	if w.count(t, "backend.tracks") != 1 || w.count(t, "backend.signed_up") != 1 || w.count(t, "backend.identifies") != 1 {
		t.Errorf("a failed sync loaded rows: tracks %d, signed_up %d, identifies %d", w.count(t, "backend.tracks"), w.count(t, "backend.signed_up"), w.count(t, "backend.identifies"))
	}
	if got := w.value(t, `SELECT last_event_id FROM _junction._junction_syncs`); got != cursor {
		t.Errorf("the cursor moved on a failed sync: %s, was %s", got, cursor)
	}

	w.exec(t, `ALTER TABLE backend.users DROP CONSTRAINT no_u2`)
	sync = e.syncNow(t, dstID)
	if sync["status"] != "SUCCEEDED" || trkPath(sync, "rowsLoaded").(float64) != 50*2+2 {
		t.Fatalf("the next sync: %v", sync)
	}
	if w.count(t, "backend.tracks") != 51 || w.count(t, "backend.signed_up") != 51 || w.count(t, "backend.identifies") != 2 || w.count(t, "backend.users") != 2 {
		t.Errorf("after the retry: tracks %d, signed_up %d, identifies %d, users %d", w.count(t, "backend.tracks"), w.count(t, "backend.signed_up"),
			w.count(t, "backend.identifies"), w.count(t, "backend.users"))
	}
	if n := w.value(t, `SELECT count(DISTINCT id)::text FROM backend.tracks`); n != "51" {
		t.Errorf("duplicates in tracks: %s distinct", n)
	}
	if sync := e.syncNow(t, dstID); trkPath(sync, "rowsLoaded").(float64) != 0 {
		t.Errorf("a third sync loaded again: %v", sync)
	}
}

// whNotifications returns the types of the notifications of the holder of tok, newest first.
func whNotifications(tb testing.TB, s *server, tok string) []string {
	tb.Helper()
	d := dlvData(tb, dlvPost(tb, s, tok, `{ viewer { notifications(first: 50) { nodes { type area message } } } }`, nil))
	var out []string
	for _, n := range trkPath(d, "viewer.notifications.nodes").([]any) {
		if trkStr(n, "area") == "STORAGE" {
			out = append(out, trkStr(n, "type"))
		}
	}
	return out
}

func whCount(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestWarehouseHealth fails a warehouse's syncs for real and watches Health and the STORAGE
// notifications: a database that does not exist (this machine's PostgreSQL trusts every
// connection from 127.0.0.1, so a wrong password would be let in: an unknown database is the
// failure it really refuses), then a role without the right to create schemas, then the right
// settings, which resolve the issues.
func TestWarehouseHealth(t *testing.T) {
	w := whNewDB(t)
	s := startServer(t, allowLoopback)
	e := dlvNewEnv(t, s, "whhealth")
	member := e.member(t, "whhealth-member@example.com", "MEMBER")
	srcID, key := e.source(t, "Shop")
	missing := "wh_missing_" + whRandom()
	// The password is the database's name, so the server's error names it: the sync must mask it.
	dstID := e.warehouse(t, "Broken", w.settings(map[string]any{"database": missing, "password": missing}))
	e.connect(t, srcID, dstID, true)
	dlvTrack(t, s, key, map[string]any{"messageId": "x1", "userId": "u1", "event": "Viewed"})
	if got := whNotifications(t, s, member); whCount(got, "WAREHOUSE_CREATED") != 1 {
		t.Errorf("member's STORAGE notifications %v, want WAREHOUSE_CREATED", got)
	}

	sync := e.syncNow(t, dstID)
	if sync["status"] != "FAILED" || sync["errorType"] != "CONNECTION_FAILED" {
		t.Fatalf("sync to a missing database: %v", sync)
	}
	if msg := trkStr(sync, "errorMessage"); strings.Contains(msg, missing) || !strings.Contains(msg, dlvMask) {
		t.Errorf("the error is not masked of the password: %q", msg)
	}
	if is := e.issueOf(t, dstID, "CONNECTION_FAILED"); is == nil || is["status"] != "OPEN" {
		t.Fatalf("health issue: %v", is)
	}
	// Health lists warehouses in a section of their own, after sources and destinations, and so
	// does the overview graph.
	d := e.gql(t, `query($slug: String!) { workspace(slug: $slug) {
		healthIssues(targetKind: WAREHOUSE) { nodes { targetKind target { ... on Destination { id kind } } } }
		healthIssueGroups { targetKind errorType }
		overview { nodes { id kind type } } } }`, map[string]any{"slug": e.slug})
	issues := trkPath(d, "workspace.healthIssues.nodes").([]any)
	if len(issues) != 1 || trkStr(issues[0], "targetKind") != "WAREHOUSE" || trkStr(issues[0], "target.id") != dstID {
		t.Errorf("warehouse issues: %v", issues)
	}
	if groups := trkPath(d, "workspace.healthIssueGroups").([]any); len(groups) != 1 || trkStr(groups[0], "targetKind") != "WAREHOUSE" {
		t.Errorf("groups: %v", groups)
	}
	kinds := map[string]string{}
	for _, n := range trkPath(d, "workspace.overview.nodes").([]any) {
		kinds[trkStr(n, "id")] = trkStr(n, "kind") + "/" + trkStr(n, "type")
	}
	if kinds[dstID] != "WAREHOUSE/Warehouse" || kinds[srcID] != "SOURCE/WEBSITE" {
		t.Errorf("overview nodes: %v", kinds)
	}

	e.syncNow(t, dstID)
	if got := whNotifications(t, s, member); whCount(got, "WAREHOUSE_SYNC_FAILED") != 1 {
		t.Errorf("member's STORAGE notifications %v, want one WAREHOUSE_SYNC_FAILED for two failed syncs", got)
	}
	d = e.gql(t, `query($id: ID!) { node(id: $id) { ... on Destination { status } } }`, map[string]any{"id": dstID})
	if trkStr(d, "node.status") != "FAILING" {
		t.Errorf("a warehouse with a health issue is FAILING: %v", d)
	}

	role := "wh_ro_" + whRandom()
	w.exec(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { _, _ = w.conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	e.mutate(t, "destinationUpdate", "DestinationUpdateInput", "destination { id }",
		map[string]any{"destinationId": dstID, "settings": map[string]any{"database": w.name, "user": role}})
	if sync := e.syncNow(t, dstID); sync["status"] != "FAILED" || sync["errorType"] != "PERMISSION_DENIED" {
		t.Fatalf("sync as a role that may not create schemas: %v", sync)
	}
	if e.issueOf(t, dstID, "PERMISSION_DENIED") == nil {
		t.Error("no PERMISSION_DENIED issue")
	}

	e.mutate(t, "destinationUpdate", "DestinationUpdateInput", "destination { id }",
		map[string]any{"destinationId": dstID, "settings": map[string]any{"user": w.user}})
	if sync := e.syncNow(t, dstID); sync["status"] != "SUCCEEDED" || trkPath(sync, "rowsLoaded").(float64) != 2 {
		t.Fatalf("sync with the right settings: %v", sync)
	}
	for _, typ := range []string{"CONNECTION_FAILED", "PERMISSION_DENIED"} {
		if is := e.issueOf(t, dstID, typ); is == nil || is["status"] != "RESOLVED" {
			t.Errorf("%s after a good sync: %v", typ, is)
		}
	}

	e.mutate(t, "destinationDelete", "DestinationIdInput", "deletedDestinationId", map[string]any{"destinationId": dstID})
	if got := whNotifications(t, s, member); whCount(got, "WAREHOUSE_DELETED") != 1 {
		t.Errorf("member's STORAGE notifications %v, want WAREHOUSE_DELETED", got)
	}
}

// TestWarehouseSelectiveSync loads only the tables chosen, without the columns left out.
func TestWarehouseSelectiveSync(t *testing.T) {
	p := whNewPipe(t, "whselect", "App", map[string]any{"schemaPrefix": "seg_",
		"tables": []any{"tracks", "order_completed", "users"}, "excludedColumns": []any{"order_completed.coupon", "*.email"}})
	w, s, e, key, dstID := p.w, p.s, p.e, p.key, p.dstID
	dlvTrack(t, s, key,
		map[string]any{"messageId": "1", "userId": "u1", "event": "Order Completed", "properties": map[string]any{"coupon": "X", "total": 3, "email": "a@b.c"}},
		map[string]any{"messageId": "2", "userId": "u1", "event": "Cart Viewed", "properties": map[string]any{"items": 2}},
		map[string]any{"messageId": "3", "type": "identify", "userId": "u1", "traits": map[string]any{"email": "a@b.c", "plan": "pro"}},
		map[string]any{"messageId": "4", "type": "page", "userId": "u1", "name": "Home"},
	)
	if sync := e.syncNow(t, dstID); sync["status"] != "SUCCEEDED" {
		t.Fatalf("sync: %v", sync)
	}
	for table, want := range map[string]int{"seg_app.tracks": 2, "seg_app.order_completed": 1, "seg_app.users": 1,
		"seg_app.cart_viewed": -1, "seg_app.identifies": -1, "seg_app.pages": -1} {
		if got := w.count(t, table); got != want {
			t.Errorf("%s has %d rows, want %d (-1: no table)", table, got, want)
		}
	}
	if cols := w.columns(t, "seg_app.order_completed"); cols["coupon"] != "" || cols["email"] != "" || cols["total"] == "" {
		t.Errorf("order_completed columns %v", cols)
	}
	if cols := w.columns(t, "seg_app.users"); cols["email"] != "" || cols["plan"] == "" {
		t.Errorf("users columns %v", cols)
	}

	t.Run("Validation", func(t *testing.T) {
		r := dlvPost(t, s, e.tok, `mutation($i: DestinationCreateInput!) { destinationCreate(input: $i) { destination { id } userErrors { field code } } }`,
			map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_postgres", "name": "Bad",
				"settings": map[string]any{"host": "db.example.com/x", "database": "d", "user": "u", "sslmode": "maybe", "syncIntervalMinutes": 0.5,
					"schemaPrefix": "Bad Prefix", "tables": []any{"Order Completed"}, "excludedColumns": []any{"tracks.id", "nodot"}}}})
		errs, _ := trkPath(r.Data, "destinationCreate.userErrors").([]any)
		fields := map[string]bool{}
		for _, e := range errs {
			fields[trkStr(e, "field")] = true
		}
		for _, f := range []string{"settings.sslmode", "settings.syncIntervalMinutes"} {
			if !fields[f] {
				t.Errorf("no user error on %s: %s", f, r.Raw)
			}
		}
		r = dlvPost(t, s, e.tok, `mutation($i: DestinationCreateInput!) { destinationCreate(input: $i) { destination { id } userErrors { field code } } }`,
			map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_postgres", "name": "Bad",
				"settings": map[string]any{"host": "db.example.com/x", "database": "d", "user": "u",
					"schemaPrefix": "Bad Prefix", "tables": []any{"Order Completed"}, "excludedColumns": []any{"tracks.id", "nodot"}}}})
		errs, _ = trkPath(r.Data, "destinationCreate.userErrors").([]any)
		fields = map[string]bool{}
		for _, e := range errs {
			fields[trkStr(e, "field")] = true
		}
		for _, f := range []string{"settings.host", "settings.schemaPrefix", "settings.tables", "settings.excludedColumns"} {
			if !fields[f] {
				t.Errorf("no user error on %s: %s", f, r.Raw)
			}
		}
	})
}

// TestWarehouseEgress refuses a warehouse on a loopback address unless the operator allows it:
// when saved, and when dialed through a name.
func TestWarehouseEgress(t *testing.T) {
	s := startServer(t)
	e := dlvNewEnv(t, s, "whegress")
	r := dlvPost(t, s, e.tok, `mutation($i: DestinationCreateInput!) { destinationCreate(input: $i) { destination { id } userErrors { field code } } }`,
		map[string]any{"i": map[string]any{"workspaceId": e.wsID, "catalogId": "cat_postgres", "name": "Local",
			"settings": map[string]any{"host": "127.0.0.1", "database": "d", "user": "u", "sslmode": "disable"}}})
	errs, _ := trkPath(r.Data, "destinationCreate.userErrors").([]any)
	if len(errs) != 1 || trkStr(errs[0], "field") != "settings.host" || trkStr(errs[0], "code") != "NOT_ALLOWED" {
		t.Fatalf("a loopback host: %s", r.Raw)
	}
	// A name passes when saved and is refused when dialed, after DNS: this machine's name, where
	// it resolves to a loopback address.
	host, _ := os.Hostname()
	addrs, _ := net.LookupHost(host)
	if len(addrs) == 0 || !net.ParseIP(addrs[0]).IsLoopback() {
		t.Skipf("this machine's name %q does not resolve to a loopback address (%v)", host, addrs)
	}
	srcID, key := e.source(t, "S")
	dstID := e.warehouse(t, "Named", map[string]any{"host": host, "database": "d", "user": "u", "sslmode": "disable"})
	e.connect(t, srcID, dstID, true)
	dlvTrack(t, s, key, map[string]any{"messageId": "1", "userId": "u"})
	sync := e.syncNow(t, dstID)
	if sync["status"] != "FAILED" || sync["errorType"] != "CONNECTION_FAILED" || !strings.Contains(trkStr(sync, "errorMessage"), "refused") {
		t.Fatalf("a name of this host: %v", sync)
	}
}

// TestWarehouseIsolation: another workspace neither sees a warehouse's syncs nor syncs it, and a
// warehouse loads only the events of the sources connected to it.
func TestWarehouseIsolation(t *testing.T) {
	w := whNewDB(t)
	s := startServer(t, allowLoopback)
	a := dlvNewEnv(t, s, "whiso-a")
	b := dlvNewEnv(t, s, "whiso-b")
	srcA, keyA := a.source(t, "Web")
	_, keyB := b.source(t, "Web")
	dstA := a.warehouse(t, "A's", w.settings(nil))
	a.connect(t, srcA, dstA, true)
	dlvTrack(t, s, keyA, map[string]any{"messageId": "a1", "userId": "ua", "event": "Mine"})
	dlvTrack(t, s, keyB, map[string]any{"messageId": "b1", "userId": "ub", "event": "Theirs"})
	if sync := a.syncNow(t, dstA); sync["status"] != "SUCCEEDED" {
		t.Fatalf("sync: %v", sync)
	}
	if w.count(t, "web.tracks") != 1 || w.count(t, "web.theirs") != -1 || w.value(t, `SELECT user_id FROM web.tracks`) != "ua" {
		t.Error("a warehouse loaded events of a source not connected to it")
	}

	r := dlvPost(t, s, b.tok, `mutation($i: WarehouseSyncNowInput!) { warehouseSyncNow(input: $i) { sync { id } userErrors { message } } }`,
		map[string]any{"i": map[string]any{"destinationId": dstA}})
	if r.errorCode() != "NOT_FOUND" {
		t.Errorf("another workspace synced A's warehouse: %s", r.Raw)
	}
	d := dlvData(t, dlvPost(t, s, b.tok, `query($id: ID!) { node(id: $id) { ... on Destination { warehouseSyncs { totalCount } } } }`, map[string]any{"id": dstA}))
	if d["node"] != nil {
		t.Errorf("another workspace reads A's syncs: %v", d)
	}
	if n := trkPath(a.gql(t, `query($id: ID!) { node(id: $id) { ... on Destination { warehouseSyncs { totalCount } } } }`, map[string]any{"id": dstA}),
		"node.warehouseSyncs.totalCount"); n != 1.0 {
		t.Errorf("A's syncs: %v", n)
	}
}

// TestWarehouseSchedule runs the scheduler at chosen times: a warehouse is synced once its
// interval has passed since it was created, then since its last sync began; a disabled one never.
func TestWarehouseSchedule(t *testing.T) {
	p := whNewPipe(t, "whsched", "Site", map[string]any{"syncIntervalMinutes": 5})
	w, s, e, srcID, key, dstID := p.w, p.s, p.e, p.srcID, p.key, p.dstID
	offID := e.warehouse(t, "Off", w.settings(map[string]any{"schemaPrefix": "off_"}))
	e.mutate(t, "destinationDisable", "DestinationIdInput", "destination { id }", map[string]any{"destinationId": offID})
	e.connect(t, srcID, offID, true)
	dlvTrack(t, s, key, map[string]any{"messageId": "1", "userId": "u", "event": "Seen"})
	syncs := func(id string) []any {
		d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on Destination { warehouseSyncs { nodes { trigger status rowsLoaded } } } } }`, map[string]any{"id": id})
		return trkPath(d, "node.warehouseSyncs.nodes").([]any)
	}
	wh := s.App.Warehouses()
	wh.RunDue(time.Now().Add(4 * time.Minute))
	if n := len(syncs(dstID)); n != 0 {
		t.Fatalf("synced before its interval: %d syncs", n)
	}
	wh.RunDue(time.Now().Add(5*time.Minute + time.Second))
	got := syncs(dstID)
	if len(got) != 1 || trkStr(got[0], "trigger") != "SCHEDULE" || trkStr(got[0], "status") != "SUCCEEDED" || trkPath(got[0], "rowsLoaded").(float64) != 2 {
		t.Fatalf("scheduled sync: %v", got)
	}
	if w.count(t, "site.seen") != 1 {
		t.Error("the scheduled sync did not load")
	}
	wh.RunDue(time.Now().Add(5*time.Minute - time.Second))
	if n := len(syncs(dstID)); n != 1 {
		t.Errorf("synced again within its interval: %d syncs", n)
	}
	wh.RunDue(time.Now().Add(10*time.Minute + time.Second))
	if n := len(syncs(dstID)); n != 2 {
		t.Errorf("not synced again after its interval: %d syncs", n)
	}
	if n := len(syncs(offID)); n != 0 {
		t.Errorf("a disabled warehouse was synced: %d syncs", n)
	}

	t.Run("Interrupted", func(t *testing.T) {
		// A sync whose server stopped during it stays RUNNING until the scheduler closes it.
		ctx := context.Background()
		err := s.App.DB().Tx(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO warehouse_syncs (id, workspace_id, destination_id, trigger_kind, status, started_at, row_counts, warnings)
				VALUES (?, ?, ?, 'SCHEDULE', 'RUNNING', ?, '{}', '[]')`, id.New("whs"), e.wsID, offID, db.Time{Time: time.Now().Add(-2 * time.Hour)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wh.RunDue(time.Now())
		got := syncs(offID)
		if len(got) != 1 || trkStr(got[0], "status") != "FAILED" {
			t.Errorf("an interrupted sync: %v", got)
		}
	})
}
