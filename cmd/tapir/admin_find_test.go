package main

import (
	"strings"
	"testing"
)

// tapir admin find --name: every version of a name across the images of
// a DLE, deleted files too.
func TestAdminFindName(t *testing.T) {
	_, cfg := indexSite(t)
	out, stderr, code := run(t, "admin", "find", "-c", cfg, "web1", "/srv", "--name", "notes.txt")
	if code != 0 || strings.Count(out, "home/alice/notes.txt") != 2 ||
		!strings.Contains(out, "2025-06-07 01:00:00  0") || !strings.Contains(out, "2025-06-08 01:00:00  1") {
		t.Errorf("find --name notes.txt: exit %d\n%s%s", code, out, stderr)
	}
	// doomed.txt was deleted before the incremental: its full still has it.
	out, stderr, code = run(t, "admin", "find", "-c", cfg, "web1", "/srv", "--name", "home/bob/*", "--limit", "1")
	if code != 0 || strings.Count(out, "home/bob/") != 1 || !strings.Contains(out, "raise --limit") {
		t.Errorf("find --name home/bob/* --limit 1: exit %d\n%s%s", code, out, stderr)
	}
	out, _, _ = run(t, "admin", "find", "-c", cfg, "web1", "/srv", "--name", "doomed.txt")
	if !strings.Contains(out, "home/bob/doomed.txt") {
		t.Errorf("find --name doomed.txt:\n%s", out)
	}
	if _, stderr, code := run(t, "admin", "find", "-c", cfg, "web1", "/srv", "--name", "nothing-*"); code != 1 || !strings.Contains(stderr, `no file of web1:/srv matches "nothing-*"`) {
		t.Errorf("find --name of nothing: exit %d %q", code, stderr)
	}
	for _, args := range [][]string{
		{"web1", "--name", "x"},
		{"web1", "/srv", "--limit", "3"},
		{"web1", "/srv", "--name", "x", "--limit", "-1"},
	} {
		if _, stderr, code := run(t, append([]string{"admin", "find", "-c", cfg}, args...)...); code != 2 {
			t.Errorf("admin find %v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}
