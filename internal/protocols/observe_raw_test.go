package protocols

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/junctioncdp/junction/internal/ingest"
)

// TestObserveRawAgreesWithDecoding: the keys and names read from the raw payload are those read
// from the decoded one, so that the schema does not depend on which way an event went.
func TestObserveRawAgreesWithDecoding(t *testing.T) {
	str := func(s string) *string { return &s }
	many := make([]string, 150)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%03d":%d`, i, i)
	}
	for _, tc := range []struct {
		name    string
		typ     ingest.Type
		event   *string
		payload string
	}{
		{"TrackFlat", ingest.Track, str("Order Completed"),
			`{"type":"track","event":"Order Completed","properties":{"total":12.5,"count":3,"big":1e3,"coupon":null,"gift":true,"items":[{"a":1}],"name":"x"}}`},
		{"TrackNestedToTheDepthKept", ingest.Track, str("Nested"),
			`{"properties":{"a":{"b":{"c":{"d":1},"e":"s"}},"z":-0.0}}`},
		{"RepeatedKeyLastWins", ingest.Track, str("Twice"), `{"properties":{"k":1,"k":"now a string","j":{"x":1},"j":2}}`},
		{"RepeatedObjectLastWins", ingest.Track, str("Twice"), `{"properties":{"o":{"x":1,"n":{"deep":1}},"p":1,"o":{"y":2}}}`},
		{"EscapedKeysAndText", ingest.Track, str("Esc"), "{\"properties\":{\"a\\\"b\":\"\\u00e9t\\u00e9\",\"caf\u00e9\":\"\\n\",\"x y\":{\"\\t\":false}}}"},
		{"WhitespaceEverywhere", ingest.Track, str("Space"), "{ \"properties\" : { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { \"c\" : 1.5E-3 } } }"},
		{"PageName", ingest.Page, nil, `{"type":"page","name":"Pricing","properties":{"path":"/pricing"}}`},
		{"PageNameNotAString", ingest.Page, nil, `{"type":"page","name":42,"properties":{}}`},
		{"ScreenWithoutProperties", ingest.Screen, nil, `{"type":"screen","name":"Home"}`},
		{"IdentifyTraits", ingest.Identify, nil, `{"type":"identify","traits":{"email":"a@example.com","plan":{"tier":"pro"}},"properties":{"ignored":1}}`},
		{"GroupTraits", ingest.Group, nil, `{"type":"group","groupId":"g","traits":{"employees":12}}`},
		{"AliasKeepsNothing", ingest.Alias, nil, `{"type":"alias","previousId":"a","properties":{"x":1}}`},
		{"PropertiesNotAnObject", ingest.Track, str("Odd"), `{"properties":[1,2]}`},
		{"ManyKeys", ingest.Track, str("Many"), `{"properties":{` + strings.Join(many, ",") + `}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := &ingest.Event{Type: tc.typ, EventName: tc.event, Payload: []byte(tc.payload)}
			name, keys, ok := observeRaw(raw)
			if !ok {
				t.Fatalf("observeRaw refused %s", tc.payload)
			}
			decoded := &ingest.Event{Type: tc.typ, EventName: tc.event, Payload: []byte(tc.payload)}
			doc := decoded.Doc()
			wantName, wantKeys := eventName(decoded, doc), observe(tc.typ, doc)
			if name != wantName {
				t.Errorf("name %q, decoding gives %q", name, wantName)
			}
			sortKeys := func(k []observedKey) []observedKey {
				k = append([]observedKey(nil), k...)
				sort.Slice(k, func(i, j int) bool { return k[i].path < k[j].path })
				return k
			}
			if got, want := sortKeys(keys), sortKeys(wantKeys); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Errorf("keys\n %+v\ndecoding gives\n %+v", got, want)
			}
			// Once decoded (a stage may have changed it), the payload is not read raw.
			if _, _, ok := observeRaw(decoded); ok {
				t.Error("observeRaw read the raw payload of a decoded event")
			}
		})
	}
	t.Run("AtMostMaxKeysInDocumentOrder", func(t *testing.T) {
		all := make([]string, maxObservedKeys+50)
		for i := range all {
			all[i] = fmt.Sprintf(`"k%03d":%d`, i, i)
		}
		e := &ingest.Event{Type: ingest.Track, Payload: []byte(`{"properties":{` + strings.Join(all, ",") + `}}`)}
		_, keys, ok := observeRaw(e)
		if !ok || len(keys) != maxObservedKeys || keys[0].path != "k000" || keys[maxObservedKeys-1].path != fmt.Sprintf("k%03d", maxObservedKeys-1) {
			t.Errorf("%v: %d keys, want the first %d", ok, len(keys), maxObservedKeys)
		}
	})
}
