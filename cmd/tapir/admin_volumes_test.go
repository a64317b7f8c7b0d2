package main

import (
	"strings"
	"testing"
)

// tapir admin no-reuse|reuse|rmvolume from the command line: what changed
// on stdout, an unknown label or a removal without --yes exits 1 with the
// reason, a missing label exits 2.
func TestAdminVolumeCommands(t *testing.T) {
	_, cfg := indexSite(t)
	out, stderr, code := run(t, "admin", "no-reuse", "-c", cfg, "TEST-001")
	if code != 0 || !strings.HasPrefix(out, "TEST-001: now not reusable (no-reuse), was reusable") {
		t.Errorf("no-reuse: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "admin", "reuse", "-c", cfg, "TEST-001", "NOPE-1")
	if code != 1 || out != "" || !strings.Contains(stderr, "tapir: volume NOPE-1 is not in the catalog") {
		t.Errorf("reuse of an unknown label: exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code := run(t, "admin", "reuse", "-c", cfg); code != 2 {
		t.Errorf("reuse without a label: exit %d, want 2", code)
	}

	out, stderr, code = run(t, "admin", "rmvolume", "-c", cfg, "TEST-002")
	if code != 1 || !strings.Contains(out, "breaks the newest chain of web1:/srv (full of 2025-06-07 on TEST-001 and 1 incremental): nothing newer can restore it") ||
		strings.TrimSpace(stderr) != "tapir: nothing was changed: run again with --yes to remove it" {
		t.Errorf("rmvolume without --yes: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "admin", "rmvolume", "-c", cfg, "TEST-002", "--erase", "--yes")
	if code != 0 || !strings.Contains(out, "removed volume TEST-002 from the catalog") || !strings.Contains(out, "erased slot ") {
		t.Errorf("rmvolume --erase --yes: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "admin", "rmvolume", "-c", cfg, "TEST-002", "--yes"); code != 1 || !strings.Contains(stderr, "volume TEST-002 is not in the catalog") {
		t.Errorf("rmvolume again: exit %d %q", code, stderr)
	}
}
