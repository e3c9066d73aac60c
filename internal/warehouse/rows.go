package warehouse

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ColType is the PostgreSQL type of a column.
type ColType string

const (
	Text      ColType = "text"
	Number    ColType = "double precision"
	Boolean   ColType = "boolean"
	Timestamp ColType = "timestamp with time zone"
)

// typeOf says which column type a JSON value makes: a string that reads as an RFC 3339 time is a
// timestamp, any number a double precision (one type for 5 and 5.5, so that they never conflict),
// an array its JSON text.
func typeOf(v any) ColType {
	switch x := v.(type) {
	case bool:
		return Boolean
	case float64, json.Number:
		return Number
	case string:
		if _, ok := parseTime(x); ok {
			return Timestamp
		}
	}
	return Text
}

func parseTime(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[10] != 'T' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// convert makes v a value for a column of type t, and tells whether it could. Anything becomes
// text; a number in a string becomes a number, "true" a boolean, a time a timestamp.
func convert(v any, t ColType) (any, bool) {
	switch t {
	case Text:
		switch x := v.(type) {
		case string:
			return x, true
		case bool:
			return strconv.FormatBool(x), true
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		}
		b, _ := json.Marshal(v)
		return string(b), true
	case Number:
		switch x := v.(type) {
		case float64:
			return x, true
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			return f, err == nil
		}
	case Boolean:
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			b, err := strconv.ParseBool(x)
			return b, err == nil
		}
	case Timestamp:
		if s, ok := v.(string); ok {
			if tm, ok := parseTime(s); ok {
				return tm, true
			}
		}
	}
	return nil, false
}

// Event is an event to load, as the event log stores it.
type Event struct {
	ID       string
	SourceID string
	Type     string
	Payload  map[string]any
}

// Row is one row of a table: column name to JSON value (not yet converted).
type Row map[string]any

// Table is the rows of one table of one schema that a sync loads.
type Table struct {
	Schema, Name string
	// Types are the types the values make, by column, the first seen winning.
	Types map[string]ColType
	Rows  []Row
	// byUser merges the rows of the users table: one per user, the latest traits winning.
	byUser map[string]Row
}

// Batch gathers the rows of a sync, by schema and table.
type Batch struct {
	tables map[string]*Table
	sel    Selection
	loaded time.Time // uuid_ts: when the rows were loaded
	Events int
}

// Selection is what selective sync lets through: tables (nil for all) and columns left out,
// "table.column" or "*.column".
type Selection struct {
	Tables   map[string]bool
	Excluded map[string]bool
}

func (s Selection) table(name string) bool { return s.Tables == nil || s.Tables[name] }
func (s Selection) column(table, col string) bool {
	return !s.Excluded[table+"."+col] && !s.Excluded["*."+col]
}

// NewBatch returns an empty batch.
func NewBatch(sel Selection, loaded time.Time) *Batch {
	return &Batch{tables: map[string]*Table{}, sel: sel, loaded: loaded}
}

// fixed are the columns of each table that come from the event itself: properties and traits of
// the same names are dropped, as Segment does, and selective sync cannot leave them out.
var fixed = map[string]bool{
	"id": true, "received_at": true, "sent_at": true, "timestamp": true, "original_timestamp": true, "user_id": true,
	"anonymous_id": true, "uuid_ts": true, "event": true, "event_text": true, "name": true, "group_id": true, "previous_id": true,
}

// Add turns one event into the rows it makes in the schema: tracks and the event's own table for
// a track, identifies and users for an identify, and so on.
func (b *Batch) Add(schema string, ev *Event) {
	b.Events++
	p := ev.Payload
	common := Row{}
	set := func(r Row, col string, v any) {
		if v != nil && v != "" {
			r[col] = v
		}
	}
	set(common, "id", str(p["messageId"]))
	for col, key := range map[string]string{"received_at": "receivedAt", "sent_at": "sentAt", "timestamp": "timestamp", "original_timestamp": "originalTimestamp"} {
		set(common, col, str(p[key]))
	}
	set(common, "user_id", str(p["userId"]))
	set(common, "anonymous_id", str(p["anonymousId"]))
	common["uuid_ts"] = b.loaded.UTC().Format(time.RFC3339Nano)
	if ctx, ok := p["context"].(map[string]any); ok {
		flatten("context", ctx, common)
	}
	with := func(extra map[string]any, obj string) Row {
		r := Row{}
		for k, v := range common {
			r[k] = v
		}
		for k, v := range extra {
			set(r, k, v)
		}
		if m, ok := p[obj].(map[string]any); ok {
			props := Row{}
			flatten("", m, props)
			for k, v := range props {
				if _, taken := r[k]; !taken && !fixed[k] {
					r[k] = v
				}
			}
		}
		return r
	}
	switch strings.ToLower(ev.Type) {
	case "track":
		name := str(p["event"])
		base := map[string]any{"event": Snake(name), "event_text": name}
		b.add(schema, "tracks", with(base, ""))
		if t := EventTable(name); t != "" {
			b.add(schema, t, with(base, "properties"))
		}
	case "identify":
		b.add(schema, "identifies", with(nil, "traits"))
		if uid := str(p["userId"]); uid != "" {
			traits := Row{}
			if m, ok := p["traits"].(map[string]any); ok {
				flatten("", m, traits)
			}
			u := Row{"id": uid, "received_at": common["received_at"], "uuid_ts": common["uuid_ts"]}
			for k, v := range traits {
				if !fixed[k] {
					u[k] = v
				}
			}
			b.addUser(schema, uid, u)
		}
	case "page":
		b.add(schema, "pages", with(map[string]any{"name": str(p["name"])}, "properties"))
	case "screen":
		b.add(schema, "screens", with(map[string]any{"name": str(p["name"])}, "properties"))
	case "group":
		b.add(schema, "groups", with(map[string]any{"group_id": str(p["groupId"])}, "traits"))
	case "alias":
		b.add(schema, "aliases", with(map[string]any{"previous_id": str(p["previousId"])}, ""))
	}
}

func (b *Batch) table(schema, name string) *Table {
	key := schema + "." + name
	t := b.tables[key]
	if t == nil {
		t = &Table{Schema: schema, Name: name, Types: map[string]ColType{}}
		b.tables[key] = t
	}
	return t
}

// keep applies selective sync to a row and notes its columns' types.
func (b *Batch) keep(t *Table, r Row) {
	for col, v := range r {
		if !fixed[col] && !b.sel.column(t.Name, col) {
			delete(r, col)
			continue
		}
		if _, ok := t.Types[col]; !ok {
			t.Types[col] = typeOf(v)
		}
	}
}

func (b *Batch) add(schema, name string, r Row) {
	if !b.sel.table(name) {
		return
	}
	t := b.table(schema, name)
	b.keep(t, r)
	t.Rows = append(t.Rows, r)
}

// addUser merges an identify's traits into the user's row of this batch: later traits win,
// traits not given again stay.
func (b *Batch) addUser(schema, userID string, r Row) {
	if !b.sel.table("users") {
		return
	}
	t := b.table(schema, "users")
	if t.byUser == nil {
		t.byUser = map[string]Row{}
	}
	b.keep(t, r)
	if prev := t.byUser[userID]; prev != nil {
		for k, v := range r {
			prev[k] = v
		}
		return
	}
	t.byUser[userID] = r
	t.Rows = append(t.Rows, r)
}

// Tables returns the batch's tables in a stable order: by schema, then name.
func (b *Batch) Tables() []*Table {
	out := make([]*Table, 0, len(b.tables))
	for _, t := range b.tables {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// flatten adds the members of obj to r as snake_case columns: a nested object's members with its
// name and an underscore before theirs (context.page.url is context_page_url), arrays as their
// JSON text, nulls left out. Names are made valid identifiers.
func flatten(prefix string, obj map[string]any, r Row) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first of two keys that make one name wins, the same every time
	for _, k := range keys {
		v := obj[k]
		name := Snake(k)
		if name == "" {
			continue
		}
		if prefix != "" {
			name = prefix + "_" + name
		}
		switch x := v.(type) {
		case nil:
		case map[string]any:
			flatten(name, x, r)
		case []any:
			bs, _ := json.Marshal(x)
			setOnce(r, Identifier(name), string(bs))
		default:
			setOnce(r, Identifier(name), x)
		}
	}
}

func setOnce(r Row, k string, v any) {
	if _, ok := r[k]; !ok {
		r[k] = v
	}
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
