package recover

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

// Helpers for the tests of hostile images: a parent directory holding a
// sentinel tree beside the restore target, a snapshot of everything in the
// parent but the target, and tar streams built entry by entry.

// tent is one tar entry of a hand-built image.
type tent struct {
	hdr  tar.Header
	data string
}

func reg(name, data string, mode int64) tent {
	return tent{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: testMtime}, data: data}
}

func dir(name string, mode int64) tent {
	return tent{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: testMtime}}
}

// dumpdir is a directory entry with a GNU.dumpdir listing.
func dumpdir(name string, entries ...gnutar.DirEntry) tent {
	d := dir(name, 0o755)
	d.hdr.PAXRecords = map[string]string{gnutar.PAXDumpdir: gnutar.EncodeDumpdir(entries)}
	return d
}

func symlink(name, to string) tent {
	return tent{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777, ModTime: testMtime}}
}

func hardlink(name, to string) tent {
	return tent{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to, ModTime: testMtime}}
}

func node(name string, typ byte, major, minor int64) tent {
	return tent{hdr: tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: testMtime}}
}

// withXattrs adds SCHILY.xattr records.
func withXattrs(e tent, kv ...string) tent {
	if e.hdr.PAXRecords == nil {
		e.hdr.PAXRecords = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		e.hdr.PAXRecords[gnutar.PAXXattrPrefix+kv[i]] = kv[i+1]
	}
	return e
}

var testMtime = time.Date(2025, 6, 7, 1, 2, 3, 0, time.UTC)

// mkTar returns the tar stream of the entries (pax format, as tapir's
// client writes).
func mkTar(t testing.TB, entries ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar entry %q: %v", h.Name, err)
		}
		if e.data != "" {
			tw.Write([]byte(e.data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// arena is a temporary parent directory with a sentinel tree and the
// restore target in it.
type arena struct {
	parent, target string
	before         map[string]string
	targetStat     unix.Stat_t
}

// newArena builds parent/{victim, sentinel/{file, sub/deep, link}, target/}.
// The target is mode 0750. pre puts a file of its own in the target.
func newArena(t testing.TB, pre bool) *arena {
	t.Helper()
	parent := t.TempDir()
	a := &arena{parent: parent, target: filepath.Join(parent, "target")}
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
	must(os.Mkdir(a.target, 0o750))
	must(os.Chmod(a.target, 0o750))
	if pre {
		must(os.WriteFile(filepath.Join(a.target, "mine"), []byte("mine\n"), 0o644))
	}
	a.before = snapshot(t, parent, a.target)
	must(unix.Lstat(a.target, &a.targetStat))
	t.Cleanup(func() { unlock(a.target) })
	return a
}

// unlock makes every directory under dir writable again, so that the
// test's cleanup can remove what an image made read-only.
func unlock(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}

// check fails the test if anything outside the target was created,
// changed or removed, or if the target is no longer the same directory
// (with its own mode and owner unless targetMeta).
func (a *arena) check(t testing.TB, targetMeta bool) {
	t.Helper()
	after := snapshot(t, a.parent, a.target)
	var diffs []string
	for p, v := range a.before {
		if w, ok := after[p]; !ok {
			diffs = append(diffs, "removed: "+p)
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("changed: %s\n    before %s\n    after  %s", p, v, w))
		}
	}
	for p := range after {
		if _, ok := a.before[p]; !ok {
			diffs = append(diffs, "created: "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("outside the target %s:\n%s", a.target, strings.Join(diffs, "\n"))
	}
	var st unix.Stat_t
	if err := unix.Lstat(a.target, &st); err != nil {
		t.Fatalf("the target is gone: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("the target is no longer a directory: mode %o", st.Mode)
	}
	if st.Ino != a.targetStat.Ino || st.Dev != a.targetStat.Dev {
		t.Errorf("the target was replaced (inode %d, was %d)", st.Ino, a.targetStat.Ino)
	}
	if !targetMeta && (st.Mode != a.targetStat.Mode || st.Uid != a.targetStat.Uid || st.Gid != a.targetStat.Gid) {
		t.Errorf("the target's mode or owner changed: %o %d:%d, was %o %d:%d", st.Mode, st.Uid, st.Gid, a.targetStat.Mode, a.targetStat.Uid, a.targetStat.Gid)
	}
}

// snapshot describes every path under root (root included) except the
// subtree at skip: type, mode, owner, size, links, mtime, ctime, content,
// symlink target and xattrs. ctime catches any change to an inode.
func snapshot(t testing.TB, root, skip string) map[string]string {
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

func isRoot() bool { return os.Geteuid() == 0 }

func fileMode(t testing.TB, p string) (os.FileMode, bool) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, false
	}
	return fi.Mode(), true
}
