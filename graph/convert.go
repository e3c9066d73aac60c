package graph

import (
	"github.com/junctioncdp/junction/graph/model"
	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/relay"
)

func args(first *int, after *string, last *int, before *string) relay.Args {
	return relay.Args{First: first, After: after, Last: last, Before: before}
}

// userErrors maps domain input problems to the schema's UserError.
func userErrors(errs apperr.UserErrors) []*model.UserError {
	out := make([]*model.UserError, len(errs))
	for i, e := range errs {
		ue := &model.UserError{Message: e.Message, Code: model.UserErrorCode(e.Code)}
		if e.Field != "" {
			f := e.Field
			ue.Field = &f
		}
		out[i] = ue
	}
	return out
}

// connection maps a page of domain objects to a generated connection: edge builds one edge, and
// build assembles the connection from edges, nodes, page info and count.
func connection[T any, E any, C any](page relay.Page[T], edge func(cursor string, node *T) E,
	build func(edges []E, nodes []*T, info *relay.PageInfo, total int) C) C {
	edges := make([]E, len(page.Edges))
	nodes := make([]*T, len(page.Edges))
	for i := range page.Edges {
		n := page.Edges[i].Node
		nodes[i] = &n
		edges[i] = edge(page.Edges[i].Cursor, &n)
	}
	total := 0
	if page.TotalCount != nil {
		total = *page.TotalCount
	}
	info := page.PageInfo
	return build(edges, nodes, &info, total)
}

// keys collects a key from each item of a page, without duplicates.
func keys[T any](page relay.Page[T], key func(T) string) []string {
	return optionalKeys(page, func(t T) *string { k := key(t); return &k })
}

// optionalKeys collects the keys that are set.
func optionalKeys[T any](page relay.Page[T], key func(T) *string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range page.Edges {
		if k := key(e.Node); k != nil && !seen[*k] {
			seen[*k] = true
			out = append(out, *k)
		}
	}
	return out
}

// jsonObject takes a JSON argument that must be an object (or absent).
func jsonObject(field string, v any) (map[string]any, apperr.UserErrors) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		var errs apperr.UserErrors
		errs.Add(field, apperr.InvalidValue, "%s must be a JSON object", field)
		return nil, errs
	}
	return m, nil
}

func figures(f ingest.Figures) *model.IngestFigures {
	out := &model.IngestFigures{Received: f.Received, Accepted: f.Accepted, Discarded: f.Discarded, Blocked: f.Blocked, ByReason: []*model.DiscardCount{}}
	for _, c := range f.ByReason {
		out.ByReason = append(out.ByReason, &model.DiscardCount{Reason: c.Reason, Count: c.Count})
	}
	return out
}

// eventConnection maps a page of the event log to an EventConnection.
func eventConnection(page relay.Page[ingest.StoredEvent]) *model.EventConnection {
	return connection(page,
		func(c string, n *ingest.StoredEvent) *model.EventEdge { return &model.EventEdge{Cursor: c, Node: n} },
		func(e []*model.EventEdge, n []*ingest.StoredEvent, p *relay.PageInfo, t int) *model.EventConnection {
			return &model.EventConnection{Edges: e, Nodes: n, PageInfo: p, TotalCount: t}
		})
}
