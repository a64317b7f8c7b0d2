package recovertest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// Entry is one tar entry of a hand-built image.
type Entry struct {
	Hdr  tar.Header
	Data string
}

func Reg(name, data string, mode int64) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: Mtime}, Data: data}
}

func Dir(name string, mode int64) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: Mtime}}
}

// Dumpdir is a directory entry with a GNU.dumpdir listing.
func Dumpdir(name string, entries ...gnutar.DirEntry) Entry {
	d := Dir(name, 0o755)
	d.Hdr.PAXRecords = map[string]string{gnutar.PAXDumpdir: gnutar.EncodeDumpdir(entries)}
	return d
}

func Symlink(name, to string) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777, ModTime: Mtime}}
}

func Hardlink(name, to string) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to, ModTime: Mtime}}
}

func Node(name string, typ byte, major, minor int64) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: Mtime}}
}

// WithXattrs adds SCHILY.xattr records.
func WithXattrs(e Entry, kv ...string) Entry {
	if e.Hdr.PAXRecords == nil {
		e.Hdr.PAXRecords = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		e.Hdr.PAXRecords[gnutar.PAXXattrPrefix+kv[i]] = kv[i+1]
	}
	return e
}

// Mtime is the modification time of every hand-built entry.
var Mtime = time.Date(2025, 6, 7, 1, 2, 3, 0, time.UTC)

// Tar returns the tar stream of the entries (pax format, as tapir's
// client writes).
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar entry %q: %v", h.Name, err)
		}
		if e.Data != "" {
			tw.Write([]byte(e.Data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Arena is a temporary parent directory with a sentinel tree and the
// restore target in it.
type Arena struct {
	Parent, Target string
	Before         map[string]string
	TargetStat     unix.Stat_t
}

// NewArena builds parent/{victim, sentinel/{file, sub/deep, link}, target/}.
// The sentinel directories carry a user.sentinel xattr (where the file
// system keeps them). The target is mode 0750. pre puts a file of its own in the target.
func NewArena(t testing.TB, pre bool) *Arena {
	t.Helper()
	parent := t.TempDir()
	a := &Arena{Parent: parent, Target: filepath.Join(parent, "target")}
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(parent, "victim"), []byte("precious\n"), 0o644))
	must(os.MkdirAll(filepath.Join(parent, "sentinel", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(parent, "sentinel", "file"), []byte("sentinel\n"), 0o600))
	must(os.WriteFile(filepath.Join(parent, "sentinel", "sub", "deep"), []byte("deep\n"), 0o640))
	must(os.Symlink("file", filepath.Join(parent, "sentinel", "link")))
	// Attributes a chain restore would remove from a directory of its
	// own (Extractor.pruneAttrs), where the file system keeps them: the
	// snapshot sees them go.
	for _, d := range []string{"sentinel", "sentinel/sub"} {
		_ = unix.Setxattr(filepath.Join(parent, d), "user.sentinel", []byte("keep"), 0)
	}
	must(os.Mkdir(a.Target, 0o750))
	must(os.Chmod(a.Target, 0o750))
	if pre {
		must(os.WriteFile(filepath.Join(a.Target, "mine"), []byte("mine\n"), 0o644))
	}
	a.Before = Snapshot(t, parent, a.Target)
	must(unix.Lstat(a.Target, &a.TargetStat))
	t.Cleanup(func() { Unlock(a.Target) })
	return a
}

// Unlock makes every directory under dir writable again, so that the
// test's cleanup can remove what an image made read-only.
func Unlock(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}

// Check fails the test if anything outside the target was created,
// changed or removed, or if the target is no longer the same directory
// (with its own mode and owner unless targetMeta).
func (a *Arena) Check(t testing.TB, targetMeta bool) {
	t.Helper()
	after := Snapshot(t, a.Parent, a.Target)
	var diffs []string
	for p, v := range a.Before {
		if w, ok := after[p]; !ok {
			diffs = append(diffs, "removed: "+p)
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("changed: %s\n    before %s\n    after  %s", p, v, w))
		}
	}
	for p := range after {
		if _, ok := a.Before[p]; !ok {
			diffs = append(diffs, "created: "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("outside the target %s:\n%s", a.Target, strings.Join(diffs, "\n"))
	}
	var st unix.Stat_t
	if err := unix.Lstat(a.Target, &st); err != nil {
		t.Fatalf("the target is gone: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("the target is no longer a directory: mode %o", st.Mode)
	}
	if st.Ino != a.TargetStat.Ino || st.Dev != a.TargetStat.Dev {
		t.Errorf("the target was replaced (inode %d, was %d)", st.Ino, a.TargetStat.Ino)
	}
	if !targetMeta && (st.Mode != a.TargetStat.Mode || st.Uid != a.TargetStat.Uid || st.Gid != a.TargetStat.Gid) {
		t.Errorf("the target's mode or owner changed: %o %d:%d, was %o %d:%d", st.Mode, st.Uid, st.Gid, a.TargetStat.Mode, a.TargetStat.Uid, a.TargetStat.Gid)
	}
}

// Snapshot describes every path under root (root included) except the
// subtree at skip: type, mode, owner, size, links, mtime, ctime, content,
// symlink target and xattrs. ctime catches any change to an inode.
func Snapshot(t testing.TB, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "mode=%o uid=%d gid=%d size=%d nlink=%d mtime=%d.%09d ctime=%d.%09d rdev=%d",
			st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Rdev)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			b.WriteString(" sha=" + hex.EncodeToString(sum[:8]))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				if name == "" {
					continue
				}
				v := make([]byte, 4096)
				k, _ := unix.Lgetxattr(p, name, v)
				fmt.Fprintf(&b, " %s=%x", name, v[:max(k, 0)])
			}
		}
		out[p] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// IsRoot says whether the test runs as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// FileMode is the mode of p (not following a symlink), false if p is not there.
func FileMode(t testing.TB, p string) (os.FileMode, bool) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, false
	}
	return fi.Mode(), true
}
