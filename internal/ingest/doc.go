package ingest

import (
	"encoding/json"
	"unicode/utf8"
)

// parseDoc decodes a JSON object into exactly what encoding/json's Decoder with UseNumber gives for
// a map[string]any (objects as map[string]any, arrays as []any, numbers as json.Number, the last of
// a repeated key winning), in a single pass without reflection: Protocols observes every accepted
// event's fields through Event.Doc, and encoding/json took 9 µs of the 40 µs of CPU an event of a
// batch cost. It returns false for anything it does not take on (input that is not one valid
// object, strings with escapes or bytes that encoding/json would replace, deep nesting), and the
// caller decodes that with encoding/json instead.
func parseDoc(b []byte) (map[string]any, bool) {
	p := docParser{b: b}
	p.space()
	if p.i >= len(b) || b[p.i] != '{' {
		return nil, false
	}
	v, ok := p.object(0)
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.i == len(b)
}

// maxDocDepth is the nesting parseDoc goes to; deeper documents go to encoding/json.
const maxDocDepth = 100

type docParser struct {
	b []byte
	i int
}

func (p *docParser) space() { p.i = skipSpace(p.b, p.i) }

func (p *docParser) value(depth int) (any, bool) {
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		m, ok := p.object(depth + 1)
		return m, ok
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, false
}

// object parses the object at p.i (a '{').
func (p *docParser) object(depth int) (map[string]any, bool) {
	if depth > maxDocDepth {
		return nil, false
	}
	p.i++ // {
	m := map[string]any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, false
		}
		key, ok := p.string()
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v
		p.space()
		if p.i >= len(p.b) {
			return nil, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (p *docParser) array(depth int) ([]any, bool) {
	if depth > maxDocDepth {
		return nil, false
	}
	p.i++ // [
	out := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return out, true
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		out = append(out, v)
		p.space()
		if p.i >= len(p.b) {
			return nil, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return out, true
		default:
			return nil, false
		}
	}
}

// string parses the string at p.i (a quote). One with escapes or bytes that are not UTF-8 is
// decoded by encoding/json, which unescapes it and replaces those bytes as it always does.
func (p *docParser) string() (string, bool) {
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return p.slowString(j + 1)
			}
			p.i = j + 1
			return string(s), true
		case c == '\\':
			return p.slowString(skipString(p.b, p.i))
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func (p *docParser) slowString(end int) (string, bool) {
	var s string
	if json.Unmarshal(p.b[p.i:end], &s) != nil {
		return "", false
	}
	p.i = end
	return s, true
}

func (p *docParser) literal(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// number parses a number as JSON's grammar has it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *docParser) number() (json.Number, bool) {
	b, start := p.b, p.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return "", false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return "", false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return "", false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	p.i = i
	return json.Number(b[start:i]), true
}
