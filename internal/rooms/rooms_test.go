package rooms

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tapir-backup/tapir/"

// imports maps every package directory of the module (relative, slash
// separated) to the module packages its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root %s has no go.mod: %v", root, err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		if _, ok := out[rel]; !ok {
			out[rel] = nil
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if dep, ok := strings.CutPrefix(path, module); ok {
				out[rel] = append(out[rel], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deps is every module package pkg depends on, directly or not.
func deps(all map[string][]string, pkg string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range all[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	return seen
}

// within says whether pkg is room or inside it.
func within(pkg, room string) bool { return pkg == room || strings.HasPrefix(pkg, room+"/") }

func TestRooms(t *testing.T) {
	all := imports(t)
	for _, must := range []string{"index/catalog", "recover", "taper", "client", "planner", "server", "image"} {
		if _, ok := all[must]; !ok {
			t.Fatalf("package %s not found: the test reads the wrong tree", must)
		}
	}
	rules := []struct {
		pkg    string
		not    []string // rooms it must not depend on, even indirectly
		reason string
	}{
		{"index/catalog", []string{"taper", "index/indexd", "index/rebuild", "index/tarscan", "server", "client", "holding", "recover", "config"},
			"the catalog imports no volume code and knows no run"},
		{"recover", []string{"config", "taper", "index", "server", "holding", "planner"},
			"the shell and extraction know neither the configuration nor the catalog nor the volumes"},
		{"taper", []string{"client", "index", "server", "planner", "holding", "recover", "config", "wire"},
			"the taper knows no clients, no catalog and no configuration file"},
		{"client", []string{"taper", "index", "server", "holding", "planner", "recover", "config"},
			"the client does not know about tapes or the server"},
		{"planner", []string{"config", "client", "taper", "holding", "index", "server", "recover", "report", "wire", "image"},
			"the planner is pure: no I/O"},
		{"image", []string{"config", "client", "taper", "holding", "index", "server", "recover", "report", "wire"},
			"the image format is a leaf"},
		{"report", []string{"server", "taper", "client", "config"},
			"the report renders values it is given"},
	}
	for _, r := range rules {
		for pkg := range all {
			if !within(pkg, r.pkg) || strings.HasSuffix(pkg, "test") || strings.Contains(pkg, "/fakest") {
				continue
			}
			var bad []string
			for d := range deps(all, pkg) {
				for _, room := range r.not {
					if within(d, room) {
						bad = append(bad, d)
					}
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				t.Errorf("%s depends on %s: %s", pkg, strings.Join(bad, ", "), r.reason)
			}
		}
	}
	// Test scaffolding is for tests and benchmarks only.
	for pkg, ims := range all {
		if within(pkg, "bench") || strings.HasSuffix(pkg, "test") || within(pkg, "internal/testsite") {
			continue
		}
		for _, d := range ims {
			if strings.HasSuffix(d, "test") || within(d, "internal/testsite") || within(d, "taper/fakest") {
				t.Errorf("%s imports the test scaffolding %s", pkg, d)
			}
		}
	}
}
