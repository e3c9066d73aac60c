package graph

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolversNeverReadWithoutAViewer checks that no code of this package calls the domains'
// functions that read without a viewer (named Internal..., the destinations' decrypted secrets,
// and the auth package's reads of people and tokens by a condition): everything the API shows is
// read with the viewer's access in the query.
func TestResolversNeverReadWithoutAViewer(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			recv, _ := sel.X.(*ast.SelectorExpr)
			decrypts := sel.Sel.Name == "Secrets" && recv != nil && recv.Sel.Name == "Destinations"
			// The auth package's reads take a condition from the workspace package, which
			// decides whom a viewer sees: resolvers go through the workspace package.
			raw := sel.Sel.Name == "UsersWhere" || sel.Sel.Name == "TokensWhere"
			if strings.HasPrefix(sel.Sel.Name, "Internal") || decrypts || raw {
				t.Errorf("%s: graph/ calls %s, which reads without the viewer's access", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("only %d files checked: run from graph/", checked)
	}
}
