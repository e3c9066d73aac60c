package id

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	t.Run("Form", func(t *testing.T) {
		got := New("src")
		if !strings.HasPrefix(got, "src_") || len(got) != len("src_")+26 {
			t.Fatalf("New(src) = %q, want src_ and 26 characters", got)
		}
		if p, ok := Prefix(got); !ok || p != "src" {
			t.Fatalf("Prefix(%q) = %q, %v; want src, true", got, p, ok)
		}
	})

	t.Run("Time", func(t *testing.T) {
		before := time.Now().Truncate(time.Millisecond)
		got, ok := Time(New("ws"))
		after := time.Now()
		if !ok || got.Before(before) || got.After(after) {
			t.Fatalf("Time = %v, %v; want between %v and %v", got, ok, before, after)
		}
		if got.Location() != time.UTC {
			t.Fatalf("Time location = %v, want UTC", got.Location())
		}
	})

	t.Run("SortsInOrderMade", func(t *testing.T) {
		// Most of these share a millisecond with their neighbours.
		ids := make([]string, 100_000)
		for i := range ids {
			ids[i] = New("evt")
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("ids[%d] = %q does not sort after ids[%d] = %q", i, ids[i], i-1, ids[i-1])
			}
		}
	})

	t.Run("SortsAcrossMilliseconds", func(t *testing.T) {
		a := New("evt")
		time.Sleep(2 * time.Millisecond)
		b := New("evt")
		if b <= a {
			t.Fatalf("%q made later does not sort after %q", b, a)
		}
		ta, _ := Time(a)
		tb, _ := Time(b)
		if !tb.After(ta) {
			t.Fatalf("Time(%q) = %v not after Time(%q) = %v", b, tb, a, ta)
		}
	})

	t.Run("UniqueAndMonotonicUnderConcurrency", func(t *testing.T) {
		const workers, each = 8, 5_000
		results := make([][]string, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				ids := make([]string, each)
				for i := range ids {
					ids[i] = New("conn")
				}
				results[w] = ids
			})
		}
		wg.Wait()
		seen := make(map[string]bool, workers*each)
		for _, ids := range results {
			if !slices.IsSorted(ids) {
				t.Fatal("one goroutine's ids are not in increasing order")
			}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("duplicate id %q", id)
				}
				seen[id] = true
			}
		}
	})

	t.Run("InvalidPrefixPanics", func(t *testing.T) {
		for _, p := range []string{"", "Src", "1src", "src_", "s-c", strings.Repeat("a", 17), "é"} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("New(%q) did not panic", p)
					}
				}()
				New(p)
			}()
		}
	})
}

// TestGenerator drives the generator with a fake clock and fake randomness to reach the cases
// a real clock rarely shows.
func TestGenerator(t *testing.T) {
	newGen := func(clock *time.Time, fill byte) *generator {
		return &generator{
			now: func() time.Time { return *clock },
			random: func(b []byte) {
				for i := range b {
					b[i] = fill
				}
			},
		}
	}
	start := time.UnixMilli(1_700_000_000_000)

	t.Run("SameMillisecondCountsUp", func(t *testing.T) {
		clock := start
		g := newGen(&clock, 0)
		a, b := g.new("x"), g.new("x")
		if got, want := a, "x_01hf7yat000000000000000000"; got != want {
			t.Fatalf("first id = %q, want %q", got, want)
		}
		if got, want := b, "x_01hf7yat000000000000000001"; got != want {
			t.Fatalf("second id = %q, want %q", got, want)
		}
	})

	t.Run("ClockGoesBack", func(t *testing.T) {
		clock := start
		g := newGen(&clock, 0x42)
		a := g.new("x")
		clock = start.Add(-time.Second)
		b := g.new("x")
		if b <= a {
			t.Fatalf("after the clock went back, %q does not sort after %q", b, a)
		}
		if ta, tb := mustTime(t, a), mustTime(t, b); !ta.Equal(tb) {
			t.Fatalf("Time = %v, want the last millisecond used %v", tb, ta)
		}
	})

	t.Run("RandomPartOverflows", func(t *testing.T) {
		clock := start
		g := newGen(&clock, 0xff) // random part at its maximum: the next increment overflows
		a := g.new("x")
		b := g.new("x")
		if b <= a {
			t.Fatalf("after overflow, %q does not sort after %q", b, a)
		}
		if got, want := mustTime(t, b), start.Add(time.Millisecond); !got.Equal(want) {
			t.Fatalf("Time after overflow = %v, want the next millisecond %v", got, want)
		}
	})

	t.Run("RaiseAboveAnotherProcess", func(t *testing.T) {
		// Another process, its clock a minute ahead, made floor; this one's ids must sort after it.
		clock := start
		g := newGen(&clock, 0x42)
		before := g.new("evt")
		other := newGen(&clock, 0x99)
		clock = start.Add(time.Minute)
		floor := other.new("evt")
		clock = start.Add(time.Millisecond)
		g.raise(floor)
		a, b := g.new("evt"), g.new("evt")
		if a <= floor || b <= a {
			t.Fatalf("after Raise(%q): %q, %q; want both after it, in order", floor, a, b)
		}
		if got := mustTime(t, a); !got.Equal(mustTime(t, floor)) {
			t.Errorf("Time = %v, want the floor's millisecond %v", got, mustTime(t, floor))
		}
		g.raise(before) // a lower floor changes nothing
		if c := g.new("evt"); c <= b {
			t.Fatalf("a lower floor moved the generator back: %q after %q", c, b)
		}
		g.raise("evt_not-an-id")
		if c := g.new("evt"); c <= b {
			t.Fatalf("a malformed floor moved the generator: %q", c)
		}
	})

	t.Run("RaiseToMaximumRandomPart", func(t *testing.T) {
		clock := start
		g := newGen(&clock, 0)
		floor := newGen(&clock, 0xff).new("evt") // the last id of its millisecond
		g.raise(floor)
		if a := g.new("evt"); a <= floor || !mustTime(t, a).Equal(start.Add(time.Millisecond)) {
			t.Fatalf("after Raise(%q): %q; want the next millisecond", floor, a)
		}
	})

	t.Run("EncodesMaximum", func(t *testing.T) {
		clock := time.UnixMilli(maxTime)
		g := newGen(&clock, 0xff)
		if got, want := g.new("x"), "x_7zzzzzzzzzzzzzzzzzzzzzzzzz"; got != want {
			t.Fatalf("id = %q, want %q", got, want)
		}
	})
}

func TestPrefix(t *testing.T) {
	valid := "src_01hf4yw0000000000000000000"
	for _, tt := range []struct {
		name string
		id   string
		want string
		ok   bool
	}{
		{"Valid", valid, "src", true},
		{"LongestPrefix", strings.Repeat("a", 16) + valid[3:], strings.Repeat("a", 16), true},
		{"PrefixWithDigit", "s3" + valid[3:], "s3", true},
		{"Maximum", "x_7zzzzzzzzzzzzzzzzzzzzzzzzz", "x", true},
		{"Empty", "", "", false},
		{"OnlyUnderscore", "_", "", false},
		{"NoPrefix", valid[3:], "", false},
		{"NoUnderscore", "src" + valid[4:], "", false},
		{"UpperCasePrefix", "SRC" + valid[3:], "", false},
		{"UpperCaseSuffix", strings.ToUpper(valid[:4]) + strings.ToUpper(valid[4:]), "", false},
		{"UpperCaseSuffixOnly", "src_01HF4YW0000000000000000000", "", false},
		{"PrefixStartsWithDigit", "1src" + valid[3:], "", false},
		{"PrefixWithUnderscore", "sr_c" + valid[3:], "", false},
		{"PrefixWithDash", "s-c" + valid[3:], "", false},
		{"PrefixTooLong", strings.Repeat("a", 17) + valid[3:], "", false},
		{"SuffixTooShort", valid[:len(valid)-1], "", false},
		{"SuffixTooLong", valid + "0", "", false},
		{"ExcludedLetterI", valid[:len(valid)-1] + "i", "", false},
		{"ExcludedLetterL", valid[:len(valid)-1] + "l", "", false},
		{"ExcludedLetterO", valid[:len(valid)-1] + "o", "", false},
		{"ExcludedLetterU", valid[:len(valid)-1] + "u", "", false},
		{"Punctuation", valid[:len(valid)-1] + "-", "", false},
		{"NonASCII", valid[:len(valid)-2] + "é", "", false},
		{"Over128Bits", "x_8zzzzzzzzzzzzzzzzzzzzzzzzz", "", false},
		{"Spaces", " " + valid[1:], "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Prefix(tt.id)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Prefix(%q) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
			}
			if _, ok := Time(tt.id); ok != tt.ok {
				t.Fatalf("Time(%q) ok = %v, want %v", tt.id, ok, tt.ok)
			}
		})
	}
}

func FuzzPrefix(f *testing.F) {
	for _, s := range []string{"", "_", "src_01hf4yw0000000000000000000", "x_7zzzzzzzzzzzzzzzzzzzzzzzzz",
		"x_8zzzzzzzzzzzzzzzzzzzzzzzzz", "SRC_01HF4YW0000000000000000000", New("ws"), "a_" + strings.Repeat("é", 13)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefix, ok := Prefix(s)
		tm, tok := Time(s)
		if ok != tok {
			t.Fatalf("Prefix ok = %v but Time ok = %v for %q", ok, tok, s)
		}
		if !ok {
			if prefix != "" || !tm.IsZero() {
				t.Fatalf("rejected %q but returned %q, %v", s, prefix, tm)
			}
			return
		}
		if !strings.HasPrefix(s, prefix+"_") || len(s) != len(prefix)+27 {
			t.Fatalf("Prefix(%q) = %q does not split the id", s, prefix)
		}
		if s != strings.ToLower(s) {
			t.Fatalf("accepted %q, which is not lower case", s)
		}
		if ms := tm.UnixMilli(); ms < 0 || ms > maxTime {
			t.Fatalf("Time(%q) = %v, outside 48 bits", s, tm)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		New("src")
	}
}

func BenchmarkNewParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			New("src")
		}
	})
}

func mustTime(t *testing.T, id string) time.Time {
	t.Helper()
	tm, ok := Time(id)
	if !ok {
		t.Fatalf("Time(%q) not ok", id)
	}
	return tm
}

func TestFloor(t *testing.T) {
	at := time.Now()
	before := New("evt")
	floor := Floor("evt", at.Add(time.Millisecond))
	time.Sleep(3 * time.Millisecond)
	after := New("evt")
	if !(before < floor && floor <= after) {
		t.Errorf("floor %s not between %s and %s", floor, before, after)
	}
	if got, ok := Time(floor); !ok || got.UnixMilli() != at.Add(time.Millisecond).UnixMilli() {
		t.Errorf("Time(Floor) = %v, %v", got, ok)
	}
}
