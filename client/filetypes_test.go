package client

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/recover"
)

// makeEveryKind writes one of every kind of file the agent must store
// faithfully, and returns whether device nodes could be made (root only).
func makeEveryKind(t *testing.T, root string) {
	t.Helper()
	mt := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	put := func(rel, content string, mode os.FileMode) string {
		p := filepath.Join(root, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), mode))
		must(t, os.Chmod(p, mode))
		must(t, os.Chtimes(p, mt, mt))
		return p
	}
	put("plain.txt", "plain", 0o644)
	put("setuid", "#!/bin/sh\n", 0o4755|os.ModeSetuid)
	must(t, os.Chmod(filepath.Join(root, "setuid"), 0o755|os.ModeSetuid|os.ModeSetgid))
	must(t, os.MkdirAll(filepath.Join(root, "sticky"), 0o755))
	must(t, os.Chmod(filepath.Join(root, "sticky"), 0o777|os.ModeSticky))
	must(t, os.MkdirAll(filepath.Join(root, "empty/dir"), 0o755))
	long := strings.Repeat("long-directory-name/", 8) + strings.Repeat("L", 120)
	put(long, "long name", 0o644)
	put("c255/"+strings.Repeat("c", 255), "255-byte component", 0o644)
	put("bad-utf8-\xff\xfe.txt", "not UTF-8", 0o644)
	put("utf8-Grüße-日本.txt", "UTF-8", 0o644)
	must(t, os.Symlink("plain.txt", filepath.Join(root, "symlink")))
	must(t, os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")))
	put("hard1", "linked twice", 0o644)
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "sub/hard2")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o640))
	if os.Geteuid() == 0 {
		must(t, syscall.Mknod(filepath.Join(root, "chardev"), syscall.S_IFCHR|0o600, 1<<8|3)) // like /dev/null
		must(t, syscall.Mknod(filepath.Join(root, "blockdev"), syscall.S_IFBLK|0o600, 7<<8|200))
		must(t, os.Lchown(filepath.Join(root, "plain.txt"), 1234, 5678))
	}
	// A sparse file: 64 MiB with two small data extents.
	sp, err := os.Create(filepath.Join(root, "sparse.img"))
	must(t, err)
	sp.WriteAt(bytes.Repeat([]byte("S"), 10000), 1<<20)
	sp.WriteAt(bytes.Repeat([]byte("T"), 5000), 40<<20)
	must(t, sp.Truncate(64<<20))
	sp.Close()
	// Extended attributes (user namespace; ext4 and tmpfs keep them).
	x := put("xattr.txt", "with attributes", 0o644)
	if err := syscall.Setxattr(x, "user.tapir.note", []byte("hello\x00binary"), 0); err != nil {
		t.Logf("no user xattrs on this filesystem: %v", err)
	}
	for _, p := range []string{"sparse.img", "xattr.txt", "fifo", "sub", "c255", "empty/dir", "empty", "sticky"} {
		os.Chtimes(filepath.Join(root, p), mt, mt)
	}
	for d := filepath.Dir(filepath.Join(root, long)); d != root; d = filepath.Dir(d) {
		os.Chtimes(d, mt, mt)
	}
}

// TestEveryKindRestores: a level-0 image of every kind of file extracts
// identically with GNU tar (--xattrs --acls) and with tapir's extractor,
// and the sparse file keeps its holes.
func TestEveryKindRestores(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	makeEveryKind(t, src)
	var buf bytes.Buffer
	var warns []string
	_, err := Dump(context.Background(), src, DumpOptions{Comp: image.CompZstd, FrameSize: 64 << 10},
		Sink{Payload: &buf, Warn: func(s string) { warns = append(warns, s) }})
	must(t, err)
	if len(warns) > 0 {
		t.Errorf("warnings: %q", warns)
	}
	if buf.Len() > 2<<20 {
		t.Errorf("payload is %d bytes: the 64 MiB sparse file was not stored sparse", buf.Len())
	}
	want := treeState(t, src)

	out := filepath.Join(dir, "gnutar")
	must(t, os.MkdirAll(out, 0o755))
	cmd := exec.Command("sh", "-c", "zstd -dc | tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf - -C "+out)
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar: %v\n%s", err, b)
	}
	sameTree(t, "GNU tar", want, treeState(t, out))
	checkSparse(t, filepath.Join(out, "sparse.img"))

	out2 := filepath.Join(dir, "tapir")
	r, err := image.NewStreamReader(bytes.NewReader(buf.Bytes()), image.CompZstd)
	must(t, err)
	// A host restoring its own files: device nodes and setuid bits too.
	x := &recover.Extractor{Dir: out2, Overwrite: true, SamePrivileges: true}
	_, err = x.All(tar.NewReader(r))
	must(t, err)
	sameTree(t, "tapir extractor", want, treeState(t, out2))
	checkSparse(t, filepath.Join(out2, "sparse.img"))
}

func checkSparse(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	must(t, err)
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks; blocks*512 > 1<<20 {
		t.Errorf("%s restored with %d KiB allocated for 64 MiB: holes lost", p, blocks/2)
	}
}
