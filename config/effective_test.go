package config

import (
	"bytes"
	"strings"
	"testing"
)

// roundTrip checks that Effective writes TOML that Parse accepts and that
// gives the same Config and the same Effective text.
func roundTrip(t *testing.T, c *Config) string {
	t.Helper()
	var out bytes.Buffer
	if err := c.Effective(&out); err != nil {
		t.Fatalf("Effective: %v", err)
	}
	c2, err := Parse("/elsewhere/effective.toml", out.Bytes())
	if err != nil {
		t.Fatalf("Parse(Effective()) = %v\n%s", err, out.String())
	}
	if diff := compare(c2, c); diff != "" {
		t.Fatalf("round trip differs:\n%s\n%s", diff, out.String())
	}
	var out2 bytes.Buffer
	if err := c2.Effective(&out2); err != nil {
		t.Fatal(err)
	}
	strip := func(s string) string { // the "loaded from" comment differs
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "# loaded from") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(out.String()) != strip(out2.String()) {
		t.Fatalf("Effective not stable:\n%s\n---\n%s", out.String(), out2.String())
	}
	return out.String()
}

func TestEffectiveRoundTrip(t *testing.T) {
	full, err := Load("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	out := roundTrip(t, full)
	for _, want := range []string{
		"\ndumpcycle = 7\n", "\netimeout = \"5m0s\"\n", "\n[tapetype.lto8]\nlength = \"12 TB\"\n",
		"\n[host.\"files.example.com\"]\naddress = \"files.example.com:10080\"\n",
		"\n[dumptype.raw]\ncompress = \"none\"\nframe_size", "\nuse = 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Effective output lacks %q:\n%s", want, out)
		}
	}

	for _, src := range []string{
		"",
		"autolabel = \"\"\nlabelstr = \"^[A-Z]{2}[0-9]{4}L8$\"\n",
		"org = \"o\"\nmailto = []\n[changer]\ntype = \"single\"\ndevice = \"/dev/nst1\"\n",
		"schedule = \"@every 6h\"\ntimezone = \"UTC\"\nnetusage = 1234567\n",
		"[dumptype.\"odd name\"]\nexclude = [\"a\\\"b\", \"back\\\\slash\", \"ü*\"]\n[[dle]]\nhost = \"10.1.2.3\"\npath = \"/with space/and\\\"quote\"\ndumptype = \"odd name\"\n",
		"dle = [ { host = \"a\", path = \"/\" }, { host = \"b\", path = \"/\" } ]\n",
		"[changer]\ntype = \"robot\"\nchanger_device = \"/dev/sg3\"\ndevice = \"/dev/nst0\"\n", // slots unknown
	} {
		c := mustParse(t, "/etc/tapir/t.toml", src)
		roundTrip(t, c)
	}
}

func TestEffectiveInvalidUTF8(t *testing.T) {
	c := mustParse(t, "/etc/x.toml", "")
	c.StateDir = "/var/\xff"
	var out bytes.Buffer
	if err := c.Effective(&out); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("Effective = %v, want a UTF-8 error", err)
	}
}
