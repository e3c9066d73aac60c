package graph

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/batch"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/engage/audience"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/regulation"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// loaders batch the lookups of related objects within one operation, so that a list of N items
// costs one query per related kind, not N. Each is keyed by workspace.Ref and loads each
// workspace's objects with the viewer's access there, in the statement's WHERE clause: an object
// the viewer may not see is not found, whichever field leads to it.
type loaders struct {
	users                    *batch.Loader[workspace.Ref, auth.User]
	inviters                 *batch.Loader[string, auth.User] // by invitation id, for its invitee
	tokens                   *batch.Loader[workspace.Ref, auth.Token]
	grants                   *batch.Loader[workspace.Ref, []workspace.Grant]
	sources                  *batch.Loader[workspace.Ref, source.Source]
	destinations             *batch.Loader[workspace.Ref, destination.Destination]
	events                   *batch.Loader[workspace.Ref, ingest.StoredEvent]
	writeKeys                *batch.Loader[workspace.Ref, []source.WriteKey]
	connectionsBySource      *batch.Loader[workspace.Ref, []destination.Connection]
	connectionsByDestination *batch.Loader[workspace.Ref, []destination.Connection]
	trackingPlans            *batch.Loader[workspace.Ref, protocols.Plan]
	sourceProtocols          *batch.Loader[workspace.Ref, protocols.SourceSettings]
	piiAccess                *batch.Loader[workspace.Ref, bool] // by membership
	regulations              *batch.Loader[workspace.Ref, regulation.Regulation]
	regulationSubjects       *batch.Loader[workspace.Ref, []string]
	profileIdentifiers       *batch.Loader[workspace.Ref, []engage.Identifier]
	profileTraits            *batch.Loader[workspace.Ref, []engage.Trait]
	profileComputedTraits    *batch.Loader[workspace.Ref, []engage.ComputedValue]
	computedTraits           *batch.Loader[workspace.Ref, engage.ComputedTrait]
	computedTraitCounts      *batch.Loader[workspace.Ref, int]
	profileAudiences         *batch.Loader[workspace.Ref, []audience.ProfileAudience]
	audienceDestinations     *batch.Loader[workspace.Ref, []audience.Destination]
}

// scoped makes the fetch function of a loader keyed by workspace.Ref from a read that takes the
// viewer's access to one workspace.
func scoped[V any](w *workspace.Service, load func(context.Context, *workspace.Access, []string) (map[string]V, error)) func(context.Context, []workspace.Ref) (map[workspace.Ref]V, error) {
	return func(ctx context.Context, refs []workspace.Ref) (map[workspace.Ref]V, error) {
		return workspace.LoadScoped(ctx, w, refs, load)
	}
}

func (r *Resolver) newLoaders() *loaders {
	w := r.Workspaces
	return &loaders{
		users:    newLoader(scoped(w, w.Users)),
		inviters: newLoader(w.Inviters),
		tokens:   newLoader(scoped(w, w.TokensByIDs)),
		grants:   newLoader(scoped(w, w.GrantsByMembership)),

		sources:                  newLoader(scoped(w, r.Sources.ByIDs)),
		destinations:             newLoader(scoped(w, r.Destinations.ByIDs)),
		events:                   newLoader(scoped(w, r.Events.EventsByIDs)),
		writeKeys:                newLoader(scoped(w, r.Sources.WriteKeysBySource)),
		connectionsBySource:      newLoader(scoped(w, r.Destinations.ConnectionsBySource)),
		connectionsByDestination: newLoader(scoped(w, r.Destinations.ConnectionsByDestination)),
		trackingPlans:            newLoader(scoped(w, r.Protocols.ByIDs)),
		sourceProtocols:          newLoader(scoped(w, r.Protocols.SettingsBySource)),
		piiAccess:                newLoader(scoped(w, r.Privacy.PIIAccessByMemberships)),
		regulations:              newLoader(scoped(w, r.Regulator.ByIDs)),
		regulationSubjects:       newLoader(scoped(w, r.Regulator.SubjectsByRegulation)),
		profileIdentifiers:       newLoader(scoped(w, r.Engage.IdentifiersByProfile)),
		profileTraits:            newLoader(scoped(w, r.Engage.TraitsByProfile)),
		profileComputedTraits:    newLoader(scoped(w, r.ComputedTraits.ValuesByProfile)),
		computedTraits:           newLoader(scoped(w, r.ComputedTraits.ByIDs)),
		computedTraitCounts:      newLoader(scoped(w, r.ComputedTraits.ProfileCounts)),
		profileAudiences:         newLoader(scoped(w, r.Audiences.ByProfile)),
		audienceDestinations:     newLoader(scoped(w, r.Audiences.DestinationsByAudience)),
	}
}

// newLoader batches the keys asked for within a millisecond of the first, up to 1,000 a statement.
func newLoader[K comparable, V any](fetch func(context.Context, []K) (map[K]V, error)) *batch.Loader[K, V] {
	return batch.New(fetch, time.Millisecond, 1000)
}

// ref names an object of a workspace, as the loaders key them.
func ref(workspaceID, id string) workspace.Ref {
	return workspace.Ref{WorkspaceID: workspaceID, ID: id}
}

// refs names objects of one workspace.
func refs(workspaceID string, ids []string) []workspace.Ref {
	out := make([]workspace.Ref, len(ids))
	for i, id := range ids {
		out[i] = ref(workspaceID, id)
	}
	return out
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

// loadUser returns a person an object of a workspace refers to (its creator, an actor), or nil
// when there is none or the viewer may not see them there.
func (r *Resolver) loadUser(ctx context.Context, workspaceID string, userID *string) (*auth.User, error) {
	if userID == nil {
		return nil, nil
	}
	return loadOne(ctx, loadersFrom(ctx, r).users, ref(workspaceID, *userID))
}

// loadOne loads one object, nil when it does not exist or the viewer may not see it.
func loadOne[K comparable, V any](ctx context.Context, l *batch.Loader[K, V], key K) (*V, error) {
	v, err := l.Load(ctx, key)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// loadRequired loads an object that a visible object cannot be without (a connection's source):
// not finding it is an error, as the field is not nullable.
func loadRequired[V any](ctx context.Context, l *batch.Loader[workspace.Ref, V], key workspace.Ref) (*V, error) {
	v, err := l.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func isNotFound(err error) bool { return errors.Is(err, batch.ErrNotFound) }

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
func prime[K comparable, V any](ctx context.Context, l *batch.Loader[K, V], keys []K) {
	if len(keys) > 0 {
		l.Prime(ctx, keys)
	}
}

// loadList loads a list-valued key, an absent key being an empty list.
func loadList[K comparable, V any](ctx context.Context, l *batch.Loader[K, []V], key K) ([]V, error) {
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

// primeThrough loads the list values of keys at once and primes next with the objects they lead
// to (of the same workspace).
func primeThrough[V, W any](ctx context.Context, l *batch.Loader[workspace.Ref, []V], keys []workspace.Ref,
	next *batch.Loader[workspace.Ref, W], follow func(V) string) {
	if len(keys) == 0 {
		return
	}
	lists, _ := l.LoadAll(ctx, keys)
	var ids []workspace.Ref
	seen := map[workspace.Ref]bool{}
	for i, list := range lists {
		for _, v := range list {
			if id := ref(keys[i].WorkspaceID, follow(v)); !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	prime(ctx, next, ids)
}
