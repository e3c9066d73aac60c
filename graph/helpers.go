package graph

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/junctioncdp/junction/graph/model"
	"github.com/junctioncdp/junction/internal/apperr"
	"github.com/junctioncdp/junction/internal/audit"
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/egress"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/relay"
	"github.com/junctioncdp/junction/internal/workspace"
)

func totalCountSelected(ctx context.Context) bool { return relay.TotalCountSelected(ctx) }

func authPayload(secret string, user *auth.User, errs apperr.UserErrors) *model.AuthPayload {
	p := &model.AuthPayload{User: user, UserErrors: userErrors(errs)}
	if secret != "" {
		p.Token = &secret
	}
	return p
}

func isViewer(ctx context.Context, u *auth.User) bool {
	v := auth.ViewerFrom(ctx)
	return v != nil && u != nil && v.User.ID == u.ID
}

func pointers[T any](list []T) []*T {
	out := make([]*T, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out
}

func emptyWorkspaces() *model.WorkspaceConnection {
	return workspaceConnection(relay.Page[workspace.Workspace]{})
}

func workspaceConnection(page relay.Page[workspace.Workspace]) *model.WorkspaceConnection {
	return connection(page,
		func(c string, n *workspace.Workspace) *model.WorkspaceEdge {
			return &model.WorkspaceEdge{Cursor: c, Node: n}
		},
		func(e []*model.WorkspaceEdge, n []*workspace.Workspace, p *relay.PageInfo, t int) *model.WorkspaceConnection {
			return &model.WorkspaceConnection{Edges: e, Nodes: n, PageInfo: p, TotalCount: t}
		})
}

// can answers a viewerCan... field from the viewer's access to a workspace.
func (r *Resolver) can(ctx context.Context, workspaceID string, check func(*workspace.Access) bool) (bool, error) {
	a, err := r.Workspaces.Access(ctx, workspaceID)
	if err != nil {
		return false, err
	}
	return check(a), nil
}

func invalidLimit() error { return apperr.Invalid("limit", "limit must be between 0 and 100") }

func (r *catalogResolver) catalogPage(kind catalog.Kind, first *int, after *string, last *int, before *string, search, category *string) (*model.CatalogEntryConnection, error) {
	page, err := relay.Slice(r.Resolver.Integrations.List(kind, deref(search), deref(category)), (*catalog.Entry).ID, args(first, after, last, before))
	if err != nil {
		return nil, err
	}
	return connection(page,
		func(c string, n **catalog.Entry) *model.CatalogEntryEdge {
			return &model.CatalogEntryEdge{Cursor: c, Node: *n}
		},
		func(e []*model.CatalogEntryEdge, n []**catalog.Entry, p *relay.PageInfo, t int) *model.CatalogEntryConnection {
			nodes := make([]*catalog.Entry, len(n))
			for i := range n {
				nodes[i] = *n[i]
			}
			return &model.CatalogEntryConnection{Edges: e, Nodes: nodes, PageInfo: p, TotalCount: t}
		}), nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func invalid(field, format string, args ...any) error { return apperr.Invalid(field, format, args...) }

// parseJSON decodes stored JSON for a JSON field. Numbers stay json.Number, so that integers
// beyond 2^53 come back exactly as they were sent, not rounded through a float64.
func parseJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// seeDestinations tells, per workspace, whether the viewer may see its destinations.
func (r *Resolver) seeDestinations(ctx context.Context) func(string) bool {
	return func(workspaceID string) bool { return r.Destinations.Visible(ctx, workspaceID) }
}

// canChangeIssueTarget tells whether the viewer may act on an issue: change its target.
func (r *Resolver) canChangeIssueTarget(ctx context.Context, is *health.Issue) bool {
	if is.TargetKind == health.SourceTarget {
		src, err := r.Sources.Get(ctx, is.TargetID)
		if err != nil {
			return false
		}
		_, admin, err := r.Sources.Rights(ctx, src)
		return err == nil && admin
	}
	a, err := r.Workspaces.Access(ctx, is.WorkspaceID)
	return err == nil && a.CanAdminister()
}

// notificationSettings is the viewer's settings by area, with their webhook channel.
func (r *Resolver) notificationSettings(ctx context.Context) (*model.NotificationSettings, error) {
	on, err := r.Notify.Settings(ctx)
	if err != nil {
		return nil, err
	}
	out := &model.NotificationSettings{}
	for _, a := range audit.Areas() {
		area := &model.NotificationArea{Area: a.Name}
		for _, t := range a.Types {
			area.Types = append(area.Types, &model.NotificationTypeSetting{Type: string(t), InApp: on[t]})
		}
		out.Areas = append(out.Areas, area)
	}
	w, err := r.Notify.WebhookOf(ctx)
	if err != nil {
		return nil, err
	}
	if w != nil {
		out.Webhook = &model.NotificationWebhook{URL: w.URL, UpdatedAt: w.UpdatedAt.Time}
	}
	return out, nil
}

func schemaJSON(text *string) (any, error) {
	if text == nil {
		return nil, nil
	}
	return parseJSON(*text)
}

func violationConnection(page relay.Page[protocols.ViolationGroup]) *model.ViolationConnection {
	return connection(page,
		func(c string, n *protocols.ViolationGroup) *model.ViolationGroupEdge {
			return &model.ViolationGroupEdge{Cursor: c, Node: n}
		},
		func(e []*model.ViolationGroupEdge, n []*protocols.ViolationGroup, p *relay.PageInfo, t int) *model.ViolationConnection {
			return &model.ViolationConnection{Edges: e, Nodes: n, PageInfo: p, TotalCount: t}
		})
}

// deliveryRedirects reads the redirects stored with a delivery request.
func deliveryRedirects(raw string) []*model.DeliveryRedirect {
	var list []egress.Redirect
	_ = json.Unmarshal([]byte(raw), &list)
	out := make([]*model.DeliveryRedirect, len(list))
	for i, r := range list {
		out[i] = &model.DeliveryRedirect{Status: r.Status, URL: r.URL, Followed: r.Refused == ""}
		if r.Refused != "" {
			out[i].RefusedBecause = &list[i].Refused
		}
	}
	return out
}
