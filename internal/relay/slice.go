package relay

import "github.com/junctioncdp/junction/internal/apperr"

// Slice pages through a list held in memory (such as the embedded catalog), in its order, with
// the same arguments, limits and cursors as Query. id names each item uniquely; a cursor of an item
// no longer in the list is invalid.
func Slice[T any](items []T, id func(T) string, args Args) (Page[T], error) {
	s, err := Spec[T]{ID: id, Select: "-"}.normalize()
	if err != nil {
		return Page[T]{}, err
	}
	w, err := s.window(args)
	if err != nil {
		return Page[T]{}, err
	}
	index := func(c *cursor, field string) (int, error) {
		for i, it := range items {
			if id(it) == c.id {
				return i, nil
			}
		}
		return 0, apperr.Invalid(field, "%s is not a valid cursor for this list", field)
	}
	lo, hi := 0, len(items)
	if w.after != nil {
		i, err := index(w.after, "after")
		if err != nil {
			return Page[T]{}, err
		}
		lo = i + 1
	}
	if w.before != nil {
		i, err := index(w.before, "before")
		if err != nil {
			return Page[T]{}, err
		}
		hi = i
	}
	if hi < lo {
		hi = lo
	}
	var page Page[T]
	page.PageInfo.HasNextPage = args.Before != nil
	page.PageInfo.HasPreviousPage = args.After != nil
	from, to := lo, min(lo+w.limit, hi)
	if w.backward {
		from, to = max(hi-w.limit, lo), hi
		if from > lo {
			page.PageInfo.HasPreviousPage = true
		}
	} else if to < hi {
		page.PageInfo.HasNextPage = true
	}
	for _, it := range items[from:to] {
		c, err := s.cursor(it)
		if err != nil {
			return Page[T]{}, err
		}
		page.Edges = append(page.Edges, Edge[T]{Cursor: c, Node: it})
	}
	if n := len(page.Edges); n > 0 {
		page.PageInfo.StartCursor = &page.Edges[0].Cursor
		page.PageInfo.EndCursor = &page.Edges[n-1].Cursor
	}
	total := len(items)
	page.TotalCount = &total
	return page, nil
}
