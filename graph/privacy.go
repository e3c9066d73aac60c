package graph

import (
	"context"
	"strings"

	"github.com/junctioncdp/junction/graph/model"
	"github.com/junctioncdp/junction/internal/privacy"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

// privacyResources is what the Privacy Portal needs of sources and destinations.
func (r *Resolver) privacyResources() privacy.Resources { return privacyResources{r} }

type privacyResources struct{ r *Resolver }

func (p privacyResources) SourceWorkspace(ctx context.Context, sourceID string) (string, error) {
	s, err := p.r.Sources.Get(ctx, sourceID)
	if err != nil {
		return "", err
	}
	return s.WorkspaceID, nil
}

func (p privacyResources) DestinationWorkspace(ctx context.Context, destinationID string) (string, error) {
	d, err := p.r.Destinations.Get(ctx, destinationID)
	if err != nil {
		return "", err
	}
	return d.WorkspaceID, nil
}

// connectedDestinations are the destinations the viewer sees that sources lead to by enabled
// connections.
func (r *Resolver) connectedDestinations(ctx context.Context, a *workspace.Access, sourceIDs []string) (map[string][]string, error) {
	conns, err := r.Destinations.ConnectionsBySource(ctx, a, sourceIDs)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for src, list := range conns {
		for _, c := range list {
			if c.Enabled {
				out[src] = append(out[src], c.DestinationID)
			}
		}
	}
	return out, nil
}

func privacyFilter(f *model.PrivacyInventoryFilter) privacy.Filter {
	if f == nil {
		return privacy.Filter{}
	}
	return privacy.Filter{Classification: f.Classification, SourceID: f.SourceID, Search: strings.TrimSpace(deref(f.Search))}
}

func privacyFieldConnection(page relay.Page[privacy.Field]) *model.PrivacyFieldConnection {
	return connection(page, func(c string, n *privacy.Field) *model.PrivacyFieldEdge {
		return &model.PrivacyFieldEdge{Cursor: c, Node: n}
	},
		func(e []*model.PrivacyFieldEdge, n []*privacy.Field, p *relay.PageInfo, t int) *model.PrivacyFieldConnection {
			return &model.PrivacyFieldConnection{Edges: e, Nodes: n, PageInfo: p, TotalCount: t}
		})
}
