package catalog

import (
	"strings"
	"testing"
)

// FuzzSplitPath checks that a path the index accepts is clean and splits
// back into itself, and that cleanLookup never yields an unclean path.
func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"etc/passwd", "a", "/etc", "./x/", "a//b", "../x", "a/./b", "\xff/\x00", "", ".", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		dir, name, err := splitPath(p)
		if err == nil {
			if name == "" || strings.Contains(name, "/") {
				t.Fatalf("splitPath(%q) name %q", p, name)
			}
			joined := name
			if dir != "" {
				joined = dir + "/" + name
			}
			if joined != p {
				t.Fatalf("splitPath(%q) = %q + %q", p, dir, name)
			}
			for c := range strings.SplitSeq(p, "/") {
				if c == "" || c == "." || c == ".." {
					t.Fatalf("splitPath accepted %q with component %q", p, c)
				}
			}
			if strings.IndexByte(p, 0) >= 0 {
				t.Fatalf("splitPath accepted a NUL in %q", p)
			}
		}
		q, err := cleanLookup(p)
		if err == nil {
			if q != "" {
				if _, _, err := splitPath(q); err != nil {
					t.Fatalf("cleanLookup(%q) = %q, which splitPath refuses: %v", p, q, err)
				}
			}
			if again, err := cleanLookup(q); err != nil || again != q {
				t.Fatalf("cleanLookup not idempotent on %q: %q, %v", q, again, err)
			}
		}
	})
}

// FuzzNormalizeAsOf checks that an accepted as-of bound is 14 digits and
// keeps the order of datestamps that share its prefix.
func FuzzNormalizeAsOf(f *testing.F) {
	for _, s := range []string{"", "2025", "20250301", "20250301010203", "2025-03-01", "x", "999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := normalizeAsOf(s)
		if err != nil {
			return
		}
		if len(got) != 14 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("normalizeAsOf(%q) = %q", s, got)
		}
		if !strings.HasPrefix(got, s) {
			t.Fatalf("normalizeAsOf(%q) = %q loses the prefix", s, got)
		}
		// Every datestamp starting with s is within the bound.
		full := s + strings.Repeat("9", 14-len(s))
		if full > got {
			t.Fatalf("normalizeAsOf(%q) = %q excludes %q", s, got, full)
		}
	})
}
