package recover

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/index/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// hostileSite is a backup server whose catalog and vtapes hold what a
// hostile client, host "evil", sent: for each DLE path, a level 0 image in
// the first run and, when given, a level 1 image in the second. It returns
// the configuration `tapir recover -c` would load.
func hostileSite(t *testing.T, dles map[string][][]byte) *config.Config {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for level, ds := range []string{"20250607010000", "20250608010000"} {
		var run []testsite.DLE
		for p, imgs := range dles {
			if level < len(imgs) {
				run = append(run, testsite.DLE{Host: "evil", Path: p, Level: level, Tar: imgs[level]})
			}
		}
		if len(run) == 0 {
			continue
		}
		if _, err := site.Run(ctx, ds, run, testsite.RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	site.Close()
	cfgPath := filepath.Join(dir, "tapir.toml")
	text := fmt.Sprintf(`org = "test"
statedir = %q
catalog = %q

[changer]
type = "disk"
path = %q
slots = 3
tapetype = "small"

[tapetype.small]
length = "4 GiB"
blocksize = "64 KiB"

[[holding]]
path = %q

[[dle]]
host = "evil"
path = "/x"
`, filepath.Join(dir, "state"), site.CatalogDB, site.Vtapes, site.Holding)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serverCase is an attack on `tapir recover -c ... --all` (recover.Tree).
type serverCase struct {
	name    string
	pre     bool
	images  func(a *arena) [][]tent
	req     TreeRequest // options; Host, Path, To are set by the test
	root    bool        // needs root
	wantErr []string    // TARGET stands for the target
	after   func(t *testing.T, a *arena, res *TreeResult)
}

// TestServerTreeAttacks restores hostile images the way the backup server
// does (recover.Tree from the catalog and the vtapes, as root when the
// tests run as root): nothing outside the target changes, the target
// stays the same directory, and the error names the entry and the target.
func TestServerTreeAttacks(t *testing.T) {
	cases := []serverCase{
		{
			name:    "dot symlink then a file through it",
			images:  func(a *arena) [][]tent { return [][]tent{{symlink(".", a.parent), reg("./victim", "owned\n", 0o644)}} },
			wantErr: []string{`refusing to restore "." (a symlink to`, "into TARGET", "level 0 image 20250607010000 from volume TEST-001"},
		},
		{
			name:    "dot regular file over a non-empty target",
			pre:     true,
			images:  func(a *arena) [][]tent { return [][]tent{{reg(".", "flat\n", 0o644)}} },
			req:     TreeRequest{Overwrite: true},
			wantErr: []string{`refusing to restore "." (a file) into TARGET`},
		},
		{
			name:    "a non-empty target without Overwrite",
			pre:     true,
			images:  func(a *arena) [][]tent { return [][]tent{{dumpdir("./"), reg("./f", "f", 0o644)}} },
			wantErr: []string{"the target TARGET is not empty (it holds mine)", "--overwrite"},
			after: func(t *testing.T, a *arena, res *TreeResult) {
				if _, err := os.Stat(filepath.Join(a.target, "mine")); err != nil {
					t.Errorf("the target's own file: %v", err)
				}
			},
		},
		{
			name: "a non-empty target with Overwrite",
			pre:  true,
			images: func(a *arena) [][]tent {
				return [][]tent{{dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "f"}), reg("./f", "f", 0o644)}}
			},
			req: TreeRequest{Overwrite: true},
			after: func(t *testing.T, a *arena, res *TreeResult) {
				if len(res.Removed) != 1 || filepath.Base(res.Removed[0]) != "mine" {
					t.Errorf("removed %q, want the target's own file, which the listing lacks", res.Removed)
				}
			},
		},
		{
			name:   "dot directory does not re-mode the target",
			images: func(a *arena) [][]tent { return [][]tent{{dir("./", 0o7777), reg("./f", "f", 0o644)}} },
		},
		{
			name:   "dot directory with TargetMeta",
			images: func(a *arena) [][]tent { return [][]tent{{dir("./", 0o711)}} },
			req:    TreeRequest{TargetMeta: true},
			after: func(t *testing.T, a *arena, res *TreeResult) {
				if m, _ := fileMode(t, a.target); m.Perm() != 0o711 {
					t.Errorf("target mode %v, want 0711", m)
				}
			},
		},
		{
			name:    "dotdot",
			images:  func(a *arena) [][]tent { return [][]tent{{dumpdir("./"), reg("../victim", "owned\n", 0o644)}} },
			wantErr: []string{`refusing to restore "../victim" into TARGET`},
		},
		{
			name:    "absolute name",
			images:  func(a *arena) [][]tent { return [][]tent{{reg(filepath.Join(a.parent, "victim"), "owned\n", 0o644)}} },
			wantErr: []string{"refusing to restore", "into TARGET: an absolute name"},
		},
		{
			name: "symlink in the full, a file through it in the incremental",
			images: func(a *arena) [][]tent {
				return [][]tent{{dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "link"}), symlink("./link", "../sentinel")},
					{dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "link"}), reg("./link/file", "owned\n", 0o644)}}
			},
			wantErr: []string{`refusing to restore "./link/file" into TARGET`, "is a symlink", "level 1 image"},
		},
		{
			name:    "hard link out",
			images:  func(a *arena) [][]tent { return [][]tent{{symlink("up", ".."), hardlink("h", "up/victim")}} },
			wantErr: []string{`refusing to restore "h" into TARGET: it is a hard link to "up/victim"`},
		},
		{
			name: "a listing that names ..",
			images: func(a *arena) [][]tent {
				return [][]tent{{dumpdir("./")}, {dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: ".."})}}
			},
			wantErr: []string{"unsafe name \"..\"", "into TARGET"},
		},
		{
			name: "privileges left out",
			images: func(a *arena) [][]tent {
				return [][]tent{{node("dev/sda", tar.TypeBlock, 8, 0), reg("bin/su", "x", 0o4755),
					withXattrs(reg("bin/ping", "x", 0o755), "security.capability", "x")}}
			},
			after: func(t *testing.T, a *arena, res *TreeResult) {
				want := "dev/sda: block device 8,0 not created\nbin/su: setuid bit left out (mode 4755 restored as 0755)\nbin/ping: xattr security.capability left out"
				if got := strings.Join(res.Dropped.Lines, "\n"); got != want || res.Dropped.Count != 3 {
					t.Errorf("dropped %d:\n%s\nwant\n%s", res.Dropped.Count, got, want)
				}
				if _, err := os.Lstat(filepath.Join(a.target, "dev/sda")); err == nil {
					t.Error("dev/sda was created")
				}
			},
		},
		{
			name: "privileges kept when asked",
			root: true,
			images: func(a *arena) [][]tent {
				return [][]tent{{node("dev/null", tar.TypeChar, 1, 3), reg("bin/su", "x", 0o4755)}}
			},
			req: TreeRequest{SamePrivileges: true},
			after: func(t *testing.T, a *arena, res *TreeResult) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(a.target, "dev/null"), &st); err != nil || st.Rdev != unix.Mkdev(1, 3) {
					t.Errorf("dev/null: %v rdev %d", err, st.Rdev)
				}
				if m, _ := fileMode(t, filepath.Join(a.target, "bin/su")); m&os.ModeSetuid == 0 {
					t.Errorf("bin/su: mode %v, want setuid", m)
				}
			},
		},
	}
	arenas := map[string]*arena{}
	dles := map[string][][]byte{}
	for i, c := range cases {
		a := newArena(t, c.pre)
		arenas[c.name] = a
		for _, img := range c.images(a) {
			p := fmt.Sprintf("/case%d", i)
			dles[p] = append(dles[p], mkTar(t, img...))
		}
	}
	cfg := hostileSite(t, dles)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && !isRoot() {
				t.Skip("needs root")
			}
			a := arenas[c.name]
			req := c.req
			req.Host, req.Path, req.To = "evil", fmt.Sprintf("/case%d", i), a.target
			res, err := Tree(context.Background(), cfg, req, nil)
			switch {
			case len(c.wantErr) == 0 && err != nil:
				t.Errorf("Tree: %v", err)
			case len(c.wantErr) > 0 && err == nil:
				t.Errorf("Tree succeeded, want an error with %q", c.wantErr)
			case err != nil:
				for _, w := range c.wantErr {
					if w = strings.ReplaceAll(w, "TARGET", a.target); !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			}
			a.check(t, req.TargetMeta)
			if c.after != nil && res != nil {
				c.after(t, a, res)
			}
		})
	}
}

// TestServerFileAttacks restores single files of a hostile image the way
// the backup server does (recover.File): privileges are left out and
// said, a file is never written through a symlink an earlier restore
// planted, and an existing file is kept unless Overwrite.
func TestServerFileAttacks(t *testing.T) {
	a := newArena(t, false)
	img := mkTar(t, dumpdir("./"), node("dev/mem", tar.TypeChar, 1, 1), reg("bin/su", "#!/bin/sh\n", 0o4755),
		withXattrs(reg("etc/t", "t\n", 0o644), "trusted.x", "1"),
		symlink("link", "../sentinel"), reg("link/file", "owned\n", 0o644), reg("plain", "plain\n", 0o644))
	cfg := hostileSite(t, map[string][][]byte{"/srv": {img}})
	file := func(name string, over bool) (*Result, error) {
		return File(context.Background(), cfg, Request{Host: "evil", Path: "/srv", File: name, To: a.target, Overwrite: over}, nil)
	}

	res, err := file("dev/mem", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped.Count != 1 || res.Dropped.Lines[0] != "dev/mem: character device 1,1 not created" {
		t.Errorf("dev/mem: dropped %q", res.Dropped.Lines)
	}
	if _, err := os.Lstat(filepath.Join(a.target, "dev/mem")); err == nil {
		t.Error("dev/mem was created")
	}
	res, err = file("/srv/bin/su", false)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fileMode(t, filepath.Join(a.target, "bin/su")); m != 0o755 || res.Dropped.Count != 1 {
		t.Errorf("bin/su: mode %v, dropped %q", m, res.Dropped.Lines)
	}
	if res, err = file("etc/t", false); err != nil || res.Dropped.Count != 1 {
		t.Errorf("etc/t: %v, dropped %+v", err, res)
	}

	// An earlier whole restore planted link -> ../sentinel (and refused
	// link/file); restoring link/file alone must not go through it.
	if _, err := Tree(context.Background(), cfg, TreeRequest{Host: "evil", Path: "/srv", To: a.target, Overwrite: true}, nil); err == nil || !strings.Contains(err.Error(), `"link/file"`) {
		t.Errorf("Tree: %v, want link/file refused", err)
	}
	if fi, err := os.Lstat(filepath.Join(a.target, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink the image holds was not restored: %v", err)
	}
	for _, over := range []bool{false, true} {
		_, err = file("link/file", over)
		if err == nil || !strings.Contains(err.Error(), "is a symlink") || !strings.Contains(err.Error(), a.target) {
			t.Errorf("link/file (overwrite %v): %v, want a refusal naming the symlink and the target", over, err)
		}
	}
	if _, err := file("plain", false); err != nil {
		t.Errorf("plain: %v", err)
	}
	if _, err := file("plain", false); err == nil || !strings.Contains(err.Error(), filepath.Join(a.target, "plain")+" already exists") {
		t.Errorf("plain over an existing file: %v", err)
	}
	if _, err := file("plain", true); err != nil {
		t.Errorf("plain with Overwrite: %v", err)
	}
	a.check(t, false)
}

// TestShellHostileImage extracts a hostile image through the index server
// and the shell: a file under a symlink the image planted is refused (and
// said), nothing lands outside the local directory; the host's own
// restore recreates its setuid bits and device nodes, an admin restoring
// that host's files elsewhere gets them left out and listed, unless
// --same-privileges.
func TestShellHostileImage(t *testing.T) {
	site, err := testsite.New(t.TempDir(), testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	// The full has a directory link with a file in it; the incremental
	// turns link into a symlink out of the restore directory.
	l0 := mkTar(t, dumpdir("./", gnutar.DirEntry{Kind: 'D', Name: "link"}), dumpdir("./link/", gnutar.DirEntry{Kind: 'Y', Name: "file"}),
		reg("./link/file", "owned\n", 0o644))
	l1 := mkTar(t, dumpdir("./", gnutar.DirEntry{Kind: 'D', Name: "bin"}, gnutar.DirEntry{Kind: 'Y', Name: "link"}),
		dir("./bin/", 0o755), reg("./bin/su", "#!/bin/sh\n", 0o4755), node("./bin/null", tar.TypeChar, 1, 3), symlink("./link", "../sentinel"))
	for level, ds := range []string{"20250607010000", "20250608010000"} {
		img := [][]byte{l0, l1}[level]
		if _, err := site.Run(context.Background(), ds, []testsite.DLE{{Host: "evil", Path: "/srv", Level: level, Tar: img}}, testsite.RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _, err := site.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	shell := func(who, role string, same bool) (*Shell, *arena, *strings.Builder) {
		f, err := site.Issue(who, role)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := wire.ClientConfig(f, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		cl, err := Dial(context.Background(), addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		a := newArena(t, false)
		var out strings.Builder
		return &Shell{Client: cl, Out: &out, Lcd: a.target, SamePrivileges: same}, a, &out
	}
	exec := func(sh *Shell, out *strings.Builder, cmds ...string) error {
		for _, c := range cmds {
			if err := sh.Exec(c); err != nil {
				return err
			}
		}
		return nil
	}

	// The host itself: privileges kept (when root can make them), the
	// file through the planted symlink refused.
	sh, a, out := shell("evil", wire.RoleClient, false)
	if err := exec(sh, out, "sethost evil", "setdisk /srv", "add bin link", "extract"); err != nil {
		t.Fatalf("extract by the host: %v\n%s", err, out)
	}
	// The full's link/file, extracted after the incremental's link.
	err = exec(sh, out, "setdate 2025-06-07", "add link/file", "extract")
	if err == nil || !strings.Contains(out.String(), "FAILED link/file: refusing to restore") || !strings.Contains(out.String(), "is a symlink") {
		t.Errorf("extract by the host: %v\n%s", err, out)
	}
	a.check(t, false)
	if isRoot() {
		if m, _ := fileMode(t, filepath.Join(a.target, "bin/su")); m&os.ModeSetuid == 0 {
			t.Errorf("the host's own restore lost the setuid bit: %v\n%s", m, out)
		}
		if strings.Contains(out.String(), "left out") {
			t.Errorf("the host's own restore left things out:\n%s", out)
		}
	}

	// An admin restoring evil's files: left out and listed.
	sh, a, out = shell("admin", wire.RoleAdmin, false)
	exec(sh, out, "sethost evil", "setdisk /srv", "add bin", "extract")
	for _, want := range []string{"left out: bin/su: setuid bit left out (mode 4755 restored as 0755)", "left out: bin/null: character device 1,3 not created", "--same-privileges"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("admin extract: output lacks %q:\n%s", want, out)
		}
	}
	if m, _ := fileMode(t, filepath.Join(a.target, "bin/su")); m != 0o755 {
		t.Errorf("admin extract: bin/su is %v, want 0755", m)
	}
	a.check(t, false)

	if isRoot() {
		sh, a, out = shell("admin", wire.RoleAdmin, true)
		if err := exec(sh, out, "sethost evil", "setdisk /srv", "add bin", "extract"); err != nil {
			t.Errorf("admin extract with SamePrivileges: %v\n%s", err, out)
		}
		if m, _ := fileMode(t, filepath.Join(a.target, "bin/su")); m&os.ModeSetuid == 0 || strings.Contains(out.String(), "left out") {
			t.Errorf("admin extract with SamePrivileges: bin/su %v\n%s", m, out)
		}
	}
}
