package ingest

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/junctioncdp/junction/internal/db"
)

// keyInfo is what a write key says about the request that carries it.
type keyInfo struct {
	Known       bool // false: no such key (cached too, so that a flood of bad keys costs no queries)
	SourceID    string
	WorkspaceID string
	Revoked     bool
	Enabled     bool
	Strict      bool
	expires     time.Time
}

// keyCache remembers write keys for a short while: every request needs its key resolved, and a
// source's settings change rarely. Changes made through this process drop the entries at once
// (Forget); the TTL bounds staleness for anything else.
type keyCache struct {
	db  *db.DB
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]keyInfo
	// generation moves with every forget: a lookup that read the database before a forget must
	// not put what it read back into the cache, or a revoked key would live on for a TTL.
	generation uint64
}

func newKeyCache(d *db.DB, ttl time.Duration) *keyCache {
	return &keyCache{db: d, ttl: ttl, m: map[string]keyInfo{}}
}

func (c *keyCache) lookup(ctx context.Context, key string) (keyInfo, error) {
	now := time.Now()
	c.mu.Lock()
	info, ok := c.m[key]
	gen := c.generation
	c.mu.Unlock()
	if ok && now.Before(info.expires) {
		return info, nil
	}
	info, err := c.read(ctx, key)
	if err != nil {
		return keyInfo{}, err
	}
	info.expires = now.Add(c.ttl)
	c.remember(key, info, gen)
	return info, nil
}

// read looks a key up in the database.
func (c *keyCache) read(ctx context.Context, key string) (keyInfo, error) {
	var row struct {
		SourceID    string   `db:"source_id"`
		WorkspaceID string   `db:"workspace_id"`
		RevokedAt   *db.Time `db:"revoked_at"`
		Enabled     bool     `db:"enabled"`
		Settings    string   `db:"settings"`
	}
	err := c.db.Get(ctx, &row, `SELECT k.source_id, k.workspace_id, k.revoked_at, s.enabled, s.settings
		FROM write_keys k JOIN sources s ON s.id = k.source_id WHERE k.key = ?`, key)
	switch {
	case db.IsNoRows(err):
		return keyInfo{}, nil
	case err != nil:
		return keyInfo{}, err
	}
	var settings struct {
		StrictMode bool `json:"strictMode"`
	}
	_ = json.Unmarshal([]byte(row.Settings), &settings)
	return keyInfo{Known: true, SourceID: row.SourceID, WorkspaceID: row.WorkspaceID, Revoked: row.RevokedAt != nil,
		Enabled: row.Enabled, Strict: settings.StrictMode}, nil
}

// remember caches what a lookup read, unless something was forgotten since generation gen: then
// what was read may predate the change.
func (c *keyCache) remember(key string, info keyInfo, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation != gen {
		return
	}
	if len(c.m) > 100_000 { // bounded: a flood of random keys must not grow it without end
		c.m = map[string]keyInfo{}
	}
	c.m[key] = info
}

// forgetSource drops the cached keys of a source after it changed.
func (c *keyCache) forgetSource(sourceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	for k, info := range c.m {
		if info.SourceID == sourceID {
			delete(c.m, k)
		}
	}
}

// forgetAll drops every cached key (a key was created or revoked, a workspace deleted).
func (c *keyCache) forgetAll() {
	c.mu.Lock()
	c.generation++
	c.m = map[string]keyInfo{}
	c.mu.Unlock()
}
