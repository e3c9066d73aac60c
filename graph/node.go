package graph

import (
	"context"
	"strings"

	"github.com/junctioncdp/junction/graph/model"
	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/delivery"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/engage/audience"
	"github.com/junctioncdp/junction/internal/health"
	ids "github.com/junctioncdp/junction/internal/id"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/regulation"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/workspace"
)

// maxNodes caps nodes(ids:), like a connection's page size.
const maxNodes = 100

// nodeFetcher loads one object of a type for the viewer: nil when it does not exist or the viewer
// may not see it.
type nodeFetcher func(r *Resolver, ctx context.Context, id string) (model.Node, error)

// nodeFetchers maps an id prefix to its fetcher. Each domain adds its prefix when its types land.
var nodeFetchers = map[string]nodeFetcher{
	auth.UserPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.User(ctx, id))
	},
	workspace.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(notFoundIsNil(r.Workspaces.Get(ctx, id)))
	},
	workspace.MembershipPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.Membership(ctx, id))
	},
	workspace.GrantPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.Grant(ctx, id))
	},
	workspace.InvitationPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.Invitation(ctx, id))
	},
	auth.TokenPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.Token(ctx, id))
	},
	audit.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Workspaces.AuditEvent(ctx, id))
	},
	source.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(notFoundIsNil(r.Sources.Get(ctx, id)))
	},
	destination.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(notFoundIsNil(r.Destinations.Get(ctx, id)))
	},
	destination.ConnectionPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Destinations.Connection(ctx, id))
	},
	ingest.EventPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Events.Event(ctx, id))
	},
	delivery.AttemptPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Deliveries.Attempt(ctx, id))
	},
	audit.NotificationPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Notify.Get(ctx, id))
	},
	protocols.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(notFoundIsNil(r.Protocols.Get(ctx, id)))
	},
	regulation.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(notFoundIsNil(r.Regulator.Get(ctx, id)))
	},
	engage.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Engage.Get(ctx, id))
	},
	engage.ComputedTraitPrefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.ComputedTraits.Get(ctx, id))
	},
	audience.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Audiences.Get(ctx, id))
	},
	health.Prefix: func(r *Resolver, ctx context.Context, id string) (model.Node, error) {
		return nilable(r.Health.Get(ctx, id, r.seeDestinations(ctx)))
	},
}

// notFoundIsNil turns NOT_FOUND into nothing, for node lookups.
func notFoundIsNil[T any](v *T, err error) (*T, error) {
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return v, err
}

// nilable turns a typed nil pointer into an untyped nil Node, so that GraphQL sees null.
func nilable[T any](v *T, err error) (model.Node, error) {
	if err != nil || v == nil {
		return nil, err
	}
	return v, nil
}

func (r *Resolver) node(ctx context.Context, id string) (model.Node, error) {
	if strings.HasPrefix(id, catalog.IDPrefix) { // the catalog is public and its ids are slugs
		return nilable(r.Integrations.Entry("", id), nil)
	}
	if auth.ViewerFrom(ctx) == nil {
		return nil, nil // nothing else is visible anonymously
	}
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
