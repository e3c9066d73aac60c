// Package batch gathers the lookups of one GraphQL operation into batches: the resolvers of a
// list's items each ask for one key, and the loader fetches the keys asked for within a short wait
// in one statement, remembering every result for the rest of the operation.
//
// A list resolver that knows its items' keys primes them with Prime, which puts all the keys in
// one batch under one lock: a timer firing while the keys are being added cannot split them into
// two statements, as it could when keys are added one at a time (a loaded machine deschedules the
// adding goroutine for longer than the wait).
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotFound is the error of a key the fetch function returned no value for.
var ErrNotFound = errors.New("batch: not found")

// Loader loads values of type V by keys of type K, in batches.
type Loader[K comparable, V any] struct {
	fetch    func(context.Context, []K) (map[K]V, error)
	wait     time.Duration
	capacity int

	mu    sync.Mutex
	cache map[K]*result[V]
	open  *pending[K, V] // the batch gathering keys, nil when none
}

type result[V any] struct {
	done chan struct{}
	v    V
	err  error
}

type pending[K comparable, V any] struct {
	ctx     context.Context
	keys    []K
	results []*result[V]
	sent    bool
}

// New returns a loader that fetches the keys asked for within wait of the first in one call of
// fetch, at most capacity keys a call. Keys absent from fetch's map are ErrNotFound.
func New[K comparable, V any](fetch func(context.Context, []K) (map[K]V, error), wait time.Duration, capacity int) *Loader[K, V] {
	if capacity < 1 {
		capacity = 1
	}
	return &Loader[K, V]{fetch: fetch, wait: wait, capacity: capacity, cache: map[K]*result[V]{}}
}

// Load returns the value of key, waiting for its batch.
func (l *Loader[K, V]) Load(ctx context.Context, key K) (V, error) {
	l.mu.Lock()
	r := l.add(ctx, key)
	l.mu.Unlock()
	return r.get(ctx)
}

// LoadAll returns the values of keys in their order, and the first error met, if any. A key not
// found gives the zero value and an error wrapping ErrNotFound.
func (l *Loader[K, V]) LoadAll(ctx context.Context, keys []K) ([]V, error) {
	rs := l.addAll(ctx, keys)
	out := make([]V, len(keys))
	var first error
	for i, r := range rs {
		v, err := r.get(ctx)
		if err != nil && first == nil {
			first = err
		}
		out[i] = v
	}
	return out, first
}

// Prime starts loading keys, all in the same batch (or in consecutive full batches when there are
// more than its capacity), without waiting for them.
func (l *Loader[K, V]) Prime(ctx context.Context, keys []K) {
	l.addAll(ctx, keys)
}

func (l *Loader[K, V]) addAll(ctx context.Context, keys []K) []*result[V] {
	rs := make([]*result[V], len(keys))
	l.mu.Lock()
	for i, k := range keys {
		rs[i] = l.add(ctx, k)
	}
	l.mu.Unlock()
	return rs
}

// add returns the result of key, adding it to the open batch when it is not known yet. l.mu is
// held.
func (l *Loader[K, V]) add(ctx context.Context, key K) *result[V] {
	if r, ok := l.cache[key]; ok {
		return r
	}
	r := &result[V]{done: make(chan struct{})}
	l.cache[key] = r
	b := l.open
	if b == nil {
		b = &pending[K, V]{ctx: ctx}
		l.open = b
		go func() {
			time.Sleep(l.wait)
			l.mu.Lock()
			if b.sent {
				l.mu.Unlock()
				return
			}
			l.close(b)
			l.mu.Unlock()
			l.run(b)
		}()
	}
	b.keys = append(b.keys, key)
	b.results = append(b.results, r)
	if len(b.keys) >= l.capacity {
		l.close(b)
		go l.run(b)
	}
	return r
}

// close stops b from taking more keys. l.mu is held.
func (l *Loader[K, V]) close(b *pending[K, V]) {
	b.sent = true
	if l.open == b {
		l.open = nil
	}
}

func (l *Loader[K, V]) run(b *pending[K, V]) {
	found, err := l.safeFetch(b.ctx, b.keys)
	for i, k := range b.keys {
		r := b.results[i]
		switch v, ok := found[k]; {
		case err != nil:
			r.err = err
		case ok:
			r.v = v
		default:
			r.err = ErrNotFound
		}
		close(r.done)
	}
}

func (l *Loader[K, V]) safeFetch(ctx context.Context, keys []K) (found map[K]V, err error) {
	defer func() {
		if p := recover(); p != nil {
			found, err = nil, fmt.Errorf("batch: panic in fetch: %v", p)
		}
	}()
	return l.fetch(ctx, keys)
}

// get waits for r, or for ctx to end.
func (r *result[V]) get(ctx context.Context) (V, error) {
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
