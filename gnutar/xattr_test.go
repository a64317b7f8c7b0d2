package gnutar

import (
	"archive/tar"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	testAccessACL  = "user::rw-\nuser:65534:rwx\ngroup::r--\ngroup:1:r-x\nmask::rwx\nother::r--\n"
	testDefaultACL = "user::rwx\nuser:54321:r-x\ngroup::r-x\nmask::r-x\nother::r-x\n"
)

// setACL sets an ACL through our own binary encoding, so that the tests
// need no setfacl.
func setACL(t *testing.T, p, xattr, text string) {
	t.Helper()
	es, err := parseACLText(text, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, xattr, encodeACL(es), 0); err != nil {
		t.Fatalf("set %s on %s: %v", xattr, p, err)
	}
}

// attrTree makes f (xattrs and an access ACL), d (a default ACL and an
// xattr), plain (nothing) and link (a symlink to f) under dir, and
// returns the records ReadAttrs must give for each.
func attrTree(t *testing.T, dir string) map[string]map[string]string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f, d := filepath.Join(dir, "f"), filepath.Join(dir, "d")
	must(os.WriteFile(f, []byte("data"), 0o644))
	must(os.Mkdir(d, 0o755))
	must(os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644))
	must(os.Symlink("f", filepath.Join(dir, "link")))
	must(unix.Lsetxattr(f, "user.foo", []byte("bar"), 0))
	must(unix.Lsetxattr(f, "user.bin", []byte("\x00\x01\xff\n="), 0))
	must(unix.Lsetxattr(d, "user.dirattr", []byte("x"), 0))
	setACL(t, f, xattrACLAccess, testAccessACL)
	setACL(t, d, xattrACLDefault, testDefaultACL)
	return map[string]map[string]string{
		"f": {
			"SCHILY.xattr.user.foo": "bar",
			"SCHILY.xattr.user.bin": "\x00\x01\xff\n=",
			PAXACLAccess:            testAccessACL,
		},
		"d": {
			"SCHILY.xattr.user.dirattr": "x",
			PAXACLDefault:               testDefaultACL,
		},
		"plain": nil,
		"link":  nil,
	}
}

func checkAttrs(t *testing.T, dir string, want map[string]map[string]string) {
	t.Helper()
	for name, w := range want {
		got, err := ReadAttrs(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("ReadAttrs(%s): %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: ReadAttrs = %q, want %q", filepath.Join(dir, name), got, w)
		}
	}
}

// checkGetfacl compares getfacl's numeric output with our ACL text.
func checkGetfacl(t *testing.T, p, flag, want string) {
	t.Helper()
	out := run(t, "", "getfacl", "-cnE"+flag, p)
	if strings.TrimSpace(out) != strings.TrimSpace(want) {
		t.Errorf("getfacl -cnE%s %s:\n%s\nwant\n%s", flag, p, out, want)
	}
}

// TestAttrsThroughGNUTar reads attributes with ReadAttrs, archives them
// with archive/tar, extracts with the real `tar --xattrs --acls` and
// wants them all back.
func TestAttrsThroughGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	base := t.TempDir()
	needXattrs(t, base)
	src, out := filepath.Join(base, "src"), filepath.Join(base, "out")
	for _, d := range []string{src, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := attrTree(t, src)
	checkAttrs(t, src, want)
	if haveTool(t, "getfacl", "acl") {
		checkGetfacl(t, filepath.Join(src, "f"), "a", testAccessACL)
		checkGetfacl(t, filepath.Join(src, "d"), "d", testDefaultACL)
	}

	archive := filepath.Join(base, "go.tar")
	af, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(af)
	for _, name := range []string{"d", "f", "plain", "link"} {
		p := filepath.Join(src, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		link, _ := os.Readlink(p)
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			t.Fatal(err)
		}
		hdr.Name, hdr.Format = name, tar.FormatPAX
		if hdr.PAXRecords, err = ReadAttrs(p); err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if _, err := tw.Write(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}

	run(t, out, tarPath, "--xattrs", "--xattrs-include=*", "--acls", "-xpf", archive)
	checkAttrs(t, out, want)
	if haveTool(t, "getfacl", "acl") {
		checkGetfacl(t, filepath.Join(out, "f"), "a", testAccessACL)
		checkGetfacl(t, filepath.Join(out, "d"), "d", testDefaultACL)
	}
	if haveTool(t, "getfattr", "attr") {
		got := run(t, out, "getfattr", "--absolute-names", "-e", "hex", "-n", "user.bin", filepath.Join(out, "f"))
		if !strings.Contains(got, "user.bin=0x0001ff0a3d") {
			t.Errorf("getfattr user.bin: %s", got)
		}
	}
}

// TestApplyAttrsFromGNUTar archives attributes with the real
// `tar --acls --xattrs` (which writes ACL qualifiers as names when they
// resolve) and applies its records with ApplyAttrs on fresh files.
func TestApplyAttrsFromGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	base := t.TempDir()
	needXattrs(t, base)
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := attrTree(t, src)
	if haveTool(t, "setfacl", "acl") {
		// An ACL set by setfacl itself, by name, reads back numerically.
		p := filepath.Join(src, "viasetfacl")
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		run(t, "", "setfacl", "-m", "u:nobody:r--,g:daemon:rw-,g:54321:r--", p)
		want["viasetfacl"] = map[string]string{PAXACLAccess: "user::rw-\nuser:65534:r--\ngroup::r--\ngroup:1:rw-\ngroup:54321:r--\nmask::rw-\nother::---\n"}
	}
	checkAttrs(t, src, want)

	archive := filepath.Join(base, "gnu.tar")
	run(t, src, tarPath, "--format=posix", "--acls", "--xattrs", "-cf", archive, ".")
	af, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	applied := 0
	for _, e := range readTar(t, af) {
		name := strings.TrimSuffix(strings.TrimPrefix(e.hdr.Name, "./"), "/")
		if _, ok := want[name]; !ok {
			continue
		}
		p := filepath.Join(dst, name)
		var err error
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			err = os.Mkdir(p, 0o755)
		case tar.TypeReg:
			err = os.WriteFile(p, nil, os.FileMode(e.hdr.Mode).Perm())
		case tar.TypeSymlink:
			err = os.Symlink(e.hdr.Linkname, p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ApplyAttrs(p, e.hdr.PAXRecords); err != nil {
			t.Errorf("ApplyAttrs(%s): %v", name, err)
		}
		applied++
	}
	if applied != len(want) {
		t.Fatalf("applied %d entries, want %d", applied, len(want))
	}
	checkAttrs(t, dst, want)
}

func TestApplyAttrsErrorsAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	needXattrs(t, dir)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Text wins over the raw ACL xattr GNU tar also stores; keys that are
	// not SCHILY.xattr.* or SCHILY.acl.* are ignored.
	raw, _ := parseACLText("user::rw-,user:7:r--,group::r--,mask::r--,other::---", nil)
	err := ApplyAttrs(p, map[string]string{
		PAXACLAccess:                    testAccessACL,
		PAXXattrPrefix + xattrACLAccess: string(encodeACL(raw)),
		PAXXattrPrefix + "user.ok":      "1",
		"mtime":                         "1",
		PAXDumpdir:                      "\x00",
		"SCHILY.dev":                    "5",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAttrs(t, dir, map[string]map[string]string{"f": {PAXACLAccess: testAccessACL, "SCHILY.xattr.user.ok": "1"}})

	link := filepath.Join(dir, "link")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	err = ApplyAttrs(link, map[string]string{
		PAXACLAccess:                  "user::rw-\nbogus",
		PAXXattrPrefix:                "x",
		PAXXattrPrefix + "user.nope":  "1", // user xattrs are not allowed on symlinks
		PAXXattrPrefix + "user.nope2": "1",
	})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{link, "record SCHILY.acl.access", "want tag:qualifier:perms", "names no xattr", "set user.nope from record", "set user.nope2 from record"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	checkAttrs(t, dir, map[string]map[string]string{"f": {PAXACLAccess: testAccessACL, "SCHILY.xattr.user.ok": "1"}})
}

func TestReadAttrsMissingFile(t *testing.T) {
	_, err := ReadAttrs(filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "none") {
		t.Fatalf("error = %v, want one naming the file", err)
	}
}

// TestReadAttrsByDescriptor: ReadAttrsFile reads the open file's
// attributes and ReadAttrsAt an entry's own, never following it when it is
// a symlink; a name that is not one directory entry is refused.
func TestReadAttrsByDescriptor(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(f, "user.tapir", []byte("v"), 0); err != nil {
		t.Fatalf("user xattrs not supported here: %v", err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := "v"
	if got, err := ReadAttrsAt(d, "f"); err != nil || got[PAXXattrPrefix+"user.tapir"] != want {
		t.Errorf("ReadAttrsAt(f) = %v, %v", got, err)
	}
	if got, err := ReadAttrsAt(d, "link"); err != nil || got[PAXXattrPrefix+"user.tapir"] != "" {
		t.Errorf("ReadAttrsAt(link) = %v, %v; want the symlink's own (none)", got, err)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := ReadAttrsAt(d, bad); err == nil {
			t.Errorf("ReadAttrsAt(%q) accepted", bad)
		}
	}
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if got, err := ReadAttrsFile(fh); err != nil || got[PAXXattrPrefix+"user.tapir"] != want {
		t.Errorf("ReadAttrsFile = %v, %v", got, err)
	}
}
