package ttlcache

import (
	"context"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	reads := 0
	c := New(time.Hour, func(_ context.Context, key string) (int, error) { reads++; return len(key) * reads, nil })
	ctx := context.Background()
	if v, _ := c.Get(ctx, "abc"); v != 3 {
		t.Fatalf("first read: %d", v)
	}
	if v, _ := c.Get(ctx, "abc"); v != 3 || reads != 1 {
		t.Fatalf("cached: %d after %d reads", v, reads)
	}
	c.Forget("abc")
	if v, _ := c.Get(ctx, "abc"); v != 6 || reads != 2 {
		t.Fatalf("after Forget: %d after %d reads", v, reads)
	}
	c.ForgetIf(func(k string, v int) bool { return v > 100 })
	if _, _ = c.Get(ctx, "abc"); reads != 2 {
		t.Fatalf("ForgetIf dropped what it should keep: %d reads", reads)
	}
	c.ForgetIf(nil)
	if _, _ = c.Get(ctx, "abc"); reads != 3 {
		t.Fatalf("ForgetIf(nil) kept an entry: %d reads", reads)
	}

	expired := New(time.Nanosecond, func(_ context.Context, key string) (int, error) { reads++; return 0, nil })
	expired.Get(ctx, "x")
	time.Sleep(time.Millisecond)
	if expired.Get(ctx, "x"); reads != 5 {
		t.Fatalf("an expired entry was not read again: %d reads", reads)
	}
}
