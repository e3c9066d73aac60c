package graph

import (
	"context"

	"github.com/junctioncdp/junction/graph/model"
	ids "github.com/junctioncdp/junction/internal/id"
)

// maxNodes caps nodes(ids:), like a connection's page size.
const maxNodes = 100

// nodeFetchers maps an id prefix to the function that loads that type of object for the viewer.
// Each domain adds its prefix when its types land. An unknown prefix, a malformed id or an object
// the viewer may not see is null, never an error that tells them apart.
var nodeFetchers = map[string]func(r *Resolver, ctx context.Context, id string) (model.Node, error){}

func (r *Resolver) node(ctx context.Context, id string) (model.Node, error) {
	prefix, ok := ids.Prefix(id)
	if !ok {
		return nil, nil
	}
	fetch := nodeFetchers[prefix]
	if fetch == nil {
		return nil, nil
	}
	return fetch(r, ctx, id)
}
