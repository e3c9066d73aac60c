package privacy

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// rules is what ingest, delivery and masking need of one workspace's Privacy Portal, read once
// per cacheTTL: changes made through this process apply at once (forget), the TTL bounds how
// long another replica's change takes to arrive.
type rules struct {
	workspaceID string
	enabled     bool // the plan includes the Privacy Portal
	matchers    *Matchers
	classified  map[string]Classification // inventory: field path -> classification
	// sensitiveKeys are the last keys of classified RED and YELLOW paths, for payloads of other
	// shapes (requests as sent to a destination).
	sensitiveKeys map[string]Classification
	sourceBlock   map[string]Classification // source -> least severe classification removed
	destinations  map[string]DestinationControls
	salt          []byte // nil until a destination hashes
	expires       time.Time

	keys *keyCache
}

// keyCache remembers the matchers' recommendation for each key, so that each distinct key is
// matched once: it outlives reloads of the rules while the workspace's matchers stay the same.
type keyCache struct {
	matchers string // the enabled matchers it was made with, as JSON
	m        sync.Map
	n        atomic.Int64
}

// maxCachedKeys bounds a workspace's cached keys (events may carry keys without end).
const maxCachedKeys = 50_000

type keyMatch struct {
	m  Match
	ok bool
}

// key returns the matchers' recommendation for a key, matched once per key.
func (r *rules) key(k string) (Match, bool) {
	if v, ok := r.keys.m.Load(k); ok {
		km := v.(keyMatch)
		return km.m, km.ok
	}
	m, ok := r.matchers.Key(k)
	if r.keys.n.Load() < maxCachedKeys {
		if _, loaded := r.keys.m.LoadOrStore(k, keyMatch{m, ok}); !loaded {
			r.keys.n.Add(1)
		}
	}
	return m, ok
}

// sdkContext are the parts of context that Segment's libraries fill with facts about themselves and
// the device (context.library.name is a library's name, not a person's): keys there are not
// matched, values still are.
var sdkContext = []string{"context.library.", "context.os.", "context.app.", "context.screen.", "context.network.", "context.device.", "context.locale", "context.timezone", "context.userAgent"}

// keyAt is the matchers' recommendation for the key of the field at path.
func (r *rules) keyAt(path, key string) (Match, bool) {
	for _, p := range sdkContext {
		if strings.HasPrefix(path, p) {
			return Match{}, false
		}
	}
	return r.key(key)
}

// classOf is a field's classification for controls: the inventory's when classified, else the
// recommendation of its key (values are not matched on the way in or out: see README).
func (r *rules) classOf(path, key string) Classification {
	if c, ok := r.classified[path]; ok {
		return c
	}
	if m, ok := r.keyAt(path, key); ok {
		return m.Classification
	}
	return ""
}

type cache struct {
	s     *Service
	mu    sync.Mutex
	m     map[string]*rules
	dests map[string]destEntry // destination -> its workspace
	gen   uint64
	group singleflight.Group
}

type destEntry struct {
	workspaceID string
	expires     time.Time
}

func newCache(s *Service) *cache {
	return &cache{s: s, m: map[string]*rules{}, dests: map[string]destEntry{}}
}

func (c *cache) forget(workspaceID string) {
	c.mu.Lock()
	delete(c.m, workspaceID)
	c.gen++
	c.mu.Unlock()
}

// ForgetAll drops everything cached (a workspace's plan changed, or it was deleted).
func (s *Service) ForgetAll() {
	s.cache.mu.Lock()
	s.cache.m = map[string]*rules{}
	s.cache.dests = map[string]destEntry{}
	s.cache.gen++
	s.cache.mu.Unlock()
}

// ForgetWorkspace drops what is cached of a workspace (its plan changed).
func (s *Service) ForgetWorkspace(workspaceID string) { s.cache.forget(workspaceID) }

func (c *cache) rules(ctx context.Context, workspaceID string) (*rules, error) {
	now := time.Now()
	c.mu.Lock()
	r, ok := c.m[workspaceID]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(r.expires) {
		return r, nil
	}
	var keys *keyCache
	if r != nil {
		keys = r.keys
	}
	v, err, _ := c.group.Do(workspaceID, func() (any, error) { return c.load(ctx, workspaceID, keys) })
	if err != nil {
		return nil, err
	}
	r = v.(*rules)
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) > 10_000 {
			c.m = map[string]*rules{}
		}
		c.m[workspaceID] = r
	}
	c.mu.Unlock()
	return r, nil
}

// load reads a workspace's rules; previous is the key cache of the rules it replaces (nil for
// none), kept when the matchers have not changed.
func (c *cache) load(ctx context.Context, workspaceID string, previous *keyCache) (*rules, error) {
	q := c.s.db.Reader()
	r := &rules{workspaceID: workspaceID, classified: map[string]Classification{}, sensitiveKeys: map[string]Classification{},
		sourceBlock: map[string]Classification{}, destinations: map[string]DestinationControls{}, expires: time.Now().Add(cacheTTL),
		keys: &keyCache{}}
	ok, err := hasPortal(ctx, q, workspaceID)
	if err != nil || !ok {
		r.matchers = NewMatchers(nil)
		return r, err
	}
	r.enabled = true
	ms, err := matchers(ctx, q, workspaceID)
	if err != nil {
		return nil, err
	}
	enabled := enabledRules(ms)
	r.matchers = NewMatchers(enabled)
	fingerprint, _ := json.Marshal(enabled) // maps marshal in key order
	if previous != nil && previous.matchers == string(fingerprint) {
		r.keys = previous
	} else {
		r.keys.matchers = string(fingerprint)
	}
	var fields []struct {
		Path           string `db:"path"`
		Classification string `db:"classification"`
	}
	if err := q.Select(ctx, &fields, `SELECT path, classification FROM privacy_fields WHERE workspace_id = ? AND classification IS NOT NULL`, workspaceID); err != nil {
		return nil, err
	}
	for _, f := range fields {
		cl := Classification(f.Classification)
		r.classified[f.Path] = cl
		if cl.Sensitive() {
			k := lastKey(f.Path)
			if cl.rank() > r.sensitiveKeys[k].rank() {
				r.sensitiveKeys[k] = cl
			}
		}
	}
	var blocks []struct {
		SourceID string `db:"source_id"`
		Block    string `db:"block"`
	}
	if err := q.Select(ctx, &blocks, `SELECT source_id, block FROM privacy_source_controls WHERE workspace_id = ?`, workspaceID); err != nil {
		return nil, err
	}
	for _, b := range blocks {
		switch b.Block {
		case BlockRed:
			r.sourceBlock[b.SourceID] = Red
		case BlockRedAndYellow:
			r.sourceBlock[b.SourceID] = Yellow
		}
	}
	var dcs []destRow
	if err := q.Select(ctx, &dcs, `SELECT * FROM privacy_destination_controls WHERE workspace_id = ?`, workspaceID); err != nil {
		return nil, err
	}
	hashes := false
	for _, d := range dcs {
		dc := d.controls()
		r.destinations[d.DestinationID] = dc
		hashes = hashes || dc.hashes()
	}
	if hashes {
		if r.salt, err = c.s.salt(ctx, q, workspaceID); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// destinationWorkspace returns the workspace of a destination with privacy controls ("" for
// none), remembered for cacheTTL.
func (c *cache) destinationWorkspace(ctx context.Context, destinationID string) (string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.dests[destinationID]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.workspaceID, nil
	}
	var ws []string
	if err := c.s.db.Select(ctx, &ws, `SELECT workspace_id FROM privacy_destination_controls WHERE destination_id = ?`, destinationID); err != nil {
		return "", err
	}
	e = destEntry{expires: now.Add(cacheTTL)}
	if len(ws) == 1 {
		e.workspaceID = ws[0]
	}
	c.mu.Lock()
	if len(c.dests) > 100_000 {
		c.dests = map[string]destEntry{}
	}
	c.dests[destinationID] = e
	c.mu.Unlock()
	return e.workspaceID, nil
}

// lastKey is the last key of a field's path: "card_number" of "properties.billing.card_number",
// "sku" of "properties.products[].sku", "tags" of "properties.tags[]".
func lastKey(path string) string {
	return strings.TrimSuffix(path[strings.LastIndexByte(path, '.')+1:], "[]")
}
