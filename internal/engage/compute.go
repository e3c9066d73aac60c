package engage

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// Computation of computed traits. A batch of standing profiles (a few hundred) is computed for
// one trait by reading, on the read pool, the events resolved to each (and to the profiles merged
// into it) that meet the trait's event conditions within its window, then evaluating property
// conditions and the value in Go; an EVENT_COUNTER without property conditions is counted in SQL.
// Only the values that changed are written, in one short transaction per batch: the value in
// computed_trait_values and the same value in profile_traits under the trait's key.
//
// A profile's value is absent when no event of the window meets the conditions (or, for kinds
// that read a property, none has it), except for counters (EVENT_COUNTER, UNIQUE_LIST_COUNT): a
// profile that had a count keeps the trait at 0, as Segment's counters do.

// ComputedEventID is the event_id of the rows of profile_traits that hold computed traits' values
// (their source_id is NULL): the value of no one event.
const ComputedEventID = ""

// batchProfiles is how many profiles one batch computes (and at most how many values one write
// transaction changes per trait).
const batchProfiles = 250

// traitEvent is one event of a profile, as a trait's computation reads it.
type traitEvent struct {
	member  string // the profile it was resolved to (the standing one or one merged into it)
	id      string
	at      string // its time (timestamp, else received_at), in the stored form
	payload []byte
}

// cutoff is the oldest event time a trait's window keeps at now ("" for all time).
func (d *Definition) cutoff(now time.Time) string {
	if d.Window == nil {
		return ""
	}
	return db.FormatTime(now.Add(-d.Window.Duration()))
}

// eventFilter is the SQL condition (on alias e) of a definition's event conditions and window.
func (d *Definition) eventFilter(now time.Time) (string, []any) {
	var where []string
	var args []any
	if d.EventName != nil {
		where = append(where, "e.event_name = ?")
		args = append(args, *d.EventName)
	}
	if d.EventType != nil {
		where = append(where, "e.type = ?")
		args = append(args, string(*d.EventType))
	}
	if c := d.cutoff(now); c != "" {
		where = append(where, "COALESCE(e.timestamp, e.received_at) >= ?")
		args = append(args, c)
	}
	if len(where) == 0 {
		return "TRUE", nil
	}
	return strings.Join(where, " AND "), args
}

// members maps every profile whose events count for the standing profiles given (themselves and
// those merged into them) to its standing profile.
func (t *Traits) members(ctx context.Context, profiles []string) (map[string]string, error) {
	out := make(map[string]string, len(profiles))
	for _, p := range profiles {
		out[p] = p
	}
	var rows []struct {
		ID   string `db:"id"`
		Into string `db:"merged_into"`
	}
	// Not filtered by workspace: ids are global, and SQLite would then pick the workspace's index
	// and read all of its profiles for every batch.
	if err := t.db.Select(ctx, &rows, `SELECT id, merged_into FROM profiles WHERE merged_into IN (`+db.Placeholders(len(profiles))+`)`,
		db.Args(profiles)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.Into
	}
	return out, nil
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compute returns the values (JSON) of trait c for standing profiles at now, given their members
// (t.members: read once for all the traits of a batch); profiles without a value are absent.
func (t *Traits) compute(ctx context.Context, c *ComputedTrait, members map[string]string, now time.Time) (map[string]string, error) {
	d := c.Definition()
	ids := keysOf(members)
	filter, fargs := d.eventFilter(now)
	out := map[string]string{}
	if d.Kind == EventCounter && len(d.Conditions) == 0 {
		var rows []struct {
			Profile string `db:"profile_id"`
			N       int64  `db:"n"`
		}
		if err := t.db.Select(ctx, &rows, `SELECT pe.profile_id, COUNT(*) AS n FROM profile_events pe JOIN events e ON e.id = pe.event_id
			WHERE pe.profile_id IN (`+db.Placeholders(len(ids))+`) AND `+filter+` GROUP BY pe.profile_id`, append(db.Args(ids), fargs...)...); err != nil {
			return nil, err
		}
		sums := map[string]int64{}
		for _, r := range rows {
			sums[members[r.Profile]] += r.N
		}
		for p, n := range sums {
			if n > 0 {
				out[p] = strconv.FormatInt(n, 10)
			}
		}
		return out, nil
	}
	rows, err := t.db.Reader().QueryContext(ctx, `SELECT pe.profile_id, e.id, COALESCE(e.timestamp, e.received_at), e.payload
		FROM profile_events pe JOIN events e ON e.id = pe.event_id
		WHERE pe.profile_id IN (`+db.Placeholders(len(ids))+`) AND `+filter, append(db.Args(ids), fargs...)...)
	if err != nil {
		return nil, err
	}
	byProfile := map[string][]traitEvent{}
	for rows.Next() {
		var r traitEvent
		var payload string
		if err := rows.Scan(&r.member, &r.id, &r.at, &payload); err != nil {
			rows.Close()
			return nil, err
		}
		r.payload = []byte(payload)
		p := members[r.member]
		byProfile[p] = append(byProfile[p], r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for p, list := range byProfile {
		// Earliest first, ties by id: FIRST, LAST, MOST_FREQUENT and UNIQUE_LIST depend on order.
		sort.Slice(list, func(i, j int) bool {
			if list[i].at != list[j].at {
				return list[i].at < list[j].at
			}
			return list[i].id < list[j].id
		})
		if v, ok := d.evaluate(list); ok {
			out[p] = v
		}
	}
	return out, nil
}

// evaluate computes a definition's value (JSON) over one profile's events of the window, in
// time order; ok is false when it has none.
func (d *Definition) evaluate(events []traitEvent) (string, bool) {
	var count int64
	var values []any // the property's value in each event kept that has it
	for _, e := range events {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(e.payload))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			continue
		}
		if !d.matches(doc) {
			continue
		}
		count++
		if d.Kind != EventCounter {
			if v, ok := lookup(doc, d.Property); ok && v != nil {
				values = append(values, v)
			}
		}
	}
	switch d.Kind {
	case EventCounter:
		if count == 0 {
			return "", false
		}
		return strconv.FormatInt(count, 10), true
	case Aggregation:
		var acc float64
		n := 0
		for _, v := range values {
			x, ok := number(v)
			if !ok {
				continue
			}
			switch {
			case n == 0:
				acc = x
			case d.Aggregation == Min:
				acc = math.Min(acc, x)
			case d.Aggregation == Max:
				acc = math.Max(acc, x)
			default:
				acc += x
			}
			n++
		}
		if n == 0 {
			return "", false
		}
		if d.Aggregation == Average {
			acc /= float64(n)
		}
		return formatNumber(acc), true
	case First, Last:
		if len(values) == 0 {
			return "", false
		}
		if d.Kind == First {
			return marshal(values[0]), true
		}
		return marshal(values[len(values)-1]), true
	case MostFrequent:
		if len(values) == 0 {
			return "", false
		}
		freq, last := map[string]int{}, map[string]int{}
		for i, v := range values {
			k := marshal(v)
			freq[k]++
			last[k] = i
		}
		best := ""
		for k, n := range freq {
			if best == "" || n > freq[best] || (n == freq[best] && last[k] > last[best]) {
				best = k
			}
		}
		return best, true
	case UniqueList, UniqueListCount:
		seen := map[string]bool{}
		list := []any{}
		for _, v := range values {
			k := marshal(v)
			if !seen[k] {
				seen[k] = true
				if len(list) < maxUniqueValues {
					list = append(list, v)
				}
			}
		}
		if d.Kind == UniqueListCount {
			if len(seen) == 0 {
				return "", false
			}
			return strconv.Itoa(len(seen)), true
		}
		if len(list) == 0 {
			return "", false
		}
		return marshal(list), true
	}
	return "", false
}

// matches tells whether an event's document meets the property conditions (its name, type and
// time were filtered in SQL).
func (d *Definition) matches(doc map[string]any) bool {
	for _, c := range d.Conditions {
		v, ok := lookup(doc, c.Path)
		if ok && v == nil {
			ok = false
		}
		if !c.holds(v, ok) {
			return false
		}
	}
	return true
}

// holds tells whether a property's value (present says whether the event has it, non-null)
// meets the condition. Text comparisons (CONTAINS, STARTS_WITH, ENDS_WITH) ignore case; EQUALS
// compares numbers as numbers, booleans and strings as their text.
func (c PropertyCondition) holds(v any, present bool) bool {
	switch c.Operator {
	case Exists:
		return present
	case NotExists:
		return !present
	case NotEquals:
		return !present || !equal(v, *c.Value)
	case NotContains:
		return !present || !strings.Contains(strings.ToLower(text(v)), strings.ToLower(*c.Value))
	}
	if !present {
		return false
	}
	want := *c.Value
	switch c.Operator {
	case Equals:
		return equal(v, want)
	case Contains:
		return strings.Contains(strings.ToLower(text(v)), strings.ToLower(want))
	case StartsWith:
		return strings.HasPrefix(strings.ToLower(text(v)), strings.ToLower(want))
	case EndsWith:
		return strings.HasSuffix(strings.ToLower(text(v)), strings.ToLower(want))
	}
	x, ok := number(v)
	y, err := strconv.ParseFloat(strings.TrimSpace(want), 64)
	if !ok || err != nil {
		return false
	}
	switch c.Operator {
	case GreaterThan:
		return x > y
	case GreaterThanOrEqual:
		return x >= y
	case LessThan:
		return x < y
	case LessThanOrEqual:
		return x <= y
	}
	return false
}

func equal(v any, want string) bool {
	if n, ok := v.(json.Number); ok {
		x, err1 := n.Float64()
		y, err2 := strconv.ParseFloat(strings.TrimSpace(want), 64)
		if err1 == nil && err2 == nil {
			return x == y
		}
	}
	return text(v) == want
}

// text is a value's text: a string's, other values' JSON.
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return marshal(v)
}

// number reads a numeric value: a JSON number, or a string holding one.
func number(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// lookup finds a property path in an event: under properties, unless the path starts with
// properties., traits. or context.
func lookup(doc map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	switch parts[0] {
	case "properties", "traits", "context":
	default:
		parts = append([]string{"properties"}, parts...)
	}
	var cur any = doc
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// valueText is the text column of a value in profile_traits: a string's text, other values' JSON.
func valueText(value string) string {
	var s string
	if json.Unmarshal([]byte(value), &s) == nil {
		return s
	}
	return value
}

// apply writes the values of trait c computed for profiles: changed values are written (with the
// trait's row in profile_traits), absent ones removed (counters set to 0). With assert, the rows
// of profile_traits are written even when the value did not change, for profiles whose traits
// identity resolution may just have overwritten (an identify call setting a trait of the same
// name, a merge). With cursor set, the trait's pass moves to it in the same transaction (or
// ends, with done), if the trait is still at its version and in that pass.
func (t *Traits) apply(ctx context.Context, c *ComputedTrait, profiles []string, values map[string]string, assert bool, now time.Time, cursor *string, done bool) (bool, error) {
	var stored []struct {
		Profile string `db:"profile_id"`
		Value   string `db:"value"`
	}
	if err := t.db.Select(ctx, &stored, `SELECT profile_id, value FROM computed_trait_values WHERE computed_trait_id = ?
		AND profile_id IN (`+db.Placeholders(len(profiles))+`)`, append([]any{c.ID}, db.Args(profiles)...)...); err != nil {
		return false, err
	}
	old := make(map[string]string, len(stored))
	for _, r := range stored {
		old[r.Profile] = r.Value
	}
	// With assert, the rows of profile_traits are read too, so that only those that differ
	// are written: most recomputations after an event change nothing, and take no writer.
	var mirrored map[string]string
	if assert {
		var rows []struct {
			Profile string  `db:"profile_id"`
			Value   string  `db:"value"`
			Event   string  `db:"event_id"`
			Source  *string `db:"source_id"`
		}
		if err := t.db.Select(ctx, &rows, `SELECT profile_id, value, event_id, source_id FROM profile_traits WHERE name = ?
			AND profile_id IN (`+db.Placeholders(len(profiles))+`)`, append([]any{c.Key}, db.Args(profiles)...)...); err != nil {
			return false, err
		}
		mirrored = make(map[string]string, len(rows))
		for _, r := range rows {
			if r.Event == ComputedEventID && r.Source == nil {
				mirrored[r.Profile] = r.Value
			} else {
				mirrored[r.Profile] = "\x00" // another trait's value: never equal to a computed one
			}
		}
	}
	at := db.Time{Time: now.UTC().Truncate(time.Microsecond)}
	var set, mirror [][]any
	var gone []string
	for _, p := range profiles {
		v, has := values[p]
		prev, had := old[p]
		if !has && had && c.Kind.counts() {
			v, has = "0", true
		}
		switch {
		case has && (!had || prev != v):
			set = append(set, []any{c.ID, p, c.WorkspaceID, v, at})
			mirror = append(mirror, []any{p, c.WorkspaceID, c.Key, v, valueText(v), nil, ComputedEventID, at})
		case has && assert:
			if m, ok := mirrored[p]; !ok || m != v {
				mirror = append(mirror, []any{p, c.WorkspaceID, c.Key, v, valueText(v), nil, ComputedEventID, at})
			}
		case !has && had:
			gone = append(gone, p)
		case !has && assert:
			if m, ok := mirrored[p]; ok && m != "\x00" {
				gone = append(gone, p)
			}
		}
	}
	if len(set) == 0 && len(mirror) == 0 && len(gone) == 0 && cursor == nil {
		return true, nil
	}
	current := true
	err := t.db.Tx(ctx, func(tx *db.Tx) error {
		// A trait deleted, disabled or changed since its batch was read is left alone: its
		// removal or its new pass takes over.
		var version []int64
		if err := tx.Select(ctx, &version, `SELECT version FROM computed_traits WHERE id = ? AND enabled`, c.ID); err != nil {
			return err
		}
		if len(version) == 0 || version[0] != c.Version {
			current = false
			return nil
		}
		if err := tx.InsertRows(ctx, `INSERT INTO computed_trait_values (computed_trait_id, profile_id, workspace_id, value, computed_at) VALUES `, 5, set,
			` ON CONFLICT (computed_trait_id, profile_id) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at`); err != nil {
			return err
		}
		if err := tx.InsertRows(ctx, `INSERT INTO profile_traits (profile_id, workspace_id, name, value, text, source_id, event_id, updated_at) VALUES `, 8, mirror,
			` ON CONFLICT (profile_id, name) DO UPDATE SET value = excluded.value, text = excluded.text, source_id = NULL, event_id = excluded.event_id,
			updated_at = excluded.updated_at WHERE profile_traits.value <> excluded.value OR profile_traits.event_id <> excluded.event_id
			OR profile_traits.source_id IS NOT NULL`); err != nil {
			return err
		}
		if len(gone) > 0 {
			args := append([]any{c.ID}, db.Args(gone)...)
			if _, err := tx.Exec(ctx, `DELETE FROM computed_trait_values WHERE computed_trait_id = ? AND profile_id IN (`+db.Placeholders(len(gone))+`)`, args...); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM profile_traits WHERE name = ? AND event_id = ? AND profile_id IN (`+db.Placeholders(len(gone))+`)`,
				append([]any{c.Key, ComputedEventID}, db.Args(gone)...)...); err != nil {
				return err
			}
		}
		if cursor != nil {
			var err error
			if done {
				_, err = tx.Exec(ctx, `UPDATE computed_traits SET pass = NULL, pass_cursor = NULL, last_computed_at = ? WHERE id = ? AND version = ?
					AND pass = ?`, at, c.ID, c.Version, c.Pass)
			} else {
				_, err = tx.Exec(ctx, `UPDATE computed_traits SET pass_cursor = ? WHERE id = ? AND version = ? AND pass = ?`, *cursor, c.ID, c.Version, c.Pass)
			}
			return err
		}
		return nil
	})
	return current, err
}
