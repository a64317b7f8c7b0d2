package fakest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/benmcclelland/mtio"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MaxRecord is the largest record that crosses the FUSE mount intact: the
// kernel splits larger writes into several requests.
const MaxRecord = 1 << 20

// Names of the files in the mount.
const (
	CtlFile = "ctl"
)

type mountState struct {
	dir    string
	server *fuse.Server
}

// Mount mounts a new drive for a test at a temporary directory and
// unmounts it when the test ends. The test is skipped when FUSE cannot be
// used here: no /dev/fuse, not root, or mounting not permitted.
func Mount(t testing.TB, opts Options) *Drive {
	t.Helper()
	return MountDrives(t, 1, opts)[0]
}

// MountDrives mounts n drives that share one shelf of cartridges
// (NewDrives), each at a temporary directory of its own, for a test, and
// unmounts them when it ends. It skips the test as Mount does.
func MountDrives(t testing.TB, n int, opts Options) []*Drive {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("fakest: no /dev/fuse (%v): the FUSE tape drive needs it", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("fakest: not root: the FUSE tape drive mounts without fusermount, which needs root")
	}
	drives := NewDrives(n, opts)
	for i, d := range drives {
		dir := filepath.Join(t.TempDir(), "tape")
		if n > 1 {
			dir += strconv.Itoa(i)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := d.Mount(dir); err != nil {
			if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
				t.Skipf("fakest: mounting FUSE is not permitted here: %v", err)
			}
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Unmount(); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	return drives
}

// Mount mounts the drive at dir (which must exist) as the files nst0, st0
// and ctl. It needs root and /dev/fuse. Call Unmount when done; a process
// killed while mounted leaves a stale mount (umount -l DIR).
func (d *Drive) Mount(dir string) error {
	d.mu.Lock()
	if d.mount != nil {
		d.mu.Unlock()
		return fmt.Errorf("fakest: already mounted at %s", d.mount.dir)
	}
	d.shutdown = false
	d.mu.Unlock()
	root := &rootNode{d: d}
	var noCache time.Duration
	server, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			MaxWrite:          MaxRecord,
			FsName:            "fakest",
			Name:              "fakest",
			DisableXAttrs:     true,
		},
		AttrTimeout:  &noCache,
		EntryTimeout: &noCache,
	})
	if err != nil {
		return fmt.Errorf("fakest: mount FUSE at %s: %w", dir, err)
	}
	d.mu.Lock()
	d.mount = &mountState{dir: dir, server: server}
	d.mu.Unlock()
	return nil
}

// Unmount wakes stalled writers and unmounts the drive.
func (d *Drive) Unmount() error {
	d.mu.Lock()
	m := d.mount
	d.mount = nil
	d.shutdown = true
	d.cond.Broadcast()
	d.mu.Unlock()
	if m == nil {
		return nil
	}
	if err := m.server.Unmount(); err != nil {
		// Something still has a file open (a test that failed early). A
		// process cannot exit while it holds a file of a FUSE mount it
		// serves itself (close waits for its own answer), so abort the
		// connection (MNT_FORCE does for FUSE) and detach the mount.
		ferr := syscall.Unmount(m.dir, syscall.MNT_FORCE)
		derr := syscall.Unmount(m.dir, syscall.MNT_DETACH)
		if derr != nil && ferr != nil {
			return fmt.Errorf("fakest: unmount %s: %v; forced: %v; lazy: %v (clean up with umount -l %s)", m.dir, err, ferr, derr, m.dir)
		}
		return fmt.Errorf("fakest: unmount %s: %w (a file was still open; the connection was aborted and the mount detached)", m.dir, err)
	}
	return nil
}

// Dir returns the mount directory, "" when not mounted.
func (d *Drive) Dir() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mount == nil {
		return ""
	}
	return d.mount.dir
}

// Path returns the path of a file in the mount: NST0, ST0 or CtlFile.
func (d *Drive) Path(name string) string { return filepath.Join(d.Dir(), name) }

type rootNode struct {
	fs.Inode
	d *Drive
}

var _ fs.NodeOnAdder = (*rootNode)(nil)

func (r *rootNode) OnAdd(ctx context.Context) {
	for _, dev := range []string{NST0, ST0} {
		ch := r.NewPersistentInode(ctx, &tapeNode{d: r.d, dev: dev}, fs.StableAttr{Mode: syscall.S_IFREG})
		r.AddChild(dev, ch, false)
	}
	ch := r.NewPersistentInode(ctx, &ctlNode{d: r.d}, fs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild(CtlFile, ch, false)
}

// tapeNode is nst0 or st0.
type tapeNode struct {
	fs.Inode
	fileAttrs
	d   *Drive
	dev string
}

var (
	_ fs.NodeOpener    = (*tapeNode)(nil)
	_ fs.NodeGetattrer = (*tapeNode)(nil)
	_ fs.NodeSetattrer = (*tapeNode)(nil)
)

// fileAttrs makes a node a 0666 regular file without a size, and accepts
// attribute changes without doing anything (shells and dd open with
// O_TRUNC, which FUSE turns into a setattr).
type fileAttrs struct{}

func (fileAttrs) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o666
	return 0
}

func (fileAttrs) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o666
	return 0
}

func (n *tapeNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, e := n.d.open(n.dev, int(flags), tgidOf(callerPid(ctx)))
	if e != 0 {
		return nil, 0, e
	}
	return &tapeFile{h: h}, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE, 0
}

// tapeFile is one open of nst0 or st0.
type tapeFile struct {
	h *Handle
}

var (
	_ fs.FileReader   = (*tapeFile)(nil)
	_ fs.FileWriter   = (*tapeFile)(nil)
	_ fs.FileFlusher  = (*tapeFile)(nil)
	_ fs.FileReleaser = (*tapeFile)(nil)
	_ fs.FileIoctler  = (*tapeFile)(nil)
)

func (f *tapeFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, e := f.h.d.read(f.h, dest)
	if e != 0 {
		return nil, e
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *tapeFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, e := f.h.d.write(f.h, data)
	return uint32(n), e
}

// Flush runs inside close(2). Only a close by the process that opened the
// drive acts (a filemark after writing): another process closing an
// inherited copy, as every fork+exec does with close-on-exec descriptors,
// must not, just as st acts only on the last close of the open file.
func (f *tapeFile) Flush(ctx context.Context) syscall.Errno {
	if f.h.owner != 0 {
		if pid := callerPid(ctx); pid != 0 && tgidOf(pid) != f.h.owner {
			return 0
		}
	}
	d := f.h.d
	d.mu.Lock()
	d.flushLocked(f.h)
	d.mu.Unlock()
	return 0
}

// Release is the last close of the open file (st_release): the rewind of
// st0, and the drive is free for the next open.
func (f *tapeFile) Release(ctx context.Context) syscall.Errno {
	d := f.h.d
	d.mu.Lock()
	d.releaseLocked(f.h)
	d.mu.Unlock()
	return 0
}

func (f *tapeFile) Ioctl(ctx context.Context, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	switch cmd {
	case mtio.MTIOCTOP:
		if len(input) < 8 {
			return 0, syscall.EINVAL
		}
		op := int16(binary.LittleEndian.Uint16(input[0:2]))
		count := int32(binary.LittleEndian.Uint32(input[4:8]))
		return 0, f.h.d.op(f.h, op, count)
	case mtio.MTIOCGET:
		if len(output) < 48 {
			return 0, syscall.EINVAL
		}
		g, e := f.h.d.status(f.h)
		if e != 0 {
			return 0, e
		}
		le := binary.LittleEndian
		le.PutUint64(output[0:], uint64(g.Type))
		le.PutUint64(output[8:], uint64(g.ResID))
		le.PutUint64(output[16:], uint64(g.DsReg))
		le.PutUint64(output[24:], uint64(g.GStat))
		le.PutUint64(output[32:], uint64(g.ErReg))
		le.PutUint32(output[40:], uint32(g.FileNo))
		le.PutUint32(output[44:], uint32(g.BlkNo))
		return 0, 0
	case mtio.MTIOCPOS:
		if len(output) < 8 {
			return 0, syscall.EINVAL
		}
		p, e := f.h.d.position(f.h)
		if e != 0 {
			return 0, e
		}
		binary.LittleEndian.PutUint64(output, uint64(p))
		return 0, 0
	}
	return 0, syscall.ENOTTY
}

// ctlNode takes operator commands, one per write:
//
//	insert NAME    put cartridge NAME into the empty drive (it loads)
//	eject          press the eject button (rewind and unload)
//	remove         take the ejected cartridge out
//
// A command that cannot be done fails the write with EBUSY (ENOENT for an
// unknown cartridge) and the reason is logged.
type ctlNode struct {
	fs.Inode
	fileAttrs
	d *Drive
}

var (
	_ fs.NodeOpener    = (*ctlNode)(nil)
	_ fs.NodeGetattrer = (*ctlNode)(nil)
	_ fs.NodeSetattrer = (*ctlNode)(nil)
	_ fs.NodeWriter    = (*ctlNode)(nil)
	_ fs.NodeReader    = (*ctlNode)(nil)
)

func (n *ctlNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE, 0
}

// Read returns the drive's state: "NAME loaded", "NAME ejected" or "empty".
func (n *ctlNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	name, loaded := n.d.Loaded()
	s := "empty\n"
	switch {
	case name != "" && loaded:
		s = name + " loaded\n"
	case name != "":
		s = name + " ejected\n"
	}
	if off >= int64(len(s)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData([]byte(s[off:])), 0
}

func (n *ctlNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	cmd := strings.Fields(string(data))
	var err error
	switch {
	case len(cmd) == 2 && cmd[0] == "insert":
		err = n.d.Insert(cmd[1])
		if err != nil && n.d.Cartridge(cmd[1]) == nil {
			n.d.log.Warn("fakest: ctl", "command", strings.Join(cmd, " "), "err", err)
			return 0, syscall.ENOENT
		}
	case len(cmd) == 1 && cmd[0] == "eject":
		err = n.d.Eject()
	case len(cmd) == 1 && cmd[0] == "remove":
		_, err = n.d.Remove()
	default:
		err = fmt.Errorf("fakest: ctl: unknown command %q (insert NAME, eject, remove)", string(data))
		n.d.log.Warn("fakest: ctl", "err", err)
		return 0, syscall.EINVAL
	}
	if err != nil {
		n.d.log.Warn("fakest: ctl", "command", strings.Join(cmd, " "), "err", err)
		return 0, syscall.EBUSY
	}
	n.d.log.Info("fakest: ctl", "command", strings.Join(cmd, " "))
	return uint32(len(data)), 0
}

func callerPid(ctx context.Context) uint32 {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Caller.Pid
	}
	return 0
}

// tgidOf returns the process (thread group) of a thread: FUSE reports the
// calling thread, and a Go program closes a file on any of its threads.
func tgidOf(pid uint32) int {
	if pid == 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return int(pid)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return int(pid)
}
