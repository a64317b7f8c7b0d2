package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoTwice: the demo runs a whole night from nothing, and a second
// night on the same site; each restores a file and compares it.
func TestDemoTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a sample tree of tens of MiB")
	}
	dir := filepath.Join(t.TempDir(), "demo")
	for night := 1; night <= 2; night++ {
		var out bytes.Buffer
		if err := Run(context.Background(), Options{Dir: dir, Out: &out}); err != nil {
			t.Fatalf("night %d: %v\n%s", night, err, out.String())
		}
		text := out.String()
		for _, want := range []string{"TAPIR MAIL REPORT", "identical to the original", "where things are", "try next", "dd if="} {
			if !strings.Contains(text, want) {
				t.Errorf("night %d: output lacks %q:\n%s", night, want, text)
			}
		}
		if strings.Contains(text, "FAIL") {
			t.Errorf("night %d flagged a failure:\n%s", night, text)
		}
	}
	slots, _ := filepath.Glob(filepath.Join(dir, "vtapes", "slot*", "00000.LABEL"))
	if len(slots) != 2 {
		t.Errorf("want two labelled vtapes after two nights, got %v", slots)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "holding", "*", "*"))
	if len(left) != 0 {
		t.Errorf("holding not empty: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "catalog.db")); err != nil {
		t.Error(err)
	}
}
