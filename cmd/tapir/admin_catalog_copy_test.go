package main

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/internal/pgtest"
)

// withCatalog writes a copy of the configuration cfg whose catalog is at
// loc, and returns its name.
func withCatalog(t *testing.T, cfg, loc string) string {
	t.Helper()
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^catalog = .*$`)
	if !re.Match(text) {
		t.Fatalf("%s names no catalog", cfg)
	}
	out := re.ReplaceAllLiteral(text, []byte("catalog = "+strconvQuote(loc)))
	p := filepath.Join(t.TempDir(), "copy.toml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func strconvQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// tapir admin catalog copy moves the catalog of a site with two real
// nights to a new SQLite file and to a new PostgreSQL database; a
// configuration pointed at the copy finds the same images.
func TestAdminCatalogCopy(t *testing.T) {
	site, cfg := indexSite(t)
	wantFind, stderr, code := run(t, "admin", "find", "-c", cfg, "web1")
	if code != 0 {
		t.Fatalf("admin find: exit %d %s", code, stderr)
	}
	wantInfo, _, _ := run(t, "admin", "info", "-c", cfg, "web1", "/srv")
	before, err := os.ReadFile(site.CatalogDB)
	if err != nil {
		t.Fatal(err)
	}

	dests := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "moved", "catalog.db") },
		"postgres": func(t *testing.T) string { return pgtest.DSN(t) },
	}
	for name, mk := range dests {
		t.Run(name, func(t *testing.T) {
			to := mk(t)
			out, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg, "--to", to)
			if code != 0 {
				t.Fatalf("admin catalog copy: exit %d\n%s%s", code, out, stderr)
			}
			for _, want := range []string{"table", "files ", "runs ", "verified", "is unchanged", "copied "} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if !regexp.MustCompile(`(?m)^dumps +2 +[0-9a-f]{64}$`).MatchString(out) {
				t.Errorf("no line for the two dumps with a checksum:\n%s", out)
			}
			moved := withCatalog(t, cfg, to)
			if got, stderr, code := run(t, "admin", "find", "-c", moved, "web1"); code != 0 || got != wantFind {
				t.Errorf("admin find on the copy: exit %d %s\ngot\n%swant\n%s", code, stderr, got, wantFind)
			}
			if got, _, _ := run(t, "admin", "info", "-c", moved, "web1", "/srv"); got != wantInfo {
				t.Errorf("admin info on the copy:\n%swant\n%s", got, wantInfo)
			}
			// Once more into the same place: refused, the copy stays.
			_, stderr, code = run(t, "admin", "catalog", "copy", "-c", cfg, "--to", to)
			if code != 1 || !strings.Contains(stderr, "not empty") || !strings.Contains(stderr, "never merged") {
				t.Errorf("a second copy into the same catalog: exit %d %q", code, stderr)
			}
			if got, _, _ := run(t, "admin", "find", "-c", moved, "web1"); got != wantFind {
				t.Errorf("after the refused copy, admin find on the copy:\n%s", got)
			}
		})
	}
	after, err := os.ReadFile(site.CatalogDB)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("the copy changed the source catalog file")
	}
}

// The copy is refused while a night holds the run lock, without a
// destination file left behind; a DSN's password never shows; --to is
// required; a failed copy to a new file leaves no file.
func TestAdminCatalogCopyRefusals(t *testing.T) {
	site, cfg := indexSite(t)
	to := filepath.Join(t.TempDir(), "new.db")

	f, err := os.OpenFile(site.CatalogDB+".lock", os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("pid 4242 host nightly started 2025-06-09T01:00:00Z\n")
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg, "--to", to)
	if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "pid 4242") || !strings.Contains(stderr, "night is over") {
		t.Errorf("copy under a running night: exit %d %q", code, stderr)
	}
	f.Close()
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("the refused copy left %s: %v", to, err)
	}

	if _, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg); code != 2 || !strings.Contains(stderr, "--to is required") {
		t.Errorf("without --to: exit %d %q", code, stderr)
	}
	if _, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg, "--to", site.CatalogDB); code != 1 || !strings.Contains(stderr, "is the catalog to copy itself") {
		t.Errorf("onto itself: exit %d %q", code, stderr)
	}

	// A server that is not there, with a password in the DSN.
	bad := "postgres://tapir:s3cret@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=5"
	_, stderr, code = run(t, "admin", "catalog", "copy", "-c", cfg, "--to", bad)
	if code != 1 || strings.Contains(stderr, "s3cret") || !strings.Contains(stderr, "xxxxx") {
		t.Errorf("copy to an unreachable server: exit %d %q", code, stderr)
	}
	if pg := os.Getenv(pgtest.Env); pg != "" {
		// The same with a reachable server and a wrong password in the URL.
		u, err := url.Parse(pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), "s3cret")
		_, stderr, _ := run(t, "admin", "catalog", "copy", "-c", cfg, "--to", u.String())
		if strings.Contains(stderr, "s3cret") {
			t.Errorf("the password shows: %q", stderr)
		}
	}
}

// A catalog rebuilt from the volumes into a file (admin rebuild --out)
// goes into a new PostgreSQL database (or file) with copy --from, while the
// configuration still names the old catalog; the copy finds the images.
func TestAdminCatalogCopyFromRebuilt(t *testing.T) {
	_, cfg := indexSite(t)
	rebuilt := filepath.Join(t.TempDir(), "rebuilt.db")
	if out, stderr, code := run(t, "admin", "rebuild", "-c", cfg, "--out", rebuilt); code != 0 {
		t.Fatalf("admin rebuild --out: exit %d\n%s%s", code, out, stderr)
	}
	for name, to := range map[string]string{
		"sqlite":   filepath.Join(t.TempDir(), "copy.db"),
		"postgres": "",
	} {
		t.Run(name, func(t *testing.T) {
			if to == "" {
				to = pgtest.DSN(t)
			}
			out, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg, "--from", rebuilt, "--to", to)
			if code != 0 || !strings.Contains(out, rebuilt+" is unchanged") || !regexp.MustCompile(`(?m)^dumps +2 +[0-9a-f]{64}$`).MatchString(out) {
				t.Fatalf("copy --from: exit %d\n%s%s", code, out, stderr)
			}
			got, stderr, code := run(t, "admin", "find", "-c", withCatalog(t, cfg, to), "web1")
			if code != 0 || !strings.Contains(got, "TEST-001") || !strings.Contains(got, "TEST-002") {
				t.Errorf("admin find on the copy of the rebuilt catalog: exit %d %s\n%s", code, stderr, got)
			}
		})
	}
	if _, stderr, code := run(t, "admin", "catalog", "copy", "-c", cfg, "--from", filepath.Join(t.TempDir(), "none.db"), "--to", filepath.Join(t.TempDir(), "x.db")); code != 1 || !strings.Contains(stderr, "none.db") {
		t.Errorf("copy --from a missing file: exit %d %q", code, stderr)
	}
}
