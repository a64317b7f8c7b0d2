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
		{"client", "/home", 0, "client.__home.0"},
		{"client.example.org", "/", 3, "client.example.org.__.3"},
		{"h", "/a_b", 1, "h.__a%5Fb.1"},
		{"h", "/a/b", 1, "h.__a_b.1"},
		{"h", "/50%", 0, "h.__50%25.0"},
		{"h", "/my files", 0, "h.__my%20files.0"},
		{"h", "/ctl\n\x7f", 0, "h.__ctl%0A%7F.0"},
		{"h", "/bad\xff", 0, "h.__bad%FF.0"},
		{"h", "/é", 0, "h.__é.0"},
		{"h", "/x\u0085", 0, "h.__x%C2%85.0"},
		{"h", "relative", 0, "h._relative.0"},
		{"h", "/a.b.7", 99, "h.__a.b.7.99"},
		{"a_b", "/c", 0, "a%5Fb.__c.0"},
		{"a.", "/c", 0, "a..__c.0"},
		{"a/b", "/c", 0, "a%2Fb.__c.0"},
		{"host._x", "/y", 0, "host.%5Fx.__y.0"},
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
		{"h.__p.x", "level"},
		{"h.__p.100", "level"},
		{"h.__p.01", "level"},
		{"._p.0", "empty host"},
		{"h._.0", "empty path"},
		{"h.__a%5fb.0", "bad %-escape"},
		{"h.__a%G0.0", "bad %-escape"},
		{"h.__a%2.0", "truncated"},
		{"h.__a%41.0", "canonical"},      // 'A' need not be escaped
		{"h.__a b.0", "canonical"},       // space must be escaped
		{"h.__a%2Fb.0", "canonical"},     // '/' in a path is written '_'
		{"h%2f.__a.0", "bad %-escape"},   // lower-case hex
		{"h\x01.__a.0", "canonical"},     // raw control byte
		{"h.__a\xff.0", "canonical"},     // raw invalid UTF-8
		{"h.__a.0.tmp", "level \"tmp\""}, // holding suffixes are the caller's
	}
	for _, tc := range tests {
		_, _, _, err := ParseName(tc.stem)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "image name ") {
			t.Errorf("ParseName(%q) error = %v, want one containing %q", tc.stem, err, tc.want)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"client.__home.0", "h.__a%5Fb_c.1", "a%2Fb.__%25.99", "h._.0"} {
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
