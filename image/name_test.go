package image

import (
	"strings"
	"testing"
)

func TestNameRoundTrip(t *testing.T) {
	tests := []struct {
		host, path string
		level      int
		want       string
	}{
		{"client", "/home", 0, "client._home.0"},
		{"client.example.org", "/", 3, "client.example.org._.3"},
		{"h", "/a_b", 1, "h._a%5Fb.1"},
		{"h", "/a/b", 1, "h._a_b.1"},
		{"h", "/50%", 0, "h._50%25.0"},
		{"h", "/my files", 0, "h._my%20files.0"},
		{"h", "/ctl\n\x7f", 0, "h._ctl%0A%7F.0"},
		{"h", "/bad\xff", 0, "h._bad%FF.0"},
		{"h", "/é", 0, "h._é.0"},
		{"h", "/x\u0085", 0, "h._x%C2%85.0"},
		{"h", "/a.b.7", 99, "h._a.b.7.99"},
		{"a_b", "/c", 0, "a%5Fb._c.0"},
		{"a.", "/c", 0, "a.._c.0"},
		{"a/b", "/c", 0, "a%2Fb._c.0"},
		{"host._x", "/y", 0, "host.%5Fx._y.0"},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		h := &Header{Host: tc.host, Path: tc.path, Level: tc.level}
		got := h.Name()
		if got != tc.want {
			t.Errorf("Name(%q, %q, %d) = %q, want %q", tc.host, tc.path, tc.level, got, tc.want)
		}
		if strings.ContainsAny(got, "/\x00") {
			t.Errorf("Name %q contains '/' or NUL", got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("collision: %q and %q both give %q", prev, tc.host+":"+tc.path, got)
		}
		seen[got] = tc.host + ":" + tc.path
		host, path, level, err := ParseName(got)
		if err != nil || host != tc.host || path != tc.path || level != tc.level {
			t.Errorf("ParseName(%q) = %q, %q, %d, %v; want %q, %q, %d", got, host, path, level, err, tc.host, tc.path, tc.level)
		}
	}
}

func TestParseNameRejects(t *testing.T) {
	tests := []struct{ stem, want string }{
		{"nohostsep.0", "no \"._\""},
		{"h._path", "no .<level>"},
		{"h._p.x", "level"},
		{"h._p.100", "level"},
		{"h._p.01", "level"},
		{"._p.0", "empty host"},
		{"h.x.0", "no \"._\""},
		{"h._a%5fb.0", "bad %-escape"},
		{"h._a%G0.0", "bad %-escape"},
		{"h._a%2.0", "truncated"},
		{"h._a%41.0", "canonical"},      // 'A' need not be escaped
		{"h._a b.0", "canonical"},       // space must be escaped
		{"h._a%2Fb.0", "canonical"},     // '/' in a path is written '_'
		{"h%2f._a.0", "bad %-escape"},   // lower-case hex
		{"h\x01._a.0", "canonical"},     // raw control byte
		{"h._a\xff.0", "canonical"},     // raw invalid UTF-8
		{"h._a.0.tmp", "level \"tmp\""}, // holding suffixes are the caller's
	}
	for _, tc := range tests {
		_, _, _, err := ParseName(tc.stem)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "image name ") {
			t.Errorf("ParseName(%q) error = %v, want one containing %q", tc.stem, err, tc.want)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"client._home.0", "h._a%5Fb_c.1", "a%2Fb._%25.99", "h._.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stem string) {
		host, path, level, err := ParseName(stem)
		if err != nil {
			return
		}
		if got := (&Header{Host: host, Path: path, Level: level}).Name(); got != stem {
			t.Fatalf("ParseName(%q) = %q %q %d, whose Name is %q", stem, host, path, level, got)
		}
	})
}
