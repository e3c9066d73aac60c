package relay

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

const testSchema = `
type Query { items(first: Int, after: String): ItemConnection! }
type ItemConnection { edges: [ItemEdge!]! nodes: [Item!]! pageInfo: PageInfo! totalCount: Int! }
type ItemEdge { cursor: String! node: Item! }
type Item { id: ID! totalCount: Int! }
type PageInfo { hasNextPage: Boolean! }
`

func TestTotalCountSelected(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "test.graphqls", Input: testSchema})

	for _, tt := range []struct {
		name  string
		query string
		vars  map[string]any
		want  bool
	}{
		{"Selected", `{ items(first: 2) { totalCount edges { cursor } } }`, nil, true},
		{"Aliased", `{ items { n: totalCount } }`, nil, true},
		{"NotSelected", `{ items { edges { cursor } pageInfo { hasNextPage } } }`, nil, false},
		{"OnlyOnNodes", `{ items { nodes { totalCount } } }`, nil, false},
		{"InFragment", `{ items { ...F } } fragment F on ItemConnection { totalCount }`, nil, true},
		{"InInlineFragment", `{ items { ... on ItemConnection { totalCount } } }`, nil, true},
		{"Skipped", `query($s: Boolean!) { items { totalCount @skip(if: $s) nodes { id } } }`, map[string]any{"s": true}, false},
		{"NotSkipped", `query($s: Boolean!) { items { totalCount @skip(if: $s) nodes { id } } }`, map[string]any{"s": false}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, errs := gqlparser.LoadQuery(schema, tt.query)
			if errs != nil {
				t.Fatal(errs)
			}
			op := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], Variables: tt.vars}
			ctx := graphql.WithOperationContext(context.Background(), op)
			// As gqlgen does before calling the items resolver.
			root := graphql.CollectFields(op, op.Operation.SelectionSet, []string{"Query"})
			ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: "Query", Field: root[0]})
			if got := TotalCountSelected(ctx); got != tt.want {
				t.Fatalf("TotalCountSelected = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("OutsideGraphQL", func(t *testing.T) {
		if TotalCountSelected(context.Background()) {
			t.Fatal("TotalCountSelected = true without a field context")
		}
	})
}
