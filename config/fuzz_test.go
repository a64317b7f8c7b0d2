package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is an *Error
// naming the file with a plausible line, and that every accepted
// configuration survives a round trip through Effective.
func FuzzParse(f *testing.F) {
	f.Add([]byte("org = \"x\"\n[[dle]]\nhost = \"a\"\npath = \"/\"\n"))
	f.Add([]byte("org = \"x\"\n[vault]\nfulls_only = true\n[vault.changer]\nslots = 3\n[[dle]]\nhost = \"a\"\npath = \"/\"\n"))
	f.Add([]byte("org = \"x\"\n[[vault]]\n[[vault]]\nname = \"dr\"\n[vault.changer]\npath = \"/srv/dr\"\n[[dle]]\nhost = \"a\"\npath = \"/\"\n"))
	f.Add([]byte("org = \"x\"\nvault = [1, 2]\n[[dle]]\nhost = \"a\"\npath = \"/\"\n"))
	f.Add([]byte("org = \"x\"\nvault = [{name = \"a\"}, {name = \"b\", changer = {path = \"/b\"}}]\n[[dle]]\nhost = \"a\"\npath = \"/\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/fuzz/cfg.toml"
		c, err := Parse(name, data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, want *Error", err, err)
			}
			if e.File != name || e.Msg == "" {
				t.Fatalf("bad error %#v", e)
			}
			if e.Line < 0 || e.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %q: line %d outside the file", e, e.Line)
			}
			if strings.Contains(e.Msg, "\n") {
				t.Fatalf("error %q spans lines", e)
			}
			return
		}
		var out bytes.Buffer
		if err := c.Effective(&out); err != nil {
			t.Fatalf("Effective: %v", err)
		}
		c2, err := Parse(name, out.Bytes())
		if err != nil {
			t.Fatalf("Parse(Effective()) = %v\n%s", err, out.String())
		}
		if diff := compare(c2, c); diff != "" {
			t.Fatalf("round trip differs:\n%s", diff)
		}
	})
}

// FuzzParseSize checks that ParseSize never panics and that String gives
// back what it parsed.
func FuzzParseSize(f *testing.F) {
	f.Add("64 KiB")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, v)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, String %q parses to %d, %v", s, v, v.String(), back, err)
		}
	})
}
