package app_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// Engage audiences through the real server: events through the tracking API, profiles by identity
// resolution, audiences computed and kept current in the background, read and changed over
// GraphQL, their changes sent to a real local webhook receiver through the delivery engine.

const audFields = `id key name status size enabled definition lastComputedAt viewerCanUpdate
	members(first: 10) { totalCount nodes { enteredAt profile { id identifiers { type value } } } }
	sizeHistory { at size }`

// audTeam is a BUSINESS workspace with a source.
func audTeam(t *testing.T, s *server, slug string) (*team, string) {
	t.Helper()
	tm := newTeam(t, s, slug, "Ada")
	tm.mutate(t, tm.owner.tok, "workspacePlanUpdate", "WorkspacePlanUpdateInput", "workspace { id }",
		map[string]any{"workspaceId": tm.wsID, "plan": "BUSINESS"})
	_, key := tm.source(t, "Web")
	return tm, key
}

func audGet(t *testing.T, tm *team, tok, id string) map[string]any {
	t.Helper()
	return trkObj(tm.gql(t, tok, `query($id: ID!) { node(id: $id) { ... on Audience { `+audFields+` } } }`, map[string]any{"id": id}), "node")
}

// audWait polls an audience until ok holds.
func audWait(t *testing.T, tm *team, id, what string, ok func(a map[string]any) bool) map[string]any {
	t.Helper()
	var a map[string]any
	engWait(t, what, func() bool {
		a = audGet(t, tm, tm.owner.tok, id)
		return a != nil && ok(a)
	})
	return a
}

// audUsers lists the user ids of an audience's members (first page), sorted.
func audUsers(a map[string]any) string {
	var out []string
	nodes, _ := trkPath(a, "members.nodes").([]any)
	for _, n := range nodes {
		ids, _ := trkPath(n, "profile.identifiers").([]any)
		for _, i := range ids {
			if trkStr(i, "type") == "user_id" {
				out = append(out, trkStr(i, "value"))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

var audProBuyers = map[string]any{"and": []any{
	map[string]any{"trait": map[string]any{"name": "plan", "operator": "EQUALS", "value": "pro"}},
	map[string]any{"event": map[string]any{"name": "Order Completed", "count": map[string]any{"operator": "AT_LEAST", "value": 1},
		"within": map[string]any{"amount": 7, "unit": "DAYS"}}},
}}

func TestAudiences(t *testing.T) {
	s := startServer(t)
	tm, key := audTeam(t, s, "aud")
	subTrack(t, s, key,
		map[string]any{"type": "identify", "userId": "ann", "traits": map[string]any{"plan": "pro"}},
		map[string]any{"type": "identify", "userId": "bob", "traits": map[string]any{"plan": "free"}},
		map[string]any{"type": "track", "userId": "ann", "event": "Order Completed"},
		map[string]any{"type": "track", "userId": "bob", "event": "Order Completed"})
	engWait(t, "profiles", func() bool {
		d := tm.gql(t, tm.owner.tok, `query($ws: ID!) { node(id: $ws) { ... on Workspace { profiles { totalCount } } } }`, map[string]any{"ws": tm.wsID})
		return trkInt(trkPath(d, "node.profiles.totalCount")) == 2
	})

	// A preview writes nothing.
	pv := tm.mutate(t, tm.owner.tok, "audiencePreview", "AudiencePreviewInput", "size sample { id }",
		map[string]any{"workspaceId": tm.wsID, "definition": audProBuyers, "sampleSize": 5})
	if trkInt(pv["size"]) != 1 || len(pv["sample"].([]any)) != 1 {
		t.Errorf("preview %v", pv)
	}

	p := tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id status }",
		map[string]any{"workspaceId": tm.wsID, "key": "pro_buyers", "name": "Pro buyers", "definition": audProBuyers})
	id := trkStr(p, "audience.id")
	a := audWait(t, tm, id, "the audience computed", func(a map[string]any) bool { return a["status"] == "LIVE" && trkInt(a["size"]) == 1 })
	if audUsers(a) != "ann" || a["viewerCanUpdate"] != true {
		t.Errorf("audience %v", a)
	}
	if trkPath(a, "definition.and") == nil {
		t.Errorf("definition %v", a["definition"])
	}

	// bob upgrades: he enters as his identify is resolved.
	subTrack(t, s, key, map[string]any{"type": "identify", "userId": "bob", "traits": map[string]any{"plan": "pro"}})
	a = audWait(t, tm, id, "bob entering", func(a map[string]any) bool { return trkInt(a["size"]) == 2 })
	if audUsers(a) != "ann,bob" {
		t.Errorf("members %s", audUsers(a))
	}
	if h, _ := a["sizeHistory"].([]any); len(h) == 0 || trkInt(trkPath(h[len(h)-1], "size")) != 2 {
		t.Errorf("size history %v", a["sizeHistory"])
	}

	t.Run("ProfileAudiencesAndFilter", func(t *testing.T) {
		d := tm.gql(t, tm.owner.tok, `query($ws: ID!, $f: ProfileFilter) { node(id: $ws) { ... on Workspace {
			profiles(filter: $f) { totalCount nodes { id audiences { enteredAt audience { id key } } } } } } }`,
			map[string]any{"ws": tm.wsID, "f": map[string]any{"audienceId": id}})
		nodes, _ := trkPath(d, "node.profiles.nodes").([]any)
		if len(nodes) != 2 {
			t.Fatalf("profiles of the audience: %v", d)
		}
		for _, n := range nodes {
			list, _ := trkPath(n, "audiences").([]any)
			if len(list) != 1 || trkStr(list[0], "audience.key") != "pro_buyers" || trkStr(list[0], "enteredAt") == "" {
				t.Errorf("profile's audiences %v", n)
			}
		}
		d = tm.gql(t, tm.owner.tok, `query($ws: ID!) { node(id: $ws) { ... on Workspace { audiences { totalCount nodes { id } } } } }`,
			map[string]any{"ws": tm.wsID})
		if trkInt(trkPath(d, "node.audiences.totalCount")) != 1 {
			t.Errorf("workspace.audiences %v", d)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		bad := tm.try(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
			map[string]any{"workspaceId": tm.wsID, "key": "Bad Key", "name": "x", "definition": map[string]any{"or": []any{
				map[string]any{"trait": map[string]any{"name": "age", "operator": "GREATER_THAN", "value": "old"}},
				map[string]any{"event": map[string]any{"name": "X", "within": map[string]any{"amount": 400, "unit": "DAYS"}}},
				map[string]any{"audience": map[string]any{"audienceId": "audn_01jdxk6v2d8q9w3m4n5p6r7s8t"}},
			}}})
		fields := map[string]bool{}
		for _, e := range bad["userErrors"].([]any) {
			fields[trkStr(e, "field")] = true
		}
		for _, f := range []string{"key", "definition.or.0.trait.value", "definition.or.1.event.within.amount"} {
			if !fields[f] {
				t.Errorf("no user error on %s: %v", f, bad["userErrors"])
			}
		}
		// Naming itself through another audience is a cycle.
		other := tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
			map[string]any{"workspaceId": tm.wsID, "key": "in_pro", "name": "In pro buyers", "definition": map[string]any{"audience": map[string]any{"audienceId": id}}})
		cyc := tm.try(t, tm.owner.tok, "audienceUpdate", "AudienceUpdateInput", "audience { id }",
			map[string]any{"id": id, "definition": map[string]any{"audience": map[string]any{"audienceId": trkStr(other, "audience.id")}}})
		if errs, _ := cyc["userErrors"].([]any); len(errs) != 1 || !strings.Contains(trkStr(errs[0], "message"), "cycle") {
			t.Errorf("cycle: %v", cyc)
		}
		// The audience others name cannot go first.
		del := tm.try(t, tm.owner.tok, "audienceDelete", "AudienceIdInput", "deletedAudienceId", map[string]any{"id": id})
		if errs, _ := del["userErrors"].([]any); len(errs) != 1 {
			t.Errorf("delete of a named audience: %v", del)
		}
		tm.mutate(t, tm.owner.tok, "audienceDelete", "AudienceIdInput", "deletedAudienceId", map[string]any{"id": trkStr(other, "audience.id")})
	})

	t.Run("Rights", func(t *testing.T) {
		mem := tm.add(t, "member", "Mo", "MEMBER")
		if a := audGet(t, tm, mem.tok, id); a == nil || trkInt(a["size"]) != 2 || a["viewerCanUpdate"] != false {
			t.Errorf("a member reads: %v", a)
		}
		r := dlvPost(t, s, mem.tok, `mutation($i: AudienceUpdateInput!) { audienceUpdate(input: $i) { audience { id } } }`,
			map[string]any{"i": map[string]any{"id": id, "name": "Mine"}})
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("a member changes an audience: %s", r.Raw)
		}
		// Another workspace sees nothing of it, and cannot name it.
		out, _ := audTeam(t, s, "aud-out")
		if a := audGet(t, out, out.owner.tok, id); a != nil {
			t.Errorf("an outsider reads %v", a)
		}
		x := out.try(t, out.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
			map[string]any{"workspaceId": out.wsID, "key": "theirs", "name": "Theirs", "definition": map[string]any{"audience": map[string]any{"audienceId": id}}})
		if errs, _ := x["userErrors"].([]any); len(errs) != 1 {
			t.Errorf("naming another workspace's audience: %v", x)
		}
		// Not on BUSINESS: refused.
		free := newTeam(t, s, "aud-free", "Fay")
		r = dlvPost(t, s, free.owner.tok, `mutation($i: AudienceCreateInput!) { audienceCreate(input: $i) { audience { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": free.wsID, "key": "k", "name": "K", "definition": audProBuyers}})
		if r.errorCode() != "FORBIDDEN" || !strings.Contains(r.errorMessage(), "BUSINESS") {
			t.Errorf("on the free plan: %s", r.Raw)
		}
	})
}

// TestAudienceActivation: an audience connected to a webhook destination sends Audience Entered
// when a profile enters and Audience Exited when it leaves, once each, through the delivery
// engine (Event Delivery records the attempts); another destination gets identify calls.
func TestAudienceActivation(t *testing.T) {
	s := startServer(t, allowLoopback)
	tm, key := audTeam(t, s, "aud-act")
	rc := dlvNewReceiver(t, nil)
	ids := dlvNewReceiver(t, nil)
	dst := trkStr(tm.mutate(t, tm.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": rc.URL}, "enabled": true}), "destination.id")
	idDst := trkStr(tm.mutate(t, tm.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_webhook", "name": "Traits", "settings": map[string]any{"url": ids.URL}, "enabled": true}), "destination.id")
	id := trkStr(tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
		map[string]any{"workspaceId": tm.wsID, "key": "pro_users", "name": "Pro users",
			"definition": map[string]any{"trait": map[string]any{"name": "plan", "operator": "EQUALS", "value": "pro"}}}), "audience.id")
	p := tm.mutate(t, tm.owner.tok, "audienceConnectDestination", "AudienceDestinationInput", "audience { destinations { mode destination { id } } }",
		map[string]any{"audienceId": id, "destinationId": dst})
	if list, _ := trkPath(p, "audience.destinations").([]any); len(list) != 1 || trkStr(list[0], "destination.id") != dst {
		t.Errorf("destinations %v", p)
	}
	tm.mutate(t, tm.owner.tok, "audienceConnectDestination", "AudienceDestinationInput", "audience { id }",
		map[string]any{"audienceId": id, "destinationId": idDst, "mode": "IDENTIFY"})

	subTrack(t, s, key, map[string]any{"type": "identify", "userId": "ann", "traits": map[string]any{"plan": "pro"}})
	hits := rc.waitHits(t, 1, 15*time.Second)
	var ev map[string]any
	_ = json.Unmarshal(hits[0].Body, &ev)
	if ev["event"] != "Audience Entered" || ev["userId"] != "ann" || trkStr(ev, "properties.audience_key") != "pro_users" ||
		trkStr(ev, "properties.audience_name") != "Pro users" || trkPath(ev, "properties.pro_users") != true {
		t.Errorf("entered: %s", hits[0].Body)
	}
	idHits := ids.waitHits(t, 1, 15*time.Second)
	_ = json.Unmarshal(idHits[0].Body, &ev)
	if ev["type"] != "identify" || trkPath(ev, "traits.pro_users") != true {
		t.Errorf("identify: %s", idHits[0].Body)
	}

	subTrack(t, s, key, map[string]any{"type": "identify", "userId": "ann", "traits": map[string]any{"plan": "free"}})
	hits = rc.waitHits(t, 2, 15*time.Second)
	_ = json.Unmarshal(hits[1].Body, &ev)
	if ev["event"] != "Audience Exited" || ev["userId"] != "ann" || trkPath(ev, "properties.pro_users") != false {
		t.Errorf("exited: %s", hits[1].Body)
	}
	ids.waitHits(t, 2, 15*time.Second)
	// Once each: nothing more arrives (the audience's own events come back through identity
	// resolution and change nothing).
	time.Sleep(1500 * time.Millisecond)
	if n := rc.Count(); n != 2 {
		t.Errorf("%d requests at the track destination, want 2: %v", n, rc.Hits())
	}
	if n := ids.Count(); n != 2 {
		t.Errorf("%d requests at the identify destination, want 2", n)
	}
	// Event Delivery shows the attempts.
	d := tm.gql(t, tm.owner.tok, `query($id: ID!) { node(id: $id) { ... on Destination { deliveryAttempts(first: 10) { totalCount } } } }`, map[string]any{"id": dst})
	if n := trkInt(trkPath(d, "node.deliveryAttempts.totalCount")); n != 2 {
		t.Errorf("%d delivery attempts recorded, want 2: %v", n, d)
	}
	// A destination connected later hears the current members enter (bob), not the history (ann).
	subTrack(t, s, key, map[string]any{"type": "identify", "userId": "bob", "traits": map[string]any{"plan": "pro"}})
	rc.waitHits(t, 3, 15*time.Second)
	late := dlvNewReceiver(t, nil)
	lateDst := trkStr(tm.mutate(t, tm.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_webhook", "name": "Late", "settings": map[string]any{"url": late.URL}, "enabled": true}), "destination.id")
	tm.mutate(t, tm.owner.tok, "audienceConnectDestination", "AudienceDestinationInput", "audience { id }",
		map[string]any{"audienceId": id, "destinationId": lateDst})
	lateHits := late.waitHits(t, 1, 15*time.Second)
	_ = json.Unmarshal(lateHits[0].Body, &ev)
	if ev["event"] != "Audience Entered" || ev["userId"] != "bob" {
		t.Errorf("the late destination's sync: %s", lateHits[0].Body)
	}
	time.Sleep(time.Second)
	if n := late.Count(); n != 1 {
		t.Errorf("%d requests at the late destination, want 1", n)
	}
	// The sync and the change share a message: the first destination did not hear bob twice.
	if n := rc.Count(); n != 3 {
		t.Errorf("%d requests at the track destination, want 3", n)
	}

	// Connecting again changes the mode; disconnecting stops.
	p = tm.mutate(t, tm.owner.tok, "audienceConnectDestination", "AudienceDestinationInput", "audience { destinations { mode destination { id } } }",
		map[string]any{"audienceId": id, "destinationId": dst, "mode": "IDENTIFY"})
	for _, x := range trkPath(p, "audience.destinations").([]any) {
		if trkStr(x, "destination.id") == dst && trkStr(x, "mode") != "IDENTIFY" {
			t.Errorf("connected again: %v", x)
		}
	}
	p = tm.mutate(t, tm.owner.tok, "audienceDisconnectDestination", "AudienceDestinationInput", "audience { destinations { destination { id } } }",
		map[string]any{"audienceId": id, "destinationId": dst})
	if list, _ := trkPath(p, "audience.destinations").([]any); len(list) != 2 {
		t.Errorf("after disconnecting one: %v", p)
	}
}

// TestAudienceSizeChanged: the subscription over the websocket hears the audience grow.
func TestAudienceSizeChanged(t *testing.T) {
	s := startServer(t, subQuiet)
	tm, key := audTeam(t, s, "aud-sub")
	id := trkStr(tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
		map[string]any{"workspaceId": tm.wsID, "key": "viewers", "name": "Viewers",
			"definition": map[string]any{"event": map[string]any{"name": "Viewed"}}}), "audience.id")
	audWait(t, tm, id, "computed", func(a map[string]any) bool { return a["status"] == "LIVE" })
	op := subDial(t, s, tm.owner.tok).subscribe(t, `subscription($id: ID!) { audienceSizeChanged(audienceId: $id) { id size } }`, map[string]any{"id": id})
	subWaitSubscribers(t, s, 1)
	subTrack(t, s, key, map[string]any{"type": "track", "userId": "u1", "event": "Viewed"})
	got := op.nextWhere(t, 10*time.Second, "size 1", func(d map[string]any) bool { return trkInt(trkPath(d, "audienceSizeChanged.size")) == 1 })
	if trkStr(got, "audienceSizeChanged.id") != id {
		t.Errorf("message %v", got)
	}
	// An outsider cannot subscribe to it.
	out := newTeam(t, s, "aud-sub-out", "Oz")
	r := dlvPost(t, s, out.owner.tok, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id})
	if fmt.Sprint(trkPath(r.Data, "node")) != "<nil>" {
		t.Errorf("outsider: %s", r.Raw)
	}
}

// TestAudienceRegulation: deleting a person's data takes their profile out of audiences (the size
// follows) and deletes the changes recorded about them.
func TestAudienceRegulation(t *testing.T) {
	s := startServer(t, regNow)
	tm, key := audTeam(t, s, "aud-reg")
	id := trkStr(tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
		map[string]any{"workspaceId": tm.wsID, "key": "viewers", "name": "Viewers",
			"definition": map[string]any{"event": map[string]any{"name": "Viewed"}}}), "audience.id")
	subTrack(t, s, key, map[string]any{"type": "track", "userId": "gone-7c1", "event": "Viewed"},
		map[string]any{"type": "track", "userId": "kept-7c1", "event": "Viewed"})
	a := audWait(t, tm, id, "two members", func(a map[string]any) bool { return trkInt(a["size"]) == 2 })
	var gone string
	for _, n := range trkPath(a, "members.nodes").([]any) {
		if strings.Contains(fmt.Sprint(n), "gone-7c1") {
			gone = trkStr(n, "profile.id")
		}
	}
	regWaitDone(t, s, tm.owner.tok, trkStr(regWantCreated(t, s, tm.owner.tok, tm.wsID, "DELETE_INTERNAL", "USER_ID", "gone-7c1"), "id"))
	a = audGet(t, tm, tm.owner.tok, id)
	if trkInt(a["size"]) != 1 || audUsers(a) != "kept-7c1" {
		t.Errorf("after the deletion: size %v, members %s", a["size"], audUsers(a))
	}
	var n int
	if err := s.App.DB().Get(t.Context(), &n, `SELECT COUNT(*) FROM audience_changes WHERE profile_id = ?`, gone); err != nil || n != 0 {
		t.Errorf("%d changes about the forgotten profile left (%v)", n, err)
	}
}

// TestAudienceSizeChangedReplicas: a subscriber on replica B hears an audience that replica A
// keeps current (PostgreSQL only).
func TestAudienceSizeChangedReplicas(t *testing.T) {
	a, b := startReplicas(t, subQuiet)
	tm, key := audTeam(t, a, "aud-rep")
	id := trkStr(tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
		map[string]any{"workspaceId": tm.wsID, "key": "viewers", "name": "Viewers",
			"definition": map[string]any{"event": map[string]any{"name": "Viewed"}}}), "audience.id")
	audWait(t, tm, id, "computed", func(a map[string]any) bool { return a["status"] == "LIVE" })
	op := subDial(t, b, tm.owner.tok).subscribe(t, `subscription($id: ID!) { audienceSizeChanged(audienceId: $id) { id size } }`, map[string]any{"id": id})
	subWaitSubscribers(t, b, 1)
	subTrack(t, a, key, map[string]any{"type": "track", "userId": "u1", "event": "Viewed"})
	op.nextWhere(t, 10*time.Second, "size 1 on the other replica", func(d map[string]any) bool {
		return trkInt(trkPath(d, "audienceSizeChanged.size")) == 1
	})
}

// TestAudienceListsLoadInBatches: listing audiences with their destinations, and profiles with
// their audiences, costs the same statements for one item as for many.
func TestAudienceListsLoadInBatches(t *testing.T) {
	s := startServer(t)
	tm, key := audTeam(t, s, "aud-batches")
	dst := trkStr(tm.mutate(t, tm.owner.tok, "destinationCreate", "DestinationCreateInput", "destination { id }",
		map[string]any{"workspaceId": tm.wsID, "catalogId": "cat_webhook", "name": "Hook", "settings": map[string]any{"url": "https://example.com/hook"}, "enabled": true}), "destination.id")
	add := func(i int) {
		id := trkStr(tm.mutate(t, tm.owner.tok, "audienceCreate", "AudienceCreateInput", "audience { id }",
			map[string]any{"workspaceId": tm.wsID, "key": fmt.Sprint("a", i), "name": fmt.Sprint("A", i),
				"definition": map[string]any{"event": map[string]any{"name": "Viewed"}}}), "audience.id")
		tm.mutate(t, tm.owner.tok, "audienceConnectDestination", "AudienceDestinationInput", "audience { id }",
			map[string]any{"audienceId": id, "destinationId": dst})
	}
	const query = `query($ws: ID!) { node(id: $ws) { ... on Workspace {
		audiences(first: 100) { totalCount nodes { id key size status createdBy { name } destinations { mode destination { name } } } }
		profiles(first: 100) { totalCount nodes { id audiences { enteredAt audience { key } } } } } } }`
	count := func(audiences, profiles int) int {
		var r gqlResponse
		engWait(t, fmt.Sprint(audiences, " audiences of ", profiles, " profiles"), func() bool {
			r = dlvPost(t, s, tm.owner.tok, query, map[string]any{"ws": tm.wsID})
			d := dlvData(t, r)
			nodes, _ := trkPath(d, "node.profiles.nodes").([]any)
			full := len(nodes) == profiles
			for _, n := range nodes {
				full = full && len(trkPath(n, "audiences").([]any)) == audiences
			}
			return trkInt(trkPath(d, "node.audiences.totalCount")) == audiences && full
		})
		return s.statements(t, r)
	}
	add(0)
	subTrack(t, s, key, map[string]any{"type": "track", "userId": "u0", "event": "Viewed"})
	one := count(1, 1)
	for i := 1; i < 10; i++ {
		add(i)
	}
	for i := 1; i < 10; i++ {
		subTrack(t, s, key, map[string]any{"type": "track", "userId": fmt.Sprint("u", i), "event": "Viewed"})
	}
	if many := count(10, 10); many != one {
		t.Errorf("statements grew with the lists: %d for one, %d for ten", one, many)
	}
}
