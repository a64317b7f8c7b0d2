package client

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// tarContents reads a payload's tar stream: each member's name and, for
// a regular file, its content ("<dir>" for a directory).
func tarContents(t *testing.T, payload []byte, comp string) map[string]string {
	t.Helper()
	sr, err := image.NewStreamReader(bytes.NewReader(payload), image.Comp(comp))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	tr := tar.NewReader(sr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir, 'D':
			out[h.Name] = "<dir>"
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		default:
			out[h.Name] = fmt.Sprintf("<%c>", h.Typeflag)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// liveContents is what a live dump of dle holds.
func liveContents(t *testing.T, dle string) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Dump(context.Background(), dle, DumpOptions{Comp: image.CompNone}, Sink{Payload: &buf}); err != nil {
		t.Fatal(err)
	}
	return tarContents(t, buf.Bytes(), "none")
}

func noSnapshotEntries(t *testing.T, c map[string]string) {
	t.Helper()
	for name := range c {
		if strings.Contains(name, SnapshotPrefix) {
			t.Errorf("the image holds %s", name)
		}
	}
}

// ledgerEntries lists the ledger files left in a state directory.
func ledgerEntries(t *testing.T, state string) []string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(snapshotsDir(state), "*"))
	return ms
}

// TestWalkSkipsSnapshotNamesAtTheTop: a walk (dump and estimate) never
// stores an entry named .tapir-snapshot-* at the DLE's top (a snapshot,
// or one left by a crash); deeper down such a name is an ordinary file.
func TestWalkSkipsSnapshotNamesAtTheTop(t *testing.T) {
	dle := t.TempDir()
	writeAt(t, filepath.Join(dle, "keep.txt"), "k", time.Now())
	writeAt(t, filepath.Join(dle, SnapshotPrefix+"0123456789abcdef", "big"), strings.Repeat("x", 10000), time.Now())
	writeAt(t, filepath.Join(dle, "sub", SnapshotPrefix+"x"), "deep", time.Now())
	c := liveContents(t, dle)
	if !slices.Equal(keys(c), []string{"./", "./keep.txt", "./sub/", "./sub/" + SnapshotPrefix + "x"}) {
		t.Errorf("image holds %v", keys(c))
	}
	est, err := Estimate(context.Background(), dle, DumpOptions{}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(filepath.Join(dle, SnapshotPrefix+"0123456789abcdef")))
	without, err := Estimate(context.Background(), dle, DumpOptions{}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if est[0] != without[0] {
		t.Errorf("estimate with a snapshot at the top %+v, without %+v", est[0], without[0])
	}
}

// TestCommandSnapshot: a command snapshot (a copy here) is made after
// pre and before the walk, read instead of the DLE with the DLE's names,
// and removed before post, its directory and ledger entry gone.
func TestCommandSnapshot(t *testing.T) {
	s := newHookSite(t, nil)
	create := s.script(t, "snap-create", `cp -a "$TAPIR_DLE/." "$TAPIR_SNAPSHOT_DIR/" && echo "copied $TAPIR_SNAPSHOT_ID"`)
	remove := s.script(t, "snap-remove", `[ -d "$TAPIR_SNAPSHOT_DIR" ] || exit 0
find "$TAPIR_SNAPSHOT_DIR" -mindepth 1 -delete`)
	req := s.req(0)
	req.Compress = "none"
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotCommand, Create: []string{create}, Remove: []string{remove}}
	req.Pre = []string{s.envRecorder(t, "pre", 0)}
	req.Post = []string{s.envRecorder(t, "post", 0)}
	req.Token = "0123456789abcdef0123456789abcdef" // a snapshot dump keeps no resume state
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.state, "resume")); len(ents) != 0 {
		t.Errorf("resume state kept for a snapshot dump: %v", ents)
	}
	if st := (StateStore{Dir: s.state}); !slices.Equal(st.Levels(s.dle), []int{0}) {
		t.Errorf("state levels after the confirmed dump: %v", st.Levels(s.dle))
	}
	if got := hookNames(res.done); !slices.Equal(got, []string{"pre", "snapshot-create", "snapshot-remove", "post"}) {
		t.Fatalf("hooks %v", got)
	}
	if !strings.HasPrefix(res.done.Snapshot, "command "+snapshotsDir(s.state)+"/") {
		t.Errorf("Done.Snapshot %q", res.done.Snapshot)
	}
	if got, want := tarContents(t, res.data, "none"), liveContents(t, s.dle); !slices.Equal(keys(got), keys(want)) || got["./a.txt"] != "alpha" {
		t.Errorf("image from the snapshot holds %v, the live DLE %v", got, want)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("left in the ledger directory: %v", l)
	}
	if len(res.warnings) != 0 {
		t.Errorf("warnings %q", res.warnings)
	}
	if !strings.HasPrefix(res.done.Hooks[1].Output, "copied ") {
		t.Errorf("create's run %+v", res.done.Hooks[1])
	}
	if _, ok := s.recorded(t, "post")["TAPIR_SNAPSHOT_DIR"]; ok {
		t.Error("post, run after the removal, was given the snapshot's directory")
	}

	// A resume of a snapshot dump is refused: the server starts over.
	req.Resume = &wire.Resume{Frames: 1, PayloadOffset: 10}
	res = remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), errNoResume.Error()) || !strings.Contains(res.err.Error(), "from a snapshot is never resumed") {
		t.Errorf("resume: %v", res.err)
	}
	req.Resume, req.Token = nil, ""

	// A command DLE reads the snapshot too.
	req.Command = []string{s.script(t, "cat", `cat "$TAPIR_SNAPSHOT_DIR/a.txt"`)}
	req.Pre, req.Post = nil, nil
	res = remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := payloadBytes(t, res, "none", nil); string(got) != "alpha" {
		t.Errorf("command DLE over a snapshot printed %q", got)
	}
	if got := hookNames(res.done); !slices.Equal(got, []string{"snapshot-create", "command", "snapshot-remove"}) {
		t.Errorf("hooks %v", got)
	}
}

// TestCommandSnapshotBindMount: the same with a bind mount, as root.
func TestCommandSnapshotBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	if _, err := exec.LookPath("mountpoint"); err != nil {
		t.Skip("no mountpoint(1)")
	}
	s := newHookSite(t, nil)
	create := s.script(t, "snap-create", `mount --bind "$TAPIR_DLE" "$TAPIR_SNAPSHOT_DIR"`)
	remove := s.script(t, "snap-remove", `if mountpoint -q "$TAPIR_SNAPSHOT_DIR"; then umount "$TAPIR_SNAPSHOT_DIR"; fi`)
	req := s.req(0)
	req.Compress = "none"
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotCommand, Create: []string{create}, Remove: []string{remove}}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		if res.done != nil && len(res.done.Hooks) > 0 && strings.Contains(res.done.Hooks[0].Output, "permission denied") {
			t.Skip("bind mounts not permitted here")
		}
		t.Fatal(res.err)
	}
	if got := tarContents(t, res.data, "none"); got["./sub/b.txt"] != "beta" {
		t.Errorf("image holds %v", got)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// TestCommandSnapshotCreateFails: the dump fails with the create
// command's reason; remove still runs; nothing is left.
func TestCommandSnapshotCreateFails(t *testing.T) {
	s := newHookSite(t, nil)
	create := s.script(t, "snap-create", "echo 'no space left for the snapshot' >&2\nexit 4")
	remove := s.script(t, "snap-remove", "exit 0")
	req := s.req(0)
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotCommand, Create: []string{create}, Remove: []string{remove}}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "snapshot of "+s.dle+" failed: snapshot create command "+create+" exited 4: no space left for the snapshot") {
		t.Fatalf("error %v", res.err)
	}
	if got := hookNames(res.done); !slices.Equal(got, []string{"snapshot-create", "snapshot-remove"}) {
		t.Errorf("hooks %v", got)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// TestSnapshotRemovalFailsThenRetried: a removal that fails is a
// warning and keeps the ledger entry; the next snapshot of the DLE
// removes it first (logged), and a failure then is a warning again.
func TestSnapshotRemovalFailsThenRetried(t *testing.T) {
	s := newHookSite(t, nil)
	flag := filepath.Join(s.record, "stuck")
	must(t, os.WriteFile(flag, nil, 0o644))
	create := s.script(t, "snap-create", `cp -a "$TAPIR_DLE/." "$TAPIR_SNAPSHOT_DIR/"`)
	remove := s.script(t, "snap-remove", fmt.Sprintf(`if [ -e %s ]; then echo "device busy" >&2; exit 1; fi
[ -d "$TAPIR_SNAPSHOT_DIR" ] || exit 0
find "$TAPIR_SNAPSHOT_DIR" -mindepth 1 -delete`, flag))
	req := s.req(0)
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotCommand, Create: []string{create}, Remove: []string{remove}}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.warnings) != 1 || !strings.Contains(res.warnings[0], "could not be removed") || !strings.Contains(res.warnings[0], "device busy") {
		t.Fatalf("warnings %q", res.warnings)
	}
	left := ledgerEntries(t, s.state) // <id>.json and <id>/ (with mnt)
	var id string
	for _, p := range left {
		if x, ok := strings.CutSuffix(filepath.Base(p), ".json"); ok {
			id = x
		}
	}
	if id == "" {
		t.Fatalf("no ledger entry kept: %v", left)
	}
	// Still stuck: the next dump warns about the one before, and its
	// own removal fails too.
	res = remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.warnings) != 2 || !strings.Contains(res.warnings[0], "left by an earlier agent: the snapshot "+id) {
		t.Fatalf("warnings %q", res.warnings)
	}
	// Unstuck: the next dump removes both first, logged.
	must(t, os.Remove(flag))
	n := len(s.log.messages())
	res = remoteDump(t, s.r, req)
	if res.err != nil || len(res.warnings) != 0 {
		t.Fatal(res.err, res.warnings)
	}
	s.log.wait(t, n, "removed a snapshot left by an earlier agent", map[string]string{"dle": s.dle, "path": filepath.Join(workDir(s.state, id), "mnt")})
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// TestSnapshotNeedsStateDir: without --state-dir there is no ledger, so
// no snapshot.
func TestSnapshotNeedsStateDir(t *testing.T) {
	s := newHookSite(t, func(a *Agent) { a.StateDir = "" })
	req := s.req(0)
	req.Datestamp = ""
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), `snapshot = "btrfs" needs the agent's --state-dir`) {
		t.Fatalf("error %v", res.err)
	}
}

// TestBtrfsRefusesAPlainDirectory: a DLE that is not a btrfs subvolume
// gets a problem that says what to do, and a failed dump.
func TestBtrfsRefusesAPlainDirectory(t *testing.T) {
	s := newHookSite(t, nil)
	req := s.req(0)
	req.Op = wire.OpSelfcheck
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	want := fmt.Sprintf(`DLE %s is not a btrfs subvolume: snapshot = "btrfs" needs one (btrfs subvolume create)`, s.dle)
	if rep := s.a.selfcheck(req); !slices.Contains(rep.Problems, want) {
		t.Errorf("problems %q lack %q", rep.Problems, want)
	}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), want) {
		t.Errorf("error %v", res.err)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("left: %v", l)
	}
}

// btrfsFS makes a btrfs filesystem on a loop device and mounts it; the
// test is skipped where that cannot be done.
func btrfsFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: no loop device")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	f.Close()
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mkfs.btrfs", "-q", dev).CombinedOutput(); err != nil {
		t.Skipf("mkfs.btrfs: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return mnt
}

// btrfsSite is a hook site whose DLE is a btrfs subvolume.
func btrfsSite(t *testing.T) *hookSite {
	t.Helper()
	fs := btrfsFS(t)
	dle := filepath.Join(fs, "data")
	if out, err := exec.Command("btrfs", "subvolume", "create", dle).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v %s", err, out)
	}
	s := newHookSite(t, nil)
	s.dle = dle
	writeAt(t, filepath.Join(dle, "a.txt"), "alpha", time.Now())
	writeAt(t, filepath.Join(dle, "sub", "b.txt"), "beta", time.Now())
	must(t, os.Symlink("a.txt", filepath.Join(dle, "link")))
	return s
}

func snapshotsLeft(t *testing.T, dle string) []string {
	ms, _ := filepath.Glob(filepath.Join(dle, SnapshotPrefix+"*"))
	return ms
}

// TestBtrfsSnapshotDump: a dump with snapshot = "btrfs" reads a
// read-only snapshot with the DLE's names, stores no snapshot entry, and
// leaves no snapshot or ledger entry; a selfcheck makes and removes one.
func TestBtrfsSnapshotDump(t *testing.T) {
	s := btrfsSite(t)
	req := s.req(0)
	req.Compress = "gz"
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	got, want := tarContents(t, res.data, "gz"), liveContents(t, s.dle)
	if !slices.Equal(keys(got), keys(want)) || got["./a.txt"] != "alpha" || got["./sub/b.txt"] != "beta" {
		t.Errorf("image holds %v, the live DLE %v", got, want)
	}
	noSnapshotEntries(t, got)
	if !strings.HasPrefix(res.done.Snapshot, "btrfs "+s.dle+"/"+SnapshotPrefix) {
		t.Errorf("Done.Snapshot %q", res.done.Snapshot)
	}
	if h := hookNames(res.done); !slices.Equal(h, []string{"snapshot-create", "snapshot-remove"}) || !strings.Contains(res.done.Hooks[0].Command, "subvolume snapshot -r "+s.dle) {
		t.Errorf("hooks %+v", res.done.Hooks)
	}
	if l := snapshotsLeft(t, s.dle); len(l) != 0 {
		t.Errorf("snapshots left: %v", l)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("ledger left: %v", l)
	}
	if len(res.warnings) != 0 {
		t.Errorf("warnings %q", res.warnings)
	}
	// An incremental from a snapshot compares with the level 0 by the
	// live DLE's device: no "moved" warning, unchanged files not stored.
	req.Level = 1
	req.Datestamp = "20260102030406"
	res = remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, w := range res.warnings {
		if strings.Contains(w, "moved to another device") {
			t.Errorf("warning %q", w)
		}
	}
	sel := s.req(0)
	sel.Op = wire.OpSelfcheck
	sel.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	if rep := s.a.selfcheck(sel); len(rep.Problems) != 0 {
		t.Errorf("selfcheck problems %q", rep.Problems)
	}
	if l := snapshotsLeft(t, s.dle); len(l) != 0 {
		t.Errorf("snapshots left by the selfcheck: %v", l)
	}
}

// TestBtrfsSnapshotIsWhatIsRead: what changes in the live DLE after the
// snapshot is not in the image; a walk of the live DLE while the
// snapshot exists does not store it; a cancelled walk still removes it.
func TestBtrfsSnapshotIsWhatIsRead(t *testing.T) {
	s := btrfsSite(t)
	req := s.req(0)
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	var warns []string
	sess := s.a.newSession(req, func(w string) { warns = append(warns, w) })
	if err := sess.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	writeAt(t, filepath.Join(s.dle, "a.txt"), "changed after the snapshot", time.Now())
	writeAt(t, filepath.Join(s.dle, "new.txt"), "new", time.Now())
	var buf bytes.Buffer
	if _, err := Dump(context.Background(), s.dle, DumpOptions{Comp: image.CompNone, snap: sess.snap}, Sink{Payload: &buf}); err != nil {
		t.Fatal(err)
	}
	got := tarContents(t, buf.Bytes(), "none")
	if got["./a.txt"] != "alpha" || got["./new.txt"] != "" || !slices.Equal(keys(got), []string{"./", "./a.txt", "./link", "./sub/", "./sub/b.txt"}) {
		t.Errorf("image from the snapshot holds %v", got)
	}
	live := liveContents(t, s.dle)
	noSnapshotEntries(t, live)
	if live["./new.txt"] != "new" {
		t.Errorf("live image %v", live)
	}
	// Cancelled mid-walk: the session still removes the snapshot.
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Dump(ctx, s.dle, DumpOptions{Comp: image.CompNone, snap: sess.snap, beforeOpen: func(string) { cancel() }}, Sink{Payload: io.Discard})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
	sess.end(false)
	if l := snapshotsLeft(t, s.dle); len(l) != 0 || len(warns) != 0 {
		t.Errorf("snapshots left: %v (warnings %q)", l, warns)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("ledger left: %v", l)
	}
}

// TestBtrfsSnapshotCutStream: a dump whose server goes away removes its
// snapshot before it ends.
func TestBtrfsSnapshotCutStream(t *testing.T) {
	s := btrfsSite(t)
	writeAt(t, filepath.Join(s.dle, "big"), string(randomBytes(8<<20)), time.Now())
	req := s.req(0)
	req.Compress = "none"
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotBtrfs}
	n := len(s.log.messages())
	_, err := s.r.Dump(context.Background(), req, DumpHandler{
		Data:  func([]byte) error { return errors.New("server gives up") },
		Index: func(wire.IndexRecord) error { return nil },
		Frame: func(image.Frame) error { return nil },
		Warn:  func(string) {},
	})
	if err == nil {
		t.Fatal("the dump went on")
	}
	// The agent logs the end of the dump after the removal.
	s.log.wait(t, n, "dump failed", nil)
	if l := snapshotsLeft(t, s.dle); len(l) != 0 {
		t.Errorf("snapshots left: %v", l)
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("ledger left: %v", l)
	}
}

// TestBtrfsSnapshotLeftByACrash: a snapshot an agent killed with -9
// left, named by its ledger entry, is removed by the next agent when it
// starts (logged with its DLE and path); a damaged ledger entry is
// reported and left.
func TestBtrfsSnapshotLeftByACrash(t *testing.T) {
	s := btrfsSite(t)
	s.state = t.TempDir() // the dead agent's, which no agent serves yet
	id := "00112233445566778899aabbccddeeff"
	l := snapLedger{Kind: wire.SnapshotBtrfs, DLE: s.dle, ID: id, Path: filepath.Join(s.dle, SnapshotPrefix+id), Created: time.Now()}
	must(t, writeLedger(s.state, l))
	if out, err := exec.Command("btrfs", "subvolume", "snapshot", "-r", s.dle, l.Path).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	damaged := ledgerPath(s.state, "ffffffffffffffff")
	must(t, os.WriteFile(damaged, []byte(`{"kind":"btrfs","dle":"/","id":"ffffffffffffffff","path":"/etc"}`), 0o600))
	log := newLogWatch()
	agentPairWith(t, func(a *Agent) { a.StateDir = s.state; a.Log = slog.New(log) })
	log.wait(t, 0, "removed a snapshot left by an earlier agent", map[string]string{"dle": s.dle, "path": l.Path})
	if left := snapshotsLeft(t, s.dle); len(left) != 0 {
		t.Errorf("snapshots left: %v", left)
	}
	if _, err := os.Stat(ledgerPath(s.state, id)); err == nil {
		t.Error("ledger entry kept")
	}
	log.wait(t, 0, "snapshot ledger entry is damaged: left alone; look at it, remove what it names by hand, then delete it", map[string]string{"file": damaged})
	if _, err := os.Stat(damaged); err != nil {
		t.Errorf("damaged entry: %v", err)
	}
	if _, err := os.Stat("/etc"); err != nil {
		t.Fatal(err)
	}
}

// stubTools writes stand-ins for lvm's, zfs's and mount's tools that
// record their argv (one line per run) into the returned file, and puts
// them first on PATH. These tests check the shape of what the agent
// runs: this machine has neither device-mapper nor ZFS.
func stubTools(t *testing.T, scripts map[string]string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(t.TempDir(), "argv")
	for name, body := range scripts {
		writeScript(t, filepath.Join(dir, name), fmt.Sprintf("echo \"%s $*\" >> %s\n%s", name, log, body))
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

func argvLines(t *testing.T, log string) []string {
	b, _ := os.ReadFile(log)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// fakeMountinfo writes a mount table where dle is mounted from source
// with fstype.
func fakeMountinfo(t *testing.T, dle, fstype, source string) string {
	p := filepath.Join(t.TempDir(), "mountinfo")
	must(t, os.WriteFile(p, []byte(fmt.Sprintf(`21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 21 0:50 / %s rw,relatime shared:30 - %s %s rw
`, strings.ReplaceAll(dle, " ", `\040`), fstype, source)), 0o644))
	return p
}

// TestZFSSnapshotArgv (argv shape, stub zfs): the dataset mounted at the
// DLE is snapshotted as DATASET@tapir-<id>, its .zfs/snapshot directory
// read, and the snapshot destroyed.
func TestZFSSnapshotArgv(t *testing.T) {
	s := newHookSite(t, nil)
	s.a.Mountinfo = fakeMountinfo(t, s.dle, "zfs", "tank/home")
	// The stub makes the snapshot directory the agent then reads.
	log := stubTools(t, map[string]string{"zfs": fmt.Sprintf(`snap=${2#*@}
case $1 in
snapshot) mkdir -p %[1]s/.zfs/snapshot/$snap && cp -a %[1]s/a.txt %[1]s/sub %[1]s/.zfs/snapshot/$snap/ ;;
destroy) rm -rf %[1]s/.zfs/snapshot/$snap ;;
esac`, s.dle)})
	req := s.req(0)
	req.Compress = "none"
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotZFS}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := argvLines(t, log)
	id := strings.TrimPrefix(res.done.Snapshot, "zfs tank/home@tapir-")
	if !snapIDRE.MatchString(id) || !slices.Equal(lines, []string{"zfs snapshot tank/home@tapir-" + id, "zfs destroy tank/home@tapir-" + id}) {
		t.Fatalf("Done.Snapshot %q, ran %q", res.done.Snapshot, lines)
	}
	if got := tarContents(t, res.data, "none"); !slices.Equal(keys(got), []string{"./", "./a.txt", "./sub/", "./sub/b.txt"}) {
		t.Errorf("image holds %v", keys(got))
	}
	if l := ledgerEntries(t, s.state); len(l) != 0 {
		t.Errorf("ledger left: %v", l)
	}
	// Not on ZFS: a problem that says so.
	s.a.Mountinfo = fakeMountinfo(t, s.dle, "ext4", "/dev/sdb1")
	req.Op = wire.OpSelfcheck
	if rep := s.a.selfcheck(req); len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "not on a ZFS dataset") {
		t.Errorf("problems %q", rep.Problems)
	}
}

// TestLVMSnapshotArgv (argv shape, stub lvs, lvcreate, mount, umount,
// lvremove): the logical volume of the device mounted at the DLE gets a
// snapshot of the asked size, mounted read-only (nouuid for xfs) under
// the state directory, read, unmounted and removed.
func TestLVMSnapshotArgv(t *testing.T) {
	s := newHookSite(t, nil)
	s.a.Mountinfo = fakeMountinfo(t, s.dle, "xfs", "/dev/mapper/vg0-data")
	log := stubTools(t, map[string]string{
		"lvs":      `echo "  vg0   data  "`,
		"lvcreate": "",
		"mount":    fmt.Sprintf(`for last; do :; done; cp -a %s/. "$last/"`, s.dle), // the "mounted" snapshot
		"umount":   `find "$1" -mindepth 1 -delete`,
		"lvremove": "",
	})
	for _, tc := range []struct{ size, flag string }{{"2G", "-L"}, {"20%ORIGIN", "-l"}} {
		os.Remove(log)
		req := s.req(0)
		req.Compress = "none"
		req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotLVM, Size: tc.size}
		res := remoteDump(t, s.r, req)
		if res.err != nil {
			t.Fatal(res.err)
		}
		id := strings.TrimPrefix(res.done.Snapshot, "lvm vg0/tapir-snap-")
		mnt := filepath.Join(workDir(s.state, id), "mnt")
		want := []string{
			"lvs --noheadings -o vg_name,lv_name /dev/mapper/vg0-data",
			"lvcreate -s -n tapir-snap-" + id + " " + tc.flag + " " + tc.size + " vg0/data",
			"mount -t xfs -o ro,nouuid /dev/vg0/tapir-snap-" + id + " " + mnt,
			"umount " + mnt,
			"lvremove -f vg0/tapir-snap-" + id,
		}
		if got := argvLines(t, log); !slices.Equal(got, want) {
			t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if got := tarContents(t, res.data, "none"); got["./sub/b.txt"] != "beta" {
			t.Errorf("image holds %v", got)
		}
		if h := hookNames(res.done); !slices.Equal(h, []string{"snapshot-create", "snapshot-create", "snapshot-remove", "snapshot-remove"}) {
			t.Errorf("hooks %v", h)
		}
		if l := ledgerEntries(t, s.state); len(l) != 0 {
			t.Errorf("left: %v", l)
		}
	}
	// lvs does not know the device: the dump fails saying so.
	stubTools(t, map[string]string{"lvs": `echo "  Failed to find logical volume" >&2; exit 5`})
	req := s.req(0)
	req.Snapshot = &wire.Snapshot{Kind: wire.SnapshotLVM, Size: "1G"}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "is /dev/mapper/vg0-data a logical volume?") {
		t.Errorf("error %v", res.err)
	}
}

// TestParseMountinfo reads proc(5)'s format: optional fields, escapes,
// stacked mounts; mountFor picks the longest mount point above a path.
func TestParseMountinfo(t *testing.T) {
	in := `22 1 0:21 / / rw shared:1 - ext4 /dev/sda1 rw
36 22 98:0 /mnt1 /srv rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue
37 36 0:50 / /srv/my\040data rw - zfs tank/my\040data rw,xattr
38 22 0:51 / /srv/db rw - xfs /dev/mapper/vg0-db rw
39 22 0:52 / /srv/db rw - btrfs /dev/sdc rw
bad line
40 22 0:53 / relative rw - tmpfs tmpfs rw
41 22 0:54 / /nosep rw shared:3 ext4 /dev/x rw
`
	ms := parseMountinfo(strings.NewReader(in))
	if len(ms) != 5 {
		t.Fatalf("entries %+v", ms)
	}
	for _, tc := range []struct{ p, mp, fstype, source, rel string }{
		{"/", "/", "ext4", "/dev/sda1", ""},
		{"/etc/x", "/", "ext4", "/dev/sda1", "etc/x"},
		{"/srv", "/srv", "ext3", "/dev/root", ""},
		{"/srvx", "/", "ext4", "/dev/sda1", "srvx"},
		{"/srv/my data/a", "/srv/my data", "zfs", "tank/my data", "a"},
		{"/srv/db", "/srv/db", "btrfs", "/dev/sdc", ""}, // the last mounted
	} {
		m, rel, ok := mountFor(ms, tc.p)
		if !ok || m.MountPoint != tc.mp || m.FSType != tc.fstype || m.Source != tc.source || rel != tc.rel {
			t.Errorf("mountFor(%q) = %+v %q %v", tc.p, m, rel, ok)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw\n")
	f.Add(`1 2 3 4 /a\040b\ - - \777 \0`)
	f.Add("- - - - - - - -\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms := parseMountinfo(strings.NewReader(s))
		for _, m := range ms {
			mountFor(ms, m.MountPoint)
		}
		mountFor(ms, "/x/y")
	})
}

// FuzzLedger: a damaged ledger entry is an error, never a panic, and
// one that parses names only what the agent makes.
func FuzzLedger(f *testing.F) {
	b, _ := json.Marshal(snapLedger{Kind: "btrfs", DLE: "/data", ID: "0123456789abcdef", Path: "/data/.tapir-snapshot-0123456789abcdef"})
	f.Add(b)
	b, _ = json.Marshal(snapLedger{Kind: "command", DLE: "/data", ID: "0123456789abcdef", Remove: []string{"/x"}})
	f.Add(b)
	f.Add([]byte(`{"kind":"zfs","dle":"/d","id":"abcdefab","dataset":"-o x"}`))
	f.Add([]byte(`{"kind":"lvm"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLedger(b)
		if err != nil {
			return
		}
		if l.Kind == "btrfs" && filepath.Base(l.Path) != SnapshotPrefix+l.ID {
			t.Errorf("accepted btrfs path %q", l.Path)
		}
		if l.Kind == "zfs" && (strings.HasPrefix(l.Dataset, "-") || strings.Contains(l.Dataset, "@")) {
			t.Errorf("accepted dataset %q", l.Dataset)
		}
	})
}

// TestDamagedLedgerIsLeft: a ledger file that does not parse is
// reported when the agent starts and left where it is.
func TestDamagedLedgerIsLeft(t *testing.T) {
	state := t.TempDir()
	must(t, os.MkdirAll(snapshotsDir(state), 0o700))
	for i, b := range []string{"\x00\xff garbage", `{"kind":"btrfs","dle":"/data","id":"0123456789abcdef","path":"/"}`, ""} {
		p := ledgerPath(state, fmt.Sprintf("%016x", i))
		must(t, os.WriteFile(p, []byte(b), 0o600))
	}
	cut := ledgerPath(state, "00000000") + ".tmp" // sorts first: gone before the damaged entries are reported
	must(t, os.WriteFile(cut, []byte(`{"kind":`), 0o600))
	log := newLogWatch()
	agentPairWith(t, func(a *Agent) { a.StateDir = state; a.Log = slog.New(log) })
	for i := range 3 {
		log.wait(t, 0, "snapshot ledger entry is damaged: left alone; look at it, remove what it names by hand, then delete it", map[string]string{"file": ledgerPath(state, fmt.Sprintf("%016x", i))})
	}
	if l := ledgerEntries(t, state); len(l) != 3 || slices.Contains(l, cut) {
		t.Errorf("entries %v (an entry cut while written is removed, the damaged ones left)", l)
	}
}
