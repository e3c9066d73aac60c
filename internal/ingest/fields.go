package ingest

import (
	"bytes"
	"strings"
)

// JSONKind is the JSON type of a value, as Fields reports it.
type JSONKind uint8

const (
	KindNull JSONKind = iota + 1
	KindBoolean
	KindInteger // a number without a fraction or an exponent
	KindNumber
	KindString
	KindArray
	KindObject
)

// Field is one key of an event's object, as a dotted path from that object, and its value's type.
type Field struct {
	Path string
	Kind JSONKind
}

// Fields reads, straight from the stored payload, the keys of the object under the top-level key
// object (properties, traits) with their types, nested objects' keys as dotted paths down to
// maxDepth levels, at most maxKeys of them in the order of the document (the last of a repeated
// key winning, as in Doc); and the top-level string name, for page and screen calls. It decodes no
// value: Protocols observes every accepted event's keys, and decoding whole payloads to maps for
// that was a fifth of the CPU time of a batch. It returns false when the payload was decoded
// already (a stage may have changed it; use Doc) or is not an object.
func (e *Event) Fields(object string, maxDepth, maxKeys int) (name string, fields []Field, ok bool) {
	if e.doc != nil {
		return "", nil, false
	}
	var nameRaw, objRaw []byte
	if !eachMember(e.Payload, func(key, val []byte) bool {
		switch {
		case keyIs(key, "name"):
			nameRaw = val
		case keyIs(key, object):
			objRaw = val
		}
		return true
	}) {
		return "", nil, false
	}
	if len(nameRaw) > 0 && nameRaw[0] == '"' {
		name, _ = unquote(nameRaw)
	}
	if len(objRaw) == 0 || objRaw[0] != '{' {
		return name, nil, true
	}
	var walk func(raw []byte, prefix string, depth int) bool
	walk = func(raw []byte, prefix string, depth int) bool {
		first := len(fields) // this object's keys start here
		return eachMember(raw, func(keyLit, val []byte) bool {
			key, ok := unquote(keyLit)
			if !ok {
				return false
			}
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			kind := kindOf(val)
			if i := indexPath(fields[first:], path); i >= 0 {
				// A repeated key: its last value wins, where its first stood, and nothing of the
				// earlier value's keys stays.
				fields[first+i].Kind = kind
				fields = dropBelow(fields, path+".")
			} else {
				if len(fields) >= maxKeys {
					return true
				}
				fields = append(fields, Field{Path: path, Kind: kind})
			}
			return kind != KindObject || depth+1 >= maxDepth || walk(val, path, depth+1)
		})
	}
	if !walk(objRaw, "", 0) {
		return "", nil, false
	}
	return name, fields, true
}

// eachMember calls f with each member of the JSON object raw, its key as a string literal (with
// its quotes) and its value raw, until f returns false; it returns false when raw is not an
// object or f returned false.
func eachMember(raw []byte, f func(key, val []byte) bool) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for i < len(raw) && raw[i] == '"' {
		end := skipString(raw, i)
		key := raw[i:end]
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = skipSpace(raw, i+1)
		vend := skipValue(raw, i)
		if !f(key, raw[i:vend]) {
			return false
		}
		i = skipSpace(raw, vend)
		if i >= len(raw) {
			return false
		}
		if raw[i] == '}' {
			return true
		}
		if raw[i] != ',' {
			return false
		}
		i = skipSpace(raw, i+1)
	}
	return false
}

// keyIs tells whether the string literal lit is s.
func keyIs(lit []byte, s string) bool {
	if len(lit) == len(s)+2 && string(lit[1:len(lit)-1]) == s {
		return true
	}
	if bytes.IndexByte(lit, '\\') < 0 {
		return false
	}
	k, ok := unquote(lit)
	return ok && k == s
}

func indexPath(fields []Field, path string) int {
	for i, f := range fields {
		if f.Path == path {
			return i
		}
	}
	return -1
}

// dropBelow removes the fields whose path starts with prefix.
func dropBelow(fields []Field, prefix string) []Field {
	out := fields[:0]
	for _, f := range fields {
		if !strings.HasPrefix(f.Path, prefix) {
			out = append(out, f)
		}
	}
	return out
}

// kindOf tells the type of a valid JSON value from its first bytes.
func kindOf(v []byte) JSONKind {
	if len(v) == 0 {
		return 0
	}
	switch v[0] {
	case '"':
		return KindString
	case '{':
		return KindObject
	case '[':
		return KindArray
	case 't', 'f':
		return KindBoolean
	case 'n':
		return KindNull
	}
	if bytes.ContainsAny(v, ".eE") {
		return KindNumber
	}
	return KindInteger
}
