package doctest

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Format returns the text of docs/format/name, found from the test's
// working directory (a package directory) upwards to the module root.
func Format(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatalf("docs/format/%s: no go.mod above the test's directory", name)
		}
		dir = up
	}
	b, err := os.ReadFile(filepath.Join(dir, "docs", "format", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Absent returns the names of want that are not in have, sorted.
func Absent(want, have map[string]bool) []string {
	var out []string
	for k := range want {
		if !have[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
