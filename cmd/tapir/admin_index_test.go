package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// indexSite is a site with two runs and a configuration that names it.
func indexSite(t *testing.T) (*testsite.Site, string) {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	testsite.Mutate(data)
	if _, err := site.Run(ctx, "20250608010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: 1}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	site.Close()
	cfg := filepath.Join(dir, "tapir.toml")
	text := fmt.Sprintf(`org = "test"
statedir = %q
catalog = %q

[tls]
ca = %q
cert = %q
key = %q

[changer]
type = "disk"
path = %q
slots = 3
tapetype = "small"

[tapetype.small]
length = "4 GiB"
blocksize = "64 KiB"

[[holding]]
path = %q

[[dle]]
host = "web1"
path = "/srv"
`, filepath.Join(dir, "state"), site.CatalogDB, filepath.Join(site.TLSDir, "ca.crt"), filepath.Join(site.TLSDir, "localhost.crt"),
		filepath.Join(site.TLSDir, "localhost.key"), site.Vtapes, site.Holding)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return site, cfg
}

func TestAdminFindInfoRebuild(t *testing.T) {
	site, cfg := indexSite(t)
	out, stderr, code := run(t, "admin", "find", "-c", cfg, "web1")
	if code != 0 || !strings.Contains(out, "2025-06-08 01:00:00  web1  /srv  1      good    TEST-002  1     1/1") {
		t.Errorf("admin find: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "admin", "find", "-c", cfg, "web9"); code != 1 || !strings.Contains(stderr, "no image of host web9 is in the catalog") {
		t.Errorf("admin find of an unknown host: exit %d %q", code, stderr)
	}
	if _, _, code := run(t, "admin", "find", "-c", cfg); code != 2 {
		t.Errorf("admin find without a host: exit %d, want 2", code)
	}
	out, stderr, code = run(t, "admin", "info", "-c", cfg, "web1", "/srv")
	if code != 0 || !strings.Contains(out, "fulls:        1") || !strings.Contains(out, "incrementals: 1") {
		t.Errorf("admin info: exit %d\n%s%s", code, out, stderr)
	}
	// Rebuild: refused over a catalog, done with --force, and the answers stay.
	if _, stderr, code := run(t, "admin", "rebuild", "-c", cfg); code != 1 || !strings.Contains(stderr, "add --force") {
		t.Errorf("rebuild over a catalog: exit %d %q", code, stderr)
	}
	out, stderr, code = run(t, "admin", "rebuild", "-c", cfg, "--force")
	if code != 0 || !strings.Contains(out, "Rebuilt") || !strings.Contains(out, "2 images (2 parts)") || !strings.Contains(out, "The old catalog is now") {
		t.Errorf("rebuild --force: exit %d\n%s%s", code, out, stderr)
	}
	out2, _, _ := run(t, "admin", "find", "-c", cfg, "web1")
	if !strings.Contains(out2, "TEST-001") || !strings.Contains(out2, "TEST-002") {
		t.Errorf("find after the rebuild:\n%s", out2)
	}
	// --out writes the rebuilt catalog elsewhere, its rows this server's.
	other := filepath.Join(t.TempDir(), "rebuilt.db")
	if out, stderr, code := run(t, "admin", "rebuild", "-c", cfg, "--out", other); code != 0 || !strings.Contains(out, "Rebuilt "+other) {
		t.Errorf("rebuild --out: exit %d\n%s%s", code, out, stderr)
	}
	cat, err := catalog.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := cat.AllRuns(t.Context())
	cat.Close()
	if err != nil || len(runs) != 2 || runs[0].Server != "test" || runs[1].Server != "test" {
		t.Errorf("runs of the rebuilt catalog: %+v %v", runs, err)
	}
	_ = site
}

// A catalog on PostgreSQL is never rebuilt in place: rebuild says to
// write a file with --out and copy it.
func TestAdminRebuildRefusesADatabase(t *testing.T) {
	_, cfg := indexSite(t)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^catalog = .*$`).ReplaceAllString(string(b), `catalog = "postgres://tapir:secret@db.invalid/tapir"`)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "admin", "rebuild", "-c", cfg, "--force")
	if code != 1 || !strings.Contains(stderr, "--out FILE") || !strings.Contains(stderr, "tapir admin catalog copy") || strings.Contains(stderr, "secret") {
		t.Errorf("rebuild of a PostgreSQL catalog: exit %d %q", code, stderr)
	}
}

// TestIndexServerAndRecoverScript: the hidden index-server command serves
// the catalog; tapir recover -e restores through it and exits 1 when a
// command fails.
func TestIndexServerAndRecoverScript(t *testing.T) {
	site, cfg := indexSite(t)
	srv := exec.Command(tapirBin, "index-server", "-c", cfg, "--listen", "127.0.0.1:0")
	errp, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errp)
		re := regexp.MustCompile(`index server listening" addr=127\.0\.0\.1:(\d+)`)
		defer close(addrc)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- "localhost:" + m[1]
				io.Copy(io.Discard, errp)
				return
			}
		}
	}()
	addr, ok := <-addrc // a server that says nothing is caught by go test -timeout
	if !ok {
		t.Fatal("the index server exited without saying where it listens")
	}
	f, err := site.Issue("web1", wire.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	lcd := t.TempDir()
	args := []string{"recover", "--server", addr, "--ca", f.CA, "--cert", f.Cert, "--key", f.Key, "--lcd", lcd}
	out, stderr, code := run(t, append(args, "-e", "cd home/bob; ls; add 'new name.txt'; extract")...)
	if code != 0 || !strings.Contains(out, "Restored 1 entry") {
		t.Fatalf("recover -e: exit %d\n%s%s", code, out, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(lcd, "home/bob/new name.txt")); err != nil || string(b) != "to be renamed\n" {
		t.Errorf("restored file: %q %v", b, err)
	}
	_, stderr, code = run(t, append(args, "-e", "setdate 2025-01-01")...)
	if code != 1 || !strings.Contains(stderr, "no full image of web1:/srv at or before 2025-01-01") {
		t.Errorf("recover -e with a failing command: exit %d %q", code, stderr)
	}
	_, stderr, code = run(t, "recover", "--server", "localhost:1", "--ca", f.CA, "--cert", f.Cert, "--key", f.Key, "-e", "ls")
	if code != 1 || !strings.Contains(stderr, "is unreachable") {
		t.Errorf("recover with no server: exit %d %q", code, stderr)
	}
}
