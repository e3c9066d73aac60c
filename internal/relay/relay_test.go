package relay

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"

	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/testdb"
)

// TestMain runs the tests on SQLite, then on PostgreSQL.
func TestMain(m *testing.M) { testdb.Main(m) }

// item is a row of the test table, with a column of each supported sort key type.
type item struct {
	ID        string    `db:"id"`
	WS        string    `db:"ws"`
	Name      string    `db:"name"`
	CreatedAt time.Time `db:"created_at"`
	Rank      int64     `db:"rank"`
	Score     float64   `db:"score"`
}

const selectItems = "SELECT id, ws, name, created_at, rank, score FROM items"

// sortSpec is one way of ordering the test table, with how Go orders the same keys.
type sortSpec struct {
	name    string
	column  string
	key     func(item) any
	compare func(a, b item) int // on the sort key only
}

var sorts = []sortSpec{
	{"ID", "", nil, func(a, b item) int { return 0 }},
	{"Name", "name", func(i item) any { return i.Name }, func(a, b item) int { return strings.Compare(a.Name, b.Name) }},
	{"CreatedAt", "created_at", func(i item) any { return i.CreatedAt }, func(a, b item) int { return a.CreatedAt.Compare(b.CreatedAt) }},
	{"Rank", "rank", func(i item) any { return i.Rank }, func(a, b item) int { return cmp.Compare(a.Rank, b.Rank) }},
	{"Score", "score", func(i item) any { return i.Score }, func(a, b item) int { return cmp.Compare(a.Score, b.Score) }},
}

func (s sortSpec) spec(desc bool) Spec[item] {
	return Spec[item]{
		Select:     selectItems,
		SortColumn: s.column,
		Desc:       desc,
		ID:         func(i item) string { return i.ID },
		SortKey:    s.key,
	}
}

// sorted returns items in the order the list should have: the reference Query is checked against.
func (s sortSpec) sorted(items []item, desc bool) []item {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b item) int {
		c := cmp.Or(s.compare(a, b), strings.Compare(a.ID, b.ID))
		if desc {
			return -c
		}
		return c
	})
	return out
}

func TestQuery(t *testing.T) {
	ctx := context.Background()

	t.Run("EmptyTable", func(t *testing.T) {
		db := mustOpenDB(t)
		for _, s := range sorts {
			spec := s.spec(false)
			spec.Count = true
			for _, args := range []Args{{}, {First: ptr(5)}, {Last: ptr(5)}, {First: ptr(0)}} {
				page := mustQuery(t, db, spec, args)
				if len(page.Edges) != 0 || page.PageInfo != (PageInfo{}) || *page.TotalCount != 0 {
					t.Fatalf("%s %s: page = %+v, want empty", s.name, showArgs(args), page)
				}
			}
		}
	})

	t.Run("ForwardThroughAllRows", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(1, 2)), 45))
		for _, s := range sorts {
			for _, desc := range []bool{false, true} {
				want := s.sorted(items, desc)
				for _, size := range []int{1, 2, 7, 20, 44, 45, 46, 100} {
					got, pages := pageForward(t, db, s.spec(desc), &size)
					assertSameItems(t, fmt.Sprintf("%s desc=%v first=%d", s.name, desc, size), got, want)
					if wantPages := max(1, (len(want)+size-1)/size); pages != wantPages {
						t.Fatalf("%s first=%d: %d pages, want %d", s.name, size, pages, wantPages)
					}
				}
				got, _ := pageForward(t, db, s.spec(desc), nil) // default page size
				assertSameItems(t, s.name+" default page size", got, want)
			}
		}
	})

	t.Run("BackwardThroughAllRows", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(3, 4)), 45))
		for _, s := range sorts {
			for _, desc := range []bool{false, true} {
				want := s.sorted(items, desc)
				for _, size := range []int{1, 3, 20, 45, 100} {
					got := pageBackward(t, db, s.spec(desc), size)
					assertSameItems(t, fmt.Sprintf("%s desc=%v last=%d", s.name, desc, size), got, want)
				}
			}
		}
	})

	t.Run("ForwardThenBack", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(5, 6)), 30))
		s := sorts[2] // created_at, with ties
		spec := s.spec(true)
		want := s.sorted(items, true)

		p1 := mustQuery(t, db, spec, Args{First: ptr(10)})
		p2 := mustQuery(t, db, spec, Args{First: ptr(10), After: p1.PageInfo.EndCursor})
		assertSameItems(t, "second page", p2.Nodes(), want[10:20])
		if !p2.PageInfo.HasPreviousPage || !p2.PageInfo.HasNextPage {
			t.Fatalf("second page: pageInfo = %+v, want previous and next", p2.PageInfo)
		}
		back := mustQuery(t, db, spec, Args{Last: ptr(10), Before: p2.PageInfo.StartCursor})
		assertSameItems(t, "back from second page", back.Nodes(), want[:10])
		if back.PageInfo.HasPreviousPage || !back.PageInfo.HasNextPage {
			t.Fatalf("back to first page: pageInfo = %+v, want next only", back.PageInfo)
		}
		if got, want := *back.PageInfo.StartCursor, *p1.PageInfo.StartCursor; got != want {
			t.Fatalf("start cursor %q, want the first page's %q", got, want)
		}
		between := mustQuery(t, db, spec, Args{After: p1.PageInfo.StartCursor, Before: p2.PageInfo.EndCursor, First: ptr(100)})
		assertSameItems(t, "between cursors", between.Nodes(), want[1:19])
		crossed := mustQuery(t, db, spec, Args{After: p2.PageInfo.EndCursor, Before: p1.PageInfo.StartCursor})
		assertSameItems(t, "after beyond before", crossed.Nodes(), nil)
	})

	t.Run("OnlyBeforeReadsBackward", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(7, 8)), 50))
		spec := sorts[0].spec(false)
		want := sorts[0].sorted(items, false)
		before := mustCursor(t, spec, want[45])
		page := mustQuery(t, db, spec, Args{Before: &before})
		assertSameItems(t, "before only", page.Nodes(), want[45-DefaultPageSize:45])
		if !page.PageInfo.HasPreviousPage || !page.PageInfo.HasNextPage {
			t.Fatalf("pageInfo = %+v, want previous and next", page.PageInfo)
		}
	})

	t.Run("TiesBrokenByID", func(t *testing.T) {
		db := mustOpenDB(t)
		at := time.Date(2026, 11, 27, 9, 18, 16, 0, time.UTC)
		var items []item
		for i := range 12 {
			items = append(items, item{ID: fmt.Sprintf("it_%02d", (i*7)%12), WS: "ws_a", Name: "same", CreatedAt: at, Rank: 1, Score: 0.5})
		}
		insertItems(t, db, items)
		for _, s := range sorts {
			for _, desc := range []bool{false, true} {
				want := s.sorted(items, desc)
				if desc && want[0].ID != "it_11" || !desc && want[0].ID != "it_00" {
					t.Fatal("reference order is not by id")
				}
				got, _ := pageForward(t, db, s.spec(desc), ptr(5))
				assertSameItems(t, fmt.Sprintf("%s desc=%v", s.name, desc), got, want)
				assertSameItems(t, fmt.Sprintf("%s desc=%v backward", s.name, desc), pageBackward(t, db, s.spec(desc), 5), want)
			}
		}
	})

	t.Run("TimestampsWithMixedPrecision", func(t *testing.T) {
		// go-sqlite3 stores times as text without trailing zeros in the fraction; the cursor's
		// key must still compare as the stored text does.
		db := mustOpenDB(t)
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var items []item
		for i, ns := range []int{0, 100_000_000, 120_000_000, 123_000_000, 123_456_789, 900_000_000, 999_999_999, 1_000_000_000, 1_000_000_001, 50_000_000} {
			at := base.Add(time.Duration(ns))
			if testdb.IsPostgres() {
				at = at.Truncate(time.Microsecond) // what a PostgreSQL timestamp keeps
			}
			items = append(items, item{ID: fmt.Sprintf("it_%02d", i), Name: "n", CreatedAt: at})
		}
		insertItems(t, db, items)
		s := sorts[2]
		for _, desc := range []bool{false, true} {
			want := s.sorted(items, desc)
			for _, size := range []int{1, 2, 3} {
				got, _ := pageForward(t, db, s.spec(desc), &size)
				assertSameItems(t, fmt.Sprintf("desc=%v first=%d", desc, size), got, want)
			}
		}
	})

	t.Run("FirstZero", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(9, 10)), 3))
		spec := sorts[1].spec(false)
		page := mustQuery(t, db, spec, Args{First: ptr(0)})
		if len(page.Edges) != 0 || !page.PageInfo.HasNextPage || page.PageInfo.HasPreviousPage || page.PageInfo.StartCursor != nil {
			t.Fatalf("first: 0 page = %+v, want no edges and hasNextPage", page)
		}
		last := mustCursor(t, spec, sorts[1].sorted(items, false)[2])
		page = mustQuery(t, db, spec, Args{First: ptr(0), After: &last})
		if len(page.Edges) != 0 || page.PageInfo.HasNextPage || !page.PageInfo.HasPreviousPage {
			t.Fatalf("first: 0 after the last row: page = %+v, want no next page", page)
		}
		page = mustQuery(t, db, spec, Args{Last: ptr(0)})
		if len(page.Edges) != 0 || !page.PageInfo.HasPreviousPage || page.PageInfo.HasNextPage {
			t.Fatalf("last: 0 page = %+v, want no edges and hasPreviousPage", page)
		}
	})

	t.Run("PageSizes", func(t *testing.T) {
		db := mustOpenDB(t)
		insertItems(t, db, makeItems(rand.New(rand.NewPCG(11, 12)), 120))
		spec := sorts[0].spec(false)
		for _, tt := range []struct {
			args Args
			want int
		}{
			{Args{}, DefaultPageSize},
			{Args{First: ptr(MaxPageSize)}, MaxPageSize},
			{Args{Last: ptr(MaxPageSize)}, MaxPageSize},
		} {
			if got := len(mustQuery(t, db, spec, tt.args).Edges); got != tt.want {
				t.Fatalf("%s: %d edges, want %d", showArgs(tt.args), got, tt.want)
			}
		}
		spec.PageSize, spec.MaxPageSize = 7, 10
		if got := len(mustQuery(t, db, spec, Args{}).Edges); got != 7 {
			t.Fatalf("Spec.PageSize 7: %d edges", got)
		}
		if got := len(mustQuery(t, db, spec, Args{First: ptr(10)}).Edges); got != 10 {
			t.Fatalf("Spec.MaxPageSize 10, first 10: %d edges", got)
		}
		spec.PageSize = 50
		if got := len(mustQuery(t, db, spec, Args{}).Edges); got != 10 {
			t.Fatalf("Spec.PageSize above Spec.MaxPageSize: %d edges, want the maximum", got)
		}
	})

	t.Run("InvalidArgs", func(t *testing.T) {
		db := &countingDB{testDB: mustOpenDB(t)}
		insertItems(t, db.testDB, makeItems(rand.New(rand.NewPCG(13, 14)), 3))
		nameSpec := sorts[1].spec(false)
		idSpec := sorts[0].spec(false)
		timeSpec := sorts[2].spec(false)
		it := item{ID: "it_1", Name: "a", CreatedAt: time.Now()}
		small := nameSpec
		small.MaxPageSize = 5

		for _, tt := range []struct {
			name    string
			spec    Spec[item]
			args    Args
			field   string
			message string
		}{
			{"FirstTooLarge", nameSpec, Args{First: ptr(101)}, "first", "first must be between 0 and 100"},
			{"FirstNegative", nameSpec, Args{First: ptr(-1)}, "first", "first must be between 0 and 100"},
			{"LastTooLarge", nameSpec, Args{Last: ptr(101)}, "last", "last must be between 0 and 100"},
			{"LastNegative", nameSpec, Args{Last: ptr(-1)}, "last", "last must be between 0 and 100"},
			{"FirstAboveSpecMax", small, Args{First: ptr(6)}, "first", "first must be between 0 and 5"},
			{"FirstAndLast", nameSpec, Args{First: ptr(1), Last: ptr(1)}, "last", "first and last cannot be used together"},
			{"AfterNotBase64", nameSpec, Args{After: ptr("not a cursor!")}, "after", ""},
			{"BeforeNotBase64", nameSpec, Args{Before: ptr("%%%")}, "before", ""},
			{"AfterEmpty", nameSpec, Args{After: ptr("")}, "after", ""},
			{"AfterNotJSON", nameSpec, Args{After: ptr(b64("hello"))}, "after", ""},
			{"AfterPadded", nameSpec, Args{After: ptr(base64.URLEncoding.EncodeToString([]byte(`{"c":"name","t":"s","k":"a","i":"xy"}`)))}, "after", ""},
			{"AfterNoID", nameSpec, Args{After: ptr(b64(`{"c":"name","t":"s","k":"a"}`))}, "after", ""},
			{"AfterUnknownField", nameSpec, Args{After: ptr(b64(`{"c":"name","t":"s","k":"a","i":"x","x":1}`))}, "after", ""},
			{"AfterTrailingData", nameSpec, Args{After: ptr(b64(`{"c":"name","t":"s","k":"a","i":"x"}{}`))}, "after", ""},
			{"AfterNotAnObject", nameSpec, Args{After: ptr(b64(`["name","s","a","x"]`))}, "after", ""},
			{"AfterUnknownKeyType", nameSpec, Args{After: ptr(b64(`{"c":"name","t":"z","k":"a","i":"x"}`))}, "after", ""},
			{"AfterNoKeyType", nameSpec, Args{After: ptr(b64(`{"c":"name","i":"x"}`))}, "after", ""},
			{"AfterBadInt", sorts[3].spec(false), Args{After: ptr(b64(`{"c":"rank","t":"i","k":"1.5","i":"x"}`))}, "after", ""},
			{"AfterBadTime", timeSpec, Args{After: ptr(b64(`{"c":"created_at","t":"t","k":"yesterday","i":"x"}`))}, "after", ""},
			{"AfterTooLong", nameSpec, Args{After: ptr(b64(`{"c":"name","t":"s","k":"` + strings.Repeat("a", 2000) + `","i":"x"}`))}, "after", ""},
			{"CursorOfAnotherSort", nameSpec, Args{After: ptr(mustCursor(t, timeSpec, it))}, "after", ""},
			{"CursorOfIDSortOnNameSort", nameSpec, Args{Before: ptr(mustCursor(t, idSpec, it))}, "before", ""},
			{"CursorWithKeyOnIDSort", idSpec, Args{After: ptr(mustCursor(t, nameSpec, it))}, "after", ""},
			{"CursorWithKeyTypeOnIDSort", idSpec, Args{After: ptr(b64(`{"t":"s","k":"a","i":"x"}`))}, "after", ""},
			{"BadBeforeWithGoodAfter", nameSpec, Args{After: ptr(mustCursor(t, nameSpec, it)), Before: ptr("x")}, "before", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				db.reset()
				_, err := Query(ctx, db, tt.spec, tt.args)
				e, ok := apperr.As(err)
				if !ok || e.Code != apperr.BadUserInput {
					t.Fatalf("err = %v, want a BAD_USER_INPUT *apperr.Error", err)
				}
				if e.Field != tt.field {
					t.Fatalf("Field = %q, want %q", e.Field, tt.field)
				}
				if tt.message == "" {
					tt.message = tt.field + " is not a valid cursor for this list"
				}
				if e.Message != tt.message || err.Error() != tt.message {
					t.Fatalf("Message = %q, want %q", e.Message, tt.message)
				}
				if n := len(db.queries()); n != 0 {
					t.Fatalf("%d queries run for invalid arguments, want none", n)
				}
			})
		}
	})

	t.Run("TotalCountOnlyWhenAsked", func(t *testing.T) {
		db := &countingDB{testDB: mustOpenDB(t)}
		items := insertItems(t, db.testDB, makeItems(rand.New(rand.NewPCG(15, 16)), 30))
		spec := sorts[1].spec(false)
		spec.Where, spec.Args = "ws = ?", []any{"ws_a"}
		want := 0
		for _, it := range items {
			if it.WS == "ws_a" {
				want++
			}
		}

		page := mustQuery(t, db, spec, Args{First: ptr(2)})
		if page.TotalCount != nil || len(db.queries()) != 1 {
			t.Fatalf("Count false: totalCount %v after queries %q, want nil after one query", page.TotalCount, db.queries())
		}

		db.reset()
		spec.Count = true
		page = mustQuery(t, db, spec, Args{First: ptr(2), After: page.PageInfo.EndCursor})
		if page.TotalCount == nil || *page.TotalCount != want {
			t.Fatalf("totalCount = %v, want %d (the whole filtered list, regardless of the cursor)", page.TotalCount, want)
		}
		if q := db.queries(); len(q) != 2 || !strings.Contains(q[1], "COUNT(*)") {
			t.Fatalf("queries = %q, want the page and a count", q)
		}
	})

	t.Run("WhereWithOrKeepsKeyset", func(t *testing.T) {
		db := mustOpenDB(t)
		items := insertItems(t, db, makeItems(rand.New(rand.NewPCG(17, 18)), 40))
		spec := sorts[1].spec(true)
		spec.Where, spec.Args = "ws = ? OR ws = ?", []any{"ws_a", "ws_b"}
		var want []item
		for _, it := range sorts[1].sorted(items, true) {
			if it.WS == "ws_a" || it.WS == "ws_b" {
				want = append(want, it)
			}
		}
		got, _ := pageForward(t, db, spec, ptr(3))
		assertSameItems(t, "or filter", got, want)
	})

	t.Run("ValuerAndNamedSortKeys", func(t *testing.T) {
		// A key is kept as the driver stores it: here fixed-width text written by a Valuer, which
		// sorts differently from go-sqlite3's own time format, and a named integer type.
		db := mustOpenDB(t)
		db.MustExec("CREATE TABLE stamped (id TEXT PRIMARY KEY, at TEXT NOT NULL, level INTEGER NOT NULL)")
		base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		var rows []stampedRow
		for i := range 30 {
			rows = append(rows, stampedRow{
				ID:    fmt.Sprintf("st_%02d", (i*11)%30),
				At:    stamp{base.Add(time.Duration(i%7) * 100 * time.Millisecond)},
				Level: level(i % 4),
			})
			db.MustExec("INSERT INTO stamped (id, at, level) VALUES (?, ?, ?)", rows[i].ID, rows[i].At, rows[i].Level)
		}
		for _, tt := range []struct {
			column  string
			key     func(stampedRow) any
			compare func(a, b stampedRow) int
		}{
			{"at", func(r stampedRow) any { return r.At }, func(a, b stampedRow) int { return a.At.Compare(b.At.Time) }},
			{"level", func(r stampedRow) any { return r.Level }, func(a, b stampedRow) int { return cmp.Compare(a.Level, b.Level) }},
		} {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(rows)
				slices.SortFunc(want, func(a, b stampedRow) int {
					c := cmp.Or(tt.compare(a, b), strings.Compare(a.ID, b.ID))
					if desc {
						return -c
					}
					return c
				})
				spec := Spec[stampedRow]{
					Select: "SELECT id, at, level FROM stamped", SortColumn: tt.column, Desc: desc,
					ID: func(r stampedRow) string { return r.ID }, SortKey: tt.key,
				}
				var got []string
				var after *string
				for pages := 0; ; pages++ {
					page, err := Query(ctx, db, spec, Args{First: ptr(4), After: after})
					if err != nil {
						t.Fatal(err)
					}
					if pages > len(rows) {
						t.Fatalf("%s desc=%v: paging does not end; got %v", tt.column, desc, got)
					}
					for _, e := range page.Edges {
						got = append(got, e.Node.ID)
					}
					if !page.PageInfo.HasNextPage {
						break
					}
					after = page.PageInfo.EndCursor
				}
				var wantIDs []string
				for _, r := range want {
					wantIDs = append(wantIDs, r.ID)
				}
				if !slices.Equal(got, wantIDs) {
					t.Fatalf("%s desc=%v:\n got %v\nwant %v", tt.column, desc, got, wantIDs)
				}
			}
		}
	})

	t.Run("QueryText", func(t *testing.T) {
		spec := Spec[item]{Select: "SELECT id FROM items", Where: "ws = ?", Args: []any{"ws_a"}, SortColumn: "i.name", IDColumn: "i.id", Desc: true}
		s, err := spec.normalize()
		if err == nil {
			t.Fatal("spec without ID func accepted")
		}
		spec.ID, spec.SortKey = func(i item) string { return i.ID }, func(i item) any { return i.Name }
		if s, err = spec.normalize(); err != nil {
			t.Fatal(err)
		}
		w := window{limit: 2, backward: true, after: &cursor{key: "a", id: "x"}, before: &cursor{key: "b", id: "y"}}
		query, args := s.pageQuery(w)
		want := "SELECT id FROM items WHERE (ws = ?) AND (i.name, i.id) < (?, ?) AND (i.name, i.id) > (?, ?) ORDER BY i.name ASC, i.id ASC LIMIT 3"
		if query != want {
			t.Fatalf("query =\n%s\nwant\n%s", query, want)
		}
		if got, want := fmt.Sprint(args), "[ws_a a x b y]"; got != want {
			t.Fatalf("args = %s, want %s", got, want)
		}
		if got, want := sqlx.Rebind(sqlx.DOLLAR, query), "SELECT id FROM items WHERE (ws = $1) AND (i.name, i.id) < ($2, $3) AND (i.name, i.id) > ($4, $5) ORDER BY i.name ASC, i.id ASC LIMIT 3"; got != want {
			t.Fatalf("rebound for PostgreSQL:\n%s\nwant\n%s", got, want)
		}
		count, _ := s.countQuery()
		if want := "SELECT COUNT(*) FROM (SELECT id FROM items WHERE (ws = ?)) AS relay_count"; count != want {
			t.Fatalf("count query =\n%s\nwant\n%s", count, want)
		}
	})

	t.Run("BadSpec", func(t *testing.T) {
		db := mustOpenDB(t)
		insertItems(t, db, makeItems(rand.New(rand.NewPCG(19, 20)), 2))
		good := sorts[1].spec(false)
		for _, tt := range []struct {
			name   string
			change func(*Spec[item])
		}{
			{"NoSelect", func(s *Spec[item]) { s.Select = "" }},
			{"NoID", func(s *Spec[item]) { s.ID = nil }},
			{"NoSortKey", func(s *Spec[item]) { s.SortKey = nil }},
			{"SortColumnNotAName", func(s *Spec[item]) { s.SortColumn = "name; DROP TABLE items" }},
			{"IDColumnNotAName", func(s *Spec[item]) { s.IDColumn = "id desc" }},
			{"UnsupportedSortKey", func(s *Spec[item]) { s.SortKey = func(i item) any { return i.Rank > 0 } }},
			{"FailingValuer", func(s *Spec[item]) { s.SortKey = func(item) any { return badValuer{} } }},
			{"NilSortKey", func(s *Spec[item]) { s.SortKey = func(item) any { return nil } }},
			{"EmptyID", func(s *Spec[item]) { s.ID = func(item) string { return "" } }},
			{"SQLError", func(s *Spec[item]) { s.Where = "no_such_column = 1" }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				spec := good
				tt.change(&spec)
				_, err := Query(ctx, db, spec, Args{})
				if err == nil || apperr.CodeOf(err) != apperr.Internal {
					t.Fatalf("err = %v, want an internal error", err)
				}
			})
		}
	})
}

// TestQueryMatchesSortedSlice compares random pages of random tables with the Relay
// algorithm applied to a sorted slice.
func TestQueryMatchesSortedSlice(t *testing.T) {
	db := mustOpenDB(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 42))
	for round := range 8 {
		db.MustExec("DELETE FROM items")
		items := insertItems(t, db, makeItems(r, r.IntN(70)))
		for _, s := range sorts {
			for _, desc := range []bool{false, true} {
				spec := s.spec(desc)
				var filtered []item
				if r.IntN(2) == 0 {
					spec.Where, spec.Args = "ws = ?", []any{"ws_b"}
					for _, it := range items {
						if it.WS == "ws_b" {
							filtered = append(filtered, it)
						}
					}
				} else {
					filtered = items
				}
				spec.Count = r.IntN(2) == 0
				all := s.sorted(filtered, desc)
				for range 40 {
					args, want := randomWindow(r, spec, all)
					name := fmt.Sprintf("round %d, %s desc=%v %s", round, s.name, desc, showArgs(args))
					page := mustQuery(t, db, spec, args)
					assertSameItems(t, name, page.Nodes(), want.nodes)
					if page.PageInfo.HasNextPage != want.next || page.PageInfo.HasPreviousPage != want.previous {
						t.Fatalf("%s: pageInfo %+v, want next=%v previous=%v", name, page.PageInfo, want.next, want.previous)
					}
					if spec.Count != (page.TotalCount != nil) || spec.Count && *page.TotalCount != len(all) {
						t.Fatalf("%s: totalCount = %v, want %d when asked", name, page.TotalCount, len(all))
					}
					for i, e := range page.Edges {
						if c := mustCursor(t, spec, e.Node); e.Cursor != c {
							t.Fatalf("%s: edge %d cursor %q, want %q", name, i, e.Cursor, c)
						}
					}
				}
			}
		}
	}
}

type expected struct {
	nodes          []item
	next, previous bool
}

// randomWindow picks random arguments and what the Relay specification says they return.
func randomWindow(r *rand.Rand, spec Spec[item], all []item) (Args, expected) {
	var args Args
	lo, hi := 0, len(all) // the rows between the cursors: all[lo:hi]
	if len(all) > 0 && r.IntN(2) == 0 {
		i := r.IntN(len(all))
		args.After = ptr(mustCursorOf(spec, all[i]))
		lo = i + 1
	}
	if len(all) > 0 && r.IntN(2) == 0 {
		i := r.IntN(len(all))
		args.Before = ptr(mustCursorOf(spec, all[i]))
		hi = i
	}
	edges := all[min(lo, hi):hi]
	want := expected{next: args.Before != nil, previous: args.After != nil}
	n := r.IntN(12)
	switch r.IntN(3) {
	case 0:
		args.First = &n
	case 1:
		args.Last = &n
	default:
		n = DefaultPageSize
	}
	if args.Last != nil || args.First == nil && args.Before != nil && args.After == nil {
		if len(edges) > n {
			edges, want.previous = edges[len(edges)-n:], true
		}
	} else if len(edges) > n {
		edges, want.next = edges[:n], true
	}
	want.nodes = edges
	return args, want
}

// pageForward reads the whole list with first: size (the default when nil), following
// endCursor until hasNextPage is false, and returns the rows and the number of pages.
func pageForward(t *testing.T, db sqlx.QueryerContext, spec Spec[item], size *int) ([]item, int) {
	t.Helper()
	var got []item
	var after *string
	for pages := 1; ; pages++ {
		page := mustQuery(t, db, spec, Args{First: size, After: after})
		if got, want := page.PageInfo.HasPreviousPage, after != nil; got != want {
			t.Fatalf("page %d: hasPreviousPage = %v, want %v", pages, got, want)
		}
		got = append(got, page.Nodes()...)
		if !page.PageInfo.HasNextPage {
			return got, pages
		}
		if len(page.Edges) == 0 || pages > 1000 {
			t.Fatalf("page %d: hasNextPage with %d edges", pages, len(page.Edges))
		}
		after = page.PageInfo.EndCursor
	}
}

// pageBackward reads the whole list with last: size, following startCursor.
func pageBackward(t *testing.T, db sqlx.QueryerContext, spec Spec[item], size int) []item {
	t.Helper()
	var got []item
	var before *string
	for pages := 1; ; pages++ {
		page := mustQuery(t, db, spec, Args{Last: &size, Before: before})
		if got, want := page.PageInfo.HasNextPage, before != nil; got != want {
			t.Fatalf("page %d: hasNextPage = %v, want %v", pages, got, want)
		}
		got = append(page.Nodes(), got...)
		if !page.PageInfo.HasPreviousPage {
			return got
		}
		if len(page.Edges) == 0 || pages > 1000 {
			t.Fatalf("page %d: hasPreviousPage with %d edges", pages, len(page.Edges))
		}
		before = page.PageInfo.StartCursor
	}
}

// mustOpenDB opens a fresh database of the backend under test with the items table. Query takes
// `?` placeholders, as internal/db's queryers do; testDB rebinds them as they do.
func mustOpenDB(tb testing.TB) *testDB {
	tb.Helper()
	driver, dsn := "sqlite3", filepath.Join(tb.TempDir(), "relay.db")
	if testdb.IsPostgres() {
		driver, dsn = "pgx", testdb.URL(tb)
	}
	db, err := sqlx.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	tb.Cleanup(func() { db.Close() })
	d := &testDB{db}
	d.MustExec(`CREATE TABLE items (
		id TEXT PRIMARY KEY,
		ws TEXT NOT NULL,
		name TEXT NOT NULL,
		created_at TIMESTAMP NOT NULL,
		rank INTEGER NOT NULL,
		score DOUBLE PRECISION NOT NULL
	)`)
	return d
}

// testDB is a database whose queries take `?` placeholders on every backend.
type testDB struct{ *sqlx.DB }

func (d *testDB) MustExec(query string, args ...any) sql.Result {
	return d.DB.MustExec(d.Rebind(query), args...)
}

func (d *testDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.DB.QueryContext(ctx, d.Rebind(query), args...)
}

func (d *testDB) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	return d.DB.QueryxContext(ctx, d.Rebind(query), args...)
}

func (d *testDB) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	return d.DB.QueryRowxContext(ctx, d.Rebind(query), args...)
}

// makeItems returns n items whose sort keys collide often, so that ties are common.
func makeItems(r *rand.Rand, n int) []item {
	base := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	names := []string{"Alpha", "alpha", "beta", "Beta", "gamma", "", "Zeta", "älpha"}
	items := make([]item, n)
	for i := range items {
		items[i] = item{
			ID:        fmt.Sprintf("it_%06d", r.IntN(1_000_000)*1000+i%1000), // unique, not in insertion order
			WS:        []string{"ws_a", "ws_b", "ws_c"}[r.IntN(3)],
			Name:      names[r.IntN(len(names))],
			CreatedAt: base.Add(time.Duration(r.IntN(5))*time.Second + time.Duration(r.IntN(3))*time.Millisecond*150),
			Rank:      int64(r.IntN(7) - 3),
			Score:     float64(r.IntN(5)) / 4,
		}
	}
	return items
}

func insertItems(tb testing.TB, db *testDB, items []item) []item {
	tb.Helper()
	for _, it := range items {
		db.MustExec("INSERT INTO items (id, ws, name, created_at, rank, score) VALUES (?, ?, ?, ?, ?, ?)",
			it.ID, it.WS, it.Name, it.CreatedAt, it.Rank, it.Score)
	}
	return items
}

func mustQuery(t *testing.T, db sqlx.QueryerContext, spec Spec[item], args Args) Page[item] {
	t.Helper()
	page, err := Query(context.Background(), db, spec, args)
	if err != nil {
		t.Fatalf("Query(%s): %v", showArgs(args), err)
	}
	return page
}

func mustCursor(t *testing.T, spec Spec[item], it item) string {
	t.Helper()
	s, err := spec.normalize()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.cursor(it)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCursorOf(spec Spec[item], it item) string {
	s, err := spec.normalize()
	if err != nil {
		panic(err)
	}
	c, err := s.cursor(it)
	if err != nil {
		panic(err)
	}
	return c
}

func assertSameItems(t *testing.T, name string, got, want []item) {
	t.Helper()
	ids := func(items []item) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.ID
		}
		return out
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("%s:\n got %v\nwant %v", name, g, w)
	}
	for i := range got {
		if !got[i].CreatedAt.Equal(want[i].CreatedAt) || got[i].Name != want[i].Name {
			t.Fatalf("%s: row %d = %+v, want %+v", name, i, got[i], want[i])
		}
	}
}

func showArgs(a Args) string {
	var parts []string
	if a.First != nil {
		parts = append(parts, fmt.Sprintf("first=%d", *a.First))
	}
	if a.After != nil {
		parts = append(parts, "after="+*a.After)
	}
	if a.Last != nil {
		parts = append(parts, fmt.Sprintf("last=%d", *a.Last))
	}
	if a.Before != nil {
		parts = append(parts, "before="+*a.Before)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func ptr[T any](v T) *T { return &v }

// stamp is a timestamp stored as fixed-width UTC text, like internal/db's Time.
type stamp struct{ time.Time }

const stampLayout = "2006-01-02T15:04:05.000000Z"

func (s stamp) Value() (driver.Value, error) { return s.UTC().Format(stampLayout), nil }

func (s *stamp) Scan(v any) (err error) {
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("stamp: cannot scan %T", v)
	}
	s.Time, err = time.Parse(stampLayout, str)
	return err
}

type level int16

type stampedRow struct {
	ID    string `db:"id"`
	At    stamp  `db:"at"`
	Level level  `db:"level"`
}

type badValuer struct{}

func (badValuer) Value() (driver.Value, error) { return nil, errors.New("no value") }

// countingDB records the queries run through it.
type countingDB struct {
	*testDB
	mu   sync.Mutex
	list []string
}

func (c *countingDB) record(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, query)
}

func (c *countingDB) queries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

func (c *countingDB) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = nil
}

func (c *countingDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.record(query)
	return c.testDB.QueryContext(ctx, query, args...)
}

func (c *countingDB) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	c.record(query)
	return c.testDB.QueryxContext(ctx, query, args...)
}

func (c *countingDB) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	c.record(query)
	return c.testDB.QueryRowxContext(ctx, query, args...)
}
