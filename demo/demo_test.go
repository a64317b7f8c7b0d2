package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoTenNights: the demo runs a whole night from nothing, then nine
// more on the same site; each restores a file and compares it. Ten nights
// in 9 slots reuse a volume: the planner moved the chain off it first, so
// every night restores (issue 11: the fifth demo used to overwrite its
// only full).
func TestDemoTenNights(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a sample tree of tens of MiB")
	}
	dir := filepath.Join(t.TempDir(), "demo")
	for night := 1; night <= 10; night++ {
		var out bytes.Buffer
		if err := Run(context.Background(), Options{Dir: dir, Out: &out}); err != nil {
			t.Fatalf("night %d: %v\n%s", night, err, out.String())
		}
		text := out.String()
		for _, want := range []string{"TAPIR MAIL REPORT", "identical to the original", "of the encrypted DLE with --identity", "where things are", "try next", "dd if=", "| age -d -i "} {
			if !strings.Contains(text, want) {
				t.Errorf("night %d: output lacks %q:\n%s", night, want, text)
			}
		}
		if night == 10 && !strings.Contains(text, "superseded by newer chains, and left the catalog") {
			t.Errorf("night 10 did not reuse a volume:\n%s", text)
		}
		if strings.Contains(text, "FAIL") {
			t.Errorf("night %d flagged a failure:\n%s", night, text)
		}
	}
	slots, _ := filepath.Glob(filepath.Join(dir, "vtapes", "slot*", "00000.LABEL"))
	if len(slots) != 9 {
		t.Errorf("want 9 labelled vtapes after ten nights, got %v", slots)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "holding", "*", "*"))
	if len(left) != 0 {
		t.Errorf("holding not empty: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "catalog.db")); err != nil {
		t.Error(err)
	}
}
