package relay

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// TotalCountSelected reports whether the connection field being resolved in ctx selects
// totalCount, directly or through fragments (honouring @skip and @include). Resolvers pass it
// to the domain as Spec.Count, so the COUNT query runs only when a client asks for it. It is
// false outside a gqlgen field context.
func TotalCountSelected(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) || graphql.GetFieldContext(ctx) == nil {
		return false
	}
	// No type names: a fragment inside a connection's selection can only be on that
	// connection's type (or an interface of it), so every fragment applies.
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == "totalCount" {
			return true
		}
	}
	return false
}
