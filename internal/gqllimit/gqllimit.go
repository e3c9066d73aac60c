// Package gqllimit protects the GraphQL API from expensive documents: too deep, too many aliases,
// fields or directives, or too costly once page sizes multiply. The shape limits run before gqlgen
// validates a document (validation itself is the cost an attacker aims at: overlapping-field checks
// grow with the square of repeated fields, and every unknown directive yields an error); the cost
// limit runs after, when variables are known. Every refusal is one error that names the limit.
package gqllimit

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Code is the extensions.code of every error of this package. Request errors: HTTP 400 under
// application/graphql-response+json.
const Code = "LIMIT_EXCEEDED"

func init() { errcode.RegisterErrorType(Code, errcode.KindProtocol) }

// Limits are the thresholds. Zero disables one.
type Limits struct {
	Tokens     int // lexical tokens of the document (the parser stops there)
	Depth      int // nesting of selections; introspection's `ofType` chains do not count
	Aliases    int // aliased fields, counting each time a fragment is spread
	Fields     int // field selections outside introspection, counting each time a fragment is spread
	Directives int // directives on one field, fragment spread or inline fragment
	Complexity int // cost: one per field, times the page size asked for by first/last

	// DefaultPageSize is the multiplier for a paginated field asked without first or last.
	DefaultPageSize int
}

// Shape is the gqlgen extension that checks depth, aliases, fields and directives before validation.
type Shape struct {
	limits Limits
	seen   *lru.Cache[string, struct{}] // documents already found within limits
}

// NewShape returns the pre-validation extension.
func NewShape(l Limits) *Shape {
	c, _ := lru.New[string, struct{}](1000)
	return &Shape{limits: l, seen: c}
}

var (
	_ graphql.HandlerExtension          = (*Shape)(nil)
	_ graphql.OperationParameterMutator = (*Shape)(nil)
)

func (*Shape) ExtensionName() string                   { return "ShapeLimits" }
func (*Shape) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters parses the document (gqlgen parses it again, from its cache, after us)
// and measures it. A document that passed once is remembered.
func (s *Shape) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil // a persisted query without its text: checked when the APQ extension fills it in
	}
	if s.seen.Contains(p.Query) {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, s.limits.Tokens)
	if err != nil {
		// Let gqlgen report the parse error in its usual form (it parses again).
		return nil
	}
	if e := s.check(doc); e != nil {
		return e
	}
	s.seen.Add(p.Query, struct{}{})
	return nil
}

func limitError(format string, args ...any) *gqlerror.Error {
	e := gqlerror.Errorf(format, args...)
	e.Extensions = map[string]any{"code": Code}
	return e
}

type shapeWalk struct {
	frags                     map[string]*ast.FragmentDefinition
	aliases, fields, maxDepth int
	directiveErr              *gqlerror.Error
	limitDirectives           int
	expanding                 map[string]bool
}

func (s *Shape) check(doc *ast.QueryDocument) *gqlerror.Error {
	w := &shapeWalk{frags: map[string]*ast.FragmentDefinition{}, expanding: map[string]bool{}, limitDirectives: s.limits.Directives}
	for _, f := range doc.Fragments {
		w.frags[f.Name] = f
	}
	for _, op := range doc.Operations {
		w.directives(op.Directives)
		w.walk(op.SelectionSet, 1, false)
	}
	for _, f := range doc.Fragments {
		w.directives(f.Directives)
	}
	l := s.limits
	switch {
	case w.directiveErr != nil:
		return w.directiveErr
	case l.Depth > 0 && w.maxDepth > l.Depth:
		return limitError("query depth %d exceeds the limit of %d (max-depth)", w.maxDepth, l.Depth)
	case l.Aliases > 0 && w.aliases > l.Aliases:
		return limitError("the document has %d aliased fields, more than the limit of %d (max-aliases)", w.aliases, l.Aliases)
	case l.Fields > 0 && w.fields > l.Fields:
		return limitError("the document selects %d fields, more than the limit of %d (max-fields)", w.fields, l.Fields)
	}
	return nil
}

func (w *shapeWalk) directives(d ast.DirectiveList) {
	if w.limitDirectives > 0 && len(d) > w.limitDirectives && w.directiveErr == nil {
		w.directiveErr = limitError("%d directives on one selection, more than the limit of %d (max-directives)", len(d), w.limitDirectives)
	}
}

// walk measures a selection set at depth. Inside introspection, `ofType` does not deepen: GraphiQL's
// own introspection query nests it nine times (gqlparser's MaxIntrospectionDepth rule bounds it).
func (w *shapeWalk) walk(set ast.SelectionSet, depth int, introspection bool) {
	// Stop early on absurd documents: the counts are already over any sane limit.
	if w.fields > 100000 {
		return
	}
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			intro := introspection || sel.Name == "__schema" || sel.Name == "__type"
			if !intro {
				w.fields++ // introspection is bounded by the schema and by gqlparser's own rule
			}
			w.directives(sel.Directives)
			if sel.Alias != "" && sel.Alias != sel.Name {
				w.aliases++
			}
			d := depth
			if intro && sel.Name == "ofType" {
				d--
			}
			if d > w.maxDepth {
				w.maxDepth = d
			}
			w.walk(sel.SelectionSet, d+1, intro)
		case *ast.InlineFragment:
			w.directives(sel.Directives)
			w.walk(sel.SelectionSet, depth, introspection)
		case *ast.FragmentSpread:
			w.directives(sel.Directives)
			f := w.frags[sel.Name]
			if f == nil || w.expanding[sel.Name] {
				continue // unknown or cyclic: validation reports it
			}
			w.expanding[sel.Name] = true
			w.walk(f.SelectionSet, depth, introspection)
			w.expanding[sel.Name] = false
		}
	}
}

// Cost is the gqlgen extension that checks an operation's cost after validation.
type Cost struct{ limits Limits }

// NewCost returns the cost extension.
func NewCost(l Limits) *Cost { return &Cost{limits: l} }

var (
	_ graphql.HandlerExtension        = (*Cost)(nil)
	_ graphql.OperationContextMutator = (*Cost)(nil)
)

func (*Cost) ExtensionName() string                   { return "CostLimit" }
func (*Cost) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext computes the operation's cost. Each field costs its @cost weight (1 when
// unset) plus the cost of its selection, multiplied by the page size when the field takes
// `first`/`last` (the default page size when neither is given) and by the number of `ids` it asks for.
func (c *Cost) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if c.limits.Complexity <= 0 {
		return nil
	}
	cost := c.selectionCost(op.Operation.SelectionSet, op.Variables, 0)
	if cost > c.limits.Complexity {
		return limitError("operation cost %d exceeds the limit of %d (max-complexity); ask for smaller pages or fewer fields", cost, c.limits.Complexity)
	}
	return nil
}

func (c *Cost) selectionCost(set ast.SelectionSet, vars map[string]any, depth int) int {
	if depth > 64 {
		return 0 // validated documents have no cycles; this only guards the recursion
	}
	total := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			total = saturatingAdd(total, c.fieldCost(sel, vars, depth))
		case *ast.InlineFragment:
			total = saturatingAdd(total, c.selectionCost(sel.SelectionSet, vars, depth+1))
		case *ast.FragmentSpread:
			if sel.Definition != nil {
				total = saturatingAdd(total, c.selectionCost(sel.Definition.SelectionSet, vars, depth+1))
			}
		}
	}
	return total
}

func (c *Cost) fieldCost(f *ast.Field, vars map[string]any, depth int) int {
	weight := 1
	multiplier := 1
	if def := f.Definition; def != nil {
		if d := def.Directives.ForName("cost"); d != nil {
			if a := d.Arguments.ForName("weight"); a != nil {
				if v, err := a.Value.Value(nil); err == nil {
					if n, ok := asInt(v); ok && n >= 0 {
						weight = n
					}
				}
			}
		}
		args := f.ArgumentMap(vars)
		paginated := def.Arguments.ForName("first") != nil || def.Arguments.ForName("last") != nil
		switch {
		case paginated:
			multiplier = c.limits.DefaultPageSize
			for _, name := range []string{"first", "last"} {
				if n, ok := asInt(args[name]); ok && n >= 0 {
					multiplier = n
				}
			}
		case def.Arguments.ForName("ids") != nil:
			if ids, ok := args["ids"].([]any); ok {
				multiplier = len(ids)
			}
		}
		if multiplier < 1 {
			multiplier = 1
		}
	}
	return saturatingAdd(weight, saturatingMul(multiplier, c.selectionCost(f.SelectionSet, vars, depth+1)))
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return int(i), err == nil
	case string:
		var i int
		_, err := fmt.Sscan(n, &i)
		return i, err == nil
	}
	return 0, false
}

const maxCost = 1 << 40

func saturatingAdd(a, b int) int {
	if a+b > maxCost {
		return maxCost
	}
	return a + b
}

func saturatingMul(a, b int) int {
	if a != 0 && b > maxCost/a {
		return maxCost
	}
	return a * b
}
