package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover/recovertest"
)

// Restores on the server (tapir recover -c) of images encrypted on the
// client: the dump below is the real client's (GNU tar incremental
// semantics), its payload encrypted to an age recipient on its way to the
// holding disk, as client-side encryption does; the catalog has the
// plaintext frame list, the ciphertext's size and SHA-256, and the age
// header.

// encDump dumps root at level with the real client, encrypting the
// payload to recipients, onto the holding disk, and records it.
func encDump(t *testing.T, site *testsite.Site, ds, root string, level int, recipients []string) int64 {
	t.Helper()
	return recovertest.DumpEncrypted(t, site, ds, "h", "/data", root, level, 16<<10, recipients)
}

// encChain is an encrypted L0, L1, L2 of h:/data taped one per volume.
type encChain struct {
	tree, key string
	ids       *crypt.Identities
	rcpt      string
	cfg       *config.Config
	dumps     []int64
	vtapes    []string // the tape file of each image
}

func newEncChain(t *testing.T) *encChain {
	t.Helper()
	dir := t.TempDir()
	c := &encChain{tree: filepath.Join(dir, "tree"), key: filepath.Join(dir, "key.txt")}
	if err := testsite.MakeTree(c.tree); err != nil {
		t.Fatal(err)
	}
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := crypt.WriteIdentityFile(c.key, crypt.IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	c.rcpt = id.Recipient().String()
	if c.ids, err = crypt.ReadIdentities(c.key); err != nil {
		t.Fatal(err)
	}
	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: 4, Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for lvl, ds := range []string{"20261201010000", "20261202010000", "20261203010000"} {
		switch lvl {
		case 1:
			if err := testsite.Mutate(c.tree); err != nil {
				t.Fatal(err)
			}
		case 2:
			os.WriteFile(filepath.Join(c.tree, "home/carol/second.txt"), bytes.Repeat([]byte("level two\n"), 5000), 0o600)
			os.Remove(filepath.Join(c.tree, "home/carol/hello.txt"))
		}
		d := encDump(t, site, ds, c.tree, lvl, []string{c.rcpt})
		if _, err := site.Tape(ctx, ds[:8]+"020000", []int64{d}); err != nil {
			t.Fatal(err)
		}
		c.dumps = append(c.dumps, d)
		vt, _ := filepath.Glob(filepath.Join(site.Vtapes, fmt.Sprintf("slot%d", lvl+1), "00001.*"))
		if len(vt) != 1 {
			t.Fatalf("vtape file of level %d: %v", lvl, vt)
		}
		c.vtapes = append(c.vtapes, vt[0])
	}
	site.Close()
	cfgPath := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfgPath, testsite.DLE{Host: "h", Path: "/data"}); err != nil {
		t.Fatal(err)
	}
	if c.cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	return c
}

// describe maps every path under dir to its type, mode, size and content
// (and a symlink's target).
func describe(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			s += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			s += " -> " + l
		}
		m[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s is missing", what, p)
		} else if g != w {
			t.Errorf("%s: %s differs: %.80q, want %.80q", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s should not be there", what, p)
		}
	}
}

// TestEncryptedChainRestores: an encrypted L0, L1, L2 restores with
// tapir recover -c --all --identity and with the standard tools alone
// (dd | age -d -i KEY | zstd -dc | tar --listed-incremental=/dev/null
// -xpf -, the real age CLI), both identical to the source, deletions and
// renames applied.
func TestEncryptedChainRestores(t *testing.T) {
	c := newEncChain(t)
	want := describe(t, c.tree)
	to := filepath.Join(t.TempDir(), "to")
	res, err := Tree(context.Background(), c.cfg, TreeRequest{Host: "h", Path: "/data", To: to, Volumes: diskVolumes(t, c.cfg), Identities: c.ids}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 3 {
		t.Fatalf("chain of %d images", len(res.Chain))
	}
	sameTree(t, "tapir recover --all", want, describe(t, to))

	if _, err := exec.LookPath("age"); err != nil {
		t.Skip("the age CLI is not installed")
	}
	std := t.TempDir()
	for _, vt := range c.vtapes {
		cmd := exec.Command("bash", "-c", `set -o pipefail; dd if="$1" bs=32k skip=1 status=none | age -d -i "$2" | zstd -dc | tar --listed-incremental=/dev/null -xpf - -C "$3"`, "restore", vt, c.key, std)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s with the standard tools: %v\n%s", vt, err, out)
		}
	}
	sameTree(t, "dd | age -d | zstd -dc | tar", want, describe(t, std))
}

// TestEncryptedFileRestore: one file of an encrypted image, with the key;
// without it, or with another, a clear error naming the image and the
// keys, before any volume is read, and nothing written.
func TestEncryptedFileRestore(t *testing.T) {
	c := newEncChain(t)
	ctx := context.Background()
	to := t.TempDir()
	res, err := File(ctx, c.cfg, Request{Host: "h", Path: "/data", File: "home/carol/second.txt", To: to, Volumes: diskVolumes(t, c.cfg), Identities: c.ids}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Written)
	if want, _ := os.ReadFile(filepath.Join(c.tree, "home/carol/second.txt")); !bytes.Equal(got, want) {
		t.Fatalf("restored %d bytes, want %d", len(got), len(want))
	}

	id, _ := crypt.NewIdentity()
	other := filepath.Join(t.TempDir(), "other.txt")
	crypt.WriteIdentityFile(other, crypt.IdentityFileText(id, time.Now()))
	oids, err := crypt.ReadIdentities(other)
	if err != nil {
		t.Fatal(err)
	}
	fp := crypt.Fingerprint(c.rcpt)
	for _, tc := range []struct {
		name string
		ids  *crypt.Identities
		want []string
	}{
		{"missing", nil, []string{"level 2 image 20261203010000 of h:/data is encrypted (age, recipients " + fp + ")", "give --identity FILE"}},
		{"wrong", oids, []string{"level 2 image 20261203010000 of h:/data is encrypted to recipients " + fp, "the key in " + other + " is " + crypt.Fingerprint(id.Recipient().String())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := t.TempDir()
			// The key is refused before any volume is named or loaded:
			// with a single drive, nobody is asked for a cartridge only to
			// hear that the key does not open it.
			var asked []string
			ask := func(msg string) { asked = append(asked, msg) }
			_, err := File(ctx, c.cfg, Request{Host: "h", Path: "/data", File: "home/carol/second.txt", To: to, Volumes: diskVolumes(t, c.cfg), Identities: tc.ids, Ask: ask}, nil)
			if err == nil {
				t.Fatal("restored without the right key")
			}
			if len(asked) != 0 {
				t.Errorf("the person was told %q before the key was refused", asked)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(to); len(ents) != 0 {
				t.Errorf("the target holds %d entries", len(ents))
			}
			// --all: refused before the first image is written.
			all := filepath.Join(t.TempDir(), "all")
			_, err = Tree(ctx, c.cfg, TreeRequest{Host: "h", Path: "/data", To: all, Volumes: diskVolumes(t, c.cfg), Identities: tc.ids}, nil)
			if err == nil || !strings.Contains(err.Error(), "level 0 image 20261201010000 of h:/data is encrypted") {
				t.Errorf("--all: %v", err)
			}
			if ents, _ := os.ReadDir(all); len(ents) != 0 {
				t.Errorf("--all wrote %d entries", len(ents))
			}
		})
	}
}

// TestEncryptedFlippedCiphertext: a changed byte of the ciphertext on the
// volume: the file in that chunk fails with an error naming the image,
// and no file is left under its name; --all fails naming the image.
func TestEncryptedFlippedCiphertext(t *testing.T) {
	c := newEncChain(t)
	ctx := context.Background()
	cat, err := catalog.Open(c.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := cat.FindFile(ctx, "h", "/data", "home/carol/second.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := crypt.NewLayout(int64(len(loc.Dump.CryptHeader)), loc.Dump.PayloadSize)
	if err != nil {
		t.Fatal(err)
	}
	cat.Close()
	f := loc.Frames[len(loc.Frames)-1]
	_, _, off, _, err := l.Span(f.Offset, 1)
	if err != nil {
		t.Fatal(err)
	}
	vt := c.vtapes[2]
	fh, err := os.OpenFile(vt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	fh.ReadAt(b, image.HeaderSize+off+40)
	b[0] ^= 1
	fh.WriteAt(b, image.HeaderSize+off+40)
	fh.Close()

	to := t.TempDir()
	_, err = File(ctx, c.cfg, Request{Host: "h", Path: "/data", File: "home/carol/second.txt", To: to, Volumes: diskVolumes(t, c.cfg), Identities: c.ids}, nil)
	if err == nil {
		t.Fatal("a damaged image restored")
	}
	for _, w := range []string{"level 2 image 20261203010000 of h:/data", "authentication"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if !errors.Is(err, crypt.ErrDamaged) {
		t.Errorf("error %v is not crypt.ErrDamaged", err)
	}
	if _, err := os.Lstat(filepath.Join(to, "home/carol/second.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the damaged file was left in the target (%v)", err)
	}
	all := filepath.Join(t.TempDir(), "all")
	_, err = Tree(ctx, c.cfg, TreeRequest{Host: "h", Path: "/data", To: all, Volumes: diskVolumes(t, c.cfg), Identities: c.ids}, nil)
	if err == nil || !strings.Contains(err.Error(), "level 2 image 20261203010000") || !errors.Is(err, crypt.ErrDamaged) {
		t.Errorf("--all of a damaged chain: %v", err)
	}
}
