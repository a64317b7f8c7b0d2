package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rotation too short for one chain per DLE is a warning on stderr: the
// effective configuration is still printed and the exit status is 0.
func TestConfigCheckWarnings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "short.toml")
	os.WriteFile(p, []byte("tapecycle = 5\n[changer]\nslots = 5\n"), 0o644)
	stdout, stderr, code := run(t, "config", "check", "-c", p)
	if code != 0 || !strings.Contains(stdout, "tapecycle = 5") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "tapir: "+p+": warning: with tapecycle 5 and runtapes 1, the changer needs at least 6 slots (it has 5)") ||
		!strings.HasPrefix(lines[1], "tapir: "+p+": warning: tapecycle 5 is less than runspercycle × runtapes (7 × 1 = 7)") ||
		!strings.HasSuffix(lines[1], "set tapecycle to at least 8") {
		t.Errorf("stderr:\n%s", stderr)
	}
}
