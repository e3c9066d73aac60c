// Package relay pages through SQL rows for the GraphQL API's Relay cursor connections.
//
// Every list field of the API takes first/after/last/before and returns edges, pageInfo and,
// when asked, totalCount. Query validates those arguments, runs one keyset query on
// (sort column, id) that works on SQLite and PostgreSQL alike (never OFFSET, so a page costs
// the same wherever it is in the list and rows inserted meanwhile do not shift it), and counts
// the whole list only when the caller says totalCount is selected.
//
// Domain packages call Query with the SQL they own; resolvers map the Page to gqlgen models.
package relay

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/junctioncdp/junction/internal/apperr"
)

const (
	// DefaultPageSize is the page size when neither first nor last is given.
	DefaultPageSize = 20
	// MaxPageSize is the largest first or last accepted, unless a Spec says otherwise.
	MaxPageSize = 100
)

// Args are a connection field's pagination arguments, as gqlgen passes them.
//
// With neither first nor last, a page of the default size is read forward from after, or
// backward from before when only before is given. First and last together are refused.
type Args struct {
	First  *int
	After  *string
	Last   *int
	Before *string
}

// Spec says what one list is: where its rows come from, how they are ordered and how to read
// the order's key back from a row.
//
// Select, Where, SortColumn and IDColumn are pasted into SQL: they come from code, never from
// a client. Placeholders are `?` and must not appear inside string literals (Rebind does not
// parse SQL).
type Spec[T any] struct {
	// Select is the query without WHERE, ORDER BY or LIMIT, e.g. "SELECT id, name FROM sources".
	// Its columns are scanned into T with sqlx.
	Select string
	// Where filters the list, without the WHERE keyword; empty for no filter.
	Where string
	// Args are the values of the `?` placeholders in Select and Where, in order.
	Args []any

	// SortColumn is the column the list is ordered by, e.g. "created_at" or "name". It must be
	// NOT NULL (SQLite and PostgreSQL order NULLs differently). Empty, or equal to IDColumn,
	// orders by the id alone, which for our time-sortable ids means by creation.
	SortColumn string
	// IDColumn is a unique column that breaks ties on SortColumn; "id" when empty.
	IDColumn string
	// Desc orders the list from the largest key down (newest first).
	Desc bool

	// ID returns the IDColumn value of a row. Required.
	ID func(T) string
	// SortKey returns the SortColumn value of a row, as it is written to the column: a
	// db.Time, a string, an integer, a float64 or a time.Time (or any driver.Valuer of these).
	// The cursor keeps the value the driver would store, so that comparing it with the column
	// compares like the stored values do; another form (the time.Time inside a db.Time) would
	// compare wrongly and break paging. Required when SortColumn is set.
	SortKey func(T) any

	// Count asks for the size of the whole list in Page.TotalCount. Set it only when the
	// totalCount field is selected (see TotalCountSelected): it costs a query.
	Count bool

	// PageSize and MaxPageSize override DefaultPageSize and MaxPageSize when positive.
	PageSize    int
	MaxPageSize int
}

// Page is one page of a list, in the list's order.
type Page[T any] struct {
	Edges    []Edge[T]
	PageInfo PageInfo
	// TotalCount is the number of rows in the whole list, regardless of the cursors;
	// nil unless Spec.Count was set.
	TotalCount *int
}

// Edge is a row and the cursor to pass as after or before to page from it.
type Edge[T any] struct {
	Cursor string
	Node   T
}

// PageInfo is the Relay PageInfo of a page. StartCursor and EndCursor are nil on an empty page.
//
// As in ent's entgql: with first, HasNextPage says whether a row follows the page, and
// HasPreviousPage is true exactly when after was given; with last, the reverse.
type PageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool
	StartCursor     *string
	EndCursor       *string
}

// Nodes returns the rows of the page, for a connection's nodes field.
func (p Page[T]) Nodes() []T {
	nodes := make([]T, len(p.Edges))
	for i, e := range p.Edges {
		nodes[i] = e.Node
	}
	return nodes
}

// Query returns the page of the list described by spec that args ask for, reading through q: an
// internal/db Queryer or Tx, which rebind `?` for the dialect themselves, or a *sqlx.DB or
// *sqlx.Tx, whose Rebind Query calls. Invalid args give an *apperr.Error with code
// BAD_USER_INPUT and the argument's name in Field, before any query runs; a failing query or a
// wrong spec gives a plain (internal) error.
func Query[T any](ctx context.Context, q sqlx.QueryerContext, spec Spec[T], args Args) (Page[T], error) {
	s, err := spec.normalize()
	if err != nil {
		return Page[T]{}, err
	}
	w, err := s.window(args)
	if err != nil {
		return Page[T]{}, err
	}

	query, qargs := s.pageQuery(w)
	var rows []T
	if err := sqlx.SelectContext(ctx, q, &rows, rebind(q, query), qargs...); err != nil {
		return Page[T]{}, fmt.Errorf("relay: select page: %w", err)
	}

	var page Page[T]
	page.PageInfo.HasNextPage = args.Before != nil
	page.PageInfo.HasPreviousPage = args.After != nil
	if len(rows) > w.limit { // the extra row fetched to learn that more follow
		rows = rows[:w.limit]
		if w.backward {
			page.PageInfo.HasPreviousPage = true
		} else {
			page.PageInfo.HasNextPage = true
		}
	}
	if w.backward { // read from the end of the list; put the page back in the list's order
		slices.Reverse(rows)
	}
	page.Edges = make([]Edge[T], len(rows))
	for i, row := range rows {
		c, err := s.cursor(row)
		if err != nil {
			return Page[T]{}, err
		}
		page.Edges[i] = Edge[T]{Cursor: c, Node: row}
	}
	if n := len(page.Edges); n > 0 {
		page.PageInfo.StartCursor = &page.Edges[0].Cursor
		page.PageInfo.EndCursor = &page.Edges[n-1].Cursor
	}

	if s.Count {
		query, qargs := s.countQuery()
		var n int
		if err := sqlx.GetContext(ctx, q, &n, rebind(q, query), qargs...); err != nil {
			return Page[T]{}, fmt.Errorf("relay: count: %w", err)
		}
		page.TotalCount = &n
	}
	return page, nil
}

// rebind turns `?` into q's placeholders when q is a *sqlx.DB, *sqlx.Tx or *sqlx.Conn; other
// queryers, such as internal/db's, rebind what they run.
func rebind(q sqlx.QueryerContext, query string) string {
	if r, ok := q.(interface{ Rebind(string) string }); ok {
		return r.Rebind(query)
	}
	return query
}

// column accepts a column name, optionally qualified by a table name or alias.
var column = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// normalize fills in defaults and checks the parts of spec that come from code.
func (s Spec[T]) normalize() (Spec[T], error) {
	if s.IDColumn == "" {
		s.IDColumn = "id"
	}
	if s.SortColumn == s.IDColumn {
		s.SortColumn = ""
	}
	if s.MaxPageSize <= 0 {
		s.MaxPageSize = MaxPageSize
	}
	if s.PageSize <= 0 {
		s.PageSize = DefaultPageSize
	}
	s.PageSize = min(s.PageSize, s.MaxPageSize)
	switch {
	case s.Select == "":
		return s, errors.New("relay: spec has no Select")
	case s.ID == nil:
		return s, errors.New("relay: spec has no ID func")
	case s.SortColumn != "" && s.SortKey == nil:
		return s, errors.New("relay: spec has a SortColumn but no SortKey func")
	case !column.MatchString(s.IDColumn):
		return s, fmt.Errorf("relay: IDColumn %q is not a column name", s.IDColumn)
	case s.SortColumn != "" && !column.MatchString(s.SortColumn):
		return s, fmt.Errorf("relay: SortColumn %q is not a column name", s.SortColumn)
	}
	return s, nil
}

// window is what the arguments ask for, validated.
type window struct {
	limit         int  // rows on the page
	backward      bool // the page ends the range (last) rather than starts it (first)
	after, before *cursor
}

func (s Spec[T]) window(args Args) (window, error) {
	if args.First != nil && args.Last != nil {
		return window{}, apperr.Invalid("last", "first and last cannot be used together")
	}
	w := window{limit: s.PageSize}
	switch {
	case args.First != nil:
		w.limit = *args.First
		if w.limit < 0 || w.limit > s.MaxPageSize {
			return window{}, apperr.Invalid("first", "first must be between 0 and %d", s.MaxPageSize)
		}
	case args.Last != nil:
		w.limit, w.backward = *args.Last, true
		if w.limit < 0 || w.limit > s.MaxPageSize {
			return window{}, apperr.Invalid("last", "last must be between 0 and %d", s.MaxPageSize)
		}
	default:
		// Only before given: the client is paging back, so give the rows just before it.
		w.backward = args.Before != nil && args.After == nil
	}
	var err error
	if args.After != nil {
		if w.after, err = s.decodeCursor(*args.After); err != nil {
			return window{}, apperr.Invalid("after", "after is not a valid cursor for this list")
		}
	}
	if args.Before != nil {
		if w.before, err = s.decodeCursor(*args.Before); err != nil {
			return window{}, apperr.Invalid("before", "before is not a valid cursor for this list")
		}
	}
	return w, nil
}

// pageQuery builds the keyset query for w. It fetches one row more than the page holds, to
// learn whether more rows follow, and reads backward pages in reverse order.
func (s Spec[T]) pageQuery(w window) (string, []any) {
	// Rows after a cursor in the list's order have larger keys, or smaller when descending.
	afterOp, beforeOp := ">", "<"
	if s.Desc {
		afterOp, beforeOp = "<", ">"
	}
	var conds []string
	args := slices.Clone(s.Args)
	if s.Where != "" {
		// Parentheses keep an OR in Where from swallowing the keyset conditions.
		conds = append(conds, "("+s.Where+")")
	}
	if w.after != nil {
		c, a := s.keyset(afterOp, w.after)
		conds, args = append(conds, c), append(args, a...)
	}
	if w.before != nil {
		c, a := s.keyset(beforeOp, w.before)
		conds, args = append(conds, c), append(args, a...)
	}

	dir := "ASC"
	if s.Desc != w.backward {
		dir = "DESC"
	}
	var b strings.Builder
	b.WriteString(s.Select)
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	b.WriteString(" ORDER BY ")
	if s.SortColumn != "" {
		fmt.Fprintf(&b, "%s %s, ", s.SortColumn, dir)
	}
	fmt.Fprintf(&b, "%s %s LIMIT %d", s.IDColumn, dir, w.limit+1)
	return b.String(), args
}

// countQuery counts the whole list: the filter applies, the cursors do not.
func (s Spec[T]) countQuery() (string, []any) {
	query := s.Select
	if s.Where != "" {
		query += " WHERE (" + s.Where + ")"
	}
	return "SELECT COUNT(*) FROM (" + query + ") AS relay_count", s.Args
}

// keyset is the condition "the row's (sort key, id) is op the cursor's". Row values compare
// lexicographically on SQLite (3.15+) and PostgreSQL, and both can use an index on them.
func (s Spec[T]) keyset(op string, c *cursor) (string, []any) {
	if s.SortColumn == "" {
		return fmt.Sprintf("%s %s ?", s.IDColumn, op), []any{c.id}
	}
	return fmt.Sprintf("(%s, %s) %s (?, ?)", s.SortColumn, s.IDColumn, op), []any{c.key, c.id}
}
