package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// MaxIdentifier is PostgreSQL's limit on the length of a name, in bytes: a longer name is
// silently truncated by the server, so the loader truncates it itself and knows the real name.
const MaxIdentifier = 63

// Snake turns a name into the snake_case that Segment's warehouses use (as its go-snakecase
// does): "orderCompleted" and "Order Completed" are both order_completed, "userID" is user_id,
// "context.page.url" is context_page_url. Letters are lower-cased, every run of other characters
// becomes one underscore, and underscores at the ends are dropped.
func Snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	under := false // an underscore is due before the next letter or digit
	for i, r := range rs {
		switch {
		case unicode.IsUpper(r):
			// A word starts at an upper-case letter after a lower-case letter or digit, or at
			// the last upper-case letter of a run that a lower-case letter follows (IDToken).
			if i > 0 && b.Len() > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
				under = true
			}
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(unicode.ToLower(r))
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(unicode.ToLower(r))
		default:
			under = true
		}
	}
	return b.String()
}

// Identifier makes a snake_case name into a name the warehouse takes: one that starts with a
// digit gets an underscore before it, and one longer than MaxIdentifier bytes is cut, its last
// 9 bytes replaced by an underscore and a hash of the whole name, so that two long names that
// share their first 63 bytes stay apart. An empty name is "".
func Identifier(name string) string {
	if name == "" {
		return ""
	}
	if name[0] >= '0' && name[0] <= '9' {
		name = "_" + name
	}
	if len(name) <= MaxIdentifier {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	cut := MaxIdentifier - 9
	for cut > 0 && !utf8Start(name[cut]) {
		cut--
	}
	return name[:cut] + "_" + hex.EncodeToString(sum[:4])
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// quote quotes an identifier for PostgreSQL: any name, a reserved word (order, from, user)
// included, is then taken as it is.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// qualified is schema.table, quoted.
func qualified(schema, table string) string { return quote(schema) + "." + quote(table) }

// The tables every source's schema has; an event whose snake_case name is one of them loads into
// a table named with an underscore before it (an event "Tracks" into _tracks).
var reservedTables = map[string]bool{
	"tracks": true, "identifies": true, "users": true, "pages": true, "screens": true, "groups": true, "aliases": true,
}

// EventTable is the table of a track event's name: its snake_case, made a valid identifier,
// with an underscore before it when it is one of the reserved tables. "" for an event without a
// name that makes one.
func EventTable(event string) string {
	name := Snake(event)
	if reservedTables[name] {
		name = "_" + name
	}
	return Identifier(name)
}
