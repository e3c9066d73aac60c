package privacy

import (
	"encoding/json"
	"testing"
)

const benchPayload = `{"type":"track","event":"Product Viewed","userId":"user-1","properties":{"product_id":"p-1","category":"Games",
	"name":"Catan","price":18.99,"currency":"USD"},"context":{"library":{"name":"analytics-node","version":"3.1.0"}}}`

func TestWalkerPaths(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{"properties":{"a":{"b":{"c":1}},"list":[{"sku":"x"},{"sku":"y","n":2}],"tags":["t"],"empty":{}},
		"context":{"ip":"1.2.3.4"}}`), &doc); err != nil {
		t.Fatal(err)
	}
	n := &note{}
	w := walker{n: n}
	for _, sec := range sections {
		if m, ok := doc[sec].(map[string]any); ok {
			w.object(sec, m, 1)
		}
	}
	got := map[string]any{}
	for _, f := range n.fields {
		got[f.path] = f.value
	}
	want := map[string]any{"properties.a.b.c": 1.0, "properties.list[].sku": "x", "properties.list[].n": 2.0, "properties.tags[]": "t",
		"properties.empty": nil, "context.ip": "1.2.3.4"}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for p, v := range want {
		if gv, ok := got[p]; !ok || gv != v {
			t.Errorf("%s = %v (%v), want %v", p, gv, ok, v)
		}
	}
}

func TestWalkerRemoves(t *testing.T) {
	var doc map[string]any
	_ = json.Unmarshal([]byte(`{"properties":{"card":"4111","keep":1,"list":[{"card":"1"},{"card":"2"}]}}`), &doc)
	w := walker{n: &note{}, remove: func(path, key string) bool { return key == "card" }}
	w.object("properties", doc["properties"].(map[string]any), 1)
	b, _ := json.Marshal(doc)
	if string(b) != `{"properties":{"keep":1,"list":[{},{}]}}` || !w.removed {
		t.Errorf("after removal: %s", b)
	}
}

func BenchmarkWalker(b *testing.B) {
	var doc map[string]any
	_ = json.Unmarshal([]byte(benchPayload), &doc)
	b.ReportAllocs()
	for b.Loop() {
		w := walker{n: &note{}}
		for _, sec := range sections {
			if m, ok := doc[sec].(map[string]any); ok {
				w.object(sec, m, 1)
			}
		}
	}
}
