package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestDeletionReaped: deleting a source or a workspace takes it out of sight at once and deletes
// what it held in the background, in small transactions, leaving other sources and workspaces
// alone.
func TestDeletionReaped(t *testing.T) {
	s := startServer(t, allowLoopback)
	ctx := context.Background()
	rc := dlvNewReceiver(t, func(dlvHit) dlvReply { return dlvReply{Status: http.StatusOK} })
	doomed, kept := dlvNewEnv(t, s, "reap-doomed"), dlvNewEnv(t, s, "reap-kept")
	type env struct {
		e              *dlvEnv
		src, key, dest string
		src2, key2     string
	}
	var envs []env
	for _, e := range []*dlvEnv{doomed, kept} {
		src, key := e.source(t, "Web")
		src2, key2 := e.source(t, "Server")
		dest := e.webhook(t, "Hook", map[string]any{"url": rc.URL}, true)
		e.connect(t, src, dest, true)
		e.connect(t, src2, dest, true)
		for i := range 30 {
			dlvTrack(t, s, key, map[string]any{"userId": fmt.Sprint("u-", i)})
			dlvTrack(t, s, key2, map[string]any{"userId": fmt.Sprint("v-", i)})
		}
		dlvTrack(t, s, key, map[string]any{"event": "no identity"}) // a discard: a health issue
		envs = append(envs, env{e, src, key, dest, src2, key2})
	}
	dlvSettle(t, s, envs[0].dest, envs[1].dest)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.App.DB().Get(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	keptEvents := count(`SELECT COUNT(*) FROM events WHERE workspace_id = ?`, kept.wsID)
	keptAttempts := count(`SELECT COUNT(*) FROM delivery_attempts WHERE workspace_id = ?`, kept.wsID)
	if keptEvents < 61 || keptAttempts < 60 {
		t.Fatalf("set-up: %d events, %d attempts", keptEvents, keptAttempts)
	}

	t.Run("Source", func(t *testing.T) {
		d := envs[0]
		d.e.mutate(t, "sourceDelete", "SourceIdInput", "deletedSourceId", map[string]any{"sourceId": d.src})
		// Gone from sight at once.
		if n := trkObj(d.e.gql(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": d.src}), "node"); n != nil {
			t.Errorf("the deleted source is still visible: %v", n)
		}
		r := trkSend(t, s, "/v1/track", map[string]any{"userId": "late", "event": "E"}, append(trkBasic(d.key), "X-Strict-Mode", "1")...)
		trkWantError(t, r, 401, "UNKNOWN_WRITE_KEY")
		// Its events and attempts go in the background.
		if err := s.App.Reaper().Once(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(`SELECT COUNT(*) FROM events WHERE source_id = ?`, d.src); n != 0 {
			t.Errorf("%d events of the deleted source left", n)
		}
		if n := count(`SELECT COUNT(*) FROM delivery_attempts WHERE source_id = ?`, d.src); n != 0 {
			t.Errorf("%d attempts of the deleted source left", n)
		}
		if n := count(`SELECT COUNT(*) FROM health_issues WHERE target_id = ?`, d.src); n != 0 {
			t.Errorf("%d health issues of the deleted source left", n)
		}
		if n := count(`SELECT COUNT(*) FROM sources WHERE id = ?`, d.src); n != 0 {
			t.Errorf("the source's row is left")
		}
		if n := count(`SELECT COUNT(*) FROM events WHERE source_id = ?`, d.src2); n != 30 {
			t.Errorf("the other source of the workspace has %d events, want 30", n)
		}
	})

	t.Run("Workspace", func(t *testing.T) {
		r := dlvPost(t, s, doomed.tok, `mutation($id: ID!, $slug: String!) { workspaceDelete(input: {workspaceId: $id, confirmSlug: $slug}) {
			deletedWorkspaceId userErrors { message } } }`, map[string]any{"id": doomed.wsID, "slug": doomed.slug})
		if trkStr(dlvData(t, r), "workspaceDelete.deletedWorkspaceId") != doomed.wsID {
			t.Fatalf("workspaceDelete: %s", r.Raw)
		}
		if w := trkObj(doomed.gql(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": doomed.wsID}), "node"); w != nil {
			t.Errorf("the deleted workspace is still visible: %v", w)
		}
		trkWantError(t, trkSend(t, s, "/v1/track", map[string]any{"userId": "late", "event": "E"}, append(trkBasic(envs[0].key2), "X-Strict-Mode", "1")...),
			401, "UNKNOWN_WRITE_KEY")
		// Its slug can be used again at once.
		doomed.mutate(t, "workspaceCreate", "WorkspaceCreateInput", "workspace { id }", map[string]any{"name": "Again", "slug": doomed.slug})

		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := s.App.Reaper().Once(ctx); err != nil {
				t.Fatal(err)
			}
			if count(`SELECT COUNT(*) FROM workspaces WHERE id = ?`, doomed.wsID) == 0 || time.Now().After(deadline) {
				break
			}
		}
		// No table keeps a row of the deleted workspace.
		tables := []string{"workspaces", "memberships", "resource_grants", "invitations", "access_tokens", "audit_events", "sources",
			"write_keys", "destinations", "connections", "events", "usage_daily", "mtu_identities", "mtu_links", "delivery_attempts",
			"health_issues", "notifications"}
		for _, table := range tables {
			col := "workspace_id"
			if table == "workspaces" {
				col = "id"
			}
			if n := count(`SELECT COUNT(*) FROM `+table+` WHERE `+col+` = ?`, doomed.wsID); n != 0 {
				t.Errorf("%s keeps %d rows of the deleted workspace", table, n)
			}
		}
		if n := count(`SELECT COUNT(*) FROM delivery_cursors WHERE destination_id = ?`, envs[0].dest); n != 0 {
			t.Errorf("the deleted destination's cursor is left")
		}
		// The other workspace kept everything.
		if n := count(`SELECT COUNT(*) FROM events WHERE workspace_id = ?`, kept.wsID); n != keptEvents {
			t.Errorf("the other workspace has %d events, had %d", n, keptEvents)
		}
		if n := count(`SELECT COUNT(*) FROM delivery_attempts WHERE workspace_id = ?`, kept.wsID); n < keptAttempts {
			t.Errorf("the other workspace has %d attempts, had %d", n, keptAttempts)
		}
	})
}

// TestRetention: Prune deletes what is past its retention: events after -event-retention,
// successful delivery attempts and their requests after -delivered-retention, failed ones after
// -failed-retention, and nothing younger.
func TestRetention(t *testing.T) {
	s := startServer(t, allowLoopback)
	ctx := context.Background()
	ok := dlvNewReceiver(t, func(dlvHit) dlvReply { return dlvReply{Status: http.StatusOK} })
	bad := dlvNewReceiver(t, func(dlvHit) dlvReply { return dlvReply{Status: http.StatusBadRequest} })
	e := dlvNewEnv(t, s, "retention-test")
	src, key := e.source(t, "Web")
	good, failing := e.webhook(t, "Good", map[string]any{"url": ok.URL}, true), e.webhook(t, "Bad", map[string]any{"url": bad.URL}, true)
	e.connect(t, src, good, true)
	e.connect(t, src, failing, true)
	for i := range 5 {
		dlvTrack(t, s, key, map[string]any{"userId": fmt.Sprint("r-", i)})
	}
	dlvSettle(t, s, good, failing)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.App.DB().Get(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	attempts := func(dest string) int {
		return count(`SELECT COUNT(*) FROM delivery_attempts WHERE destination_id = ?`, dest)
	}
	requests := func(dest string) int {
		return count(`SELECT COUNT(*) FROM delivery_requests WHERE destination_id = ?`, dest)
	}
	if attempts(good) != 5 || attempts(failing) != 5 || requests(good) == 0 || requests(failing) == 0 {
		t.Fatalf("set-up: %d and %d attempts", attempts(good), attempts(failing))
	}
	if _, err := s.App.Prune(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if attempts(good) != 5 || attempts(failing) != 5 || count(`SELECT COUNT(*) FROM events WHERE source_id = ?`, src) != 5 {
		t.Error("Prune deleted what is within its retention")
	}
	// A day and an hour later: the successes are past -delivered-retention (24h), nothing else.
	if _, err := s.App.Prune(ctx, time.Now().Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if attempts(good) != 0 || requests(good) != 0 {
		t.Errorf("successful attempts (%d) and requests (%d) kept past their retention", attempts(good), requests(good))
	}
	if attempts(failing) != 5 || requests(failing) == 0 || count(`SELECT COUNT(*) FROM events WHERE source_id = ?`, src) != 5 {
		t.Errorf("failures or events pruned before their retention: %d attempts", attempts(failing))
	}
	// Eight days later: everything.
	if _, err := s.App.Prune(ctx, time.Now().Add(8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if attempts(failing) != 0 || requests(failing) != 0 || count(`SELECT COUNT(*) FROM events WHERE source_id = ?`, src) != 0 {
		t.Errorf("left after their retention: %d failed attempts, %d requests", attempts(failing), requests(failing))
	}
}
