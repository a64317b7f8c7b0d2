package client

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/wire"
)

type chainStep struct {
	level   int
	payload []byte
	names   map[string]bool // relative paths stored in the image
}

// dumpLevel dumps root at level into a zstd payload, promotes the state
// when promote is set, and returns what the image holds.
func dumpLevel(t *testing.T, root string, st *StateStore, level int, ds string, promote bool) chainStep {
	t.Helper()
	var buf bytes.Buffer
	names := map[string]bool{}
	var warns []string
	res, err := Dump(context.Background(), root, DumpOptions{Level: level, Comp: image.CompZstd, FrameSize: 64 << 10, State: st, Datestamp: ds},
		Sink{Payload: &buf, Index: func(r wire.IndexRecord) error { names[r.Path] = true; return nil }, Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatalf("level %d dump: %v", level, err)
	}
	if len(warns) > 0 {
		t.Errorf("level %d warnings: %v", level, warns)
	}
	if !res.Pending {
		t.Fatalf("level %d: no pending state", level)
	}
	if promote {
		if err := st.Promote(root, level, ds); err != nil {
			t.Fatal(err)
		}
	}
	return chainStep{level: level, payload: buf.Bytes(), names: names}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, p, content string, mt time.Time) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
	must(t, os.Chtimes(p, mt, mt))
}

// TestIncrementalChainRestoresWithGNUTar: L0, L1, L2 with edits,
// deletions, renames, new directories and mode-only changes between them;
// applying the chain with GNU tar --listed-incremental=/dev/null, and with
// tapir's own extractor, reproduces the source tree exactly.
func TestIncrementalChainRestoresWithGNUTar(t *testing.T) {
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/test installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	st := &StateStore{Dir: filepath.Join(dir, "state")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 600700800, time.UTC)
	writeAt(t, filepath.Join(src, "a.txt"), "alpha", t0)
	writeAt(t, filepath.Join(src, "b.txt"), "bravo", t0)
	writeAt(t, filepath.Join(src, "d1/x"), "x-ray", t0)
	writeAt(t, filepath.Join(src, "d1/y"), "yankee", t0)
	writeAt(t, filepath.Join(src, "d2/z"), "zulu", t0)
	writeAt(t, filepath.Join(src, "keep/same"), "never changes", t0)
	must(t, os.MkdirAll(filepath.Join(src, "empty"), 0o755))
	must(t, os.Symlink("a.txt", filepath.Join(src, "link")))

	var chain []chainStep
	chain = append(chain, dumpLevel(t, src, st, 0, "20260102000000", true))

	// Between L0 and L1: edit, delete, rename, new directory, mode-only change.
	t1 := t0.Add(24 * time.Hour)
	writeAt(t, filepath.Join(src, "a.txt"), "alpha, edited", t1)
	must(t, os.Remove(filepath.Join(src, "b.txt")))
	must(t, os.Rename(filepath.Join(src, "d1/x"), filepath.Join(src, "d1/x-renamed")))
	writeAt(t, filepath.Join(src, "d3/new.txt"), "brand new", t1)
	must(t, os.Chmod(filepath.Join(src, "d2/z"), 0o600))
	must(t, os.Remove(filepath.Join(src, "empty")))
	chain = append(chain, dumpLevel(t, src, st, 1, "20260103000000", true))

	l1 := chain[1].names
	for _, want := range []string{"a.txt", "d1/x-renamed", "d3/new.txt", "d2/z"} {
		if !l1[want] {
			t.Errorf("level 1 image lacks changed %s", want)
		}
	}
	for _, not := range []string{"keep/same", "d1/y", "b.txt"} {
		if l1[not] {
			t.Errorf("level 1 image holds unchanged or deleted %s", not)
		}
	}

	// A level-2 dump that the server never confirms must not advance the
	// state: the next level 2 holds the same changes.
	t2 := t1.Add(24 * time.Hour)
	must(t, os.RemoveAll(filepath.Join(src, "d1")))
	writeAt(t, filepath.Join(src, "d3/new.txt"), "brand new, edited", t2)
	must(t, os.Chmod(filepath.Join(src, "a.txt"), 0o640))
	must(t, os.Rename(filepath.Join(src, "d2"), filepath.Join(src, "d2-moved")))
	dumpLevel(t, src, st, 2, "20260104000000", false)
	l2 := dumpLevel(t, src, st, 2, "20260104000001", true)
	for _, want := range []string{"d3/new.txt", "a.txt", "d2-moved/z"} {
		if !l2.names[want] {
			t.Errorf("level 2 image (after an unconfirmed one) lacks changed %s", want)
		}
	}
	chain = append(chain, l2)
	want := treeState(t, src)

	// GNU tar, in order.
	out := filepath.Join(dir, "gnutar")
	must(t, os.MkdirAll(out, 0o755))
	for _, c := range chain {
		cmd := exec.Command("sh", "-c", "zstd -dc | tar --listed-incremental=/dev/null -xpf - -C "+out)
		cmd.Stdin = bytes.NewReader(c.payload)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GNU tar level %d: %v\n%s", c.level, err, b)
		}
	}
	sameTree(t, "GNU tar chain", want, treeState(t, out))

	// tapir's extractor, in order.
	out2 := filepath.Join(dir, "tapir")
	for _, c := range chain {
		r, err := image.NewStreamReader(bytes.NewReader(c.payload), image.CompZstd)
		must(t, err)
		x := &recover.Extractor{Dir: out2, Incremental: true, Overwrite: true}
		if _, err := x.All(tar.NewReader(r)); err != nil {
			t.Fatalf("tapir extractor level %d: %v", c.level, err)
		}
	}
	sameTree(t, "tapir chain", want, treeState(t, out2))
}

// TestMovedDLEIsNotAFull: when the DLE moves to another device, inode
// numbers and ctimes change for every file; the next incremental must not
// silently become a full, and must say what happened.
func TestMovedDLEIsNotAFull(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	st := &StateStore{Dir: filepath.Join(dir, "state")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 20; i++ {
		writeAt(t, filepath.Join(src, "f", strings.Repeat("n", i+1)), "data", t0)
	}
	dumpLevel(t, src, st, 0, "20260102000000", true)
	// Pretend the state was taken on another device, with other inodes and ctimes.
	base, err := st.Base(src, 1)
	must(t, err)
	base.Dev++
	for k, f := range base.Files {
		f.Ino += 1000
		f.Ctime -= 1e9
		base.Files[k] = f
	}
	base.Datestamp = "20260102000001"
	must(t, st.WritePending(base))
	must(t, st.Promote(src, 0, "20260102000001"))

	writeAt(t, filepath.Join(src, "f", "changed"), "new", t0.Add(time.Hour))
	var warns []string
	names := map[string]bool{}
	_, err = Dump(context.Background(), src, DumpOptions{Level: 1, Comp: image.CompNone, State: st, Datestamp: "20260103000000"},
		Sink{Payload: &bytes.Buffer{}, Index: func(r wire.IndexRecord) error { names[r.Path] = true; return nil }, Warn: func(s string) { warns = append(warns, s) }})
	must(t, err)
	if !names["f/changed"] || names["f/n"] {
		t.Errorf("after a move, level 1 holds %v; want the changed file only", names)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "moved to another device") {
		t.Errorf("warnings %q; want one saying the DLE moved", warns)
	}
}

// TestEstimateLevels: one walk sizes several levels; level 1 counts only
// what changed.
func TestEstimateLevels(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	st := &StateStore{Dir: filepath.Join(dir, "state")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 10; i++ {
		writeAt(t, filepath.Join(src, "d", strings.Repeat("f", i+1)), strings.Repeat("x", 10000), t0)
	}
	dumpLevel(t, src, st, 0, "20260102000000", true)
	writeAt(t, filepath.Join(src, "d", "new"), strings.Repeat("y", 5000), t0.Add(time.Hour))
	est, err := Estimate(context.Background(), src, DumpOptions{State: st}, []int{0, 1, 2})
	must(t, err)
	if est[0].Files != 12 || est[1].Files != 2 || est[2].Files != 2 {
		t.Errorf("estimates %+v: want 12 files at level 0 (11 files + dir), 2 at levels 1 and 2 (the dir and the new file)", est)
	}
	if est[1].Bytes >= est[0].Bytes/4 {
		t.Errorf("level 1 estimate %d bytes is not much smaller than level 0's %d", est[1].Bytes, est[0].Bytes)
	}
}
