package catalog

import (
	"strings"
	"testing"
)

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in, dir, name, err string
	}{
		{"passwd", "", "passwd", ""},
		{"etc/passwd", "etc", "passwd", ""},
		{"etc/ssl/certs/a.pem", "etc/ssl/certs", "a.pem", ""},
		{"a b/c d", "a b", "c d", ""},
		{"..x/.y", "..x", ".y", ""},
		{"", "", "", "path is empty"},
		{"/etc", "", "", "starts with '/'"},
		{"etc/", "", "", "trailing slash"},
		{"a//b", "", "", "empty component"},
		{".", "", "", `"." component`},
		{"a/./b", "", "", `"." component`},
		{"..", "", "", `".." component`},
		{"a/../b", "", "", `".." component`},
		{"a\x00", "", "", "NUL"},
	}
	for _, tc := range tests {
		dir, name, err := splitPath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitPath(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || dir != tc.dir || name != tc.name {
			t.Errorf("splitPath(%q) = %q, %q, %v; want %q, %q", tc.in, dir, name, err, tc.dir, tc.name)
		}
	}
}

func TestCleanLookup(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"", "", ""},
		{".", "", ""},
		{"/", "", ""},
		{"./", "", ""},
		{"/etc/", "etc", ""},
		{".//etc", "etc", ""},
		{"./././etc/ssl//", "etc/ssl", ""},
		{"etc/../x", "", `".."`},
		{"etc//x", "", "empty component"},
	}
	for _, tc := range tests {
		got, err := cleanLookup(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("cleanLookup(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cleanLookup(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeAsOf(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"", "99999999999999", ""},
		{"2025", "20259999999999", ""},
		{"20250301", "20250301999999", ""},
		{"20250301123456", "20250301123456", ""},
		{"202", "", "not a datestamp prefix"},
		{"202503011234567", "", "not a datestamp prefix"},
		{"2025-03-01", "", "not a datestamp prefix"},
	}
	for _, tc := range tests {
		got, err := normalizeAsOf(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("normalizeAsOf(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("normalizeAsOf(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckDatestamp(t *testing.T) {
	for in, ok := range map[string]bool{
		"20250301010203": true, "20240229235959": true, "20250229000000": false,
		"2025030101020": false, "202503010102033": false, "2025030101020x": false,
		"": false, "+2025030101020": false,
	} {
		if err := checkDatestamp(in); (err == nil) != ok {
			t.Errorf("checkDatestamp(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}
