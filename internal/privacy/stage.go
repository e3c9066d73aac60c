package privacy

import (
	"context"
	"encoding/json"

	"github.com/junctioncdp/junction/internal/ingest"
)

// Sections are the parts of an event that are scanned and controlled.
var sections = []string{"properties", "traits", "context"}

// fieldSeen is one field of one event: its path, its last key, and one of its values.
type fieldSeen struct {
	path, key string
	value     any
}

// note is what the stage saw of an event, for the listener of commits.
type note struct {
	sourceID, eventName string
	fields              []fieldSeen
}

// Stage returns the tracking API's stage of the Privacy Portal: it notes each accepted event's
// fields and removes those its source blocks. It runs before the tracking plan's stage, which
// walks the same decoded payload (decoded once, by whichever asks first).
func (s *Service) Stage() ingest.Stage { return stage{s} }

type stage struct{ s *Service }

func (st stage) Process(ctx context.Context, b *ingest.Batch) error {
	r, err := st.s.cache.rules(ctx, b.WorkspaceID)
	if err != nil {
		return err
	}
	if !r.enabled {
		return nil
	}
	block, blocking := r.sourceBlock[b.SourceID]
	for _, e := range b.Events {
		// Discarded events are stored too: they lose the blocked fields, and are not noted.
		if e.Status != ingest.Accepted && !blocking {
			continue
		}
		doc := e.Doc()
		n := &note{sourceID: b.SourceID, eventName: eventName(e, doc)}
		w := walker{n: n}
		if blocking {
			w.remove = func(path, key string) bool { return r.classOf(path, key).rank() >= block.rank() }
		}
		for _, sec := range sections {
			if m, ok := doc[sec].(map[string]any); ok {
				w.object(sec, m, 1)
			}
		}
		if w.removed {
			// The payload as received is gone too: what later stages keep of it (the tracking
			// plan's samples of events it trims) must not hold the removed fields.
			if raw, err := json.Marshal(doc); err == nil {
				e.Payload = raw
			}
			e.Changed()
		}
		if len(n.fields) > 0 && e.Status == ingest.Accepted {
			e.Notes = append(e.Notes, n)
		}
	}
	return nil
}

func eventName(e *ingest.Event, doc map[string]any) string {
	if e.EventName != nil {
		return *e.EventName
	}
	if e.Type == ingest.Page || e.Type == ingest.Screen {
		n, _ := doc["name"].(string)
		return n
	}
	return ""
}

// walker visits the fields of an event: every key of every object, nested ones by their JSON
// path; arrays add "[]" to the path and their elements are visited as one.
type walker struct {
	n       *note
	seen    map[string]bool // paths noted, once inside arrays (their elements repeat them)
	remove  func(path, key string) bool
	removed bool
	arrays  int
}

func (w *walker) note(path, key string, v any) {
	if len(w.n.fields) >= maxFieldsPerEvent {
		return
	}
	if w.arrays > 0 {
		if w.seen == nil {
			w.seen = map[string]bool{}
		}
		if w.seen[path] {
			return
		}
		w.seen[path] = true
	}
	w.n.fields = append(w.n.fields, fieldSeen{path: path, key: key, value: v})
}

func (w *walker) object(prefix string, m map[string]any, depth int) {
	for k, v := range m {
		path := prefix + "." + k
		if w.remove != nil && w.remove(path, k) {
			w.note(path, k, scalarOrNil(v))
			delete(m, k)
			w.removed = true
			continue
		}
		w.value(path, k, v, depth)
	}
}

func (w *walker) value(path, key string, v any, depth int) {
	switch x := v.(type) {
	case map[string]any:
		if depth < maxDepth && len(x) > 0 {
			w.object(path, x, depth+1)
			return
		}
		w.note(path, key, nil)
	case []any:
		path += "[]"
		if len(x) == 0 {
			w.note(path, key, nil)
			return
		}
		w.arrays++
		for i, el := range x {
			if i == 10 && w.remove == nil { // the first elements say what the array holds
				break
			}
			w.value(path, key, el, depth+1)
		}
		w.arrays--
	default:
		w.note(path, key, v)
	}
}

func scalarOrNil(v any) any {
	switch v.(type) {
	case map[string]any, []any:
		return nil
	}
	return v
}
