package app_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junctioncdp/junction/internal/config"
	"github.com/junctioncdp/junction/internal/db"
)

// regFields is what the tests read of a regulation.
const regFields = `id type subjectType subjectCount subjects status rowsDeleted notBefore createdAt startedAt finishedAt canceledAt
	createdBy { id } viewerCanCancel destinations { destinationId name status attempts error destination { id } }`

// regCreate makes a regulation as the holder of tok and returns the payload.
func regCreate(tb testing.TB, s *server, tok, wsID, typ, subjectType string, subjects ...string) map[string]any {
	tb.Helper()
	d := dlvData(tb, dlvPost(tb, s, tok, `mutation($i: RegulationCreateInput!) { regulationCreate(input: $i) { regulation { `+regFields+` }
		userErrors { field message code } } }`,
		map[string]any{"i": map[string]any{"workspaceId": wsID, "type": typ, "subjectType": subjectType, "subjects": subjects}}))
	return trkObj(d, "regulationCreate")
}

// regWantCreated makes a regulation and wants it made.
func regWantCreated(tb testing.TB, s *server, tok, wsID, typ, subjectType string, subjects ...string) map[string]any {
	tb.Helper()
	p := regCreate(tb, s, tok, wsID, typ, subjectType, subjects...)
	if errs, _ := p["userErrors"].([]any); len(errs) > 0 || p["regulation"] == nil {
		tb.Fatalf("regulationCreate %s: %v", typ, p)
	}
	return trkObj(p, "regulation")
}

// regGet reads a regulation by node(id).
func regGet(tb testing.TB, s *server, tok, id string) map[string]any {
	tb.Helper()
	d := dlvData(tb, dlvPost(tb, s, tok, `query($id: ID!) { node(id: $id) { ... on Regulation { `+regFields+` } } }`, map[string]any{"id": id}))
	return trkObj(d, "node")
}

// regWaitStatus waits until a regulation has left INITIALIZED and RUNNING, and returns it.
func regWaitDone(tb testing.TB, s *server, tok, id string) map[string]any {
	tb.Helper()
	var r map[string]any
	dlvWait(tb, "regulation "+id+" to finish", 20*time.Second, func() bool {
		r = regGet(tb, s, tok, id)
		return r["status"] != "INITIALIZED" && r["status"] != "RUNNING"
	})
	return r
}

func regUserErrorCodes(p map[string]any) []string {
	var out []string
	errs, _ := p["userErrors"].([]any)
	for _, e := range errs {
		out = append(out, trkStr(e, "field")+":"+trkStr(e, "code"))
	}
	return out
}

// regLater keeps deletions waiting (they can be canceled meanwhile).
func regLater(c *config.Config) { c.RegulationDelay = time.Hour }

// regNow starts deletions at once.
func regNow(c *config.Config) { c.RegulationDelay = 0 }

func TestRegulations(t *testing.T) {
	s := startServer(t, regLater, func(c *config.Config) { c.RegulationMonthlySubjects = 30 })
	owner := dlvNewEnv(t, s, "reg-owner")
	admin := owner.member(t, "reg-admin@example.com", "ADMIN")
	member := owner.member(t, "reg-member@example.com", "MEMBER")

	t.Run("SuppressOnlyFinishesAtOnceAndKeepsHashesOnly", func(t *testing.T) {
		r := regWantCreated(t, s, owner.tok, owner.wsID, "SUPPRESS_ONLY", "USER_ID", "user-a", " user-a ", "user-b")
		if r["status"] != "FINISHED" || trkInt(r["subjectCount"]) != 2 || len(r["subjects"].([]any)) != 0 || r["finishedAt"] == nil {
			t.Fatalf("SUPPRESS_ONLY: %v", r)
		}
		if r["viewerCanCancel"] != false || trkStr(r, "createdBy.id") != owner.userID {
			t.Fatalf("SUPPRESS_ONLY: %v", r)
		}
		var clear int
		if err := s.App.DB().Get(t.Context(), &clear, `SELECT COUNT(*) FROM regulation_subjects WHERE subject IS NOT NULL`); err != nil || clear != 0 {
			t.Fatalf("subjects in clear: %d %v", clear, err)
		}
	})

	t.Run("DeletionWaitsAndShowsItsSubjects", func(t *testing.T) {
		for _, typ := range []string{"DELETE_INTERNAL", "DELETE_ONLY", "SUPPRESS_WITH_DELETE"} {
			r := regWantCreated(t, s, admin, owner.wsID, typ, "ANONYMOUS_ID", "anon-"+strings.ToLower(typ))
			if r["status"] != "INITIALIZED" || r["viewerCanCancel"] != true || r["startedAt"] != nil {
				t.Fatalf("%s: %v", typ, r)
			}
			if got := r["subjects"].([]any); len(got) != 1 || got[0] != "anon-"+strings.ToLower(typ) {
				t.Fatalf("%s subjects: %v", typ, got)
			}
			if nb := trkTime(t, r["notBefore"]); nb.Before(time.Now().Add(50 * time.Minute)) {
				t.Fatalf("%s notBefore %v: want about an hour from now", typ, nb)
			}
		}
	})

	t.Run("UnsuppressFinishesAtOnce", func(t *testing.T) {
		r := regWantCreated(t, s, owner.tok, owner.wsID, "UNSUPPRESS", "USER_ID", "user-b")
		if r["status"] != "FINISHED" {
			t.Fatalf("UNSUPPRESS: %v", r)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		for name, c := range map[string]struct {
			subjectType string
			subjects    []string
			want        string
		}{
			"NoSubjects":   {"USER_ID", []string{}, "subjects:REQUIRED"},
			"EmptySubject": {"USER_ID", []string{"  "}, "subjects:REQUIRED"},
			"NotAnEmail":   {"EMAIL", []string{"nobody"}, "subjects:INVALID"},
			"TooLong":      {"USER_ID", []string{strings.Repeat("x", 1025)}, "subjects:TOO_LONG"},
		} {
			t.Run(name, func(t *testing.T) {
				p := regCreate(t, s, owner.tok, owner.wsID, "SUPPRESS_ONLY", c.subjectType, c.subjects...)
				if got := regUserErrorCodes(p); len(got) != 1 || got[0] != c.want || p["regulation"] != nil {
					t.Fatalf("got %v, want %s", got, c.want)
				}
			})
		}
	})

	t.Run("MonthlyCap", func(t *testing.T) {
		// 2 + 3 subjects so far this month (UNSUPPRESS is free); the cap is 30.
		var subjects []string
		for i := range 26 {
			subjects = append(subjects, "cap-"+string(rune('a'+i)))
		}
		p := regCreate(t, s, owner.tok, owner.wsID, "SUPPRESS_ONLY", "USER_ID", subjects...)
		if got := regUserErrorCodes(p); len(got) != 1 || got[0] != "subjects:NOT_ALLOWED" {
			t.Fatalf("over the cap: %v", p)
		}
		regWantCreated(t, s, owner.tok, owner.wsID, "SUPPRESS_ONLY", "USER_ID", subjects[:15]...)
		regWantCreated(t, s, owner.tok, owner.wsID, "UNSUPPRESS", "USER_ID", subjects[:15]...)
	})

	t.Run("Rights", func(t *testing.T) {
		r := dlvPost(t, s, member, `mutation($i: RegulationCreateInput!) { regulationCreate(input: $i) { regulation { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": owner.wsID, "type": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjects": []string{"x"}}})
		if r.errorCode() != "FORBIDDEN" {
			t.Fatalf("member creates: %s", r.Raw)
		}
		d := dlvData(t, dlvPost(t, s, member, `query($slug: String!) { workspace(slug: $slug) { regulations(first: 50) { totalCount
			nodes { id status viewerCanCancel subjects } } } }`, map[string]any{"slug": owner.slug}))
		nodes := trkPath(d, "workspace.regulations.nodes").([]any)
		if trkInt(trkPath(d, "workspace.regulations.totalCount")) != len(nodes) || len(nodes) != 7 {
			t.Fatalf("member reads: %v", d)
		}
		for _, n := range nodes {
			if n.(map[string]any)["viewerCanCancel"] != false {
				t.Fatalf("member may cancel: %v", n)
			}
		}
	})

	t.Run("FilterAndPaging", func(t *testing.T) {
		d := owner.gql(t, `query($slug: String!) { workspace(slug: $slug) { regulations(first: 2, filter: {types: [SUPPRESS_ONLY, UNSUPPRESS], statuses: [FINISHED]}) {
			totalCount pageInfo { hasNextPage endCursor } nodes { id type } } } }`, map[string]any{"slug": owner.slug})
		c := trkObj(d, "workspace.regulations")
		if trkInt(c["totalCount"]) != 4 || trkPath(c, "pageInfo.hasNextPage") != true || len(c["nodes"].([]any)) != 2 {
			t.Fatalf("filtered: %v", c)
		}
		d = owner.gql(t, `query($slug: String!, $after: String) { workspace(slug: $slug) { regulations(first: 10, after: $after, filter: {types: [SUPPRESS_ONLY, UNSUPPRESS]}) {
			nodes { id type } } } }`, map[string]any{"slug": owner.slug, "after": trkStr(c, "pageInfo.endCursor")})
		if n := len(trkPath(d, "workspace.regulations.nodes").([]any)); n != 2 {
			t.Fatalf("second page: %v", d)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		r := regWantCreated(t, s, owner.tok, owner.wsID, "SUPPRESS_WITH_DELETE", "USER_ID", "cancel-me")
		q := `mutation($id: ID!) { regulationCancel(input: {regulationId: $id}) { regulation { ` + regFields + ` } userErrors { field message code } } }`
		if res := dlvPost(t, s, member, q, map[string]any{"id": r["id"]}); res.errorCode() != "FORBIDDEN" {
			t.Fatalf("member cancels: %s", res.Raw)
		}
		p := trkObj(dlvData(t, dlvPost(t, s, admin, q, map[string]any{"id": r["id"]})), "regulationCancel")
		c := trkObj(p, "regulation")
		if c["status"] != "CANCELED" || c["canceledAt"] == nil || len(c["subjects"].([]any)) != 0 || c["viewerCanCancel"] != false {
			t.Fatalf("canceled: %v", p)
		}
		// Its suppression went with it.
		d := owner.gql(t, `query($slug: String!) { workspace(slug: $slug) { suppressedSubjects(subject: "cancel-me") { totalCount } } }`,
			map[string]any{"slug": owner.slug})
		if trkInt(trkPath(d, "workspace.suppressedSubjects.totalCount")) != 0 {
			t.Fatalf("a canceled regulation still suppresses: %v", d)
		}
		p = trkObj(dlvData(t, dlvPost(t, s, admin, q, map[string]any{"id": r["id"]})), "regulationCancel")
		if got := regUserErrorCodes(p); len(got) != 1 || got[0] != "regulationId:NOT_ALLOWED" {
			t.Fatalf("canceled twice: %v", p)
		}
		fin := regWantCreated(t, s, owner.tok, owner.wsID, "SUPPRESS_ONLY", "USER_ID", "done")
		p = trkObj(dlvData(t, dlvPost(t, s, admin, q, map[string]any{"id": fin["id"]})), "regulationCancel")
		if got := regUserErrorCodes(p); len(got) != 1 || got[0] != "regulationId:NOT_ALLOWED" {
			t.Fatalf("finished one canceled: %v", p)
		}
	})

	t.Run("AuditTrailWithoutSubjects", func(t *testing.T) {
		events := acEvents(t, s, owner.tok, owner.slug, map[string]any{"types": []string{"REGULATION_CREATED", "REGULATION_CANCELED"}})
		if len(events) < 8 {
			t.Fatalf("audit trail: %d regulation events", len(events))
		}
		raw := acJSON(events)
		for _, subject := range []string{"user-a", "cancel-me", "anon-delete_only"} {
			if strings.Contains(raw, subject) {
				t.Fatalf("the audit trail names the subject %q: %s", subject, raw)
			}
		}
		if !strings.Contains(raw, `"REGULATION_CANCELED"`) || !strings.Contains(raw, `"subjectCount"`) {
			t.Fatalf("audit trail: %s", raw)
		}
	})

	t.Run("IsolatedBetweenWorkspaces", func(t *testing.T) {
		other := dlvNewEnv(t, s, "reg-other")
		r := regWantCreated(t, s, owner.tok, owner.wsID, "DELETE_INTERNAL", "USER_ID", "isolated")
		if n := regGet(t, s, other.tok, trkStr(r, "id")); n != nil {
			t.Fatalf("another workspace's owner reads it: %v", n)
		}
		res := dlvPost(t, s, other.tok, `mutation($id: ID!) { regulationCancel(input: {regulationId: $id}) { regulation { id } } }`,
			map[string]any{"id": r["id"]})
		if res.errorCode() != "NOT_FOUND" {
			t.Fatalf("another workspace's owner cancels: %s", res.Raw)
		}
		res = dlvPost(t, s, other.tok, `mutation($i: RegulationCreateInput!) { regulationCreate(input: $i) { regulation { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": owner.wsID, "type": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjects": []string{"x"}}})
		if res.errorCode() != "NOT_FOUND" {
			t.Fatalf("another workspace's owner creates: %s", res.Raw)
		}
		d := other.gql(t, `query($slug: String!) { workspace(slug: $slug) { regulations { totalCount } suppressedSubjects { totalCount } } }`,
			map[string]any{"slug": other.slug})
		if trkInt(trkPath(d, "workspace.regulations.totalCount")) != 0 || trkInt(trkPath(d, "workspace.suppressedSubjects.totalCount")) != 0 {
			t.Fatalf("another workspace sees: %v", d)
		}
	})

	t.Run("HTTPAPI", func(t *testing.T) {
		_, secret := acCreateToken(t, s, owner.tok, owner.wsID, "privacy-bot", "ADMIN")
		_, readOnly := acCreateToken(t, s, owner.tok, owner.wsID, "reader", "MEMBER")
		send := func(method, path, tok string, body any) (int, map[string]any) {
			var rd *bytes.Reader
			if body != nil {
				b, _ := json.Marshal(body)
				rd = bytes.NewReader(b)
			} else {
				rd = bytes.NewReader(nil)
			}
			headers := []string{"Content-Type", "application/json"}
			if tok != "" {
				headers = append(headers, "Authorization", "Bearer "+tok)
			}
			res := s.do(t, method, path, rd, headers...)
			var out map[string]any
			_ = json.Unmarshal([]byte(res.Raw), &out)
			return res.Status, out
		}
		status, out := send("POST", "/v1/regulations", secret, map[string]any{"regulationType": "DELETE_INTERNAL", "subjectType": "USER_ID", "subjectIds": []string{"api-user"}})
		if status != http.StatusCreated || trkStr(out, "data.regulation.status") != "INITIALIZED" || trkStr(out, "data.regulation.workspaceId") != owner.wsID {
			t.Fatalf("POST: %d %v", status, out)
		}
		id := trkStr(out, "data.regulation.id")
		if status, out = send("GET", "/v1/regulations/"+id, readOnly, nil); status != http.StatusOK || trkStr(out, "data.regulation.id") != id {
			t.Fatalf("GET: %d %v", status, out)
		}
		if status, _ = send("POST", "/v1/regulations", readOnly, map[string]any{"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": []string{"x"}}); status != http.StatusForbidden {
			t.Fatalf("POST with a MEMBER token: %d", status)
		}
		if status, out = send("POST", "/v1/regulations", secret, map[string]any{"regulationType": "SUPPRESS_ONLY", "subjectType": "PHONE", "subjectIds": []string{"x"}}); status != http.StatusUnprocessableEntity ||
			trkStr(out["errors"].([]any)[0], "field") != "subjectType" {
			t.Fatalf("POST invalid: %d %v", status, out)
		}
		if status, _ = send("POST", "/v1/regulations", "", map[string]any{"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": []string{"x"}}); status != http.StatusUnauthorized {
			t.Fatalf("POST anonymous: %d", status)
		}
		if status, _ = send("GET", "/v1/regulations/reg_01jzzzzzzzzzzzzzzzzzzzzzzz", secret, nil); status != http.StatusNotFound {
			t.Fatalf("GET unknown: %d", status)
		}
		if status, out = send("DELETE", "/v1/regulations/"+id, secret, nil); status != http.StatusOK || trkStr(out, "data.regulation.status") != "CANCELED" {
			t.Fatalf("DELETE: %d %v", status, out)
		}
		if status, _ = send("DELETE", "/v1/regulations/"+id, secret, nil); status != http.StatusConflict {
			t.Fatalf("DELETE again: %d", status)
		}
		// The tracking API still answers beside it.
		_, key := owner.source(t, "after-api")
		dlvTrack(t, s, key, map[string]any{"userId": "someone"})
	})
}

// regStoredEvents lists a source's events as the debugger shows them (up to 100).
func regStoredEvents(tb testing.TB, e *dlvEnv, sourceID string) []map[string]any {
	tb.Helper()
	d := e.gql(tb, `query($id: ID!) { node(id: $id) { ... on Source { recentEvents(first: 100) { nodes {
		id type event userId anonymousId status discardReason discardMessage payload } } } } }`, map[string]any{"id": sourceID})
	var out []map[string]any
	for _, n := range trkPath(d, "node.recentEvents.nodes").([]any) {
		out = append(out, n.(map[string]any))
	}
	return out
}

func TestSuppression(t *testing.T) {
	s := startServer(t, regLater, allowLoopback)
	e := dlvNewEnv(t, s, "sup-owner")
	web, key := e.source(t, "Web")
	server, serverKey := e.source(t, "Server")
	hook := newReceiver(t)
	dest := e.webhook(t, "Hook", map[string]any{"url": hook.srv.URL + "/hook"}, true)
	e.connect(t, web, dest, true)

	regWantCreated(t, s, e.tok, e.wsID, "SUPPRESS_ONLY", "USER_ID", "sup-user")
	regWantCreated(t, s, e.tok, e.wsID, "SUPPRESS_WITH_DELETE", "ANONYMOUS_ID", "sup-anon")
	regWantCreated(t, s, e.tok, e.wsID, "SUPPRESS_ONLY", "EMAIL", "Sup-Person@Example.com")

	t.Run("RefusedAtIngestWithTheRealClient", func(t *testing.T) {
		out := runNode(t, "suppress.mjs", s.URL, key, "sup-user", "sup-anon", "sup-person@example.com", "free-user")
		if !strings.Contains(out, `"200":6`) {
			t.Fatalf("suppress.mjs: %s", out)
		}
		events := regStoredEvents(t, e, web)
		var suppressed, accepted int
		for _, ev := range events {
			switch {
			case ev["discardReason"] == "SUPPRESSED":
				suppressed++
				if ev["status"] != "DISCARDED" || ev["userId"] != nil || ev["anonymousId"] != nil || acJSON(ev["payload"]) != "{}" {
					t.Errorf("a suppressed event keeps data: %v", ev)
				}
			case ev["status"] == "ACCEPTED" && ev["userId"] == "free-user":
				accepted++
			default:
				t.Errorf("unexpected event: %v", ev)
			}
		}
		if suppressed != 4 || accepted != 2 {
			t.Fatalf("suppressed %d (want 4), accepted %d (want 2): %v", suppressed, accepted, events)
		}
		// Only the free subject's events reach the destination.
		dlvWait(t, "the free subject's events at the webhook", 10*time.Second, func() bool { return len(hook.all()) >= 2 })
		dlvSettle(t, s, dest)
		for _, req := range hook.all() {
			if bytes.Contains(req.body, []byte("sup-")) || !bytes.Contains(req.body, []byte("free-user")) {
				t.Fatalf("the webhook got %s", req.body)
			}
		}
		if len(hook.all()) != 2 {
			t.Fatalf("the webhook got %d requests, want 2", len(hook.all()))
		}
		for _, needle := range []string{"private note of sup-user", "Suppressed Person", "Private Page"} {
			if bytes.Contains(storedBytes(t, s), []byte(needle)) {
				t.Fatalf("the database holds %q of a suppressed subject", needle)
			}
		}
	})

	t.Run("OnEverySourceOverHTTP", func(t *testing.T) {
		dlvTrack(t, s, serverKey, map[string]any{"userId": "sup-user", "properties": map[string]any{"x": 1}}, map[string]any{"userId": "free-2"})
		var reasons []string
		for _, ev := range regStoredEvents(t, e, server) {
			reasons = append(reasons, trkStr(ev, "status")+":"+trkStr(ev, "discardReason"))
		}
		if strings.Join(reasons, ",") != "ACCEPTED:,DISCARDED:SUPPRESSED" && strings.Join(reasons, ",") != "DISCARDED:SUPPRESSED,ACCEPTED:" {
			t.Fatalf("server source: %v", reasons)
		}
	})

	t.Run("NoHealthIssueForSuppressedEvents", func(t *testing.T) {
		time.Sleep(1200 * time.Millisecond) // health hears commits once a second
		for _, is := range e.issues(t, "first: 50, status: [OPEN, ACKNOWLEDGED, RESOLVED]") {
			if is["errorType"] == "SUPPRESSED" {
				t.Fatalf("a health issue for suppressed events: %v", is)
			}
		}
	})

	t.Run("ListedByHashAndFound", func(t *testing.T) {
		d := e.gql(t, `query($slug: String!) { workspace(slug: $slug) {
			all: suppressedSubjects(first: 10) { totalCount nodes { subjectType subjectHash regulation { id type } createdAt } }
			byEmail: suppressedSubjects(subject: "SUP-PERSON@example.com") { totalCount nodes { subjectType } }
			byUser: suppressedSubjects(subjectType: USER_ID, subject: "sup-user") { totalCount }
			wrongType: suppressedSubjects(subjectType: ANONYMOUS_ID, subject: "sup-user") { totalCount } } }`, map[string]any{"slug": e.slug})
		w := trkObj(d, "workspace")
		if trkInt(trkPath(w, "all.totalCount")) != 3 || trkInt(trkPath(w, "byEmail.totalCount")) != 1 ||
			trkInt(trkPath(w, "byUser.totalCount")) != 1 || trkInt(trkPath(w, "wrongType.totalCount")) != 0 {
			t.Fatalf("suppressedSubjects: %v", w)
		}
		raw := acJSON(w)
		if strings.Contains(raw, "sup-user") || strings.Contains(raw, "sup-person") {
			t.Fatalf("suppressedSubjects shows an identifier: %s", raw)
		}
	})

	t.Run("UnsuppressLiftsIt", func(t *testing.T) {
		regWantCreated(t, s, e.tok, e.wsID, "UNSUPPRESS", "USER_ID", "sup-user")
		dlvTrack(t, s, serverKey, map[string]any{"userId": "sup-user", "messageId": "after-unsuppress"})
		found := false
		for _, ev := range regStoredEvents(t, e, server) {
			if ev["userId"] == "sup-user" && ev["status"] == "ACCEPTED" {
				found = true
			}
		}
		if !found {
			t.Fatal("an unsuppressed subject's event was not accepted")
		}
	})

	t.Run("OtherWorkspacesUnaffected", func(t *testing.T) {
		other := dlvNewEnv(t, s, "sup-other")
		src, k := other.source(t, "Other")
		dlvTrack(t, s, k, map[string]any{"anonymousId": "sup-anon"})
		evs := regStoredEvents(t, other, src)
		if len(evs) != 1 || evs[0]["status"] != "ACCEPTED" {
			t.Fatalf("another workspace's event of the same id: %v", evs)
		}
	})
}

// regDatabaseBytes returns what the database holds once deleted rows can no longer linger: on
// SQLite the server is stopped, the write-ahead log checkpointed and the file vacuumed before it
// is read; on PostgreSQL every row of every table in text form (storedBytes).
func regDatabaseBytes(t *testing.T, s *server) []byte {
	t.Helper()
	if s.App.DB().Dialect() != db.SQLite {
		return storedBytes(t, s)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", s.App.DB().Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`PRAGMA wal_checkpoint(TRUNCATE)`, `VACUUM`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	return storedBytes(t, s)
}

func TestRegulationDeletion(t *testing.T) {
	s := startServer(t, regNow, allowLoopback)
	e := dlvNewEnv(t, s, "del-owner")
	e.gql(t, `mutation($i: WorkspacePlanUpdateInput!) { workspacePlanUpdate(input: $i) { workspace { id } } }`,
		map[string]any{"i": map[string]any{"workspaceId": e.wsID, "plan": "BUSINESS"}})
	web, key := e.source(t, "Web")
	plan := trkStr(e.mutate(t, "trackingPlanCreate", "TrackingPlanCreateInput", "trackingPlan { id }",
		map[string]any{"workspaceId": e.wsID, "name": "Shop"}), "trackingPlan.id")
	e.mutate(t, "trackingPlanRulesUpsert", "TrackingPlanRulesUpsertInput", "count", map[string]any{"planId": plan, "rules": []any{
		map[string]any{"type": "TRACK", "eventName": "Order Completed", "properties": `{"type":"object","required":["order_id"]}`}}})
	e.mutate(t, "trackingPlanConnectSource", "TrackingPlanSourceInput", "trackingPlan { id }", map[string]any{"planId": plan, "sourceId": web})
	hook := newReceiver(t)
	dest := e.webhook(t, "Hook", map[string]any{"url": hook.srv.URL + "/hook"}, true)
	e.connect(t, web, dest, true)
	other := dlvNewEnv(t, s, "del-other")
	otherSrc, otherKey := other.source(t, "Other")

	const subject, email = "del-subject-7f3a9c", "del-person-51b2@example.com"
	dlvTrack(t, s, key,
		map[string]any{"userId": subject, "event": "Order Completed", "properties": map[string]any{"total": 3}}, // a violation, with a sample
		map[string]any{"type": "identify", "userId": subject, "traits": map[string]any{"name": "Deleted Person"}},
		map[string]any{"type": "page", "userId": subject, "name": "Profile"},
		map[string]any{"type": "identify", "userId": "email-user", "traits": map[string]any{"email": "Del-Person-51B2@Example.com"}},
		map[string]any{"userId": "keep-user", "event": "Order Completed", "properties": map[string]any{"order_id": "o-1"}},
		map[string]any{"type": "identify", "userId": "keep-user"})
	// The same ids in another workspace are not its to delete.
	dlvTrack(t, s, otherKey, map[string]any{"userId": subject, "event": "Elsewhere"})

	dlvWait(t, "6 events at the webhook", 15*time.Second, func() bool { return hook.events("webhook") >= 6 || len(hook.all()) >= 6 })
	dlvSettle(t, s, dest)
	dlvWait(t, "a violation sample", 10*time.Second, func() bool {
		var n int
		_ = s.App.DB().Get(t.Context(), &n, `SELECT COUNT(*) FROM violation_samples`)
		return n > 0
	})
	usage := func() string {
		d := e.gql(t, `query($slug: String!, $m: String!) { workspace(slug: $slug) { usage(month: $m) { apiCalls mtus } } }`,
			map[string]any{"slug": e.slug, "m": trkMonth()})
		return acJSON(trkObj(d, "workspace.usage"))
	}
	before := usage()
	if !bytes.Contains(storedBytes(t, s), []byte(subject)) || !bytes.Contains(storedBytes(t, s), []byte("Deleted Person")) {
		t.Fatal("the subject's data is not in the database to begin with")
	}

	byUser := regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "USER_ID", subject)
	byEmail := regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "EMAIL", email)
	for _, r := range []map[string]any{byUser, byEmail} {
		done := regWaitDone(t, s, e.tok, trkStr(r, "id"))
		if done["status"] != "FINISHED" || trkInt(done["rowsDeleted"]) == 0 || len(done["subjects"].([]any)) != 0 || done["startedAt"] == nil {
			t.Fatalf("deletion: %v", done)
		}
		if len(done["destinations"].([]any)) != 0 {
			t.Fatalf("DELETE_INTERNAL went to destinations: %v", done)
		}
	}

	// What is not the subjects' stays; usage already counted stays.
	var left []string
	for _, ev := range regStoredEvents(t, e, web) {
		left = append(left, trkStr(ev, "userId"))
	}
	if strings.Join(left, ",") != "keep-user,keep-user" {
		t.Fatalf("events left: %v", left)
	}
	if after := usage(); after != before {
		t.Fatalf("usage changed: %s, was %s", after, before)
	}
	if n := len(regStoredEvents(t, other, otherSrc)); n != 1 {
		t.Fatalf("another workspace's event of the same user id: %d left", n)
	}

	// The other workspace forgets its own copy with its own request; then nothing is left.
	regWaitDone(t, s, other.tok, trkStr(regWantCreated(t, s, other.tok, other.wsID, "DELETE_INTERNAL", "USER_ID", subject), "id"))

	stored := regDatabaseBytes(t, s)
	for _, needle := range []string{subject, "Deleted Person", email, "Del-Person-51B2@Example.com"} {
		if i := bytes.Index(stored, []byte(needle)); i >= 0 {
			t.Fatalf("the database still holds %q: …%q…", needle, stored[max(0, i-200):min(len(stored), i+100)])
		}
	}
	if logs := s.Logs.String(); strings.Contains(logs, subject) || strings.Contains(logs, email) {
		t.Fatal("the server's log names a subject")
	}
}

func TestRegulationDestinations(t *testing.T) {
	s := startServer(t, regNow, allowLoopback, func(c *config.Config) { c.DeliveryBackoff = 10 * time.Millisecond })
	e := dlvNewEnv(t, s, "dst-owner")
	web, _ := e.source(t, "Web")
	hook, vendor, broken := newReceiver(t), newReceiver(t), httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(broken.Close)
	dest := func(catalog, name string, settings map[string]any) string {
		id := trkStr(e.mutate(t, "destinationCreate", "DestinationCreateInput", "destination { id }",
			map[string]any{"workspaceId": e.wsID, "catalogId": catalog, "name": name, "settings": settings, "enabled": true}), "destination.id")
		e.connect(t, web, id, true)
		return id
	}
	hookID := dest("cat_webhook", "Hook", map[string]any{"url": hook.srv.URL + "/hook", "sharedSecret": "hook-secret-123"})
	segID := dest("cat_segment", "Forward", map[string]any{"writeKey": "fwd-key-123", "endpoint": vendor.srv.URL + "/segment"})
	ampID := dest("cat_amplitude", "Amplitude", map[string]any{"apiKey": "amp-key-123", "secretKey": "amp-secret-123",
		"deletionEndpoint": vendor.srv.URL + "/amplitude/deletions"})
	mpID := dest("cat_mixpanel", "Mixpanel", map[string]any{"apiSecret": "mp-secret-123", "projectToken": "mp-token-123",
		"gdprToken": "mp-oauth-123", "deletionEndpoint": vendor.srv.URL + "/mixpanel/deletions"})
	ga4ID := dest("cat_google-analytics-4", "GA4", map[string]any{"measurementId": "G-TEST123", "apiSecret": "ga4-secret-123"})
	brokenID := dest("cat_webhook", "Broken Hook", map[string]any{"url": broken.URL + "/hook"})
	// Not connected to any source: not asked.
	e.mutate(t, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": e.wsID, "catalogId": "cat_webhook", "name": "Lonely", "settings": map[string]any{"url": hook.srv.URL + "/lonely"}, "enabled": true})

	const subject = "dst-subject-42c7"
	r := regWaitDone(t, s, e.tok, trkStr(regWantCreated(t, s, e.tok, e.wsID, "DELETE_ONLY", "USER_ID", subject), "id"))
	if r["status"] != "PARTIAL_SUCCESS" {
		t.Fatalf("overall: %v", r)
	}
	byID := map[string]map[string]any{}
	for _, d := range r["destinations"].([]any) {
		byID[trkStr(d, "destinationId")] = d.(map[string]any)
	}
	for id, want := range map[string]string{hookID: "FINISHED", segID: "FINISHED", ampID: "FINISHED", mpID: "FINISHED", ga4ID: "NOT_SUPPORTED", brokenID: "FAILED"} {
		if d := byID[id]; d == nil || d["status"] != want || trkStr(d, "destination.id") != id {
			t.Errorf("destination %s: %v, want %s", id, d, want)
		}
	}
	if len(byID) != 6 || trkInt(byID[brokenID]["attempts"]) != 3 || !strings.Contains(trkStr(byID[brokenID], "error"), "502") {
		t.Fatalf("destinations: %v", r["destinations"])
	}

	// What the vendors got.
	reqs := hook.all()
	if len(reqs) != 1 {
		t.Fatalf("webhook: %d requests", len(reqs))
	}
	var msg map[string]any
	_ = json.Unmarshal(reqs[0].body, &msg)
	mac := hmac.New(sha256.New, []byte("hook-secret-123"))
	mac.Write(reqs[0].body)
	if msg["type"] != "delete" || msg["userId"] != subject || reqs[0].header.Get("X-Signature") != hex.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("webhook got %s (signature %s)", reqs[0].body, reqs[0].header.Get("X-Signature"))
	}
	seen := map[string]string{}
	for _, req := range vendor.all() {
		seen[req.path] = string(req.body)
		switch req.path {
		case "/segment/v1/batch":
			if u, _, _ := (&http.Request{Header: req.header}).BasicAuth(); u != "fwd-key-123" || !strings.Contains(string(req.body), `"type":"delete"`) {
				t.Errorf("segment: %s", req.body)
			}
		case "/amplitude/deletions":
			if u, p, _ := (&http.Request{Header: req.header}).BasicAuth(); u != "amp-key-123" || p != "amp-secret-123" {
				t.Errorf("amplitude auth: %s %s", u, p)
			}
		case "/mixpanel/deletions":
			if req.header.Get("Authorization") != "Bearer mp-oauth-123" || req.query != "token=mp-token-123" {
				t.Errorf("mixpanel: %v %s", req.header, req.query)
			}
		}
	}
	if !strings.Contains(seen["/segment/v1/batch"], subject) || !strings.Contains(seen["/amplitude/deletions"], `"user_ids":["`+subject+`"]`) ||
		!strings.Contains(seen["/mixpanel/deletions"], `"distinct_ids":["`+subject+`"]`) || len(seen) != 3 {
		t.Fatalf("vendors got: %v", seen)
	}

	// Event Delivery shows each call, with the subject masked, and the failures count in health.
	regID := trkStr(r, "id")
	_, nodes := e.attempts(t, brokenID, "first: 10")
	if len(nodes) != 3 || nodes[0]["outcome"] != "FAILED" || nodes[2]["outcome"] != "RETRYING" || nodes[0]["eventId"] != regID {
		t.Fatalf("broken hook's attempts: %v", nodes)
	}
	_, nodes = e.attempts(t, hookID, "first: 10")
	if len(nodes) != 1 || nodes[0]["outcome"] != "DELIVERED" || strings.Contains(acJSON(nodes), subject) ||
		!strings.Contains(trkStr(nodes[0], "request.body"), `"type":"delete"`) {
		t.Fatalf("hook's attempts: %v", nodes)
	}
	e.waitIssue(t, brokenID, "HTTP_5XX", "opened by the deletion calls", func(is map[string]any) bool { return is["status"] == "OPEN" })

	// A subject type a vendor does not delete by.
	r = regWaitDone(t, s, e.tok, trkStr(regWantCreated(t, s, e.tok, e.wsID, "DELETE_ONLY", "ANONYMOUS_ID", "dst-anon-1"), "id"))
	for _, d := range r["destinations"].([]any) {
		if trkStr(d, "destinationId") == ampID && d.(map[string]any)["status"] != "NOT_SUPPORTED" {
			t.Fatalf("amplitude by anonymousId: %v", d)
		}
	}
	if stored := regDatabaseBytes(t, s); bytes.Contains(stored, []byte(subject)) || bytes.Contains(stored, []byte("dst-anon-1")) {
		t.Fatal("the database keeps the subject of a finished deletion")
	}
}

func TestWorkspaceSettings(t *testing.T) {
	s := startServer(t, regLater, allowLoopback)
	e := dlvNewEnv(t, s, "set-owner")
	admin := e.member(t, "set-admin@example.com", "ADMIN")
	member := e.member(t, "set-member@example.com", "MEMBER")
	const settingsQuery = `query($slug: String!) { workspace(slug: $slug) { settings { id name slug plan { plan apiCallsPerMonth }
		retention { eventsHours deliveredAttemptsHours failedAttemptsHours serverEventsHours serverDeliveredAttemptsHours serverFailedAttemptsHours }
		privacy { suppressedSubjects initializedRegulations runningRegulations finishedRegulations failedRegulations subjectsThisMonth monthlySubjectCap }
		viewerCanUpdate } } }`
	const update = `mutation($i: WorkspaceSettingsUpdateInput!) { workspaceSettingsUpdate(input: $i) { settings { name retention { eventsHours deliveredAttemptsHours failedAttemptsHours } }
		userErrors { field message code } } }`

	regWantCreated(t, s, e.tok, e.wsID, "SUPPRESS_ONLY", "USER_ID", "set-a", "set-b")
	regWantCreated(t, s, e.tok, e.wsID, "DELETE_INTERNAL", "USER_ID", "set-c")

	t.Run("Read", func(t *testing.T) {
		st := trkObj(e.gql(t, settingsQuery, map[string]any{"slug": e.slug}), "workspace.settings")
		want := `{"id":"` + e.wsID + `","name":"set-owner","plan":{"apiCallsPerMonth":250000,"plan":"FREE"},` +
			`"privacy":{"failedRegulations":0,"finishedRegulations":1,"initializedRegulations":1,"monthlySubjectCap":110000,"runningRegulations":0,"subjectsThisMonth":3,"suppressedSubjects":2},` +
			`"retention":{"deliveredAttemptsHours":24,"eventsHours":168,"failedAttemptsHours":168,"serverDeliveredAttemptsHours":24,"serverEventsHours":168,"serverFailedAttemptsHours":168},` +
			`"slug":"set-owner","viewerCanUpdate":true}`
		if got := acJSON(st); got != want {
			t.Fatalf("settings:\n got %s\nwant %s", got, want)
		}
		st = trkObj(dlvData(t, dlvPost(t, s, member, settingsQuery, map[string]any{"slug": e.slug})), "workspace.settings")
		if st["viewerCanUpdate"] != false || trkInt(trkPath(st, "privacy.suppressedSubjects")) != 2 {
			t.Fatalf("member's settings: %v", st)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		for name, c := range map[string]struct {
			input map[string]any
			want  string
		}{
			"EventsUnderADay":  {map[string]any{"eventsRetentionHours": 12}, "eventsRetentionHours:INVALID"},
			"OverTheServer":    {map[string]any{"failedAttemptsRetentionHours": 1000}, "failedAttemptsRetentionHours:INVALID"},
			"FailedUnderADay":  {map[string]any{"failedAttemptsRetentionHours": 2}, "failedAttemptsRetentionHours:INVALID"},
			"BadSlug":          {map[string]any{"slug": "No Slug"}, "slug:INVALID"},
			"NegativeDelivery": {map[string]any{"deliveredAttemptsRetentionHours": -1}, "deliveredAttemptsRetentionHours:INVALID"},
		} {
			t.Run(name, func(t *testing.T) {
				c.input["workspaceId"] = e.wsID
				p := trkObj(e.gql(t, update, map[string]any{"i": c.input}), "workspaceSettingsUpdate")
				if got := regUserErrorCodes(p); len(got) != 1 || got[0] != c.want || p["settings"] != nil {
					t.Fatalf("got %v, want %s", got, c.want)
				}
			})
		}
	})

	t.Run("OwnersOnly", func(t *testing.T) {
		for _, tok := range []string{admin, member} {
			r := dlvPost(t, s, tok, update, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "eventsRetentionHours": 48}})
			if r.errorCode() != "FORBIDDEN" {
				t.Fatalf("non-owner updates: %s", r.Raw)
			}
		}
	})

	t.Run("UpdateIsAuditedAndApplied", func(t *testing.T) {
		p := trkObj(e.gql(t, update, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "name": "Renamed", "eventsRetentionHours": 48,
			"deliveredAttemptsRetentionHours": 6}}), "workspaceSettingsUpdate")
		if acJSON(p["settings"]) != `{"name":"Renamed","retention":{"deliveredAttemptsHours":6,"eventsHours":48,"failedAttemptsHours":168}}` {
			t.Fatalf("updated: %v", p)
		}
		events := acEvents(t, s, e.tok, e.slug, map[string]any{"types": []string{"WORKSPACE_SETTINGS_UPDATED", "WORKSPACE_UPDATED"}})
		raw := acJSON(events)
		if len(events) != 2 || !strings.Contains(raw, `"eventsRetentionHours":{"from":168,"to":48}`) || !strings.Contains(raw, `"deliveredAttemptsHours"`) &&
			!strings.Contains(raw, `"deliveredAttemptsRetentionHours":{"from":24,"to":6}`) {
			t.Fatalf("audit trail: %s", raw)
		}

		// Pruning keeps this workspace's events 48 hours, another's the server's 168; and its
		// delivered attempts 6 hours, another's the server's 24.
		web, key := e.source(t, "Web")
		other := dlvNewEnv(t, s, "set-other")
		otherSrc, otherKey := other.source(t, "Other")
		hook := newReceiver(t)
		for _, env := range []*dlvEnv{e, other} {
			src := web
			if env == other {
				src = otherSrc
			}
			env.connect(t, src, env.webhook(t, "Hook", map[string]any{"url": hook.srv.URL + "/hook"}, true), true)
		}
		dlvTrack(t, s, key, map[string]any{"userId": "u1"}, map[string]any{"userId": "u2"})
		dlvTrack(t, s, otherKey, map[string]any{"userId": "u1"})
		count := func(table, wsID string) int {
			var n int
			if err := s.App.DB().Get(t.Context(), &n, `SELECT COUNT(*) FROM `+table+` WHERE workspace_id = ?`, wsID); err != nil {
				t.Fatal(err)
			}
			return n
		}
		dlvWait(t, "3 delivered attempts", 10*time.Second, func() bool {
			return count("delivery_attempts", e.wsID) == 2 && count("delivery_attempts", other.wsID) == 1
		})
		if _, err := s.App.Prune(t.Context(), time.Now().Add(12*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if a, r, o := count("delivery_attempts", e.wsID), count("delivery_requests", e.wsID), count("delivery_attempts", other.wsID); a != 0 || r != 0 || o != 1 {
			t.Fatalf("12 hours later: %d attempts and %d requests left (want none), another workspace's %d (want 1)", a, r, o)
		}
		if n := count("events", e.wsID); n != 2 {
			t.Fatalf("12 hours later: %d events, want 2", n)
		}
		if _, err := s.App.Prune(t.Context(), time.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.App.DB().Get(t.Context(), &n, `SELECT COUNT(*) FROM events WHERE workspace_id = ?`, e.wsID); err != nil || n != 2 {
			t.Fatalf("a day later: %d events (%v), want 2", n, err)
		}
		if _, err := s.App.Prune(t.Context(), time.Now().Add(50*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.App.DB().Get(t.Context(), &n, `SELECT COUNT(*) FROM events WHERE workspace_id = ?`, e.wsID); err != nil || n != 0 {
			t.Fatalf("50 hours later: %d events (%v), want 0", n, err)
		}
		if got := len(regStoredEvents(t, other, otherSrc)); got != 1 {
			t.Fatalf("another workspace's events after 50 hours: %d, want 1", got)
		}

		p = trkObj(e.gql(t, update, map[string]any{"i": map[string]any{"workspaceId": e.wsID, "eventsRetentionHours": 0}}), "workspaceSettingsUpdate")
		if trkInt(trkPath(p, "settings.retention.eventsHours")) != 168 {
			t.Fatalf("back to the server's: %v", p)
		}
	})
}

func TestWorkspaceDeletionProgress(t *testing.T) {
	s := startServer(t)
	e := dlvNewEnv(t, s, "gone-owner")
	member := e.member(t, "gone-member@example.com", "MEMBER")
	_, key := e.source(t, "Web")
	dlvTrack(t, s, key, map[string]any{"userId": "u1"}, map[string]any{"userId": "u2"})
	p := trkObj(e.gql(t, `mutation($i: WorkspaceDeleteInput!) { workspaceDelete(input: $i) { userErrors { field message } } }`,
		map[string]any{"i": map[string]any{"workspaceId": e.wsID, "confirmSlug": e.slug}}), "workspaceDelete")
	if errs, _ := p["userErrors"].([]any); len(errs) > 0 {
		t.Fatalf("workspaceDelete: %v", p)
	}
	const q = `{ workspaceDeletions { workspaceId name deletedAt finished stepsDone stepCount currentStep rowsDeleted updatedAt } }`
	var d map[string]any
	dlvWait(t, "the workspace's data to be reaped", 20*time.Second, func() bool {
		s.App.Reaper().Wake()
		d = e.gql(t, q, nil)
		list, _ := d["workspaceDeletions"].([]any)
		return len(list) == 1 && list[0].(map[string]any)["finished"] == true
	})
	got := d["workspaceDeletions"].([]any)[0].(map[string]any)
	if got["workspaceId"] != e.wsID || got["name"] != e.slug || trkInt(got["stepsDone"]) != trkInt(got["stepCount"]) || trkInt(got["stepCount"]) < 3 ||
		trkInt(got["rowsDeleted"]) < 3 || got["currentStep"] != "" || got["updatedAt"] == nil {
		t.Fatalf("deletion: %v", got)
	}
	// Nobody else learns of it, not even a member of the deleted workspace.
	if list := dlvData(t, dlvPost(t, s, member, q, nil))["workspaceDeletions"].([]any); len(list) != 0 {
		t.Fatalf("a member sees the deletion: %v", list)
	}
}
