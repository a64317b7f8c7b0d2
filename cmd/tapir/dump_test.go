package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tapir dump HOST DISK with a host or disk not in the disk list is bad
// usage (exit 2) whose message lists what exists; tapir status --cancel
// without a run in progress fails (exit 1) saying so.
func TestDumpSubsetAndCancelErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapir.toml")
	text := "org = \"t\"\nstatedir = \"" + dir + "\"\n\n[[dle]]\nhost = \"web1\"\npath = \"/etc\"\n\n[[dle]]\nhost = \"web1\"\npath = \"/srv\"\n\n[[dle]]\nhost = \"db1\"\npath = \"/var\"\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "dump", "-c", cfg, "mail1"); code != 2 || !strings.Contains(stderr, `host "mail1" is not in the disk list`) || !strings.Contains(stderr, "its hosts are: db1, web1") {
		t.Errorf("unknown host: exit %d, %s", code, stderr)
	}
	if _, stderr, code := run(t, "dump", "-c", cfg, "web1", "/home"); code != 2 || !strings.Contains(stderr, `host web1 has no DLE "/home"`) || !strings.Contains(stderr, "its DLEs are: /etc, /srv") {
		t.Errorf("unknown disk: exit %d, %s", code, stderr)
	}
	if _, stderr, code := run(t, "status", "-c", cfg, "--cancel"); code != 1 || !strings.Contains(stderr, "no run in progress") {
		t.Errorf("cancel without a run: exit %d, %s", code, stderr)
	}
}
