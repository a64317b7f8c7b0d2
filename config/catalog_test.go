package config

import (
	"bytes"
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
