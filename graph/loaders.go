package graph

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vikstrous/dataloadgen"

	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// loaders batch the lookups of related objects within one operation, so that a list of N items
// costs one query per related kind, not N.
type loaders struct {
	users                    *dataloadgen.Loader[string, auth.User]
	tokens                   *dataloadgen.Loader[string, auth.Token]
	grants                   *dataloadgen.Loader[string, []workspace.Grant]
	sources                  *dataloadgen.Loader[string, source.Source]
	destinations             *dataloadgen.Loader[string, destination.Destination]
	writeKeys                *dataloadgen.Loader[string, []source.WriteKey]
	connectionsBySource      *dataloadgen.Loader[string, []destination.Connection]
	connectionsByDestination *dataloadgen.Loader[string, []destination.Connection]
}

func (r *Resolver) newLoaders() *loaders {
	opts := []dataloadgen.Option{dataloadgen.WithWait(time.Millisecond), dataloadgen.WithBatchCapacity(1000)}
	return &loaders{
		users:  dataloadgen.NewMappedLoader(r.Auth.UsersByID, opts...),
		tokens: dataloadgen.NewMappedLoader(r.Auth.TokensByID, opts...),
		grants: dataloadgen.NewMappedLoader(r.Workspaces.GrantsByMembership, opts...),

		sources:                  dataloadgen.NewMappedLoader(r.Sources.ByIDs, opts...),
		destinations:             dataloadgen.NewMappedLoader(r.Destinations.ByIDs, opts...),
		writeKeys:                dataloadgen.NewMappedLoader(r.Sources.WriteKeysBySource, opts...),
		connectionsBySource:      dataloadgen.NewMappedLoader(r.Destinations.ConnectionsBySource, opts...),
		connectionsByDestination: dataloadgen.NewMappedLoader(r.Destinations.ConnectionsByDestination, opts...),
	}
}

type loadersKey struct{}

// Operations is the operation middleware the server installs: each operation (an HTTP request, or
// one operation on a websocket) gets fresh loaders and a fresh cache of workspace rights, so that
// nothing is shared between requests and rights are read anew for each.
func (r *Resolver) Operations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op != nil && op.Operation != nil && op.Operation.Operation == ast.Subscription {
		// A subscription lives for long: caches made now would serve stale objects and rights to
		// its later messages. Its fields load without them.
		return next(ctx)
	}
	ctx = context.WithValue(ctx, loadersKey{}, r.newLoaders())
	ctx = workspace.WithAccessCache(ctx)
	if r.Notify != nil {
		ctx = audit.WithPublisher(ctx, r.Notify.Publish)
	}
	return next(ctx)
}

func loadersFrom(ctx context.Context, r *Resolver) *loaders {
	if l, ok := ctx.Value(loadersKey{}).(*loaders); ok {
		return l
	}
	return r.newLoaders() // outside the server's middleware (tests): unbatched but correct
}

// loadUser returns a related user, or nil when it no longer exists.
func (r *Resolver) loadUser(ctx context.Context, userID *string) (*auth.User, error) {
	if userID == nil {
		return nil, nil
	}
	u, err := loadersFrom(ctx, r).users.Load(ctx, *userID)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func isNotFound(err error) bool { return errors.Is(err, dataloadgen.ErrNotFound) }

// nodeSelects tells whether the nodes of the connection being resolved (under `nodes` or
// `edges { node }`) select the field name.
func nodeSelects(ctx context.Context, name string) bool {
	op := graphql.GetOperationContext(ctx)
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		switch f.Name {
		case "nodes":
			if hasField(op, f.Selections, name) {
				return true
			}
		case "edges":
			for _, e := range graphql.CollectFields(op, f.Selections, nil) {
				if e.Name == "node" && hasField(op, e.Selections, name) {
					return true
				}
			}
		}
	}
	return false
}

func hasField(op *graphql.OperationContext, sel ast.SelectionSet, name string) bool {
	for _, f := range graphql.CollectFields(op, sel, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

// prime starts one batch for all keys of a page at once, before gqlgen resolves the page's items
// concurrently: their own loads then find the values cached instead of racing the batch window.
func prime[K comparable, V any](ctx context.Context, l *dataloadgen.Loader[K, V], keys []K) {
	if len(keys) > 0 {
		l.LoadAllThunk(ctx, keys)
	}
}

// loadList loads a list-valued key, an absent key being an empty list.
func loadList[V any](ctx context.Context, l *dataloadgen.Loader[string, []V], key string) ([]V, error) {
	v, err := l.Load(ctx, key)
	if isNotFound(err) {
		return nil, nil
	}
	return v, err
}

// selectsBelow tells whether the selection of the field being resolved asks, at any depth, for a
// field named name (fragments included). Resolvers of lists use it to prime the loaders of nested
// levels, whose items gqlgen would otherwise resolve in goroutines racing the batch window.
func selectsBelow(ctx context.Context, name string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return false
	}
	return walkSelects(fc.Field.Selections, name, 0)
}

func walkSelects(set ast.SelectionSet, name string, depth int) bool {
	if depth > 20 {
		return false
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == name || walkSelects(s.SelectionSet, name, depth+1) {
				return true
			}
		case *ast.InlineFragment:
			if walkSelects(s.SelectionSet, name, depth+1) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && walkSelects(s.Definition.SelectionSet, name, depth+1) {
				return true
			}
		}
	}
	return false
}

// primeThrough loads the list values of keys at once and primes next with the ids they lead to.
func primeThrough[V, W any](ctx context.Context, l *dataloadgen.Loader[string, []V], keys []string,
	next *dataloadgen.Loader[string, W], follow func(V) string) {
	if len(keys) == 0 {
		return
	}
	lists, _ := l.LoadAll(ctx, keys)
	var ids []string
	seen := map[string]bool{}
	for _, list := range lists {
		for _, v := range list {
			if id := follow(v); !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	prime(ctx, next, ids)
}
