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
	users                    *dataloadgen.Loader[workspace.Ref, auth.User]
	inviters                 *dataloadgen.Loader[string, auth.User] // by invitation id, for its invitee
	tokens                   *dataloadgen.Loader[workspace.Ref, auth.Token]
	grants                   *dataloadgen.Loader[workspace.Ref, []workspace.Grant]
	sources                  *dataloadgen.Loader[workspace.Ref, source.Source]
	destinations             *dataloadgen.Loader[workspace.Ref, destination.Destination]
	events                   *dataloadgen.Loader[workspace.Ref, ingest.StoredEvent]
	writeKeys                *dataloadgen.Loader[workspace.Ref, []source.WriteKey]
	connectionsBySource      *dataloadgen.Loader[workspace.Ref, []destination.Connection]
	connectionsByDestination *dataloadgen.Loader[workspace.Ref, []destination.Connection]
	trackingPlans            *dataloadgen.Loader[workspace.Ref, protocols.Plan]
	sourceProtocols          *dataloadgen.Loader[workspace.Ref, protocols.SourceSettings]
	piiAccess                *dataloadgen.Loader[workspace.Ref, bool] // by membership
	regulations              *dataloadgen.Loader[workspace.Ref, regulation.Regulation]
	regulationSubjects       *dataloadgen.Loader[workspace.Ref, []string]
	profileIdentifiers       *dataloadgen.Loader[workspace.Ref, []engage.Identifier]
	profileTraits            *dataloadgen.Loader[workspace.Ref, []engage.Trait]
	profileComputedTraits    *dataloadgen.Loader[workspace.Ref, []engage.ComputedValue]
	computedTraits           *dataloadgen.Loader[workspace.Ref, engage.ComputedTrait]
	computedTraitCounts      *dataloadgen.Loader[workspace.Ref, int]
	profileAudiences         *dataloadgen.Loader[workspace.Ref, []audience.ProfileAudience]
	audienceDestinations     *dataloadgen.Loader[workspace.Ref, []audience.Destination]
}

// scoped makes the fetch function of a loader keyed by workspace.Ref from a read that takes the
// viewer's access to one workspace.
func scoped[V any](w *workspace.Service, load func(context.Context, *workspace.Access, []string) (map[string]V, error)) func(context.Context, []workspace.Ref) (map[workspace.Ref]V, error) {
	return func(ctx context.Context, refs []workspace.Ref) (map[workspace.Ref]V, error) {
		return workspace.LoadScoped(ctx, w, refs, load)
	}
}

func (r *Resolver) newLoaders() *loaders {
	opts := []dataloadgen.Option{dataloadgen.WithWait(time.Millisecond), dataloadgen.WithBatchCapacity(1000)}
	w := r.Workspaces
	return &loaders{
		users:    dataloadgen.NewMappedLoader(scoped(w, w.Users), opts...),
		inviters: dataloadgen.NewMappedLoader(w.Inviters, opts...),
		tokens:   dataloadgen.NewMappedLoader(scoped(w, w.TokensByIDs), opts...),
		grants:   dataloadgen.NewMappedLoader(scoped(w, w.GrantsByMembership), opts...),

		sources:                  dataloadgen.NewMappedLoader(scoped(w, r.Sources.ByIDs), opts...),
		destinations:             dataloadgen.NewMappedLoader(scoped(w, r.Destinations.ByIDs), opts...),
		events:                   dataloadgen.NewMappedLoader(scoped(w, r.Events.EventsByIDs), opts...),
		writeKeys:                dataloadgen.NewMappedLoader(scoped(w, r.Sources.WriteKeysBySource), opts...),
		connectionsBySource:      dataloadgen.NewMappedLoader(scoped(w, r.Destinations.ConnectionsBySource), opts...),
		connectionsByDestination: dataloadgen.NewMappedLoader(scoped(w, r.Destinations.ConnectionsByDestination), opts...),
		trackingPlans:            dataloadgen.NewMappedLoader(scoped(w, r.Protocols.ByIDs), opts...),
		sourceProtocols:          dataloadgen.NewMappedLoader(scoped(w, r.Protocols.SettingsBySource), opts...),
		piiAccess:                dataloadgen.NewMappedLoader(scoped(w, r.Privacy.PIIAccessByMemberships), opts...),
		regulations:              dataloadgen.NewMappedLoader(scoped(w, r.Regulator.ByIDs), opts...),
		regulationSubjects:       dataloadgen.NewMappedLoader(scoped(w, r.Regulator.SubjectsByRegulation), opts...),
		profileIdentifiers:       dataloadgen.NewMappedLoader(scoped(w, r.Engage.IdentifiersByProfile), opts...),
		profileTraits:            dataloadgen.NewMappedLoader(scoped(w, r.Engage.TraitsByProfile), opts...),
		profileComputedTraits:    dataloadgen.NewMappedLoader(scoped(w, r.ComputedTraits.ValuesByProfile), opts...),
		computedTraits:           dataloadgen.NewMappedLoader(scoped(w, r.ComputedTraits.ByIDs), opts...),
		computedTraitCounts:      dataloadgen.NewMappedLoader(scoped(w, r.ComputedTraits.ProfileCounts), opts...),
		profileAudiences:         dataloadgen.NewMappedLoader(scoped(w, r.Audiences.ByProfile), opts...),
		audienceDestinations:     dataloadgen.NewMappedLoader(scoped(w, r.Audiences.DestinationsByAudience), opts...),
	}
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
func loadOne[K comparable, V any](ctx context.Context, l *dataloadgen.Loader[K, V], key K) (*V, error) {
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
func loadRequired[V any](ctx context.Context, l *dataloadgen.Loader[workspace.Ref, V], key workspace.Ref) (*V, error) {
	v, err := l.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return &v, nil
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
func loadList[K comparable, V any](ctx context.Context, l *dataloadgen.Loader[K, []V], key K) ([]V, error) {
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
func primeThrough[V, W any](ctx context.Context, l *dataloadgen.Loader[workspace.Ref, []V], keys []workspace.Ref,
	next *dataloadgen.Loader[workspace.Ref, W], follow func(V) string) {
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
