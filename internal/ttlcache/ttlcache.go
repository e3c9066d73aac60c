// Package ttlcache remembers values read from the database for a short while, for what runs on
// every tracking API request (a source's tracking plan, a workspace's suppressed subjects):
// changes made through this process forget the values they change at once, and the time to live
// bounds how long another replica's change takes to arrive. Concurrent misses of one key read it
// once.
package ttlcache

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// maxEntries bounds the cache: beyond, it forgets everything rather than grow.
const maxEntries = 100_000

type entry[V any] struct {
	v       V
	expires time.Time
}

// Cache maps string keys to values read by its read function.
type Cache[V any] struct {
	ttl  time.Duration
	read func(ctx context.Context, key string) (V, error)

	mu         sync.Mutex
	m          map[string]entry[V]
	generation uint64 // moves with every forget: a read begun before it is not kept
	group      singleflight.Group
}

// New returns a cache of values read by read and kept for ttl.
func New[V any](ttl time.Duration, read func(ctx context.Context, key string) (V, error)) *Cache[V] {
	return &Cache[V]{ttl: ttl, read: read, m: map[string]entry[V]{}}
}

// Get returns the value of key, read again when it is missing or expired.
func (c *Cache[V]) Get(ctx context.Context, key string) (V, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	gen := c.generation
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	v, err, _ := c.group.Do(key, func() (any, error) { return c.read(ctx, key) })
	if err != nil {
		var zero V
		return zero, err
	}
	val := v.(V)
	c.mu.Lock()
	if c.generation == gen {
		if len(c.m) >= maxEntries {
			c.m = map[string]entry[V]{}
		}
		c.m[key] = entry[V]{v: val, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return val, nil
}

// Set stores a value, for tests and for values known without reading.
func (c *Cache[V]) Set(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = entry[V]{v: v, expires: time.Now().Add(c.ttl)}
}

// ForgetIf forgets the entries for which drop is true (nil: all of them).
func (c *Cache[V]) ForgetIf(drop func(key string, v V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	if drop == nil {
		c.m = map[string]entry[V]{}
		return
	}
	for k, e := range c.m {
		if drop(k, e.v) {
			delete(c.m, k)
		}
	}
}

// Forget forgets one key.
func (c *Cache[V]) Forget(key string) {
	c.ForgetIf(func(k string, _ V) bool { return k == key })
}
