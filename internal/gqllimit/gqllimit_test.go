package gqllimit

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

var testSchema = gqlparser.MustLoadSchema(&ast.Source{Input: `
directive @cost(weight: Int! = 1) on FIELD_DEFINITION
type Query {
  viewer: User
  users(first: Int, last: Int, after: String): UserConnection
  nodes(ids: [ID!]!): [User]!
  expensive: Int @cost(weight: 50)
}
type User { id: ID! name: String friends(first: Int): UserConnection }
type UserConnection { nodes: [User!]! totalCount: Int }
`})

var limits = Limits{Tokens: 1000, Depth: 5, Aliases: 3, Fields: 20, Directives: 2, Complexity: 200, DefaultPageSize: 10}

func shapeErr(t *testing.T, query string) string {
	t.Helper()
	err := NewShape(limits).MutateOperationParameters(context.Background(), &graphql.RawParams{Query: query})
	if err == nil {
		return ""
	}
	if got := err.Extensions["code"]; got != Code {
		t.Errorf("code = %v, want %s", got, Code)
	}
	return err.Message
}

func TestShape(t *testing.T) {
	for _, tc := range []struct {
		name, query, want string
	}{
		{"OK", `{ viewer { id name } }`, ""},
		{"Depth", `{ viewer { friends { nodes { friends { nodes { friends { nodes { id } } } } } } } }`, "query depth 8 exceeds the limit of 5 (max-depth)"},
		{"DepthThroughFragments", `{ ...A } fragment A on Query { viewer { friends { nodes { ...B } } } } fragment B on User { friends { nodes { id } } }`, "query depth 6 exceeds the limit of 5 (max-depth)"},
		{"Aliases", `{ a: viewer { id } b: viewer { id } c: viewer { id } d: viewer { id } }`, "the document has 4 aliased fields, more than the limit of 3 (max-aliases)"},
		{"AliasesCountedPerSpread", `{ ...F ...F } fragment F on Query { a: viewer { id } b: viewer { id } }`, "the document has 4 aliased fields, more than the limit of 3 (max-aliases)"},
		{"Fields", `{` + strings.Repeat(" __typename", 21) + ` }`, "the document selects 21 fields, more than the limit of 20 (max-fields)"},
		{"Directives", `{ __typename @a @b @c }`, "3 directives on one selection, more than the limit of 2 (max-directives)"},
		{"IntrospectionOfTypeDoesNotDeepen", `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } }`, ""},
		{"CyclicFragmentsLeftToValidation", `{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`, ""},
		{"ParseErrorLeftToGqlgen", `{ viewer {`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shapeErr(t, tc.query); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShapeRemembersGoodDocuments(t *testing.T) {
	s := NewShape(limits)
	q := `{ viewer { id } }`
	if err := s.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: q}); err != nil {
		t.Fatal(err)
	}
	if !s.seen.Contains(q) {
		t.Error("a document within limits is not cached")
	}
	bad := `{ a: viewer { id } b: viewer { id } c: viewer { id } d: viewer { id } }`
	_ = s.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: bad})
	if s.seen.Contains(bad) {
		t.Error("a refused document is cached")
	}
}

func cost(t *testing.T, query string, vars map[string]any) (int, string) {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(testSchema, query)
	if errs != nil {
		t.Fatal(errs)
	}
	op := doc.Operations[0]
	v, err := validator.VariableValues(testSchema, op, vars)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCost(limits)
	n := c.selectionCost(op.SelectionSet, v, 0)
	if e := c.MutateOperationContext(context.Background(), &graphql.OperationContext{Operation: op, Variables: v}); e != nil {
		return n, e.Message
	}
	return n, ""
}

func TestCost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		want  int
		err   string
	}{
		{"Scalar", `{ viewer { id name } }`, nil, 3, ""},
		{"PageSizeMultiplies", `{ users(first: 5) { nodes { id name } } }`, nil, 1 + 5*(1+2), ""},
		{"LastMultiplies", `{ users(last: 7) { nodes { id } } }`, nil, 1 + 7*2, ""},
		{"DefaultPageSize", `{ users { nodes { id } } }`, nil, 1 + 10*2, ""},
		{"Variables", `query($n: Int) { users(first: $n) { nodes { id } } }`, map[string]any{"n": 3}, 1 + 3*2, ""},
		{"Nested", `{ users(first: 10) { nodes { friends(first: 10) { nodes { id } } } } }`, nil, 1 + 10*(1+1+10*2), "operation cost 221 exceeds the limit of 200 (max-complexity); ask for smaller pages or fewer fields"},
		{"IDs", `{ nodes(ids: ["a", "b", "c"]) { id } }`, nil, 1 + 3*1, ""},
		{"CostDirective", `{ expensive }`, nil, 50, ""},
		{"Fragments", `{ ...F } fragment F on Query { users(first: 2) { nodes { id } } }`, nil, 1 + 2*2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cost(t, tc.query, tc.vars)
			if got != tc.want {
				t.Errorf("cost = %d, want %d", got, tc.want)
			}
			if err != tc.err {
				t.Errorf("error = %q, want %q", err, tc.err)
			}
		})
	}
}

func TestSaturation(t *testing.T) {
	if got := saturatingMul(1<<30, 1<<30); got != maxCost {
		t.Errorf("saturatingMul overflowed to %d", got)
	}
	if got := saturatingAdd(maxCost, 1); got != maxCost {
		t.Errorf("saturatingAdd = %d", got)
	}
}
