package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/wire"
)

// Snapshots (wire.Request.Snapshot): the agent makes a snapshot of a DLE
// right before the walk, the walk reads it instead of the live tree (the
// image's names stay the DLE's), and the agent removes it in every case.
// Before it makes one it writes an intent ledger entry,
// <state-dir>/snapshots/<id>.json (fsynced), and deletes it only once
// the snapshot is removed: an agent killed in the middle leaves the
// entry, and the next agent (at Serve) or the next snapshot of the same
// DLE removes what it names.

// SnapshotPrefix names a btrfs snapshot at the top of its DLE
// (DLE/.tapir-snapshot-<id>); every walk of a DLE skips the entries with
// this prefix at its top.
const SnapshotPrefix = ".tapir-snapshot-"

// Features of the snapshot kinds, hooks and command DLEs.
const (
	FeatureHooks           = "hooks"
	FeatureCommand         = "command"
	FeatureSnapshotBtrfs   = "snapshot-btrfs"
	FeatureSnapshotLVM     = "snapshot-lvm"
	FeatureSnapshotZFS     = "snapshot-zfs"
	FeatureSnapshotCommand = "snapshot-command"
)

// btrfs's statfs magic and the inode number of a subvolume's root.
const (
	btrfsMagic     = 0x9123683E
	btrfsSubvolIno = 256
)

var (
	snapIDRE  = regexp.MustCompile(`^[0-9a-f]{8,32}$`)
	lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,127}$`)
	// lvcreate -L: a number with an optional unit; -l: extents or a
	// percentage of VG, FREE, ORIGIN or PVS.
	lvmSizeRE    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?$`)
	lvmPercentRE = regexp.MustCompile(`^[0-9]+%(VG|FREE|ORIGIN|PVS)$`)
	fstypeRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._]{0,31}$`)
)

// snapLedger is one intent ledger entry: what to remove.
type snapLedger struct {
	Kind      string `json:"kind"`
	DLE       string `json:"dle"`
	ID        string `json:"id"`
	Level     int    `json:"level"`
	Datestamp string `json:"datestamp,omitempty"`
	// Path is the btrfs snapshot subvolume.
	Path string `json:"path,omitempty"`
	// Dataset is the ZFS dataset (the snapshot is Dataset@tapir-<id>).
	Dataset string `json:"dataset,omitempty"`
	// VG is the LVM volume group (the snapshot is VG/tapir-snap-<id>).
	VG string `json:"vg,omitempty"`
	// Remove is the command kind's removal argv.
	Remove  []string  `json:"remove,omitempty"`
	Created time.Time `json:"created"`
}

// parseLedger reads a ledger entry and checks that it names only what
// this agent makes: a damaged entry is an error, never a panic and never
// a removal of something else.
func parseLedger(b []byte) (snapLedger, error) {
	var l snapLedger
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, fmt.Errorf("not a ledger entry: %v", err)
	}
	if !snapIDRE.MatchString(l.ID) {
		return l, fmt.Errorf("snapshot id %q: want 8 to 32 characters 0-9a-f", oneLine(l.ID, 64))
	}
	if !filepath.IsAbs(l.DLE) || filepath.Clean(l.DLE) != l.DLE {
		return l, fmt.Errorf("DLE %q: not an absolute, clean path", oneLine(l.DLE, 256))
	}
	switch l.Kind {
	case wire.SnapshotBtrfs:
		if !filepath.IsAbs(l.Path) || filepath.Clean(l.Path) != l.Path || filepath.Base(l.Path) != SnapshotPrefix+l.ID {
			return l, fmt.Errorf("btrfs snapshot path %q: want an absolute path ending in %s%s", oneLine(l.Path, 256), SnapshotPrefix, l.ID)
		}
	case wire.SnapshotZFS:
		if !validDataset(l.Dataset) {
			return l, fmt.Errorf("ZFS dataset %q: not a dataset name", oneLine(l.Dataset, 256))
		}
	case wire.SnapshotLVM:
		if !lvmNameRE.MatchString(l.VG) || strings.HasPrefix(l.VG, "-") {
			return l, fmt.Errorf("LVM volume group %q: not a volume group name", oneLine(l.VG, 256))
		}
	case wire.SnapshotCommand:
		if len(l.Remove) == 0 {
			return l, errors.New("command snapshot without its removal command")
		}
	default:
		return l, fmt.Errorf("snapshot kind %q unknown", oneLine(l.Kind, 64))
	}
	return l, nil
}

func validDataset(d string) bool {
	return d != "" && len(d) <= 1024 && !strings.HasPrefix(d, "-") && !strings.ContainsAny(d, "@# \t\n\x00") && !strings.HasPrefix(d, "/")
}

func snapshotsDir(stateDir string) string { return filepath.Join(stateDir, "snapshots") }

func ledgerPath(stateDir, id string) string {
	return filepath.Join(snapshotsDir(stateDir), id+".json")
}

// workDir is where an LVM or command snapshot is mounted.
func workDir(stateDir, id string) string { return filepath.Join(snapshotsDir(stateDir), id) }

func (l snapLedger) mnt(stateDir string) string { return filepath.Join(workDir(stateDir, l.ID), "mnt") }

// writeLedger records l before anything is made (file and directory
// fsynced).
func writeLedger(stateDir string, l snapLedger) error {
	dir := snapshotsDir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("snapshot ledger: %w (is --state-dir writable?)", err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	p := ledgerPath(stateDir, l.ID)
	if err := writeFileSync(p+".tmp", b); err != nil {
		return fmt.Errorf("snapshot ledger: %w", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("snapshot ledger: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func newSnapID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// snapshot is one made for a dump.
type snapshot struct {
	l snapLedger
	// dir is what the walk reads, opened beneath top (the snapshot's
	// own top: a symlink in the DLE's path within the snapshot does not
	// lead out of it); dev the live DLE's device, kept in the
	// incremental state (a snapshot has a device of its own).
	dir, top string
	dev      uint64
	// name is Done.Snapshot.
	name string
}

// snapEnv is the environment of a command snapshot's commands.
func snapEnv(stateDir string, l snapLedger, hook string) []string {
	return []string{"TAPIR_DLE=" + l.DLE, "TAPIR_LEVEL=" + strconv.Itoa(l.Level), "TAPIR_DATESTAMP=" + l.Datestamp,
		"TAPIR_HOOK=" + hook, "TAPIR_SNAPSHOT_ID=" + l.ID, "TAPIR_SNAPSHOT_DIR=" + l.mnt(stateDir)}
}

// checkSnapshot validates a request's Snapshot (its commands against
// --allow-exec).
func (a *Agent) checkSnapshot(s *wire.Snapshot) error {
	if a.StateDir == "" {
		return fmt.Errorf("snapshot = %q needs the agent's --state-dir: the agent keeps there a ledger of the snapshots it makes, to remove them after a crash", oneLine(s.Kind, 64))
	}
	switch s.Kind {
	case wire.SnapshotBtrfs, wire.SnapshotZFS:
	case wire.SnapshotLVM:
		if !lvmSizeRE.MatchString(s.Size) && !lvmPercentRE.MatchString(s.Size) {
			return fmt.Errorf("snapshot = \"lvm\" needs a size for its copy-on-write space (snapshot_size, e.g. \"2G\" or \"20%%ORIGIN\"), got %q", oneLine(s.Size, 64))
		}
	case wire.SnapshotCommand:
		if _, err := checkArgv("snapshot create command", s.Create, a.AllowExec); err != nil {
			return err
		}
		if _, err := checkArgv("snapshot remove command", s.Remove, a.AllowExec); err != nil {
			return err
		}
	default:
		return fmt.Errorf("snapshot kind %q unknown (this agent knows btrfs, lvm, zfs and command)", oneLine(s.Kind, 64))
	}
	if s.Kind != wire.SnapshotLVM && s.Size != "" {
		return fmt.Errorf("a snapshot size is for lvm only, not %s", s.Kind)
	}
	if s.Kind != wire.SnapshotCommand && (len(s.Create) > 0 || len(s.Remove) > 0) {
		return fmt.Errorf("snapshot create and remove commands are for the kind command only, not %s", s.Kind)
	}
	return nil
}

// claim marks a snapshot id as this agent's own (being made, read or
// removed): no cleanup touches it. It returns false when it already was.
func (a *Agent) claim(id string) bool {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if a.snapBusy[id] {
		return false
	}
	if a.snapBusy == nil {
		a.snapBusy = map[string]bool{}
	}
	a.snapBusy[id] = true
	return true
}

func (a *Agent) unclaim(id string) {
	a.snapMu.Lock()
	delete(a.snapBusy, id)
	a.snapMu.Unlock()
}

func (a *Agent) mountinfoPath() string {
	if a.Mountinfo != "" {
		return a.Mountinfo
	}
	return "/proc/self/mountinfo"
}

// makeSnapshot makes the snapshot req asks for, its ledger entry first.
// Every tool run goes to record. On failure nothing is left (what was
// made is removed) unless its removal failed too (the ledger keeps it).
func (a *Agent) makeSnapshot(ctx context.Context, req wire.Request, timeout time.Duration, record func(wire.HookRun), warn func(string)) (*snapshot, error) {
	s := req.Snapshot
	// What earlier agents left of this DLE goes first.
	a.cleanupSnapshots(req.DLE, warn)
	l := snapLedger{Kind: s.Kind, DLE: req.DLE, ID: newSnapID(), Level: req.Level, Datestamp: req.Datestamp, Created: time.Now().UTC()}
	sn := &snapshot{}
	// The DLE is opened beneath --allow: the snapshot is of what the
	// agent may read. Its real path is what the tools are given. (A
	// command DLE's name with a command snapshot is only a name.)
	var st unix.Stat_t
	var d *os.File
	real := req.DLE
	if req.Command == nil || s.Kind != wire.SnapshotCommand {
		var err error
		if d, err = openDLE(req.DLE, a.Allow); err != nil {
			return nil, err
		}
		defer d.Close()
		if err := unix.Fstat(int(d.Fd()), &st); err != nil {
			return nil, fmt.Errorf("DLE %s: %v", req.DLE, err)
		}
		if !isDir(&st) {
			return nil, fmt.Errorf("DLE %s: not a directory", req.DLE)
		}
		if r, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(d.Fd()))); err == nil && filepath.IsAbs(r) {
			real = r
		}
		sn.dev = uint64(st.Dev)
	}
	run := func(name string, tool string, args ...string) error {
		p, err := toolPath(tool, s.Kind)
		if err != nil {
			return err
		}
		r, err := runExec(ctx, execSpec{name: name, what: "snapshot " + tool, path: p, argv: append([]string{p}, args...), timeout: timeout})
		record(r)
		return err
	}
	var rel string // the DLE below the snapshot's top
	var lvmDev, fstype string
	switch s.Kind {
	case wire.SnapshotBtrfs:
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(int(d.Fd()), &sfs); err != nil {
			return nil, fmt.Errorf("DLE %s: %v", req.DLE, err)
		}
		if uint32(sfs.Type) != btrfsMagic || st.Ino != btrfsSubvolIno {
			return nil, fmt.Errorf("DLE %s is not a btrfs subvolume: snapshot = \"btrfs\" needs one (btrfs subvolume create)", req.DLE)
		}
		l.Path = filepath.Join(real, SnapshotPrefix+l.ID)
		sn.name = "btrfs " + l.Path
	case wire.SnapshotZFS, wire.SnapshotLVM:
		m, r, err := a.mountOf(real)
		if err != nil {
			return nil, fmt.Errorf("DLE %s: %v", req.DLE, err)
		}
		rel = r
		if s.Kind == wire.SnapshotZFS {
			if m.FSType != "zfs" || !validDataset(m.Source) {
				return nil, fmt.Errorf("DLE %s is on %s (%s mounted at %s), not on a ZFS dataset: snapshot = \"zfs\" needs one", req.DLE, m.FSType, m.Source, m.MountPoint)
			}
			l.Dataset = m.Source
			sn.top = filepath.Join(m.MountPoint, ".zfs", "snapshot", "tapir-"+l.ID)
			sn.dir = filepath.Join(sn.top, rel)
			sn.name = "zfs " + l.Dataset + "@tapir-" + l.ID
			break
		}
		if !strings.HasPrefix(m.Source, "/dev/") || !fstypeRE.MatchString(m.FSType) {
			return nil, fmt.Errorf("DLE %s is on %s (%s mounted at %s), not on a block device: snapshot = \"lvm\" needs a logical volume", req.DLE, m.Source, m.FSType, m.MountPoint)
		}
		vg, lv, err := a.lvOf(ctx, m.Source, timeout)
		if err != nil {
			return nil, fmt.Errorf("DLE %s: %v", req.DLE, err)
		}
		l.VG, lvmDev, fstype = vg, vg+"/"+lv, m.FSType
		sn.top = l.mnt(a.StateDir)
		sn.dir = filepath.Join(sn.top, rel)
		sn.name = "lvm " + vg + "/tapir-snap-" + l.ID
	case wire.SnapshotCommand:
		l.Remove = s.Remove
		sn.dir = l.mnt(a.StateDir)
		sn.top = sn.dir
		sn.name = "command " + sn.dir
	}
	a.claim(l.ID) // until dropSnapshot
	if err := writeLedger(a.StateDir, l); err != nil {
		a.unclaim(l.ID)
		return nil, err
	}
	sn.l = l
	var made error
	switch s.Kind {
	case wire.SnapshotBtrfs:
		made = run("snapshot-create", "btrfs", "subvolume", "snapshot", "-r", real, l.Path)
		sn.dir, sn.top = l.Path, l.Path
	case wire.SnapshotZFS:
		made = run("snapshot-create", "zfs", "snapshot", l.Dataset+"@tapir-"+l.ID)
	case wire.SnapshotLVM:
		size := "-L"
		if strings.Contains(s.Size, "%") {
			size = "-l"
		}
		made = run("snapshot-create", "lvcreate", "-s", "-n", "tapir-snap-"+l.ID, size, s.Size, lvmDev)
		if made == nil {
			made = os.MkdirAll(l.mnt(a.StateDir), 0o700)
		}
		if made == nil {
			opts := "ro"
			if fstype == "xfs" {
				opts += ",nouuid" // the origin's UUID is mounted already
			}
			made = run("snapshot-create", "mount", "-t", fstype, "-o", opts, "/dev/"+l.VG+"/tapir-snap-"+l.ID, l.mnt(a.StateDir))
		}
	case wire.SnapshotCommand:
		made = os.MkdirAll(l.mnt(a.StateDir), 0o700)
		if made == nil {
			var p string
			if p, made = checkArgv("snapshot create command", s.Create, a.AllowExec); made == nil {
				var r wire.HookRun
				r, made = runExec(ctx, execSpec{name: "snapshot-create", what: "snapshot create command", path: p, argv: s.Create,
					env: snapEnv(a.StateDir, l, "snapshot-create"), timeout: timeout})
				record(r)
			}
		}
	}
	if made == nil {
		var f *os.File
		if f, _, made = openRoot(sn.dir, []string{sn.top}); made == nil {
			f.Close()
		} else {
			made = fmt.Errorf("the snapshot cannot be read: %v", made)
		}
	}
	if made != nil {
		err := fmt.Errorf("snapshot of %s failed: %w", req.DLE, made)
		if rerr := a.removeSnapshot(l, timeout, record); rerr != nil {
			warn(rerr.Error())
		}
		a.unclaim(l.ID)
		return nil, err
	}
	a.Log.Info("snapshot made", "dle", req.DLE, "snapshot", sn.name, "reads", sn.dir)
	return sn, nil
}

// dropSnapshot removes a snapshot makeSnapshot made.
func (a *Agent) dropSnapshot(sn *snapshot, timeout time.Duration, record func(wire.HookRun)) error {
	defer a.unclaim(sn.l.ID)
	return a.removeSnapshot(sn.l, timeout, record)
}

// lvOf asks lvs for the volume group and logical volume of a device.
func (a *Agent) lvOf(ctx context.Context, dev string, timeout time.Duration) (string, string, error) {
	p, err := toolPath("lvs", wire.SnapshotLVM)
	if err != nil {
		return "", "", err
	}
	var out bytes.Buffer
	if _, err := runExec(ctx, execSpec{name: "snapshot-create", what: "lvs", path: p, argv: []string{p, "--noheadings", "-o", "vg_name,lv_name", dev}, timeout: timeout, stdout: &out}); err != nil {
		return "", "", fmt.Errorf("%v: is %s a logical volume? (snapshot = \"lvm\" needs one)", err, dev)
	}
	f := strings.Fields(out.String())
	if len(f) != 2 || !lvmNameRE.MatchString(f[0]) || !lvmNameRE.MatchString(f[1]) || strings.HasPrefix(f[0], "-") || strings.HasPrefix(f[1], "-") {
		return "", "", fmt.Errorf("%s is not a logical volume (lvs said %q): snapshot = \"lvm\" needs one", dev, oneLine(out.String(), 256))
	}
	return f[0], f[1], nil
}

// removeSnapshot removes what l names and then its ledger entry;
// "nothing to remove" is a success. It must not be cancelled by the
// connection: ctx is not taken, only the timeout bounds each tool.
func (a *Agent) removeSnapshot(l snapLedger, timeout time.Duration, record func(wire.HookRun)) error {
	ctx := context.Background()
	fail := func(err error) error {
		return fmt.Errorf("the snapshot %s of %s could not be removed (%v): the agent tries again at its next start and before the next snapshot of this DLE; remove it by hand if that keeps failing", l.ID, l.DLE, err)
	}
	run := func(tool string, args ...string) (wire.HookRun, error) {
		p, err := toolPath(tool, l.Kind)
		if err != nil {
			return wire.HookRun{}, err
		}
		r, err := runExec(ctx, execSpec{name: "snapshot-remove", what: "snapshot " + tool, path: p, argv: append([]string{p}, args...), timeout: timeout})
		record(r)
		return r, err
	}
	mnt := l.mnt(a.StateDir)
	switch l.Kind {
	case wire.SnapshotBtrfs:
		if _, err := os.Lstat(l.Path); errors.Is(err, fs.ErrNotExist) {
			break
		}
		var st unix.Stat_t
		var sfs unix.Statfs_t
		if err := unix.Lstat(l.Path, &st); err != nil {
			return fail(err)
		}
		if err := unix.Statfs(l.Path, &sfs); err != nil || uint32(sfs.Type) != btrfsMagic || st.Ino != btrfsSubvolIno || !isDir(&st) {
			return fail(fmt.Errorf("%s is not a btrfs subvolume: left alone", l.Path))
		}
		if _, err := run("btrfs", "subvolume", "delete", l.Path); err != nil {
			return fail(err)
		}
	case wire.SnapshotZFS:
		if r, err := run("zfs", "destroy", l.Dataset+"@tapir-"+l.ID); err != nil {
			if o := strings.ToLower(r.Output); !strings.Contains(o, "could not find") && !strings.Contains(o, "does not exist") {
				return fail(err)
			}
		}
	case wire.SnapshotLVM:
		if _, err := os.Stat(mnt); err == nil {
			if _, err := run("umount", mnt); err != nil && isMountPoint(mnt) {
				return fail(err)
			}
		}
		if r, err := run("lvremove", "-f", l.VG+"/tapir-snap-"+l.ID); err != nil {
			if o := strings.ToLower(r.Output); !strings.Contains(o, "not found") && !strings.Contains(o, "failed to find") {
				return fail(err)
			}
		}
	case wire.SnapshotCommand:
		p, err := checkArgv("snapshot remove command", l.Remove, a.AllowExec)
		if err != nil {
			return fail(err)
		}
		r, err := runExec(ctx, execSpec{name: "snapshot-remove", what: "snapshot remove command", path: p, argv: l.Remove,
			env: snapEnv(a.StateDir, l, "snapshot-remove"), timeout: timeout})
		record(r)
		if err != nil {
			return fail(err)
		}
	}
	if l.Kind == wire.SnapshotLVM || l.Kind == wire.SnapshotCommand {
		if isMountPoint(mnt) {
			return fail(fmt.Errorf("%s is still mounted", mnt))
		}
		if err := os.Remove(mnt); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("%s is not empty after the removal: %v", mnt, unwrapPath(err)))
		}
		if err := os.Remove(workDir(a.StateDir, l.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(unwrapPath(err))
		}
	}
	if err := os.Remove(ledgerPath(a.StateDir, l.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("its ledger entry: %v", unwrapPath(err)))
	}
	syncDir(snapshotsDir(a.StateDir))
	return nil
}

// isMountPoint says whether p is mounted on (its device differs from its
// parent's).
func isMountPoint(p string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(p, &a) != nil || unix.Lstat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// cleanupSnapshots removes the snapshots earlier agents left (of dle, or
// of every DLE when dle is empty), as their ledger entries name them.
// Each removal is logged; a failure keeps the entry and goes to warn
// (when set) and the log. A damaged entry is reported and left.
func (a *Agent) cleanupSnapshots(dle string, warn func(string)) {
	if a.StateDir == "" {
		return
	}
	dir := snapshotsDir(a.StateDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if tmp, ok := strings.CutSuffix(name, ".json.tmp"); ok && snapIDRE.MatchString(tmp) && dle == "" {
			// An entry a crash cut while it was written (nothing was
			// made after it), unless it is this agent's, being written.
			if a.claim(tmp) {
				os.Remove(filepath.Join(dir, name))
				a.unclaim(tmp)
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !snapIDRE.MatchString(id) {
			continue
		}
		if !a.claim(id) {
			continue // this agent's own, in use
		}
		a.cleanupOne(dle, id, warn)
		a.unclaim(id)
	}
}

func (a *Agent) cleanupOne(dle, id string, warn func(string)) {
	p := ledgerPath(a.StateDir, id)
	b, err := readBounded(p, 1<<20)
	if err != nil {
		return
	}
	l, err := parseLedger(b)
	if err == nil && l.ID != id {
		err = fmt.Errorf("it names snapshot %s", l.ID)
	}
	if err != nil {
		if dle == "" {
			a.Log.Warn("snapshot ledger entry is damaged: left alone; look at it, remove what it names by hand, then delete it", "file", p, "err", err)
		}
		return
	}
	if dle != "" && l.DLE != dle {
		return
	}
	what := l.Path
	switch l.Kind {
	case wire.SnapshotZFS:
		what = l.Dataset + "@tapir-" + l.ID
	case wire.SnapshotLVM:
		what = l.VG + "/tapir-snap-" + l.ID
	case wire.SnapshotCommand:
		what = l.mnt(a.StateDir)
	}
	if err := a.removeSnapshot(l, DefaultHookTimeout, func(wire.HookRun) {}); err != nil {
		a.Log.Warn("a snapshot left by an earlier agent could not be removed", "dle", l.DLE, "kind", l.Kind, "path", what, "err", err)
		if warn != nil {
			warn("left by an earlier agent: " + err.Error())
		}
		return
	}
	a.Log.Info("removed a snapshot left by an earlier agent", "dle", l.DLE, "kind", l.Kind, "path", what)
}

// readBounded reads at most max bytes of p.
func readBounded(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	MountPoint, FSType, Source string
}

// parseMountinfo reads mountinfo lines (proc(5)); lines it cannot read
// are skipped.
func parseMountinfo(r io.Reader) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		mp := unescapeMount(f[4])
		if !filepath.IsAbs(mp) {
			continue
		}
		out = append(out, mountEntry{MountPoint: filepath.Clean(mp), FSType: unescapeMount(f[sep+1]), Source: unescapeMount(f[sep+2])})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040) of mountinfo fields.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountFor is the mount holding p (the longest mount point that is p or
// above it, the last mounted of equals) and p relative to it.
func mountFor(ms []mountEntry, p string) (mountEntry, string, bool) {
	var best mountEntry
	found := false
	rel := ""
	for _, m := range ms {
		var r string
		switch {
		case p == m.MountPoint:
			r = ""
		case m.MountPoint == "/" && strings.HasPrefix(p, "/"):
			r = p[1:]
		case strings.HasPrefix(p, m.MountPoint+"/"):
			r = p[len(m.MountPoint)+1:]
		default:
			continue
		}
		if !found || len(m.MountPoint) >= len(best.MountPoint) {
			best, rel, found = m, r, true
		}
	}
	return best, rel, found
}

func (a *Agent) mountOf(p string) (mountEntry, string, error) {
	f, err := os.Open(a.mountinfoPath())
	if err != nil {
		return mountEntry{}, "", fmt.Errorf("cannot read the mount table: %v", unwrapPath(err))
	}
	defer f.Close()
	m, rel, ok := mountFor(parseMountinfo(io.LimitReader(f, 64<<20)), p)
	if !ok {
		return mountEntry{}, "", fmt.Errorf("no mount holds it in %s", a.mountinfoPath())
	}
	return m, rel, nil
}
