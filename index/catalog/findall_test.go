package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestFindVersions(t *testing.T) { forEachBackend(t, testFindVersions) }

func testFindVersions(t *testing.T) {
	c, ids := chainCatalog(t)
	show := func(vs []Version) []string {
		var out []string
		for _, v := range vs {
			out = append(out, fmt.Sprintf("%s L%d %s %d", v.Path, v.Dump.Level, v.Dump.Datestamp[:8], v.Size))
		}
		return out
	}
	for _, tc := range []struct {
		pattern string
		limit   int
		want    []string
		more    bool
	}{
		{"y", 0, []string{"d/y L0 20250301 4", "d/y L1 20250302 44"}, false},
		{"keep", 0, []string{"keep L0 20250301 6", "keep L2 20250303 66"}, false},
		// Deleted (b) and renamed-away (a) files are found in the images
		// that hold them.
		{"[abk]*", 0, []string{"a L0 20250301 1", "b L0 20250301 2", "keep L0 20250301 6", "keep L2 20250303 66"}, false},
		{"d/*", 0, []string{"d/x L0 20250301 3", "d/y L0 20250301 4", "d/y L1 20250302 44"}, false},
		{"/d/?", 2, []string{"d/x L0 20250301 3", "d/y L0 20250301 4"}, true},
		{"*", 3, []string{"a L0 20250301 1", "b L0 20250301 2", "c L1 20250302 1"}, true},
		{"nothing*", 0, nil, false},
	} {
		vs, more, err := c.FindVersions(t.Context(), "web1", "/srv", tc.pattern, tc.limit)
		if err != nil {
			t.Fatalf("FindVersions(%q): %v", tc.pattern, err)
		}
		if got := show(vs); !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("FindVersions(%q, %d) = %q more=%v, want %q more=%v", tc.pattern, tc.limit, got, more, tc.want, tc.more)
		}
	}
	vs, _, err := c.FindVersions(t.Context(), "web1", "/srv", "y", 0)
	if err != nil || len(vs) != 2 || vs[1].Dump.ID != ids[1] || vs[1].TarOffset == 0 || vs[1].Type != '0' {
		t.Errorf("versions of y: %+v %v", vs, err)
	}
	if _, _, err := c.FindVersions(t.Context(), "web1", "/nope", "y", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown DLE: %v", err)
	}
	if _, _, err := c.FindVersions(t.Context(), "web1", "/srv", "d/", 0); err == nil || !strings.Contains(err.Error(), "ends with '/'") {
		t.Errorf("pattern ending with /: %v", err)
	}
	// When the images leave the catalog their versions go with them, and
	// so do their listing values; the names they leave find nothing.
	if _, err := c.RemoveVolume(t.Context(), "V1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.r.QueryRow(`SELECT count(*) FROM dumpdirs`).Scan(&n); err != nil || n != 0 {
		t.Errorf("listing values left after the images left: %d, %v", n, err)
	}
	if _, _, err := c.FindVersions(t.Context(), "web1", "/srv", "y", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the images left: %v", err)
	}
}
