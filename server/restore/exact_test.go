package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/rebuild"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover/recovertest"
	"github.com/tapir-backup/tapir/taper"
)

// Restores that are exact: what a chain restore gives a directory whose
// ACLs or xattrs were removed after the full, every name of a hard-link
// set restored alone, and dense files of zeros. The images are the real
// client's (client.Dump through testsite), on vtapes.

// chainSite dumps tree at each level in turn, onto one vtape per image,
// calling before[i] (when set) before the dump of level i. It returns the
// configuration of the site.
func chainSite(t *testing.T, tree string, before ...func()) *config.Config {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: len(before) + 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for lvl, f := range before {
		if f != nil {
			f()
		}
		ds := fmt.Sprintf("202606%02d010000", lvl+1)
		if _, err := site.Run(ctx, ds, []testsite.DLE{{Host: "h", Path: "/data", Root: tree, Level: lvl}}, testsite.RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	site.Close()
	cfgPath := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfgPath, testsite.DLE{Host: "h", Path: "/data"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rebuilt is cfg with a catalog rebuilt from its vtapes alone (tapir
// admin rebuild), in a new file.
func rebuilt(t *testing.T, cfg *config.Config) *config.Config {
	t.Helper()
	tt := cfg.Tapetype()
	ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *cfg
	c.Catalog = filepath.Join(t.TempDir(), "rebuilt.db")
	res, err := rebuild.Rebuild(context.Background(), rebuild.Options{Catalog: c.Catalog, Changer: ch, Org: cfg.Org})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || res.Dumps == 0 {
		t.Fatalf("rebuild: %d images, problems %q", res.Dumps, res.Problems)
	}
	return &c
}

// run runs a command of the acl or attr tools, failing the test when it
// fails.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// xattrs lists the extended attributes of p (ACLs included, in the
// kernel's binary form) as name=value lines, sorted; security.* names
// are left out (the host's own labels).
func xattrs(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("list xattrs of %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || strings.HasPrefix(name, "security.") {
			continue
		}
		val := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			t.Fatalf("read xattr %s of %s: %v", name, p, err)
		}
		out = append(out, fmt.Sprintf("%s=%q", name, val[:k]))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// getfacl is the ACL text of p as getfacl prints it, without its header.
func getfacl(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("getfacl", "--omit-header", "--absolute-names", p).CombinedOutput()
	if err != nil {
		t.Fatalf("getfacl %s: %v\n%s", p, err, out)
	}
	return string(out)
}

// needACLTools skips a test where the acl and attr tools are missing
// (scripts/test installs them).
func needACLTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"setfacl", "getfacl", "setfattr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/test installs the acl and attr tools)", tool)
		}
	}
}

// TestTreeRemovedDirAttrs: an access ACL, a default ACL or a user xattr
// removed from a directory between the full and an incremental stays
// removed in a chain restore (tapir recover -c --all), while what was
// kept, changed or added is as the incremental says; the DLE's root too
// (with --target-meta). trusted.* xattrs follow the same rule when they
// are restored at all (SamePrivileges); security.* ones the target has
// are left alone.
func TestTreeRemovedDirAttrs(t *testing.T) {
	needACLTools(t)
	tree := filepath.Join(t.TempDir(), "tree")
	dirs := []string{"acl", "dacl", "xattr", "same", "added", "deep/er", "trusted"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tree, "same/file.txt"), []byte("unchanged\n"), 0o644)
	p := func(d string) string { return filepath.Join(tree, d) }
	full := func() {
		run(t, "setfattr", "-n", "user.root", "-v", "gone", tree)
		// acl loses both ACLs and keeps its xattr.
		run(t, "setfacl", "-m", "u:nobody:rwx,g:nogroup:rx", p("acl"))
		run(t, "setfacl", "-d", "-m", "u:nobody:rx", p("acl"))
		run(t, "setfattr", "-n", "user.kept", "-v", "yes", p("acl"))
		// dacl loses only its default ACL.
		run(t, "setfacl", "-m", "u:nobody:rx", p("dacl"))
		run(t, "setfacl", "-d", "-m", "g:nogroup:rwx", p("dacl"))
		// xattr loses one xattr, keeps another, and one changes.
		run(t, "setfattr", "-n", "user.gone", "-v", "1", p("xattr"))
		run(t, "setfattr", "-n", "user.stays", "-v", "2", p("xattr"))
		run(t, "setfattr", "-n", "user.changes", "-v", "before", p("xattr"))
		// same keeps all it has.
		run(t, "setfacl", "-m", "u:nobody:r", p("same"))
		run(t, "setfacl", "-d", "-m", "u:nobody:r", p("same"))
		run(t, "setfattr", "-n", "user.same", "-v", "s", p("same"))
		// deep/er loses everything, ACLs and xattrs.
		run(t, "setfacl", "-m", "u:nobody:rwx", p("deep/er"))
		run(t, "setfacl", "-d", "-m", "u:nobody:rwx", p("deep/er"))
		run(t, "setfattr", "-n", "user.a", "-v", "a", p("deep/er"))
		run(t, "setfattr", "-n", "trusted.gone", "-v", "t", p("trusted"))
		run(t, "setfattr", "-n", "trusted.stays", "-v", "t", p("trusted"))
	}
	incr := func() {
		run(t, "setfattr", "-x", "user.root", tree)
		run(t, "setfacl", "-b", p("acl"))
		run(t, "setfacl", "-k", p("dacl"))
		run(t, "setfattr", "-x", "user.gone", p("xattr"))
		run(t, "setfattr", "-n", "user.changes", "-v", "after", p("xattr"))
		run(t, "setfattr", "-n", "user.new", "-v", "n", p("added"))
		run(t, "setfacl", "-m", "u:nobody:rx", p("added"))
		run(t, "setfacl", "-b", p("deep/er"))
		run(t, "setfattr", "-x", "user.a", p("deep/er"))
		run(t, "setfattr", "-x", "trusted.gone", p("trusted"))
	}
	// A level 2 that changes nothing: the newest image that has a
	// directory decides, not the one that changed it.
	cfg := chainSite(t, tree, full, incr, nil)
	check := func(t *testing.T, to string, trusted bool) {
		for _, d := range append([]string{"."}, dirs...) {
			want, got := xattrs(t, p(d)), xattrs(t, filepath.Join(to, d))
			if !trusted {
				want = dropTrusted(want)
			}
			if got != want {
				t.Errorf("%s: xattrs\n%s\nwant\n%s", d, got, want)
			}
			if w, g := getfacl(t, p(d)), getfacl(t, filepath.Join(to, d)); g != w {
				t.Errorf("%s: ACLs\n%s\nwant\n%s", d, g, w)
			}
			wi, _ := os.Stat(p(d))
			gi, _ := os.Stat(filepath.Join(to, d))
			if wi.Mode() != gi.Mode() {
				t.Errorf("%s: mode %v, want %v", d, gi.Mode(), wi.Mode())
			}
		}
	}
	ctx := context.Background()
	for name, cfg := range map[string]*config.Config{"chain": cfg, "chain-after-rebuild": rebuilt(t, cfg)} {
		t.Run(name, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "to")
			res, err := Tree(ctx, cfg, TreeRequest{Host: "h", Path: "/data", To: to, TargetMeta: true, Volumes: diskVolumes(t, cfg)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Chain) != 3 {
				t.Fatalf("chain of %d images, want 3", len(res.Chain))
			}
			check(t, to, false)
		})
	}
	t.Run("same-privileges", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("trusted.* xattrs need root")
		}
		to := filepath.Join(t.TempDir(), "to")
		if _, err := Tree(ctx, cfg, TreeRequest{Host: "h", Path: "/data", To: to, TargetMeta: true, SamePrivileges: true, Volumes: diskVolumes(t, cfg)}, nil); err != nil {
			t.Fatal(err)
		}
		check(t, to, true)
	})
	t.Run("security-left-alone", func(t *testing.T) {
		// --overwrite into a tree whose directory has a security.* label
		// of the target's own: a restore neither sets nor removes those
		// unless asked for the image's privileges, and never removes one
		// the image lacks.
		to := filepath.Join(t.TempDir(), "to")
		if err := os.MkdirAll(filepath.Join(to, "acl"), 0o755); err != nil {
			t.Fatal(err)
		}
		err := unix.Setxattr(filepath.Join(to, "acl"), "security.tapirtest", []byte("host's"), 0)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("cannot set a security.* xattr here: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, same := range []bool{false, true} {
			if _, err := Tree(ctx, cfg, TreeRequest{Host: "h", Path: "/data", To: to, Overwrite: true, SamePrivileges: same, Volumes: diskVolumes(t, cfg)}, nil); err != nil {
				t.Fatal(err)
			}
			val := make([]byte, 64)
			n, err := unix.Getxattr(filepath.Join(to, "acl"), "security.tapirtest", val)
			if err != nil || string(val[:n]) != "host's" {
				t.Errorf("SamePrivileges %v: security.tapirtest of the target's directory: %q, %v", same, val[:max(n, 0)], err)
			}
		}
		check(t, to, true)
	})
}

func dropTrusted(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "trusted.") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFileEveryHardLinkName: tapir recover -c --file restores every name
// of a set of three hard links in three directories, the name that holds
// the data and those stored as links to it, from the full and from an
// incremental where the name holding the data is another one (the first
// name was deleted).
func TestFileEveryHardLinkName(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"a", "b", "c", "d"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(tree, n) }
	v0 := bytes.Repeat([]byte("level zero\n"), 1000)
	v1 := bytes.Repeat([]byte("level one\n"), 3000)
	full := func() {
		if err := os.WriteFile(p("a/orig.txt"), v0, 0o640); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"b/hard.txt", "c/hard.txt"} {
			if err := os.Link(p("a/orig.txt"), p(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	incr := func() {
		if err := os.WriteFile(p("b/hard.txt"), v1, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p("a/orig.txt")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p("b/hard.txt"), p("d/new.txt")); err != nil {
			t.Fatal(err)
		}
	}
	cfg := chainSite(t, tree, full, incr)
	for _, cat := range []string{"catalog", "rebuilt"} {
		if cat == "rebuilt" {
			cfg = rebuilt(t, cfg)
		}
		fileEveryName(t, cfg, cat, v0, v1)
	}
}

// fileEveryName restores every name of the set of TestFileEveryHardLinkName
// alone, as of each level, through the catalog of cfg (named cat).
func fileEveryName(t *testing.T, cfg *config.Config, cat string, v0, v1 []byte) {
	ctx := context.Background()
	for _, tc := range []struct {
		asOf  string
		names []string
		want  []byte
	}{
		{"20260601", []string{"a/orig.txt", "b/hard.txt", "c/hard.txt"}, v0},
		{"20260602", []string{"b/hard.txt", "c/hard.txt", "d/new.txt"}, v1},
	} {
		for _, name := range tc.names {
			t.Run(cat+"/"+tc.asOf+"/"+name, func(t *testing.T) {
				to := t.TempDir()
				res, err := File(ctx, cfg, Request{Host: "h", Path: "/data", File: "/data/" + name, To: to, AsOf: tc.asOf, Volumes: diskVolumes(t, cfg)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := filepath.Join(to, name); res.Written != want {
					t.Errorf("written to %s, want %s", res.Written, want)
				}
				fi, err := os.Lstat(filepath.Join(to, name))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
					t.Errorf("restored as %v, want a regular file of mode 0640", fi.Mode())
				}
				got, _ := os.ReadFile(filepath.Join(to, name))
				if !bytes.Equal(got, tc.want) || res.Size != int64(len(tc.want)) {
					t.Errorf("restored %d bytes (result says %d), want the %d of the image of %s", len(got), res.Size, len(tc.want), tc.asOf)
				}
				if ents, _ := os.ReadDir(to); len(ents) != 1 {
					t.Errorf("the target holds %d entries, want only %s's directory", len(ents), name)
				}
			})
		}
	}
}

// TestDenseZerosStayDense: a file of zeros whose blocks are all allocated
// comes back with all its blocks allocated, through --file and --all; a
// file with holes comes back with its holes.
func TestDenseZerosStayDense(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	if err := os.WriteFile(filepath.Join(tree, "zeros.img"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if allocated(t, filepath.Join(tree, "zeros.img")) < size {
		t.Skip("this file system does not allocate blocks written with zeros")
	}
	// A file of one data block and holes: stored sparse.
	sp, err := os.Create(filepath.Join(tree, "holes.img"))
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteAt([]byte("data"), size/2)
	sp.Truncate(size)
	sp.Close()
	cfg := chainSite(t, tree, nil)
	ctx := context.Background()
	check := func(t *testing.T, dir string) {
		for name, dense := range map[string]bool{"zeros.img": true, "holes.img": false} {
			p := filepath.Join(dir, name)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			a := allocated(t, p)
			switch {
			case fi.Size() != size:
				t.Errorf("%s: %d bytes, want %d", name, fi.Size(), size)
			case dense && a < size:
				t.Errorf("%s: %d bytes allocated of %d: a dense file came back with holes", name, a, size)
			case !dense && a >= size/2:
				t.Errorf("%s: %d bytes allocated of %d: a sparse file came back without its holes", name, a, size)
			}
		}
	}
	t.Run("file", func(t *testing.T) {
		to := t.TempDir()
		for _, name := range []string{"zeros.img", "holes.img"} {
			if _, err := File(ctx, cfg, Request{Host: "h", Path: "/data", File: name, To: to, Volumes: diskVolumes(t, cfg)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		check(t, to)
	})
	t.Run("all", func(t *testing.T) {
		to := filepath.Join(t.TempDir(), "to")
		if _, err := Tree(ctx, cfg, TreeRequest{Host: "h", Path: "/data", To: to, Volumes: diskVolumes(t, cfg)}, nil); err != nil {
			t.Fatal(err)
		}
		check(t, to)
	})
}

// allocated is how many bytes of p's blocks the file system allocated.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestFileHostileHardLinks: hard links a hostile or broken image holds,
// restored alone: a link to a link, a link to a name the image does not
// hold, a link out of the DLE. Each fails with one line naming the name
// asked and what is wrong, and writes nothing; a good link beside them
// restores.
func TestFileHostileHardLinks(t *testing.T) {
	img := recovertest.Tar(t, recovertest.Dumpdir("./"), recovertest.Reg("./data.txt", "the data\n", 0o600),
		recovertest.Hardlink("./good.txt", "./data.txt"),
		recovertest.Hardlink("./chain.txt", "./good.txt"),
		recovertest.Hardlink("./dangling.txt", "./missing.txt"),
		recovertest.Hardlink("./out.txt", "../../etc/passwd"))
	cfg := hostileSite(t, map[string][][]byte{"/srv": {img}})
	file := func(to, name string) (*Result, error) {
		return File(context.Background(), cfg, Request{Host: "evil", Path: "/srv", File: name, To: to, Volumes: diskVolumes(t, cfg)}, nil)
	}
	to := t.TempDir()
	if _, err := file(to, "good.txt"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "good.txt")); string(b) != "the data\n" {
		t.Errorf("good.txt: %q", b)
	}
	for name, want := range map[string]string{
		"chain.txt":    "chain.txt is a hard link to good.txt, itself a hard link to data.txt",
		"dangling.txt": "dangling.txt is a hard link to missing.txt, which the index of level 0 image",
		"out.txt":      `out.txt is a hard link to "../../etc/passwd" in level 0 image 20250607010000 of evil:/srv, which is not a name inside the DLE`,
	} {
		to := t.TempDir()
		_, err := file(to, name)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, want)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if ents, _ := os.ReadDir(to); len(ents) != 0 {
			t.Errorf("%s: the target holds %d entries", name, len(ents))
		}
	}
}
