package ingest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var rateStart = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func TestRateLimiter(t *testing.T) {
	t.Run("NoLimitWhenRateIsZero", func(t *testing.T) {
		l := newRateLimiter(0, 0)
		for i := 0; i < 1000; i++ {
			if ok, wait := l.allow("ws", rateStart, 1); !ok || wait != 0 {
				t.Fatalf("request %d refused (wait %v) without a limit", i, wait)
			}
		}
	})
	t.Run("BurstThenRefused", func(t *testing.T) {
		l := newRateLimiter(2, 3)
		for i := 0; i < 3; i++ {
			if ok, _ := l.allow("ws", rateStart, 1); !ok {
				t.Fatalf("request %d of the burst of 3 refused", i)
			}
		}
		ok, wait := l.allow("ws", rateStart, 1)
		if ok {
			t.Fatal("4th request at once allowed with a burst of 3")
		}
		if wait != 500*time.Millisecond {
			t.Errorf("wait %v, want 500ms (one token at 2 a second)", wait)
		}
	})
	t.Run("WaitShrinksAsTokensRefill", func(t *testing.T) {
		l := newRateLimiter(2, 1)
		l.allow("ws", rateStart, 1)
		ok, wait := l.allow("ws", rateStart.Add(200*time.Millisecond), 1)
		if ok || wait != 300*time.Millisecond {
			t.Errorf("allowed %v, wait %v; want refused, 300ms", ok, wait)
		}
	})
	t.Run("RefillsAtTheRate", func(t *testing.T) {
		l := newRateLimiter(10, 1)
		now := rateStart
		if ok, _ := l.allow("ws", now, 1); !ok {
			t.Fatal("first request refused")
		}
		if ok, _ := l.allow("ws", now.Add(50*time.Millisecond), 1); ok {
			t.Fatal("allowed after half a token's time")
		}
		// A refused request takes nothing: the half token is still there.
		if ok, _ := l.allow("ws", now.Add(100*time.Millisecond), 1); !ok {
			t.Fatal("refused after a whole token's time")
		}
		// Ten a second, sustained.
		allowed := 0
		for i := 1; i <= 100; i++ {
			if ok, _ := l.allow("ws", now.Add(100*time.Millisecond+time.Duration(i)*10*time.Millisecond), 1); ok {
				allowed++
			}
		}
		if allowed < 9 || allowed > 11 {
			t.Errorf("%d requests allowed in 1 s at 10 a second", allowed)
		}
	})
	t.Run("IdleTimeCappedAtBurst", func(t *testing.T) {
		l := newRateLimiter(1, 2)
		l.allow("ws", rateStart, 1)
		later := rateStart.Add(time.Hour)
		n := 0
		for i := 0; i < 10; i++ {
			if ok, _ := l.allow("ws", later, 1); ok {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d requests allowed after an hour idle, want the burst of 2", n)
		}
	})
	t.Run("BatchesCostTheirEvents", func(t *testing.T) {
		l := newRateLimiter(100, 500)
		if ok, _ := l.allow("ws", rateStart, 400); !ok {
			t.Fatal("400 events refused with 500 tokens")
		}
		ok, wait := l.allow("ws", rateStart, 200)
		if ok {
			t.Fatal("200 more events allowed with 100 tokens left")
		}
		if wait != time.Second {
			t.Errorf("wait %v, want 1s (100 tokens short at 100 a second)", wait)
		}
		if ok, _ := l.allow("ws", rateStart, 100); !ok {
			t.Error("100 events refused with 100 tokens left")
		}
	})
	t.Run("BatchLargerThanBurstNeedsAFullBucket", func(t *testing.T) {
		l := newRateLimiter(10, 50)
		if ok, _ := l.allow("ws", rateStart, 2500); !ok {
			t.Fatal("a batch larger than the burst is refused even with a full bucket: it could never pass")
		}
		if ok, _ := l.allow("ws", rateStart, 1); ok {
			t.Error("the bucket is not empty after a batch larger than the burst")
		}
	})
	t.Run("WorkspacesIndependent", func(t *testing.T) {
		l := newRateLimiter(1, 1)
		if ok, _ := l.allow("a", rateStart, 1); !ok {
			t.Fatal("a refused")
		}
		if ok, _ := l.allow("a", rateStart, 1); ok {
			t.Fatal("a allowed twice")
		}
		if ok, _ := l.allow("b", rateStart, 1); !ok {
			t.Error("b refused because of a")
		}
	})
	t.Run("ConcurrentRequestsShareTheBucket", func(t *testing.T) {
		l := newRateLimiter(1, 50)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if ok, _ := l.allow("ws", rateStart, 1); ok {
						allowed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if got := allowed.Load(); got != 50 {
			t.Errorf("%d of 160 concurrent requests allowed, want the burst of 50", got)
		}
	})
}
