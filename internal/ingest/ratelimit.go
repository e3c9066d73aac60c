package ingest

import (
	"math"
	"sync"
	"time"
)

// rateLimiter is a token bucket per workspace: rate events a second, up to burst at once. A
// request costs its number of events, so that a batch of 500 counts as 500, not as one.
type rateLimiter struct {
	rate, burst float64
	// replicas, when set, counts the live replicas: each enforces its share of the rate and burst.
	replicas func() int
	mu       sync.Mutex
	buckets  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes n tokens for workspace; when too few are left it returns false and how long until
// there are enough. A request larger than the burst needs a full bucket.
func (l *rateLimiter) allow(workspace string, now time.Time, n int) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	rate, burst := l.rate, l.burst
	if l.replicas != nil {
		share := float64(max(l.replicas(), 1))
		rate, burst = rate/share, math.Max(1, math.Floor(burst/share))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[workspace]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		l.buckets[workspace] = b
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	cost := math.Min(float64(max(n, 1)), burst)
	if b.tokens >= cost {
		b.tokens -= cost
		return true, 0
	}
	return false, time.Duration((cost - b.tokens) / rate * float64(time.Second))
}
