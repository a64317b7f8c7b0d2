package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
)

// `tapir admin holding list` shows what waits on the holding disks;
// `delete` shows what it would delete and exits 1 until --yes.
func TestAdminHolding(t *testing.T) {
	dir := t.TempDir()
	hold := filepath.Join(dir, "holding")
	cfgPath := filepath.Join(dir, "tapir.toml")
	os.WriteFile(cfgPath, []byte("org = \"t\"\nstatedir = \"state\"\n[[holding]]\npath = \"holding\"\n"), 0o644)
	if err := os.Mkdir(hold, 0o750); err != nil {
		t.Fatal(err)
	}
	pool, err := holding.NewPool([]holding.Disk{{Path: hold}}, holding.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("not really a tar stream")
	sum := sha256.Sum256(payload)
	h := &image.Header{Datestamp: "20260102030405", Host: "web1", Path: "/etc", Level: 1, Part: 1, Parts: 1, Comp: image.CompNone,
		OriginalSize: int64(len(payload)), PayloadSize: int64(len(payload)), SHA256: hex.EncodeToString(sum[:]), FrameSize: 1 << 20, Frames: 1, Files: 1}
	s, _ := pool.TryReserve(1<<20, holding.Incremental)
	w, err := holding.Create(context.Background(), s, h.Datestamp, h.Name())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "admin", "holding", "list", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "web1") || !strings.Contains(out, "/etc") || !strings.Contains(out, "unknown") || !strings.Contains(out, path) {
		t.Fatalf("list: %d %s %s", code, out, stderr)
	}
	out, stderr, code = run(t, "admin", "holding", "delete", "-c", cfgPath, "web1")
	if code != 1 || !strings.Contains(out, "would delete "+path) || !strings.Contains(stderr, "--yes") {
		t.Errorf("delete without --yes: %d %s %s", code, out, stderr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("deleted without --yes")
	}
	out, stderr, code = run(t, "admin", "holding", "delete", "-c", cfgPath, "--file", path, "--yes")
	if code != 0 || !strings.Contains(out, "deleted "+path) {
		t.Errorf("delete --yes: %d %s %s", code, out, stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("still there after delete --yes")
	}
	if _, stderr, code = run(t, "admin", "holding", "delete", "-c", cfgPath, "web1", "--yes"); code != 1 || !strings.Contains(stderr, "no holding image matches") {
		t.Errorf("delete of nothing: %d %s", code, stderr)
	}
	if _, _, code = run(t, "admin", "holding", "delete", "-c", cfgPath); code != 2 {
		t.Errorf("delete without a selection: exit %d, want 2", code)
	}
}
