package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/internal/doctest"
)

// TestIndexProtocolDoc checks the operation table of
// docs/format/index-protocol.md against the Idx* operation constants of
// indexproto.go, read from the source so that a new constant cannot be
// forgotten here either: every operation has a row, and every row is an
// operation.
func TestIndexProtocolDoc(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "indexproto.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	code := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Idx") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				code[v] = true
			}
		}
	}
	if len(code) == 0 {
		t.Fatal("no Idx* operation constants found in indexproto.go")
	}

	doc := doctest.Format(t, "index-protocol.md")
	// The rows of the operation table: "| `op` | needs | reply |".
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	if missing := doctest.Absent(code, documented); len(missing) > 0 {
		t.Errorf("index-protocol operations in wire/indexproto.go without a row in docs/format/index-protocol.md: %s", strings.Join(missing, ", "))
	}
	if extra := doctest.Absent(documented, code); len(extra) > 0 {
		t.Errorf("rows of docs/format/index-protocol.md that are no operation of wire/indexproto.go: %s", strings.Join(extra, ", "))
	}
}
