// Package graph is the GraphQL layer: gqlgen's generated code and thin resolvers that authenticate,
// call one service method of a domain package in internal/, and map the result.
package graph

import (
	"github.com/junctioncdp/junction/internal/auth"
	"github.com/junctioncdp/junction/internal/bus"
	"github.com/junctioncdp/junction/internal/catalog"
	"github.com/junctioncdp/junction/internal/delivery"
	"github.com/junctioncdp/junction/internal/destination"
	"github.com/junctioncdp/junction/internal/engage"
	"github.com/junctioncdp/junction/internal/engage/audience"
	"github.com/junctioncdp/junction/internal/health"
	"github.com/junctioncdp/junction/internal/ingest"
	"github.com/junctioncdp/junction/internal/notify"
	"github.com/junctioncdp/junction/internal/privacy"
	"github.com/junctioncdp/junction/internal/protocols"
	"github.com/junctioncdp/junction/internal/regulation"
	"github.com/junctioncdp/junction/internal/source"
	"github.com/junctioncdp/junction/internal/warehouse"
	"github.com/junctioncdp/junction/internal/workspace"
)

//go:generate go run github.com/99designs/gqlgen generate

// Resolver holds the services the resolvers call. It is built once by internal/app.
type Resolver struct {
	Auth         *auth.Service
	Workspaces   *workspace.Service
	Integrations *catalog.Catalog
	Sources      *source.Service
	Destinations *destination.Service
	Events       *ingest.Queries
	Deliveries   *delivery.Queries
	Health       *health.Service
	Notify       *notify.Service
	Protocols    *protocols.Service
	Privacy      *privacy.Service
	Regulator    *regulation.Service
	Engage       *engage.Service
	// ComputedTraits is Engage's computed traits.
	ComputedTraits *engage.Traits
	Audiences      *audience.Service
	Bus            *bus.Bus
	Warehouses     *warehouse.Service
}
