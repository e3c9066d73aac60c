package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Engage through the real server: events sent to the tracking API with real write keys, profiles
// resolved by the follower of the event log, and read back over GraphQL.

// engWait polls until ok holds (identity resolution follows the log, within a second).
func engWait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

const engProfileFields = `id identifiers { type value source { id } } traits { name value source { id } updatedAt }
	createdAt updatedAt`

// profile looks a profile up by an identifier (nil when none holds it).
func (e *tpEnv) profile(t *testing.T, typ, value, fields string) map[string]any {
	t.Helper()
	d := e.gql(t, `query($ws: ID!, $l: ProfileLookup!) { node(id: $ws) { ... on Workspace { profile(lookup: $l) { `+fields+` } } } }`,
		map[string]any{"ws": e.wsID, "l": map[string]any{"type": typ, "value": value}})
	return trkObj(d, "node.profile")
}

func engIdents(p map[string]any) []string {
	var out []string
	list, _ := p["identifiers"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out = append(out, fmt.Sprint(m["type"], ":", m["value"]))
	}
	return out
}

func TestEngageProfiles(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "engage")
	e.send(t, e.src.Key,
		map[string]any{"type": "track", "messageId": "m1", "anonymousId": "a1", "event": "Viewed"},
		map[string]any{"type": "identify", "messageId": "m2", "anonymousId": "a1", "userId": "u1",
			"traits": map[string]any{"email": "ann@example.com", "plan": "pro"}},
		map[string]any{"type": "track", "messageId": "m3", "userId": "u1", "event": "Order Completed"},
		map[string]any{"type": "page", "messageId": "m4", "userId": "u1", "name": "Home"},
		// Two profiles, then an event that ties them.
		map[string]any{"type": "track", "messageId": "m5", "anonymousId": "a2", "event": "Viewed"},
		map[string]any{"type": "identify", "messageId": "m6", "userId": "u2", "traits": map[string]any{"plan": "free"}},
		map[string]any{"type": "identify", "messageId": "m7", "userId": "u2", "anonymousId": "a2"},
	)
	var p map[string]any
	engWait(t, "u1's profile", func() bool {
		p = e.profile(t, "user_id", "u1", engProfileFields)
		return p != nil && len(engIdents(p)) == 3
	})
	if got, want := fmt.Sprint(engIdents(p)), "[user_id:u1 email:ann@example.com anonymous_id:a1]"; got != want {
		t.Errorf("identifiers %s, want %s (by priority)", got, want)
	}
	traits := map[string]any{}
	for _, x := range p["traits"].([]any) {
		m := x.(map[string]any)
		traits[m["name"].(string)] = m["value"]
		if trkStr(m, "source.id") != e.src.ID {
			t.Errorf("trait %v from %v", m["name"], m["source"])
		}
	}
	if traits["plan"] != "pro" || traits["email"] != "ann@example.com" {
		t.Errorf("traits %v", traits)
	}
	id := trkStr(p, "id")

	t.Run("Events", func(t *testing.T) {
		q := `query($id: ID!, $type: EventType, $name: String) { node(id: $id) { ... on Profile {
			events(first: 10, type: $type, name: $name) { totalCount nodes { messageId type event } } } } }`
		d := e.gql(t, q, map[string]any{"id": id})
		if n := trkInt(trkPath(d, "node.events.totalCount")); n != 4 {
			t.Errorf("%d events, want 4: %v", n, d)
		}
		d = e.gql(t, q, map[string]any{"id": id, "type": "TRACK", "name": "Order Completed"})
		nodes, _ := trkPath(d, "node.events.nodes").([]any)
		if len(nodes) != 1 || trkStr(nodes[0], "messageId") != "m3" {
			t.Errorf("events filtered by type and name: %v", nodes)
		}
		d = e.gql(t, `query($id: ID!) { node(id: $id) { ... on Profile { events(first: 2) { nodes { messageId } pageInfo { hasNextPage endCursor } } } } }`,
			map[string]any{"id": id})
		if trkPath(d, "node.events.pageInfo.hasNextPage") != true {
			t.Errorf("paging: %v", d)
		}
	})

	t.Run("MergeHistory", func(t *testing.T) {
		var p2 map[string]any
		engWait(t, "u2's merged profile", func() bool {
			p2 = e.profile(t, "user_id", "u2", `id identifiers { type value } traits { name value }
				mergeHistory { totalCount nodes { mergedProfileId event { messageId } identifiers { type value } droppedIdentifiers { type } createdAt } }`)
			return p2 != nil && len(engIdents(p2)) == 2
		})
		nodes, _ := trkPath(p2, "mergeHistory.nodes").([]any)
		if len(nodes) != 1 || trkStr(nodes[0], "event.messageId") != "m7" {
			t.Fatalf("merge history %v", p2["mergeHistory"])
		}
		merged := trkStr(nodes[0], "mergedProfileId")
		// The merged profile's id leads to the one it became part of.
		d := e.gql(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": merged})
		if got := trkStr(d, "node.id"); got != trkStr(p2, "id") {
			t.Errorf("node(merged id) is %q, want %q", got, trkStr(p2, "id"))
		}
	})

	t.Run("List", func(t *testing.T) {
		list := func(vars map[string]any) []string {
			d := e.gql(t, `query($ws: ID!, $s: String, $f: ProfileFilter) { node(id: $ws) { ... on Workspace {
				profiles(search: $s, filter: $f, first: 10) { totalCount nodes { id identifiers { type value } } } } } }`, vars)
			var out []string
			nodes, _ := trkPath(d, "node.profiles.nodes").([]any)
			for _, n := range nodes {
				out = append(out, trkStr(n, "id"))
			}
			return out
		}
		if got := list(map[string]any{"ws": e.wsID}); len(got) != 2 {
			t.Errorf("%d profiles, want 2 (one merged away)", len(got))
		}
		if got := list(map[string]any{"ws": e.wsID, "s": "ann@"}); len(got) != 1 || got[0] != id {
			t.Errorf("search: %v", got)
		}
		if got := list(map[string]any{"ws": e.wsID, "f": map[string]any{"trait": map[string]any{"name": "plan", "value": "pro"}}}); len(got) != 1 || got[0] != id {
			t.Errorf("trait filter: %v", got)
		}
		if got := list(map[string]any{"ws": e.wsID, "f": map[string]any{"trait": map[string]any{"name": "plan"}}}); len(got) != 2 {
			t.Errorf("has-trait filter: %v", got)
		}
	})

	t.Run("Settings", func(t *testing.T) {
		d := e.gql(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { identityResolutionSettings {
			identifiers { type priority limit isDefault } blockedValues { value regexp } updatedAt viewerCanUpdate } } } }`, map[string]any{"ws": e.wsID})
		set := trkObj(d, "node.identityResolutionSettings")
		ids, _ := set["identifiers"].([]any)
		if len(ids) < 2 || trkStr(ids[0], "type") != "user_id" || trkInt(trkPath(ids[0], "limit")) != 1 || trkStr(ids[1], "type") != "email" {
			t.Errorf("default identifiers %v", ids)
		}
		if bv, _ := set["blockedValues"].([]any); len(bv) != 5 || set["viewerCanUpdate"] != true || set["updatedAt"] != nil {
			t.Errorf("defaults %v", set)
		}
		m := `mutation($i: IdentityResolutionSettingsUpdateInput!) { identityResolutionSettingsUpdate(input: $i) {
			settings { blockedValues { value regexp } updatedAt updatedBy { id } } userErrors { field code message } } }`
		d = e.gql(t, m, map[string]any{"i": map[string]any{"workspaceId": e.wsID,
			"blockedValues": []any{map[string]any{"value": "(", "regexp": true}},
			"identifiers":   []any{map[string]any{"type": "user_id", "priority": 1, "limit": 0}}}})
		errs, _ := trkPath(d, "identityResolutionSettingsUpdate.userErrors").([]any)
		if len(errs) != 2 || trkStr(errs[0], "field") != "identifiers.0.limit" || trkStr(errs[1], "field") != "blockedValues.0.value" {
			t.Errorf("userErrors %v", errs)
		}
		d = e.gql(t, m, map[string]any{"i": map[string]any{"workspaceId": e.wsID,
			"blockedValues": []any{map[string]any{"value": "^bot-", "regexp": true}, map[string]any{"value": "null"}}}})
		if bv, _ := trkPath(d, "identityResolutionSettingsUpdate.settings.blockedValues").([]any); len(bv) != 2 ||
			trkStr(d, "identityResolutionSettingsUpdate.settings.updatedBy.id") == "" {
			t.Fatalf("update: %v", d)
		}
		e.send(t, e.src.Key, map[string]any{"type": "identify", "messageId": "m8", "userId": "bot-1", "anonymousId": "a9"})
		engWait(t, "a9's profile", func() bool { return e.profile(t, "anonymous_id", "a9", "id") != nil })
		if p := e.profile(t, "user_id", "bot-1", "id"); p != nil {
			t.Errorf("a blocked userId is on a profile")
		}
	})

	t.Run("Plan", func(t *testing.T) {
		other := trkNewEnv(t, s, "engage-team")
		r := s.post(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { profiles { nodes { id } } } } }`, map[string]any{"ws": other.wsID}, other.auth...)
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("profiles on the FREE plan: %s", r.Raw)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		other := tpNewEnv(t, s, "engage-other")
		other.send(t, other.src.Key, map[string]any{"type": "identify", "messageId": "x1", "userId": "u1", "anonymousId": "other-a"})
		engWait(t, "the other workspace's profile", func() bool { return other.profile(t, "user_id", "u1", "id") != nil })
		theirs := other.profile(t, "user_id", "u1", "id identifiers { value }")
		if trkStr(theirs, "id") == id || len(engIdents(theirs)) != 2 {
			t.Errorf("the workspaces share a profile: %v", theirs)
		}
		d := other.gql(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id})
		if d["node"] != nil {
			t.Errorf("another workspace's profile is visible: %v", d)
		}
		if p := e.profile(t, "anonymous_id", "other-a", "id"); p != nil {
			t.Errorf("another workspace's identifier resolves here")
		}
	})
}

// engAPI calls the Profile API with a token as Basic authentication's user name, as Segment's
// clients do, and decodes the answer.
func engAPI(t *testing.T, s *server, token, path string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.SetBasicAuth(token, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, body
}

func TestEngageProfileAPI(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "profile-api")
	var batch []map[string]any
	batch = append(batch, map[string]any{"type": "identify", "messageId": "i1", "userId": "u1", "anonymousId": "a1",
		"traits": map[string]any{"email": "ann@example.com", "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}})
	for i := range 12 {
		batch = append(batch, map[string]any{"type": "track", "messageId": fmt.Sprint("t", i), "userId": "u1", "event": "Clicked", "properties": map[string]any{"n": i}})
	}
	e.send(t, e.src.Key, batch...)
	engWait(t, "u1's events", func() bool {
		d := e.gql(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { profile(lookup: {type: "user_id", value: "u1"}) { events { totalCount } } } } }`,
			map[string]any{"ws": e.wsID})
		return trkInt(trkPath(d, "node.profile.events.totalCount")) == 13
	})
	_, reader := acCreateToken(t, s, e.auth[1][len("Bearer "):], e.wsID, "reader", "MEMBER")
	base := "/v1/spaces/" + e.wsID + "/collections/users/profiles/"

	t.Run("Traits", func(t *testing.T) {
		status, body := engAPI(t, s, reader, base+"user_id:u1/traits?limit=4")
		if status != 200 {
			t.Fatalf("%d %v", status, body)
		}
		traits := trkObj(body, "traits")
		if len(traits) != 4 || traits["a"] != float64(1) || trkPath(body, "cursor.has_more") != true {
			t.Fatalf("first page %v", body)
		}
		if got := trkStr(body, "cursor.url"); got != base+"user_id:u1/traits?limit=4" {
			t.Errorf("cursor.url %q", got)
		}
		_, body = engAPI(t, s, reader, base+"user_id:u1/traits?limit=4&next="+trkStr(body, "cursor.next"))
		if traits := trkObj(body, "traits"); len(traits) != 2 || traits["email"] != "ann@example.com" || trkPath(body, "cursor.has_more") != false {
			t.Errorf("second page %v", body)
		}
		_, body = engAPI(t, s, reader, base+"email:ann@example.com/traits?include=b,c")
		if traits := trkObj(body, "traits"); len(traits) != 2 || traits["b"] != float64(2) {
			t.Errorf("include: %v", body)
		}
	})

	t.Run("ExternalIDs", func(t *testing.T) {
		_, body := engAPI(t, s, reader, base+"anonymous_id:a1/external_ids")
		data, _ := body["data"].([]any)
		if len(data) != 3 || trkStr(data[0], "type") != "anonymous_id" || trkStr(data[0], "id") != "a1" || trkStr(data[0], "source_id") != e.src.ID {
			t.Errorf("external ids %v", body)
		}
	})

	t.Run("Events", func(t *testing.T) {
		var seen []string
		next := ""
		for page := 0; ; page++ {
			path := base + "user_id:u1/events?limit=5"
			if next != "" {
				path += "&next=" + next
			}
			status, body := engAPI(t, s, reader, path)
			if status != 200 {
				t.Fatalf("%d %v", status, body)
			}
			data, _ := body["data"].([]any)
			for _, ev := range data {
				seen = append(seen, trkStr(ev, "messageId"))
			}
			if trkPath(body, "cursor.has_more") != true {
				break
			}
			next = trkStr(body, "cursor.next")
			if page > 5 || next == "" {
				t.Fatalf("paging does not end: %v", body)
			}
		}
		if len(seen) != 13 || seen[0] != "t11" || seen[12] != "i1" {
			t.Errorf("events %v, want the 13, newest first", seen)
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		_, body := engAPI(t, s, reader, base+"user_id:u1/metadata")
		if trkStr(body, "metadata.segment_id") == "" || trkStr(body, "metadata.created_at") == "" {
			t.Errorf("metadata %v", body)
		}
		status, body := engAPI(t, s, reader, base+"segment_id:"+trkStr(body, "metadata.segment_id")+"/traits")
		if status != 200 || len(trkObj(body, "traits")) != 6 {
			t.Errorf("by segment_id: %d %v", status, body)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, c := range []struct {
			token, path string
			status      int
			code        string
		}{
			{"", base + "user_id:u1/traits", 401, "unauthorized"},
			{"jct_not-a-token", base + "user_id:u1/traits", 401, "unauthorized"},
			{reader, base + "user_id:nobody/traits", 404, "not_found"},
			{reader, base + "u1/traits", 400, "bad_request"},
			{reader, base + "user_id:u1/audiences", 404, "not_found"},
			{reader, base + "user_id:u1/traits?limit=1000", 400, "bad_request"},
			{reader, base + "user_id:u1/events?next=garbage", 400, "bad_request"},
		} {
			status, body := engAPI(t, s, c.token, c.path)
			if status != c.status || trkStr(body, "error.code") != c.code {
				t.Errorf("%s: %d %v, want %d %s", c.path, status, body, c.status, c.code)
			}
		}
		// Another workspace's token does not see this one, nor its profiles.
		other := tpNewEnv(t, s, "profile-api-other")
		_, theirs := acCreateToken(t, s, other.auth[1][len("Bearer "):], other.wsID, "theirs", "ADMIN")
		if status, body := engAPI(t, s, theirs, base+"user_id:u1/traits"); status != 404 {
			t.Errorf("another workspace's token: %d %v", status, body)
		}
		if status, body := engAPI(t, s, theirs, "/v1/spaces/"+other.wsID+"/collections/users/profiles/user_id:u1/traits"); status != 404 {
			t.Errorf("another workspace's profile through its own space: %d %v", status, body)
		}
		// A MINIMAL token reads no profiles.
		_, minimal := acCreateToken(t, s, e.auth[1][len("Bearer "):], e.wsID, "minimal", "MINIMAL")
		if status, body := engAPI(t, s, minimal, base+"user_id:u1/traits"); status != 403 {
			t.Errorf("a MINIMAL token: %d %v", status, body)
		}
	})
}

// TestEngageReaped: deleting a source takes its events out of profiles and its name off the traits
// and identifiers it sent (the profiles stay: they are the workspace's); deleting a workspace
// deletes every profile row it had, and another workspace keeps its own.
func TestEngageReaped(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	doomed, kept := tpNewEnv(t, s, "engage-doomed"), tpNewEnv(t, s, "engage-kept")
	second := doomed.source(t, "Server")
	for _, e := range []*tpEnv{doomed, kept} {
		e.send(t, e.src.Key, map[string]any{"type": "identify", "messageId": "w1", "userId": "u1", "anonymousId": "a1", "traits": map[string]any{"plan": "pro"}},
			map[string]any{"type": "track", "messageId": "w2", "userId": "u1", "event": "E"})
	}
	doomed.send(t, second.Key, map[string]any{"type": "identify", "messageId": "s1", "userId": "u1", "traits": map[string]any{"name": "Ann"}})
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := s.App.DB().Get(ctx, &n, q, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	engWait(t, "the profiles", func() bool {
		return count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, doomed.wsID) == 3 &&
			count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, kept.wsID) == 2
	})
	keptRows := count(`SELECT COUNT(*) FROM profile_traits WHERE workspace_id = ?`, kept.wsID)

	t.Run("Source", func(t *testing.T) {
		doomed.mutate(t, "sourceDelete", "SourceIdInput", "deletedSourceId", map[string]any{"sourceId": doomed.src.ID})
		if err := s.App.Reaper().Once(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(`SELECT COUNT(*) FROM profile_events pe JOIN profiles p ON p.id = pe.profile_id WHERE p.workspace_id = ?`, doomed.wsID); n != 1 {
			t.Errorf("%d profile events left, want the other source's 1", n)
		}
		if n := count(`SELECT COUNT(*) FROM profile_traits WHERE source_id = ?`, doomed.src.ID); n != 0 {
			t.Errorf("%d traits still name the deleted source", n)
		}
		if n := count(`SELECT COUNT(*) FROM profile_identifiers WHERE source_id = ?`, doomed.src.ID); n != 0 {
			t.Errorf("%d identifiers still name the deleted source", n)
		}
		p := doomed.profile(t, "user_id", "u1", engProfileFields)
		if len(engIdents(p)) != 2 || len(p["traits"].([]any)) != 2 {
			t.Errorf("the profile lost identifiers or traits: %v", p)
		}
	})

	t.Run("Workspace", func(t *testing.T) {
		r := s.post(t, `mutation($id: ID!, $slug: String!) { workspaceDelete(input: {workspaceId: $id, confirmSlug: $slug}) { deletedWorkspaceId } }`,
			map[string]any{"id": doomed.wsID, "slug": doomed.slug}, doomed.auth...)
		if trkStr(mustData(t, r), "workspaceDelete.deletedWorkspaceId") != doomed.wsID {
			t.Fatalf("workspaceDelete: %s", r.Raw)
		}
		deadline := time.Now().Add(10 * time.Second)
		for count(`SELECT COUNT(*) FROM workspaces WHERE id = ?`, doomed.wsID) > 0 && time.Now().Before(deadline) {
			if err := s.App.Reaper().Once(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, table := range []string{"profiles", "profile_identifiers", "profile_traits", "profile_merges", "engage_settings"} {
			if n := count(`SELECT COUNT(*) FROM `+table+` WHERE workspace_id = ?`, doomed.wsID); n != 0 {
				t.Errorf("%s keeps %d rows of the deleted workspace", table, n)
			}
		}
		if n := count(`SELECT COUNT(*) FROM profile_events pe WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = pe.profile_id)`); n != 0 {
			t.Errorf("%d profile events of deleted profiles left", n)
		}
		if n := count(`SELECT COUNT(*) FROM profile_traits WHERE workspace_id = ?`, kept.wsID); n != keptRows {
			t.Errorf("the other workspace has %d traits, had %d", n, keptRows)
		}
	})
}

// TestEngageListsLoadInBatches: the statements of a page of profiles with their identifiers,
// traits and sources do not grow with the number of profiles.
func TestEngageListsLoadInBatches(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "engage-batches")
	const query = `query($ws: ID!) { node(id: $ws) { ... on Workspace { profiles(first: 100) { totalCount nodes {
		id identifiers { type value source { name } } traits { name value source { name } } } } } } }`
	count := func(want int) int {
		var r gqlResponse
		engWait(t, fmt.Sprint(want, " profiles"), func() bool {
			r = s.post(t, query, map[string]any{"ws": e.wsID}, e.auth...)
			return trkInt(trkPath(mustData(t, r), "node.profiles.totalCount")) == want
		})
		return s.statements(t, r)
	}
	send := func(from, to int) {
		var batch []map[string]any
		for i := from; i < to; i++ {
			batch = append(batch, map[string]any{"type": "identify", "messageId": fmt.Sprint("b", i), "userId": fmt.Sprint("u", i),
				"anonymousId": fmt.Sprint("a", i), "traits": map[string]any{"email": fmt.Sprint("p", i, "@example.com"), "n": i}})
		}
		e.send(t, e.src.Key, batch...)
	}
	send(0, 1)
	one := count(1)
	send(1, 30)
	if many := count(30); many != one {
		t.Errorf("statements grew with the list: %d for 1 profile, %d for 30", one, many)
	}
}
