package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
)

// regWarehouseFields is what the tests read of a regulation's warehouses.
const regWarehouseFields = `id status rowsDeleted destinations { destinationId } warehouses { destinationId name status attempts rowsDeleted error destination { id } }`

// regWaitWarehouses waits for a regulation to finish and returns it with its warehouses.
func regWaitWarehouses(tb testing.TB, e *dlvEnv, id string) map[string]any {
	tb.Helper()
	var r map[string]any
	dlvWait(tb, "regulation "+id+" to finish", 30*time.Second, func() bool {
		r = trkObj(e.gql(tb, `query($id: ID!) { node(id: $id) { ... on Regulation { `+regWarehouseFields+` } } }`, map[string]any{"id": id}), "node")
		return r["status"] != "INITIALIZED" && r["status"] != "RUNNING"
	})
	return r
}

// regWarehouseOf returns the status of one warehouse in a regulation.
func regWarehouseOf(tb testing.TB, r map[string]any, destinationID string) map[string]any {
	tb.Helper()
	list, _ := r["warehouses"].([]any)
	for _, w := range list {
		if trkStr(w, "destinationId") == destinationID {
			return w.(map[string]any)
		}
	}
	tb.Fatalf("regulation %v has no status for warehouse %s", r, destinationID)
	return nil
}

// TestRegulationWarehouse deletes the subjects' rows already loaded into a real PostgreSQL
// warehouse (every table, users too), keeps the others', loads nothing of theirs that was still
// waiting for a sync, leaves another workspace's warehouse alone, and fails (three tries, then
// PARTIAL_SUCCESS or FAILED) where the warehouse cannot be reached, without quoting its password.
func TestRegulationWarehouse(t *testing.T) {
	w := whNewDB(t)
	s := startServer(t, allowLoopback, regNow, func(c *config.Config) { c.DeliveryBackoff = 10 * time.Millisecond })
	e := dlvNewEnv(t, s, "reg-wh")
	srcID, key := e.source(t, "Web App")
	dstID := e.warehouse(t, "Warehouse", w.settings(nil))
	e.connect(t, srcID, dstID, true)

	// Another workspace loads the same user ids into a warehouse of its own.
	other := dlvNewEnv(t, s, "reg-wh-other")
	ow := whNewDB(t)
	oSrc, oKey := other.source(t, "Web App")
	oDst := other.warehouse(t, "Other warehouse", ow.settings(nil))
	other.connect(t, oSrc, oDst, true)

	calls := func(prefix string) []map[string]any {
		return []map[string]any{
			{"messageId": prefix + "t1", "userId": "u-gone", "event": "Order Completed", "properties": map[string]any{"total": 5}},
			{"messageId": prefix + "t2", "userId": "u-stay", "event": "Order Completed", "properties": map[string]any{"total": 7}},
			{"messageId": prefix + "t3", "anonymousId": "a-gone", "event": "Signed Up"},
			{"messageId": prefix + "i1", "type": "identify", "userId": "u-gone", "anonymousId": "a-gone", "traits": map[string]any{"email": "Gone@Example.com"}},
			{"messageId": prefix + "i2", "type": "identify", "userId": "u-stay", "traits": map[string]any{"email": "stay@example.com"}},
			{"messageId": prefix + "p1", "type": "page", "userId": "u-gone", "name": "Home"},
			{"messageId": prefix + "p2", "type": "page", "anonymousId": "a-stay", "name": "Home", "context": map[string]any{"traits": map[string]any{"email": "gone@example.com"}}},
		}
	}
	dlvTrack(t, s, key, calls("a")...)
	dlvTrack(t, s, oKey, calls("o")...)
	if sy := e.syncNow(t, dstID); sy["status"] != "SUCCEEDED" {
		t.Fatalf("sync: %v", sy)
	}
	if sy := other.syncNow(t, oDst); sy["status"] != "SUCCEEDED" {
		t.Fatalf("other sync: %v", sy)
	}
	rows := func(w *whDB, table, where string) int {
		t.Helper()
		var n int
		if err := w.conn.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` WHERE `+where).Scan(&n); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		return n
	}
	if rows(w, "web_app.tracks", "user_id = 'u-gone'") != 1 || rows(w, "web_app.users", "id = 'u-gone'") != 1 {
		t.Fatal("the subject's rows were not loaded to begin with")
	}

	// Events of the subject still waiting for the next sync.
	dlvTrack(t, s, key,
		map[string]any{"messageId": "b1", "userId": "u-gone", "event": "Order Completed", "properties": map[string]any{"total": 9}},
		map[string]any{"messageId": "b2", "userId": "u-stay", "event": "Order Completed", "properties": map[string]any{"total": 11}})

	t.Run("UserID", func(t *testing.T) {
		reg := regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "USER_ID", "u-gone")
		r := regWaitWarehouses(t, e, trkStr(reg, "id"))
		wh := regWarehouseOf(t, r, dstID)
		if r["status"] != "FINISHED" || wh["status"] != "FINISHED" || trkInt(wh["attempts"]) != 1 || wh["error"] != nil ||
			trkStr(wh, "name") != "Warehouse" || trkStr(wh, "destination.id") != dstID {
			t.Fatalf("regulation: %v", r)
		}
		// tracks, order_completed, identifies, pages and users each had one row of u-gone.
		if got := trkInt(wh["rowsDeleted"]); got != 5 {
			t.Errorf("rows deleted in the warehouse: %d, want 5", got)
		}
		if list, _ := r["warehouses"].([]any); len(list) != 1 {
			t.Errorf("another workspace's warehouse is in the regulation: %v", list)
		}
		for _, table := range []string{"tracks", "order_completed", "identifies", "pages"} {
			if n := rows(w, "web_app."+table, "user_id = 'u-gone'"); n != 0 {
				t.Errorf("%s keeps %d rows of the subject", table, n)
			}
		}
		if rows(w, "web_app.users", "id = 'u-gone'") != 0 {
			t.Error("users keeps the subject")
		}
		if rows(w, "web_app.tracks", "user_id = 'u-stay'") != 1 || rows(w, "web_app.users", "id = 'u-stay'") != 1 ||
			rows(w, "web_app.signed_up", "anonymous_id = 'a-gone'") != 1 {
			t.Error("other subjects' rows went too")
		}
		// The next sync loads what was waiting, without the subject's event.
		sy := e.syncNow(t, dstID)
		if sy["status"] != "SUCCEEDED" || whTableRows(sy)["web_app.order_completed"] != 1 {
			t.Fatalf("sync after the deletion: %v", sy)
		}
		if rows(w, "web_app.order_completed", "user_id = 'u-gone'") != 0 || rows(w, "web_app.order_completed", "user_id = 'u-stay'") != 2 {
			t.Error("an event of the subject waiting for a sync was loaded after the deletion")
		}
		if rows(ow, "web_app.tracks", "user_id = 'u-gone'") != 1 || rows(ow, "web_app.users", "id = 'u-gone'") != 1 {
			t.Error("another workspace's warehouse lost the same user id")
		}
	})

	t.Run("AnonymousID", func(t *testing.T) {
		reg := regWantCreated(t, s, e.tok, e.wsID, "DELETE_ONLY", "ANONYMOUS_ID", "a-gone")
		r := regWaitWarehouses(t, e, trkStr(reg, "id"))
		if r["status"] != "FINISHED" || regWarehouseOf(t, r, dstID)["status"] != "FINISHED" {
			t.Fatalf("regulation: %v", r)
		}
		if list, _ := r["destinations"].([]any); len(list) != 0 {
			t.Errorf("the warehouse is also listed among the destinations (as NOT_SUPPORTED): %v", list)
		}
		if rows(w, "web_app.signed_up", "anonymous_id = 'a-gone'") != 0 || rows(w, "web_app.tracks", "anonymous_id = 'a-gone'") != 0 {
			t.Error("rows of the anonymous id stay")
		}
		if rows(w, "web_app.pages", "anonymous_id = 'a-stay'") != 1 {
			t.Error("another anonymous id's rows went")
		}
		if rows(ow, "web_app.signed_up", "anonymous_id = 'a-gone'") != 1 {
			t.Error("another workspace's warehouse lost the same anonymous id")
		}
	})

	t.Run("Email", func(t *testing.T) {
		reg := regWantCreated(t, s, e.tok, e.wsID, "SUPPRESS_WITH_DELETE", "EMAIL", "gone@example.com")
		r := regWaitWarehouses(t, e, trkStr(reg, "id"))
		if r["status"] != "FINISHED" {
			t.Fatalf("regulation: %v", r)
		}
		// The page of a-stay carried the address in context.traits.email, in another case.
		if rows(w, "web_app.pages", "anonymous_id = 'a-stay'") != 0 {
			t.Error("a row with the address in context_traits_email stays")
		}
		if rows(w, "web_app.users", "id = 'u-stay'") != 1 || rows(w, "web_app.identifies", "user_id = 'u-stay'") != 1 {
			t.Error("another address's rows went")
		}
	})

	t.Run("SyncUnderWay", func(t *testing.T) {
		// A sync that read the subject's event before the event log lost it holds the cursor's
		// lock while it loads: the deletion waits for its commit, then deletes what it loaded.
		tx, err := w.conn.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(t.Context()) }()
		var cursor string
		if err := tx.QueryRow(t.Context(), `SELECT last_event_id FROM _junction._junction_syncs WHERE destination_id = $1 FOR UPDATE`, dstID).Scan(&cursor); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), `INSERT INTO web_app.tracks (id, user_id) VALUES ('in-flight', 'u-race')`); err != nil {
			t.Fatal(err)
		}
		reg := regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "USER_ID", "u-race")
		read := func() map[string]any {
			return trkObj(e.gql(t, `query($id: ID!) { node(id: $id) { ... on Regulation { `+regWarehouseFields+` } } }`,
				map[string]any{"id": trkStr(reg, "id")}), "node")
		}
		warehouseStatus := func(r map[string]any) any {
			if list, _ := r["warehouses"].([]any); len(list) == 1 {
				return trkPath(list[0], "status")
			}
			return nil
		}
		var r map[string]any
		dlvWait(t, "the deletion in the warehouse to start", 20*time.Second, func() bool {
			r = read()
			return r["status"] != "INITIALIZED" && warehouseStatus(r) != nil
		})
		time.Sleep(200 * time.Millisecond)
		if r = read(); r["status"] != "RUNNING" || warehouseStatus(r) != "RUNNING" {
			t.Fatalf("the deletion did not wait for the sync under way: %v", r)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		r = regWaitWarehouses(t, e, trkStr(reg, "id"))
		if r["status"] != "FINISHED" || trkInt(regWarehouseOf(t, r, dstID)["rowsDeleted"]) != 1 {
			t.Fatalf("regulation: %v", r)
		}
		if rows(w, "web_app.tracks", "user_id = 'u-race'") != 0 {
			t.Error("the row the sync under way loaded stays")
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		// A second warehouse that works, and the first pointed at a database that does not exist.
		w2 := whNewDB(t)
		dst2 := e.warehouse(t, "Second", w2.settings(nil))
		e.connect(t, srcID, dst2, true)
		dlvTrack(t, s, key, map[string]any{"messageId": "c1", "userId": "u-late", "event": "Order Completed"})
		if sy := e.syncNow(t, dst2); sy["status"] != "SUCCEEDED" {
			t.Fatalf("sync: %v", sy)
		}
		e.mutate(t, "destinationUpdate", "DestinationUpdateInput", "destination { id }",
			map[string]any{"destinationId": dstID, "settings": map[string]any{"database": w.name + "_missing"}})
		reg := regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "USER_ID", "u-late")
		r := regWaitWarehouses(t, e, trkStr(reg, "id"))
		bad, good := regWarehouseOf(t, r, dstID), regWarehouseOf(t, r, dst2)
		if r["status"] != "PARTIAL_SUCCESS" || bad["status"] != "FAILED" || trkInt(bad["attempts"]) != 3 || good["status"] != "FINISHED" {
			t.Fatalf("regulation: %v", r)
		}
		msg := trkStr(bad, "error")
		if msg == "" || strings.Contains(msg, "pw-") || strings.Contains(msg, "u-late") {
			t.Errorf("the error %q is empty or quotes the password or the subject", msg)
		}
		if is := e.issueOf(t, dstID, "CONNECTION_FAILED"); is == nil || !strings.Contains(trkStr(is, "message"), "deleting a regulation's subjects failed") {
			t.Errorf("the failed deletion is not a health issue of the warehouse: %v", is)
		}
		if rows(w2, "web_app.order_completed", "user_id = 'u-late'") != 0 {
			t.Error("the warehouse that works kept the subject's row")
		}
	})
}
