package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// recorder is a fetch function that records the batches it is called with.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	err     error
}

func (r *recorder) fetch(_ context.Context, keys []int) (map[int]string, error) {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), keys...))
	r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	out := map[int]string{}
	for _, k := range keys {
		if k >= 0 { // negative keys do not exist
			out[k] = fmt.Sprint("v", k)
		}
	}
	return out, nil
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

func keys(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestPrimeIsOneBatchWhateverTheWait is the reason for this package: with a wait far shorter than
// the time it takes to add the keys, a prime's keys still go in one statement.
func TestPrimeIsOneBatchWhateverTheWait(t *testing.T) {
	for run := 0; run < 50; run++ {
		r := &recorder{}
		l := New(r.fetch, time.Nanosecond, 1000)
		ctx := context.Background()
		l.Prime(ctx, keys(800))
		vs, err := l.LoadAll(ctx, keys(800))
		if err != nil {
			t.Fatal(err)
		}
		if vs[799] != "v799" {
			t.Fatalf("value %q", vs[799])
		}
		if n := r.calls(); n != 1 {
			t.Fatalf("run %d: %d fetches for one prime, want 1", run, n)
		}
	}
}

func TestLoadsWithinTheWaitShareABatchAndResultsAreRemembered(t *testing.T) {
	r := &recorder{}
	l := New(r.fetch, 50*time.Millisecond, 1000)
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err := l.Load(ctx, i%10) // each key asked for twice
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}(i)
	}
	wg.Wait()
	if n := r.calls(); n != 1 || len(r.batches[0]) != 10 {
		t.Fatalf("batches %v, want one of the 10 distinct keys", r.batches)
	}
	for i, v := range got {
		if v != fmt.Sprint("v", i%10) {
			t.Errorf("load %d: %q", i, v)
		}
	}
	if v, err := l.Load(ctx, 3); err != nil || v != "v3" || r.calls() != 1 {
		t.Errorf("a known key: %q %v, %d fetches", v, err, r.calls())
	}
}

func TestMissingKeysAndErrors(t *testing.T) {
	ctx := context.Background()
	r := &recorder{}
	l := New(r.fetch, time.Millisecond, 1000)
	if _, err := l.Load(ctx, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	vs, err := l.LoadAll(ctx, []int{1, -2, 3})
	if !errors.Is(err, ErrNotFound) || vs[0] != "v1" || vs[2] != "v3" {
		t.Errorf("LoadAll with a missing key: %q %v", vs, err)
	}

	failing := &recorder{err: errors.New("database is gone")}
	lf := New(failing.fetch, time.Millisecond, 1000)
	if _, err := lf.LoadAll(ctx, keys(3)); err == nil || err.Error() != "database is gone" {
		t.Errorf("fetch error: %v", err)
	}

	panicking := New(func(context.Context, []int) (map[int]string, error) { panic("boom") }, time.Millisecond, 10)
	if _, err := panicking.Load(ctx, 1); err == nil {
		t.Error("a panicking fetch gave no error")
	}
}

func TestCapacitySplitsIntoFullBatches(t *testing.T) {
	r := &recorder{}
	l := New(r.fetch, time.Hour, 100) // only capacity can send these batches
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.LoadAll(ctx, keys(300)); err != nil {
		t.Fatal(err)
	}
	if n := r.calls(); n != 3 {
		t.Fatalf("%d fetches for 300 keys at 100 a batch, want 3", n)
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	l := New(func(ctx context.Context, _ []int) (map[int]string, error) { return nil, nil }, time.Hour, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Load(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v, want the context's error", err)
	}
}
