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
	os.WriteFile(p, []byte("tapecycle = 5\n[changer]\nslots = 6\n"), 0o644)
	stdout, stderr, code := run(t, "config", "check", "-c", p)
	if code != 0 || !strings.Contains(stdout, "tapecycle = 5") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "tapir: "+p+": warning: with tapecycle 5 and runtapes 1, the changer needs at least 7 slots (it has 6)") ||
		!strings.HasPrefix(lines[1], "tapir: "+p+": warning: 6 slots at runtapes 1 rotate every 6 runs") ||
		!strings.HasSuffix(lines[1], "set slots to at least 9 for fulls every dumpcycle") {
		t.Errorf("stderr:\n%s", stderr)
	}
}
