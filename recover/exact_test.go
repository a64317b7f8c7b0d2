package recover

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// mtime0 is the mtime of the entries of these tests.
var mtime0 = time.Date(2026, 6, 1, 1, 2, 3, 0, time.UTC)

// allocated is how many bytes of p's blocks the file system allocated.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// sparseTar is a tar stream of one file of size bytes in GNU's pax
// sparse format 1.0, as tapir's client writes it, whose data is ext
// (each extent filled with byte fill, or zeros when fill is 0).
func sparseTar(t *testing.T, name string, size int64, ext []gnutar.Extent, fill byte) []byte {
	t.Helper()
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: mtime0}
	prefix, n, err := gnutar.SparseEntry(hdr, ext)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(prefix)
	b.Write(bytes.Repeat([]byte{fill}, int(n)))
	b.Write(make([]byte, gnutar.Pad(n)))
	b.Write(make([]byte, 1024)) // end of archive
	return b.Bytes()
}

// TestExtractorDenseStaysDense: a regular entry is written whole, zeros
// included, so that a file whose blocks were allocated comes back with
// them allocated; an entry the image stores as sparse comes back with
// holes, also where its stored data is zeros, and with its full size when
// it ends in a hole.
func TestExtractorDenseStaysDense(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if allocated(t, probe) < size {
		t.Skip("this file system does not allocate blocks written with zeros")
	}
	mixed := append(append([]byte("head"), make([]byte, size/2)...), []byte("tail")...)
	mixed = append(mixed, make([]byte, size-len(mixed))...)
	var dense bytes.Buffer
	tw := tar.NewWriter(&dense)
	for name, data := range map[string][]byte{"zeros": make([]byte, size), "mixed": mixed, "short": make([]byte, 100)} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: mtime0, Format: tar.FormatPAX})
		tw.Write(data)
	}
	tw.Close()
	to := filepath.Join(dir, "to")
	if _, err := (&Extractor{Dir: to}).All(tar.NewReader(&dense)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zeros", "mixed", "short"} {
		fi, _ := os.Stat(filepath.Join(to, name))
		if a := allocated(t, filepath.Join(to, name)); a < fi.Size() {
			t.Errorf("%s: %d of its %d bytes allocated: a dense file came back with holes", name, a, fi.Size())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(to, "mixed")); !bytes.Equal(b, mixed) {
		t.Error("mixed: the data differs")
	}

	for _, tc := range []struct {
		name string
		ext  []gnutar.Extent
		fill byte
	}{
		{"middle", []gnutar.Extent{{Offset: size / 2, Length: 4096}}, 'x'},
		{"ends-in-hole", []gnutar.Extent{{Offset: 0, Length: 4096}}, 'x'},
		// Stored data that is zeros becomes a hole too: the image said
		// the file is sparse, and where is no business of the data.
		{"zero-extent", []gnutar.Extent{{Offset: 0, Length: size / 2}, {Offset: size - 4096, Length: 4096}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := t.TempDir()
			if _, err := (&Extractor{Dir: to}).All(tar.NewReader(bytes.NewReader(sparseTar(t, "f", size, tc.ext, tc.fill)))); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(to, "f")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, size)
			for _, e := range tc.ext {
				copy(want[e.Offset:], bytes.Repeat([]byte{tc.fill}, int(e.Length)))
			}
			if !bytes.Equal(b, want) {
				t.Errorf("data differs (%d bytes, want %d)", len(b), len(want))
			}
			var data int64
			for _, e := range tc.ext {
				if tc.fill != 0 {
					data += e.Length
				}
			}
			if a := allocated(t, p); a > data+64<<10 {
				t.Errorf("%d bytes allocated for %d of data: the holes were written", a, data)
			}
		})
	}
}

// TestExtractorGNUTarSparseFormats: real GNU tar archives of a dense file
// of zeros and of a file with holes, in each of GNU's sparse formats
// (pax 0.0, 0.1, 1.0 and the old GNU 'S' type): the dense one comes back
// dense, the sparse one sparse, both byte for byte.
func TestExtractorGNUTarSparseFormats(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("GNU tar is not installed")
	}
	const size = 1 << 20
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "zeros"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if allocated(t, filepath.Join(src, "zeros")) < size {
		t.Skip("this file system does not allocate blocks written with zeros")
	}
	f, err := os.Create(filepath.Join(src, "holes"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("data"), size/2)
	f.Truncate(size)
	f.Close()
	holes, _ := os.ReadFile(filepath.Join(src, "holes"))
	for _, args := range [][]string{
		{"--format=posix", "--sparse-version=0.0"},
		{"--format=posix", "--sparse-version=0.1"},
		{"--format=posix", "--sparse-version=1.0"},
		{"--format=gnu"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, stderr bytes.Buffer
			cmd := exec.Command("tar", append(append([]string{"-c", "--sparse"}, args...), "-f", "-", "-C", src, "zeros", "holes")...)
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("tar: %v\n%s", err, stderr.String())
			}
			to := t.TempDir()
			if _, err := (&Extractor{Dir: to}).All(tar.NewReader(&out)); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(to, "zeros")); !bytes.Equal(b, make([]byte, size)) {
				t.Error("zeros: data differs")
			}
			if a := allocated(t, filepath.Join(to, "zeros")); a < size {
				t.Errorf("zeros: %d bytes allocated of %d", a, size)
			}
			if b, _ := os.ReadFile(filepath.Join(to, "holes")); !bytes.Equal(b, holes) {
				t.Error("holes: data differs")
			}
			if a := allocated(t, filepath.Join(to, "holes")); a >= size/2 {
				t.Errorf("holes: %d bytes allocated of %d: its holes were written", a, size)
			}
		})
	}
}

// dirAttrs are the xattrs of p that a restore manages (pruneAttrs), as
// name=value, sorted.
func dirAttrs(t *testing.T, p string, trusted bool) []string {
	t.Helper()
	names, err := listxattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, "user.") && !strings.HasPrefix(n, "system.posix_acl_") && !(trusted && strings.HasPrefix(n, "trusted.")) {
			continue
		}
		v := make([]byte, 4096)
		k, err := unix.Lgetxattr(p, n, v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n+"="+string(v[:k]))
	}
	sort.Strings(out)
	return out
}

func listxattrs(p string) ([]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names, nil
}

// attrPool is what a directory entry may carry: user xattrs, trusted
// ones, and the two ACLs in GNU tar's text form.
var attrPool = []struct{ key, val string }{
	{gnutar.PAXXattrPrefix + "user.a", "1"},
	{gnutar.PAXXattrPrefix + "user.b", "2"},
	{gnutar.PAXXattrPrefix + "user.c", ""},
	{gnutar.PAXXattrPrefix + "trusted.t", "t"},
	{gnutar.PAXACLAccess, "user::rwx,user:65534:r-x,group::r-x,mask::r-x,other::r-x"},
	{gnutar.PAXACLDefault, "user::rwx,group::r-x,group:65534:rwx,mask::rwx,other::---"},
}

// dirImage is the tar stream of one directory entry "d" (with a listing
// when listed) carrying the attributes of attrPool whose bit is set in
// set, and a value that differs by level.
func dirImage(set uint, level int, listed bool) []byte {
	recs := map[string]string{}
	for i, a := range attrPool {
		if set&(1<<i) != 0 {
			v := a.val
			if strings.HasPrefix(a.key, gnutar.PAXXattrPrefix) {
				v += fmt.Sprint(level)
			}
			recs[a.key] = v
		}
	}
	if listed {
		recs[gnutar.PAXDumpdir] = gnutar.EncodeDumpdir(nil)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime0, PAXRecords: recs, Format: tar.FormatPAX})
	tw.Close()
	return b.Bytes()
}

// TestExtractorDirAttrsFollowNewestImage is a property: for any
// attributes a directory has in a full and in an incremental, a chain
// restore leaves it with exactly the incremental's (those it manages:
// user.*, the ACLs, and trusted.* with SamePrivileges), as if the
// incremental alone had been restored into an empty directory. An entry
// without a listing, or a restore that is not of a chain, removes
// nothing.
func TestExtractorDirAttrsFollowNewestImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("trusted.* xattrs need root")
	}
	probe := t.TempDir()
	if err := unix.Setxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs on this file system: %v", err)
	}
	rng := rand.New(rand.NewPCG(19, 1))
	all := uint(1)<<len(attrPool) - 1
	for i := range 60 {
		full, incr := uint(rng.IntN(int(all+1))), uint(rng.IntN(int(all+1)))
		if i == 0 {
			full, incr = all, 0 // everything removed
		}
		same := rng.IntN(2) == 0
		restore := func(incremental, listed bool) string {
			to := t.TempDir()
			x := &Extractor{Dir: to, Incremental: incremental, Overwrite: true, SamePrivileges: same}
			for lvl, set := range []uint{full, incr} {
				if _, err := x.All(tar.NewReader(bytes.NewReader(dirImage(set, lvl, listed)))); err != nil {
					t.Fatalf("full %06b, incremental %06b: %v", full, incr, err)
				}
			}
			return filepath.Join(to, "d")
		}
		alone := t.TempDir()
		if _, err := (&Extractor{Dir: alone, SamePrivileges: same}).All(tar.NewReader(bytes.NewReader(dirImage(incr, 1, true)))); err != nil {
			t.Fatal(err)
		}
		want := dirAttrs(t, filepath.Join(alone, "d"), same)
		if got := dirAttrs(t, restore(true, true), same); !equal(got, want) {
			t.Errorf("full %06b, incremental %06b, same privileges %v: the directory has\n%q\nwant\n%q", full, incr, same, got, want)
		}
		// Without a listing, or outside a chain, nothing is removed:
		// what the full set stays unless the incremental sets it anew.
		for _, c := range []struct{ incremental, listed bool }{{true, false}, {false, true}} {
			got := dirAttrs(t, restore(c.incremental, c.listed), same)
			for _, a := range keys(full & ^incr, same) {
				if !containsName(got, a) {
					t.Errorf("full %06b, incremental %06b (incremental %v, listing %v): %s was removed", full, incr, c.incremental, c.listed, a)
				}
			}
		}
	}
}

// keys are the xattr names the bits of set in attrPool stand for.
func keys(set uint, trusted bool) []string {
	var out []string
	for i, a := range attrPool {
		if set&(1<<i) == 0 {
			continue
		}
		switch a.key {
		case gnutar.PAXACLAccess:
			out = append(out, "system.posix_acl_access")
		case gnutar.PAXACLDefault:
			out = append(out, "system.posix_acl_default")
		default:
			n := strings.TrimPrefix(a.key, gnutar.PAXXattrPrefix)
			if trusted || !strings.HasPrefix(n, "trusted.") {
				out = append(out, n)
			}
		}
	}
	return out
}

func containsName(attrs []string, name string) bool {
	for _, a := range attrs {
		if strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestExtractorKeepsSecurityXattrs: a chain restore never removes a
// security.* xattr from a directory (the target's own label), nor a
// trusted.* one unless it restores the image's privileges.
func TestExtractorKeepsSecurityXattrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("security.* and trusted.* xattrs need root")
	}
	to := t.TempDir()
	if err := os.Mkdir(filepath.Join(to, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(to, "d")
	err := unix.Setxattr(d, "security.tapirtest", []byte("host"), 0)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) {
		t.Skipf("cannot set a security.* xattr here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(d, "trusted.host", []byte("host"), 0); err != nil {
		t.Fatal(err)
	}
	x := &Extractor{Dir: to, Incremental: true, Overwrite: true}
	if _, err := x.All(tar.NewReader(bytes.NewReader(dirImage(0, 1, true)))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"security.tapirtest", "trusted.host"} {
		if _, err := unix.Getxattr(d, n, make([]byte, 64)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	x.SamePrivileges = true
	if _, err := x.All(tar.NewReader(bytes.NewReader(dirImage(0, 1, true)))); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Getxattr(d, "security.tapirtest", make([]byte, 64)); err != nil {
		t.Errorf("security.tapirtest with SamePrivileges: %v", err)
	}
	if _, err := unix.Getxattr(d, "trusted.host", make([]byte, 64)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("trusted.host with SamePrivileges: %v, want it removed", err)
	}
}

// TestExtractorPruneStaysInside: the removal of a directory's stale
// attributes in a chain never reaches a directory outside the target
// (the sentinel directories outside carry user xattrs and ACLs, and the
// arena's snapshot, ctime included, catches any change), whatever a
// hostile chain plants first: a symlink where a directory comes later,
// names through such a symlink or out with "..". The target's own
// attributes stay unless TargetMeta.
func TestExtractorPruneStaysInside(t *testing.T) {
	needTools(t, "setfacl")
	for _, meta := range []bool{false, true} {
		for _, over := range []bool{false, true} {
			t.Run(fmt.Sprintf("overwrite=%v,targetmeta=%v", over, meta), func(t *testing.T) {
				parent := t.TempDir()
				for _, d := range []string{"sentinel", "sentinel/sub"} {
					p := filepath.Join(parent, d)
					if err := os.MkdirAll(p, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := unix.Setxattr(p, "user.outside", []byte("keep"), 0); err != nil {
						t.Skipf("no user xattrs here: %v", err)
					}
					if out, err := exec.Command("setfacl", "-m", "u:65534:rx", "-d", "-m", "u:65534:r", p).CombinedOutput(); err != nil {
						t.Fatalf("setfacl: %v\n%s", err, out)
					}
				}
				target := filepath.Join(parent, "target")
				if err := os.Mkdir(target, 0o750); err != nil {
					t.Fatal(err)
				}
				if err := unix.Setxattr(target, "user.mine", []byte("mine"), 0); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, parent, target)
				listed := func(e tent) tent {
					if e.Hdr.PAXRecords == nil {
						e.Hdr.PAXRecords = map[string]string{}
					}
					e.Hdr.PAXRecords[gnutar.PAXDumpdir] = gnutar.EncodeDumpdir(nil)
					return e
				}
				images := [][]byte{
					mkTar(t, symlink("s", "../sentinel"), symlink("abs", parent+"/sentinel"), symlink("up", "..")),
					mkTar(t, listed(dir("s/sub", 0o755))),
					mkTar(t, listed(dir("up/sentinel", 0o755))),
					mkTar(t, listed(dir("../sentinel", 0o755))),
					mkTar(t, listed(dir("abs", 0o755)), listed(dir("s", 0o755))),
					mkTar(t, listed(dir(".", 0o755))),
				}
				x := &Extractor{Dir: target, Incremental: true, Overwrite: over, TargetMeta: meta}
				for _, img := range images {
					x.All(tar.NewReader(bytes.NewReader(img))) // refusals are other tests' business
				}
				after := snapshot(t, parent, target)
				for p, v := range before {
					if after[p] != v {
						t.Errorf("%s changed:\n  before %s\n  after  %s", p, v, after[p])
					}
				}
				_, err := unix.Getxattr(target, "user.mine", make([]byte, 16))
				if meta && !errors.Is(err, unix.ENODATA) {
					t.Errorf("TargetMeta: the root's entry carries no user.mine, but the target kept it (%v)", err)
				}
				if !meta && err != nil {
					t.Errorf("the target lost its own user.mine: %v", err)
				}
			})
		}
	}
}

// needTools skips a test where a tool it runs is missing (scripts/test
// installs them).
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/test installs it)", tool)
		}
	}
}
