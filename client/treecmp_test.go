package client

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/gnutar"
)

// treeState describes every entry under a root the way a restore must
// reproduce it: type, permissions, size, content hash, mtime (ns), link
// target, owner, device numbers, xattrs and ACLs. Directory mtimes are
// included; the root's own metadata is not (a restore target exists).
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		var b strings.Builder
		b.WriteString(fi.Mode().String())
		b.WriteString(" " + fi.ModTime().UTC().Format("2006-01-02T15:04:05.000000000"))
		b.WriteString(" " + itoa(int64(st.Uid)) + ":" + itoa(int64(st.Gid)))
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			b.WriteString(" size=" + itoa(fi.Size()) + " sha=" + hex.EncodeToString(h.Sum(nil))[:16])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		case fi.Mode()&fs.ModeDevice != 0:
			b.WriteString(" rdev=" + itoa(int64(st.Rdev)))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			attrs, _ := gnutar.ReadAttrs(p)
			keys := make([]string, 0, len(attrs))
			for k := range attrs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b.WriteString(" " + k + "=" + hex.EncodeToString([]byte(attrs[k])))
			}
		}
		out[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: %q missing", what, k)
			bad++
		case g != w:
			t.Errorf("%s: %q differs:\n want %s\n got  %s", what, k, w, g)
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %q should not be there", what, k)
		}
	}
}
