package app_test

import (
	"fmt"
	"testing"
)

// Computed traits through the real server: defined over GraphQL, computed from events sent to the
// tracking API (backfilled for profiles that exist, then kept current), read on profiles.

const ctFields = `id key name kind eventName eventType property aggregation window { amount unit }
	propertyConditions { path operator value } enabled status lastComputedAt profileCount createdBy { id } viewerCanUpdate`

// computedTraits reads a profile's computed traits by key.
func (e *tpEnv) computedTraits(t *testing.T, userID string) map[string]any {
	t.Helper()
	p := e.profile(t, "user_id", userID, `computedTraits { key value computedAt computedTrait { id key } }`)
	out := map[string]any{}
	if p == nil {
		return out
	}
	list, _ := p["computedTraits"].([]any)
	for _, x := range list {
		out[trkStr(x, "key")] = trkPath(x, "value")
	}
	return out
}

func TestEngageComputedTraits(t *testing.T) {
	s := startServer(t)
	e := tpNewEnv(t, s, "traits")
	e.send(t, e.src.Key,
		map[string]any{"type": "track", "messageId": "o1", "userId": "u1", "event": "Order Completed", "properties": map[string]any{"revenue": 30}},
		map[string]any{"type": "track", "messageId": "o2", "userId": "u1", "event": "Order Completed", "properties": map[string]any{"revenue": 12.5}},
		map[string]any{"type": "track", "messageId": "o3", "userId": "u2", "event": "Order Completed", "properties": map[string]any{"revenue": 5}},
		map[string]any{"type": "track", "messageId": "v1", "userId": "u2", "event": "Viewed"},
	)
	engWait(t, "the profiles' events", func() bool {
		d := e.gql(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { profile(lookup: {type: "user_id", value: "u2"}) { events { totalCount } } } } }`,
			map[string]any{"ws": e.wsID})
		return trkInt(trkPath(d, "node.profile.events.totalCount")) == 2
	})

	create := func(env *tpEnv, input map[string]any) map[string]any {
		t.Helper()
		input["workspaceId"] = env.wsID
		d := env.gql(t, `mutation($i: ComputedTraitCreateInput!) { computedTraitCreate(input: $i) { computedTrait { `+ctFields+` }
			userErrors { field message code } } }`, map[string]any{"i": input})
		return trkObj(d, "computedTraitCreate")
	}
	orders := create(e, map[string]any{"key": "orders_30d", "name": "Orders, last 30 days",
		"definition": map[string]any{"kind": "EVENT_COUNTER", "eventName": "Order Completed", "window": map[string]any{"amount": 30, "unit": "DAYS"}}})
	ordersID := trkStr(orders, "computedTrait.id")
	if trkStr(orders, "computedTrait.status") != "COMPUTING" || trkStr(orders, "computedTrait.window.unit") != "DAYS" ||
		orders["computedTrait"].(map[string]any)["viewerCanUpdate"] != true {
		t.Errorf("created: %v", orders)
	}
	create(e, map[string]any{"key": "revenue", "name": "Revenue",
		"definition": map[string]any{"kind": "AGGREGATION", "aggregation": "SUM", "property": "revenue", "eventName": "Order Completed",
			"propertyConditions": []any{map[string]any{"path": "revenue", "operator": "GREATER_THAN", "value": "10"}}}})

	engWait(t, "the backfill", func() bool {
		c := e.computedTraits(t, "u1")
		return fmt.Sprint(c["orders_30d"], c["revenue"]) == "2 42.5"
	})
	if c := e.computedTraits(t, "u2"); fmt.Sprint(c["orders_30d"], c["revenue"]) != "1 <nil>" {
		t.Errorf("u2's computed traits %v", c)
	}
	d := e.gql(t, `query($id: ID!) { node(id: $id) { ... on ComputedTrait { `+ctFields+` } } }`, map[string]any{"id": ordersID})
	engWait(t, "status READY", func() bool {
		d = e.gql(t, `query($id: ID!) { node(id: $id) { ... on ComputedTrait { `+ctFields+` } } }`, map[string]any{"id": ordersID})
		return trkStr(d, "node.status") == "READY"
	})
	if trkInt(trkPath(d, "node.profileCount")) != 2 || trkStr(d, "node.lastComputedAt") == "" || trkStr(d, "node.createdBy.id") == "" {
		t.Errorf("trait %v", d)
	}

	t.Run("Incremental", func(t *testing.T) {
		e.send(t, e.src.Key, map[string]any{"type": "track", "messageId": "o4", "userId": "u2", "event": "Order Completed", "properties": map[string]any{"revenue": 20}})
		engWait(t, "u2's new values", func() bool {
			c := e.computedTraits(t, "u2")
			return fmt.Sprint(c["orders_30d"], c["revenue"]) == "2 20"
		})
	})

	t.Run("AsTraits", func(t *testing.T) {
		// The value is one of the profile's traits too, so that filters on traits cover it.
		d := e.gql(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace {
			profiles(filter: {trait: {name: "orders_30d", value: "2"}}) { totalCount } } } }`, map[string]any{"ws": e.wsID})
		if n := trkInt(trkPath(d, "node.profiles.totalCount")); n != 2 {
			t.Errorf("%d profiles with orders_30d = 2: %v", n, d)
		}
	})

	t.Run("List", func(t *testing.T) {
		d := e.gql(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { computedTraits(first: 1) { totalCount
			nodes { key profileCount } pageInfo { hasNextPage } } } } }`, map[string]any{"ws": e.wsID})
		nodes, _ := trkPath(d, "node.computedTraits.nodes").([]any)
		if trkInt(trkPath(d, "node.computedTraits.totalCount")) != 2 || len(nodes) != 1 || trkStr(nodes[0], "key") != "orders_30d" ||
			trkPath(d, "node.computedTraits.pageInfo.hasNextPage") != true {
			t.Errorf("list %v", d)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		p := create(e, map[string]any{"key": "orders_30d", "name": "Again", "definition": map[string]any{"kind": "EVENT_COUNTER"}})
		errs, _ := p["userErrors"].([]any)
		if len(errs) != 1 || trkStr(errs[0], "field") != "key" || trkStr(errs[0], "code") != "TAKEN" {
			t.Errorf("a taken key: %v", p)
		}
		p = create(e, map[string]any{"key": "Bad Key", "name": "Bad", "definition": map[string]any{"kind": "AGGREGATION", "property": "x",
			"propertyConditions": []any{map[string]any{"path": "x", "operator": "EQUALS"}}}})
		errs, _ = p["userErrors"].([]any)
		var fields []string
		for _, x := range errs {
			fields = append(fields, trkStr(x, "field"))
		}
		if fmt.Sprint(fields) != "[key definition.propertyConditions.0.value definition.aggregation]" {
			t.Errorf("userErrors %v", errs)
		}
	})

	t.Run("UpdateAndDelete", func(t *testing.T) {
		p := e.mutate(t, "computedTraitUpdate", "ComputedTraitUpdateInput", "computedTrait { "+ctFields+" }", map[string]any{"id": ordersID,
			"definition": map[string]any{"kind": "EVENT_COUNTER", "eventName": "Viewed"}})
		if trkStr(p, "computedTrait.eventName") != "Viewed" || p["computedTrait"].(map[string]any)["window"] != nil {
			t.Errorf("updated %v", p)
		}
		engWait(t, "the recomputation", func() bool {
			c1, c2 := e.computedTraits(t, "u1"), e.computedTraits(t, "u2")
			return fmt.Sprint(c1["orders_30d"], c2["orders_30d"]) == "0 1"
		})
		// Disabled, a trait's values go (from traits too); enabled again, they come back.
		p = e.mutate(t, "computedTraitUpdate", "ComputedTraitUpdateInput", "computedTrait { status }", map[string]any{"id": ordersID, "enabled": false})
		if trkStr(p, "computedTrait.status") != "DISABLED" {
			t.Errorf("disabled: %v", p)
		}
		hasTrait := func(user, name string) bool {
			p := e.profile(t, "user_id", user, "traits { name }")
			for _, x := range p["traits"].([]any) {
				if trkStr(x, "name") == name {
					return true
				}
			}
			return false
		}
		engWait(t, "the disabled trait's values to go", func() bool {
			return e.computedTraits(t, "u2")["orders_30d"] == nil && !hasTrait("u2", "orders_30d")
		})
		e.mutate(t, "computedTraitUpdate", "ComputedTraitUpdateInput", "computedTrait { status }", map[string]any{"id": ordersID, "enabled": true})
		engWait(t, "the enabled trait's values", func() bool {
			return fmt.Sprint(e.computedTraits(t, "u2")["orders_30d"]) == "1" && hasTrait("u2", "orders_30d")
		})

		revenue := create(e, map[string]any{"key": "to_delete", "name": "To delete", "definition": map[string]any{"kind": "EVENT_COUNTER"}})
		engWait(t, "the new trait", func() bool { return e.computedTraits(t, "u1")["to_delete"] != nil })
		p = e.mutate(t, "computedTraitDelete", "ComputedTraitDeleteInput", "deletedComputedTraitId", map[string]any{"id": trkStr(revenue, "computedTrait.id")})
		if trkStr(p, "deletedComputedTraitId") == "" {
			t.Errorf("delete %v", p)
		}
		engWait(t, "the deleted trait's values to go", func() bool {
			return !hasTrait("u1", "to_delete") && e.computedTraits(t, "u1")["to_delete"] == nil
		})
	})

	t.Run("Rights", func(t *testing.T) {
		_, member := acCreateToken(t, s, e.auth[1][len("Bearer "):], e.wsID, "reader", "MEMBER")
		as := []string{"Authorization", "Bearer " + member}
		r := s.post(t, `query($id: ID!) { node(id: $id) { ... on ComputedTrait { key viewerCanUpdate } } }`, map[string]any{"id": ordersID}, as...)
		if r.errorCode() != "" || trkStr(r.Data, "node.key") != "orders_30d" || trkPath(r.Data, "node.viewerCanUpdate") != false {
			t.Errorf("a member reads: %s", r.Raw)
		}
		r = s.post(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { profile(lookup: {type: "user_id", value: "u1"}) { computedTraits { key } } } } }`,
			map[string]any{"ws": e.wsID}, as...)
		if list, _ := trkPath(r.Data, "node.profile.computedTraits").([]any); len(list) == 0 {
			t.Errorf("a member reads values: %s", r.Raw)
		}
		r = s.post(t, `mutation($i: ComputedTraitCreateInput!) { computedTraitCreate(input: $i) { computedTrait { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": e.wsID, "key": "x", "name": "X", "definition": map[string]any{"kind": "EVENT_COUNTER"}}}, as...)
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("a member creates: %s", r.Raw)
		}
		r = s.post(t, `mutation($i: ComputedTraitDeleteInput!) { computedTraitDelete(input: $i) { deletedComputedTraitId } }`,
			map[string]any{"i": map[string]any{"id": ordersID}}, as...)
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("a member deletes: %s", r.Raw)
		}

		free := trkNewEnv(t, s, "traits-free")
		r = s.post(t, `mutation($i: ComputedTraitCreateInput!) { computedTraitCreate(input: $i) { computedTrait { id } } }`,
			map[string]any{"i": map[string]any{"workspaceId": free.wsID, "key": "x", "name": "X", "definition": map[string]any{"kind": "EVENT_COUNTER"}}}, free.auth...)
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("creating on the FREE plan: %s", r.Raw)
		}
		r = s.post(t, `query($ws: ID!) { node(id: $ws) { ... on Workspace { computedTraits { nodes { id } } } } }`, map[string]any{"ws": free.wsID}, free.auth...)
		if r.errorCode() != "FORBIDDEN" {
			t.Errorf("listing on the FREE plan: %s", r.Raw)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		other := tpNewEnv(t, s, "traits-other")
		r := s.post(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": ordersID}, other.auth...)
		if r.Data["node"] != nil {
			t.Errorf("another workspace's trait is visible: %s", r.Raw)
		}
		r = s.post(t, `mutation($i: ComputedTraitUpdateInput!) { computedTraitUpdate(input: $i) { computedTrait { id } } }`,
			map[string]any{"i": map[string]any{"id": ordersID, "name": "Mine"}}, other.auth...)
		if r.errorCode() != "NOT_FOUND" {
			t.Errorf("updating another workspace's trait: %s", r.Raw)
		}
		// The same key is free in another workspace; its values come from its own events only.
		other.send(t, other.src.Key, map[string]any{"type": "track", "messageId": "x1", "userId": "u1", "event": "Viewed"})
		engWait(t, "the other profile", func() bool { return other.profile(t, "user_id", "u1", "id") != nil })
		p := create(other, map[string]any{"key": "orders_30d", "name": "Orders", "definition": map[string]any{"kind": "EVENT_COUNTER", "eventName": "Order Completed"}})
		if errs, _ := p["userErrors"].([]any); len(errs) != 0 {
			t.Fatalf("the key in another workspace: %v", p)
		}
		engWait(t, "the other workspace's backfill", func() bool {
			d := other.gql(t, `query($id: ID!) { node(id: $id) { ... on ComputedTrait { status profileCount } } }`, map[string]any{"id": trkStr(p, "computedTrait.id")})
			return trkStr(d, "node.status") == "READY"
		})
		if c := other.computedTraits(t, "u1"); len(c) != 0 {
			t.Errorf("the other workspace's u1 has values %v", c)
		}
	})

	t.Run("Batches", func(t *testing.T) {
		// Profiles' computed traits and traits' profile counts load through dataloaders: the
		// statements of a page do not grow with its items.
		query := `query($ws: ID!) { node(id: $ws) { ... on Workspace {
			profiles(first: 50) { nodes { id computedTraits { key value computedAt computedTrait { id key name } } } }
			computedTraits(first: 50) { nodes { key profileCount createdBy { id } } } } } }`
		count := func() (int, int) {
			r := s.post(t, query, map[string]any{"ws": e.wsID}, e.auth...)
			d := mustData(t, r)
			return len(trkPath(d, "node.profiles.nodes").([]any)), s.statements(t, r)
		}
		n1, one := count()
		var batch []map[string]any
		for i := range 10 {
			batch = append(batch, map[string]any{"type": "track", "messageId": fmt.Sprint("b", i), "userId": fmt.Sprint("batch-", i), "event": "Viewed"})
		}
		e.send(t, e.src.Key, batch...)
		e.mutate(t, "computedTraitCreate", "ComputedTraitCreateInput", "computedTrait { id }", map[string]any{"workspaceId": e.wsID,
			"key": "views", "name": "Views", "definition": map[string]any{"kind": "EVENT_COUNTER", "eventName": "Viewed"}})
		engWait(t, "the new profiles' values", func() bool { return e.computedTraits(t, "batch-9")["views"] != nil })
		n2, two := count()
		t.Logf("%d profiles: %d statements; %d profiles: %d statements", n1, one, n2, two)
		if n2 <= n1 || two != one {
			t.Errorf("%d profiles took %d statements, %d took %d", n1, one, n2, two)
		}
	})
}
