package ingest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// docByEncodingJSON is what Event.Doc gave before parseDoc, and still gives when parseDoc declines.
func docByEncodingJSON(b []byte) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}

var docCases = []string{
	`{}`,
	` { "a" : 1 , "b" : [ ] , "c" : { } } `,
	`{"type":"track","event":"Product Viewed","userId":"u1","properties":{"price":18.99,"qty":3,"big":9007199254740993,"tiny":-1.5e-7,"ok":true,"no":false,"none":null,"tags":["a",1,{"x":[[]]}]}}`,
	`{"a":1,"a":2}`,
	`{"esc":"line\nbreak \"quoted\" \u00e9 \ud83d\ude00","key\twith tab":1}`,
	`{"utf8":"héllo wörld ✓"}`,
	"{\"bad\":\"\xff\xfe\"}",
	"{\"ctl\":\"a\x01b\"}",
	`{"n":-0,"m":0.0,"e":1E+2,"f":1e-0}`,
	`{"n":01}`,
	`{"n":1.}`,
	`{"n":.5}`,
	`{"n":-}`,
	`{"n":1e}`,
	`{"a":1} {"b":2}`,
	`{"a":1}x`,
	`{"a":1,}`,
	`{"a" 1}`,
	`{"a":tru}`,
	`{"a":nul}`,
	`{"a":[1,2,]}`,
	`{"a":"unterminated}`,
	`[1,2]`,
	`null`,
	`"s"`,
	``,
	`{`,
}

// TestParseDoc: parseDoc gives what encoding/json gives, or declines.
func TestParseDoc(t *testing.T) {
	for _, c := range docCases {
		want := docByEncodingJSON([]byte(c))
		got, ok := parseDoc([]byte(c))
		if !ok {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseDoc(%q) = %#v, encoding/json gives %#v", c, got, want)
		}
	}
	// The common case is not declined.
	if _, ok := parseDoc([]byte(docCases[2])); !ok {
		t.Errorf("parseDoc declined a plain event")
	}
	if _, ok := parseDoc([]byte(docCases[4])); !ok {
		t.Errorf("parseDoc declined an event with escaped strings")
	}
}

func FuzzParseDoc(f *testing.F) {
	for _, c := range docCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseDoc(b)
		if !ok {
			return
		}
		if want := docByEncodingJSON(b); !reflect.DeepEqual(got, want) {
			t.Errorf("parseDoc(%q) = %#v, encoding/json gives %#v", b, got, want)
		}
	})
}

func BenchmarkEventDoc(b *testing.B) {
	payload := []byte(docCases[2])
	b.Run("parseDoc", func(b *testing.B) {
		for range b.N {
			if _, ok := parseDoc(payload); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for range b.N {
			docByEncodingJSON(payload)
		}
	})
}

// FuzzCompact: on valid JSON, compact writes what json.Compact writes.
func FuzzCompact(f *testing.F) {
	for _, c := range docCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(" [ 1 , \"a b\\\" c\" , { \"k\" :\n\t\"v\" } ] "))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want bytes.Buffer
		if json.Compact(&want, b) != nil {
			return
		}
		var got bytes.Buffer
		compact(&got, b)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("compact(%q) = %q, json.Compact gives %q", b, got.Bytes(), want.Bytes())
		}
	})
}
