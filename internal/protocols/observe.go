package protocols

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/db"
	"github.com/junctioncdp/junction/internal/ingest"
)

// observer keeps each source's schema and violations up to date from what the tracking API
// commits. It runs on the ingest follower's goroutine, never in the writer's transaction: what a
// group commit brings is added up in memory, then written in small transactions of batched upserts
// (a few milliseconds each), so that the tracking API's commits are not held behind it.
type observer struct{ s *Service }

// rowsPerTx bounds the rows one of the observer's transactions writes.
const rowsPerTx = 300

type eventKey struct {
	source, typ, name string
}

type keyKey struct {
	eventKey
	field, path string
}

type violationKey struct {
	eventKey
	field, vtype string
}

type span struct {
	first, last time.Time
}

func (sp *span) add(t time.Time) {
	if sp.first.IsZero() || t.Before(sp.first) {
		sp.first = t
	}
	if t.After(sp.last) {
		sp.last = t
	}
}

type hourCount struct{ n, blocked int64 }

type violationAgg struct {
	workspace string
	span      span
	message   string
	sample    *ingest.Event
	payload   []byte
	hours     map[string]int64
}

// Committed is the listener of commits (ingest.Options.Listeners).
func (s *Service) Committed(c ingest.Committed) { s.observer.committed(context.Background(), c) }

func hourOf(t time.Time) string { return t.UTC().Format("2006-01-02T15") }

func (o *observer) committed(ctx context.Context, c ingest.Committed) {
	events := map[eventKey]*span{}
	workspaces := map[string]string{} // source -> workspace
	blocked := map[eventKey]time.Time{}
	keys := map[keyKey]*struct {
		span
		types int64
	}{}
	counts := map[keyKey]map[string]*hourCount{}
	violations := map[violationKey]*violationAgg{}
	count := func(k keyKey, hour string, isBlocked bool) {
		m := counts[k]
		if m == nil {
			m = map[string]*hourCount{}
			counts[k] = m
		}
		h := m[hour]
		if h == nil {
			h = &hourCount{}
			m[hour] = h
		}
		h.n++
		if isBlocked {
			h.blocked++
		}
	}
	for _, e := range c.Events {
		var n *note
		for _, x := range e.Notes {
			if nn, ok := x.(*note); ok {
				n = nn
			}
		}
		if n == nil {
			continue
		}
		at := e.ReceivedAt
		hour := hourOf(at)
		ek := eventKey{n.sourceID, string(n.typ), n.eventName}
		workspaces[n.sourceID] = e.WorkspaceID
		sp := events[ek]
		if sp == nil {
			sp = &span{}
			events[ek] = sp
		}
		sp.add(at)
		count(keyKey{eventKey: ek}, hour, n.blocked)
		if n.blocked {
			if t, ok := blocked[ek]; !ok || at.Before(t) {
				blocked[ek] = at
			}
		}
		for _, k := range n.keys {
			kk := keyKey{ek, k.field, k.path}
			agg := keys[kk]
			if agg == nil {
				agg = &struct {
					span
					types int64
				}{}
				keys[kk] = agg
			}
			agg.add(at)
			agg.types |= k.types
			count(kk, hour, n.blocked)
		}
		for _, v := range e.Violations {
			vk := violationKey{ek, v.Field, v.Type}
			agg := violations[vk]
			if agg == nil {
				agg = &violationAgg{workspace: e.WorkspaceID, hours: map[string]int64{}}
				violations[vk] = agg
			}
			agg.span.add(at)
			agg.message = v.Message
			agg.sample = e
			agg.payload = e.Payload
			if n.original != nil {
				agg.payload = n.original
			}
			agg.hours[hour]++
		}
	}
	if len(events) == 0 {
		return
	}
	if err := o.store(ctx, workspaces, events, blocked, keys, counts, violations); err != nil {
		o.s.log.Error("protocols: storing schemas and violations failed", "error", err.Error())
	}
}

// chunks runs fn over rows in transactions of at most rowsPerTx rows.
func (o *observer) chunks(ctx context.Context, rows [][]any, fn func(tx *db.Tx, chunk [][]any) error) error {
	for start := 0; start < len(rows); start += rowsPerTx {
		chunk := rows[start:min(start+rowsPerTx, len(rows))]
		if err := o.s.db.Tx(ctx, func(tx *db.Tx) error { return fn(tx, chunk) }); err != nil {
			return err
		}
	}
	return nil
}

func (o *observer) store(ctx context.Context, workspaces map[string]string, events map[eventKey]*span, blocked map[eventKey]time.Time,
	keys map[keyKey]*struct {
		span
		types int64
	}, counts map[keyKey]map[string]*hourCount, violations map[violationKey]*violationAgg) error {
	var rows [][]any
	for k, sp := range events {
		rows = append(rows, []any{k.source, workspaces[k.source], k.typ, k.name, k.typ + ":" + k.name, db.Time{Time: sp.first}, db.Time{Time: sp.last}})
	}
	sortRows(rows)
	if err := o.chunks(ctx, rows, func(tx *db.Tx, chunk [][]any) error {
		return tx.InsertRows(ctx, `INSERT INTO schema_events (source_id, workspace_id, event_type, event_name, event_key, first_seen_at, last_seen_at) VALUES `, 7, chunk,
			` ON CONFLICT (source_id, event_type, event_name) DO UPDATE SET last_seen_at = CASE WHEN excluded.last_seen_at > schema_events.last_seen_at
			THEN excluded.last_seen_at ELSE schema_events.last_seen_at END`)
	}); err != nil {
		return err
	}
	rows = rows[:0]
	for k, agg := range keys {
		rows = append(rows, []any{k.source, k.typ, k.name, k.field, k.path, agg.types, db.Time{Time: agg.first}, db.Time{Time: agg.last}})
	}
	sortRows(rows)
	if err := o.chunks(ctx, rows, func(tx *db.Tx, chunk [][]any) error {
		return tx.InsertRows(ctx, `INSERT INTO schema_keys (source_id, event_type, event_name, field, path, types, first_seen_at, last_seen_at) VALUES `, 8, chunk,
			` ON CONFLICT (source_id, event_type, event_name, field, path) DO UPDATE SET types = schema_keys.types | excluded.types,
			last_seen_at = CASE WHEN excluded.last_seen_at > schema_keys.last_seen_at THEN excluded.last_seen_at ELSE schema_keys.last_seen_at END`)
	}); err != nil {
		return err
	}
	rows = rows[:0]
	for k, hours := range counts {
		for h, c := range hours {
			rows = append(rows, []any{k.source, k.typ, k.name, k.field, k.path, h, c.n, c.blocked})
		}
	}
	sortRows(rows)
	if err := o.chunks(ctx, rows, func(tx *db.Tx, chunk [][]any) error {
		return tx.InsertRows(ctx, `INSERT INTO schema_counts (source_id, event_type, event_name, field, path, hour, n, blocked) VALUES `, 8, chunk,
			` ON CONFLICT (source_id, event_type, event_name, field, path, hour) DO UPDATE SET n = schema_counts.n + excluded.n,
			blocked = schema_counts.blocked + excluded.blocked`)
	}); err != nil {
		return err
	}
	newlyBlocked, err := o.markBlocked(ctx, blocked)
	if err != nil {
		return err
	}
	fresh, changed, err := o.storeViolations(ctx, violations)
	if err != nil {
		return err
	}
	o.notify(ctx, workspaces, newlyBlocked, fresh)
	if o.s.OnViolations != nil {
		for ws, srcs := range changed {
			o.s.OnViolations(ws, srcs)
		}
	}
	return nil
}

// sortRows orders rows by their text, so that concurrent writers take row locks in one order.
func sortRows(rows [][]any) {
	sort.Slice(rows, func(i, j int) bool { return fmt.Sprint(rows[i][:4]) < fmt.Sprint(rows[j][:4]) })
}

// markBlocked records when events were first blocked and returns those blocked for the first time.
func (o *observer) markBlocked(ctx context.Context, blocked map[eventKey]time.Time) ([]eventKey, error) {
	var fresh []eventKey
	for k, at := range blocked {
		err := o.s.db.Tx(ctx, func(tx *db.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE schema_events SET first_blocked_at = ? WHERE source_id = ? AND event_type = ? AND event_name = ? AND first_blocked_at IS NULL`,
				db.Time{Time: at}, k.source, k.typ, k.name)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				fresh = append(fresh, k)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// storeViolations adds violations to their aggregates; it returns the kinds of violation seen for
// the first time and, by workspace, the sources whose violations changed.
func (o *observer) storeViolations(ctx context.Context, violations map[violationKey]*violationAgg) ([]violationKey, map[string][]string, error) {
	if len(violations) == 0 {
		return nil, nil, nil
	}
	ordered := make([]violationKey, 0, len(violations))
	for k := range violations {
		ordered = append(ordered, k)
	}
	sort.Slice(ordered, func(i, j int) bool { return fmt.Sprint(ordered[i]) < fmt.Sprint(ordered[j]) })
	var fresh []violationKey
	changed := map[string][]string{}
	seenSource := map[string]bool{}
	for start := 0; start < len(ordered); start += rowsPerTx / 4 {
		chunk := ordered[start:min(start+rowsPerTx/4, len(ordered))]
		err := o.s.db.Tx(ctx, func(tx *db.Tx) error {
			for _, k := range chunk {
				agg := violations[k]
				res, err := tx.Exec(ctx, `INSERT INTO violation_keys (source_id, workspace_id, event_type, event_name, field, violation_type, message, first_seen_at, last_seen_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_id, event_type, event_name, field, violation_type) DO NOTHING`,
					k.source, agg.workspace, k.typ, k.name, k.field, k.vtype, agg.message, db.Time{Time: agg.span.first}, db.Time{Time: agg.span.last})
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n > 0 {
					fresh = append(fresh, k)
				} else if _, err := tx.Exec(ctx, `UPDATE violation_keys SET message = ?, last_seen_at = CASE WHEN last_seen_at < ? THEN ? ELSE last_seen_at END
					WHERE source_id = ? AND event_type = ? AND event_name = ? AND field = ? AND violation_type = ?`,
					agg.message, db.Time{Time: agg.span.last}, db.Time{Time: agg.span.last}, k.source, k.typ, k.name, k.field, k.vtype); err != nil {
					return err
				}
				for h, n := range agg.hours {
					if _, err := tx.Exec(ctx, `INSERT INTO violation_counts (source_id, event_type, event_name, field, violation_type, hour, n) VALUES (?, ?, ?, ?, ?, ?, ?)
						ON CONFLICT (source_id, event_type, event_name, field, violation_type, hour) DO UPDATE SET n = violation_counts.n + excluded.n`,
						k.source, k.typ, k.name, k.field, k.vtype, h, n); err != nil {
						return err
					}
				}
				f := fnv.New32a()
				f.Write([]byte(agg.sample.ID))
				payload := agg.payload
				if len(payload) > 16<<10 {
					payload = payload[:0] // too large to keep twice: the event itself is the sample
				}
				if _, err := tx.Exec(ctx, `INSERT INTO violation_samples (source_id, event_type, event_name, field, violation_type, slot, event_id, received_at, payload)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_id, event_type, event_name, field, violation_type, slot)
					DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at, payload = excluded.payload`,
					k.source, k.typ, k.name, k.field, k.vtype, int64(f.Sum32()%3), agg.sample.ID, db.Time{Time: agg.sample.ReceivedAt}, string(payload)); err != nil {
					return err
				}
				if !seenSource[k.source] {
					seenSource[k.source] = true
					changed[agg.workspace] = append(changed[agg.workspace], k.source)
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return fresh, changed, nil
}

// notify tells the workspaces' members (PROTOCOLS area) of events blocked for the first time and
// of kinds of violation seen for the first time, one notification per source and kind of news.
func (o *observer) notify(ctx context.Context, workspaces map[string]string, blocked []eventKey, fresh []violationKey) {
	if len(blocked) == 0 && len(fresh) == 0 {
		return
	}
	if o.s.Publish != nil {
		ctx = audit.WithPublisher(ctx, o.s.Publish)
	}
	names := map[string][]string{}
	for _, k := range blocked {
		names[k.source] = append(names[k.source], describeEvent(k.typ, k.name))
	}
	kinds := map[string][]string{}
	for _, k := range fresh {
		kinds[k.source] = append(kinds[k.source], fmt.Sprintf("%s on %s of %s", k.vtype, k.field, describeEvent(k.typ, k.name)))
	}
	err := o.s.db.Tx(ctx, func(tx *db.Tx) error {
		for _, src := range sortedKeys(names) {
			list := names[src]
			sort.Strings(list)
			msg := "new events blocked: " + joinSome(list)
			if err := audit.Notify(ctx, tx, workspaces[src], EventNewEventBlocked, "Source", src, msg, nil, nil); err != nil {
				return err
			}
		}
		for _, src := range sortedKeys(kinds) {
			list := kinds[src]
			sort.Strings(list)
			msg := "violations detected: " + joinSome(list)
			if err := audit.Notify(ctx, tx, workspaces[src], EventViolationsDetected, "Source", src, msg, nil, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.s.log.Error("protocols: notifying violations failed", "error", err.Error())
	}
}

func describeEvent(typ, name string) string {
	if name == "" {
		return strings.ToLower(typ) + " calls"
	}
	return fmt.Sprintf("%s “%s”", strings.ToLower(typ), name)
}

func joinSome(list []string) string {
	if len(list) > 5 {
		return strings.Join(list[:5], "; ") + fmt.Sprintf(" and %d more", len(list)-5)
	}
	return strings.Join(list, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Prune deletes the hourly counts of schemas and violations older than 7 days, in small batches.
func (s *Service) Prune(ctx context.Context, now time.Time) (int64, error) {
	cutoff := hourOf(now.Add(-7 * 24 * time.Hour))
	var total int64
	for _, t := range []struct{ table, key string }{
		{"schema_counts", "source_id, event_type, event_name, field, path, hour"},
		{"violation_counts", "source_id, event_type, event_name, field, violation_type, hour"},
	} {
		n, err := s.db.Drain(ctx, func(ctx context.Context, tx *db.Tx, limit int) (int64, error) {
			res, err := tx.Exec(ctx, `DELETE FROM `+t.table+` WHERE (`+t.key+`) IN (SELECT `+t.key+` FROM `+t.table+` WHERE hour < ? LIMIT ?)`, cutoff, limit)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
