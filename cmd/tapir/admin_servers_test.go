package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
)

// tapir admin servers lists the servers of a shared catalog, takes this
// server's name over on a replacement machine and forgets a retired one.
func TestAdminServers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapir.toml")
	if err := os.WriteFile(cfg, []byte("org = \"site\"\nstatedir = \"state\"\n[server]\nname = \"south\"\nindex_listen = \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(dir, "state", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ name, host string }{{"north", "h1"}, {"south", "old-machine"}} {
		if err := cat.SetServer(s.name); err != nil {
			t.Fatal(err)
		}
		if err := cat.RegisterServer(t.Context(), s.host, s.host+":10082", time.Now(), false); err != nil {
			t.Fatal(err)
		}
	}
	cat.Close()

	out, stderr, code := run(t, "admin", "servers", "-c", cfg)
	if code != 0 || !strings.Contains(out, "north ") || !strings.Contains(out, "h1:10082") || !strings.Contains(out, "south *") {
		t.Errorf("admin servers: exit %d\n%s%s", code, out, stderr)
	}
	// This machine is not old-machine: a night here is refused until the
	// name is taken over.
	if _, stderr, code := run(t, "dump", "-c", cfg); code == 0 || !strings.Contains(stderr, "runs on host old-machine") || !strings.Contains(stderr, "--take-over") {
		t.Errorf("dump under a name registered elsewhere: exit %d %q", code, stderr)
	}
	out, stderr, code = run(t, "admin", "servers", "-c", cfg, "--take-over")
	if code != 0 || !strings.Contains(out, "instead of old-machine") {
		t.Errorf("--take-over: exit %d\n%s%s", code, out, stderr)
	}
	host, _ := os.Hostname()
	if out, _, _ := run(t, "admin", "servers", "-c", cfg); !strings.Contains(out, host) || strings.Contains(out, "old-machine") {
		t.Errorf("after --take-over:\n%s", out)
	}
	if _, stderr, code := run(t, "admin", "servers", "-c", cfg, "--forget", "south"); code != 1 || !strings.Contains(stderr, "is this server") {
		t.Errorf("forgetting itself: exit %d %q", code, stderr)
	}
	out, stderr, code = run(t, "admin", "servers", "-c", cfg, "--forget", "north")
	if code != 0 || !strings.Contains(out, "forgot server north") {
		t.Errorf("--forget north: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "admin", "servers", "-c", cfg, "--forget", "north"); code != 1 || !strings.Contains(stderr, "no server named \"north\"") {
		t.Errorf("forgetting twice: exit %d %q", code, stderr)
	}
	if _, _, code := run(t, "admin", "servers", "-c", cfg, "--forget", "x", "--take-over"); code != 2 {
		t.Errorf("both flags: exit %d, want 2", code)
	}
}
