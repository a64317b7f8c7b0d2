package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// catalog = "postgres://..." selects PostgreSQL: the DSN is kept as it is
// (not resolved against the config directory), survives the effective
// configuration's round trip, and its password is never shown.
func TestCatalogPostgresDSN(t *testing.T) {
	const dsn = "postgres://tapir@db.example.com:5432/tapir?sslmode=verify-full"
	c := mustParse(t, "/etc/tapir/tapir.toml", "catalog = \""+dsn+"\"\n")
	if c.Catalog != dsn {
		t.Fatalf("Catalog = %q, want %q", c.Catalog, dsn)
	}
	if out := roundTrip(t, c); !strings.Contains(out, `catalog = "`+dsn+`"`) {
		t.Errorf("the effective configuration does not show the DSN:\n%s", out)
	}

	c = mustParse(t, "/etc/tapir/tapir.toml", "catalog = \"postgresql://tapir:s3cret@db/tapir\"\n")
	if c.Catalog != "postgresql://tapir:s3cret@db/tapir" {
		t.Fatalf("Catalog = %q", c.Catalog)
	}
	var out bytes.Buffer
	if err := c.Effective(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), `catalog = "postgresql://tapir:xxxxx@db/tapir"`) {
		t.Errorf("the effective configuration shows the password or not the masked DSN:\n%s", out.String())
	}

	for _, tc := range []struct{ src, msg string }{
		{"catalog = \"postgres://tapir:s3cret@db\"\n", "names no database"},
		{"catalog = \"postgres://tapir:s3cret@db:x%zz/tapir\"\n", "is not a PostgreSQL URL"},
	} {
		e := parseErr(t, tc.src)
		if !strings.Contains(e.Error(), tc.msg) || strings.Contains(e.Error(), "s3cret") {
			t.Errorf("%q: error %q does not say %q, or shows the password", tc.src, e, tc.msg)
		}
	}
}

func TestMaskDSN(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/tapir/catalog.db":          "/var/lib/tapir/catalog.db",
		"postgres://u@h/d":                   "postgres://u@h/d",
		"postgres://u:p@h/d?sslmode=disable": "postgres://u:xxxxx@h/d?sslmode=disable",
		"postgresql://h/d?password=p&user=u": "postgresql://h/d?password=xxxxx&user=u",
	} {
		if got := MaskDSN(in); got != want {
			t.Errorf("MaskDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

// [catalog] is the table form: url with password_file keeps the password
// out of the configuration; path is an SQLite file. Mistakes name their
// line and what to do, and never show the password.
func TestCatalogTable(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "catalog.password")
	if err := os.WriteFile(pw, []byte("s3cret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "tapir.toml")
	c := mustParse(t, cfgFile, "[catalog]\nurl = \"postgres://backup@db.example.com/tapir\"\npassword_file = \"catalog.password\"\n")
	if c.Catalog != "postgres://backup:s3cret@db.example.com/tapir" {
		t.Errorf("Catalog = %q: want the password from the file in the DSN", c.Catalog)
	}
	var out bytes.Buffer
	if err := c.Effective(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("the effective configuration shows the password:\n%s", out.String())
	}
	c = mustParse(t, cfgFile, "[catalog]\npath = \"cat/catalog.db\"\n")
	if c.Catalog != filepath.Join(dir, "cat", "catalog.db") {
		t.Errorf("Catalog = %q: want the path resolved against the configuration", c.Catalog)
	}

	open := filepath.Join(dir, "open.password")
	if err := os.WriteFile(open, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.password")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, msg string }{
		{"[catalog]\nurl = \"postgres://b@db/t\"\npassword_file = \"" + open + "\"\n", "chmod 600"},
		{"[catalog]\nurl = \"postgres://b@db/t\"\npassword_file = \"" + empty + "\"\n", "is empty"},
		{"[catalog]\nurl = \"postgres://b@db/t\"\npassword_file = \"/nonexistent/pw\"\n", "no such file"},
		{"[catalog]\nurl = \"postgres://b:s3cret@db/t\"\npassword_file = \"" + pw + "\"\n", "already holds a password"},
		{"[catalog]\nurl = \"postgres://b@db/t\"\npath = \"x.db\"\n", "keep one"},
		{"[catalog]\npath = \"x.db\"\npassword_file = \"" + pw + "\"\n", "goes with catalog.url"},
		{"[catalog]\nurl = \"mysql://b@db/t\"\n", "must start with postgres://"},
		{"[catalog]\npath = \"postgres://b:s3cret@db/t\"\n", "write it as catalog.url"},
		{"[catalog]\nurl = \"postgres://b@db\"\n", "names no database"},
		{"[catalog]\nuser = \"b\"\n", "unknown key \"catalog.user\""},
		{"[catalog]\n", "needs url"},
		{"[catalog]\nurl = 5\n", "expected a non-empty string"},
		{"catalog = 5\n", "expected a file name, a postgres:// DSN or a [catalog] table"},
	} {
		e := parseErr(t, tc.src)
		if !strings.Contains(e.Error(), tc.msg) || strings.Contains(e.Error(), "s3cret") {
			t.Errorf("%q: error %q does not say %q, or shows the password", tc.src, e, tc.msg)
		}
		if e.Line == 0 {
			t.Errorf("%q: error %q names no line", tc.src, e)
		}
	}
}
