package restore

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
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover/recovertest"
	"github.com/tapir-backup/tapir/taper"
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
	if err := site.WriteConfig(cfgPath, testsite.DLE{Host: "evil", Path: "/x"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serverCase is an attack on `tapir recover -c ... --all` (restore.Tree).
type serverCase struct {
	name    string
	pre     bool
	images  func(a *recovertest.Arena) [][]recovertest.Entry
	req     TreeRequest // options; Host, Path, To are set by the test
	root    bool        // needs root
	wantErr []string    // TARGET stands for the target
	after   func(t *testing.T, a *recovertest.Arena, res *TreeResult)
}

// TestServerTreeAttacks restores hostile images the way the backup server
// does (restore.Tree from the catalog and the vtapes, as root when the
// tests run as root): nothing outside the target changes, the target
// stays the same directory, and the error names the entry and the target.
func TestServerTreeAttacks(t *testing.T) {
	cases := []serverCase{
		{
			name: "dot symlink then a file through it",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Symlink(".", a.Parent), recovertest.Reg("./victim", "owned\n", 0o644)}}
			},
			wantErr: []string{`refusing to restore "." (a symlink to`, "into TARGET", "level 0 image 20250607010000 from volume TEST-001"},
		},
		{
			name: "dot regular file over a non-empty target",
			pre:  true,
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Reg(".", "flat\n", 0o644)}}
			},
			req:     TreeRequest{Overwrite: true},
			wantErr: []string{`refusing to restore "." (a file) into TARGET`},
		},
		{
			name: "a non-empty target without Overwrite",
			pre:  true,
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dumpdir("./"), recovertest.Reg("./f", "f", 0o644)}}
			},
			wantErr: []string{"the target TARGET is not empty (it holds mine)", "--overwrite"},
			after: func(t *testing.T, a *recovertest.Arena, res *TreeResult) {
				if _, err := os.Stat(filepath.Join(a.Target, "mine")); err != nil {
					t.Errorf("the target's own file: %v", err)
				}
			},
		},
		{
			name: "a non-empty target with Overwrite",
			pre:  true,
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "f"}), recovertest.Reg("./f", "f", 0o644)}}
			},
			req: TreeRequest{Overwrite: true},
			after: func(t *testing.T, a *recovertest.Arena, res *TreeResult) {
				if len(res.Removed) != 1 || filepath.Base(res.Removed[0]) != "mine" {
					t.Errorf("removed %q, want the target's own file, which the listing lacks", res.Removed)
				}
			},
		},
		{
			name: "dot directory does not re-mode the target",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dir("./", 0o7777), recovertest.Reg("./f", "f", 0o644)}}
			},
		},
		{
			name: "dot directory with TargetMeta",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dir("./", 0o711)}}
			},
			req: TreeRequest{TargetMeta: true},
			after: func(t *testing.T, a *recovertest.Arena, res *TreeResult) {
				if m, _ := recovertest.FileMode(t, a.Target); m.Perm() != 0o711 {
					t.Errorf("target mode %v, want 0711", m)
				}
			},
		},
		{
			name: "dotdot",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dumpdir("./"), recovertest.Reg("../victim", "owned\n", 0o644)}}
			},
			wantErr: []string{`refusing to restore "../victim" into TARGET`},
		},
		{
			name: "absolute name",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Reg(filepath.Join(a.Parent, "victim"), "owned\n", 0o644)}}
			},
			wantErr: []string{"refusing to restore", "into TARGET: an absolute name"},
		},
		{
			name: "symlink in the full, a file through it in the incremental",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "link"}), recovertest.Symlink("./link", "../sentinel")},
					{recovertest.Dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "link"}), recovertest.Reg("./link/file", "owned\n", 0o644)}}
			},
			wantErr: []string{`refusing to restore "./link/file" into TARGET`, "is a symlink", "level 1 image"},
		},
		{
			name: "hard link out",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Symlink("up", ".."), recovertest.Hardlink("h", "up/victim")}}
			},
			wantErr: []string{`refusing to restore "h" into TARGET: it is a hard link to "up/victim"`},
		},
		{
			name: "a listing that names ..",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Dumpdir("./")}, {recovertest.Dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: ".."})}}
			},
			wantErr: []string{"unsafe name \"..\"", "into TARGET"},
		},
		{
			name: "privileges left out",
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Node("dev/sda", tar.TypeBlock, 8, 0), recovertest.Reg("bin/su", "x", 0o4755),
					recovertest.WithXattrs(recovertest.Reg("bin/ping", "x", 0o755), "security.capability", "x")}}
			},
			after: func(t *testing.T, a *recovertest.Arena, res *TreeResult) {
				want := "dev/sda: block device 8,0 not created\nbin/su: setuid bit left out (mode 4755 restored as 0755)\nbin/ping: xattr security.capability left out"
				if got := strings.Join(res.Dropped.Lines, "\n"); got != want || res.Dropped.Count != 3 {
					t.Errorf("dropped %d:\n%s\nwant\n%s", res.Dropped.Count, got, want)
				}
				if _, err := os.Lstat(filepath.Join(a.Target, "dev/sda")); err == nil {
					t.Error("dev/sda was created")
				}
			},
		},
		{
			name: "privileges kept when asked",
			root: true,
			images: func(a *recovertest.Arena) [][]recovertest.Entry {
				return [][]recovertest.Entry{{recovertest.Node("dev/null", tar.TypeChar, 1, 3), recovertest.Reg("bin/su", "x", 0o4755)}}
			},
			req: TreeRequest{SamePrivileges: true},
			after: func(t *testing.T, a *recovertest.Arena, res *TreeResult) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(a.Target, "dev/null"), &st); err != nil || st.Rdev != unix.Mkdev(1, 3) {
					t.Errorf("dev/null: %v rdev %d", err, st.Rdev)
				}
				if m, _ := recovertest.FileMode(t, filepath.Join(a.Target, "bin/su")); m&os.ModeSetuid == 0 {
					t.Errorf("bin/su: mode %v, want setuid", m)
				}
			},
		},
	}
	arenas := map[string]*recovertest.Arena{}
	dles := map[string][][]byte{}
	for i, c := range cases {
		a := recovertest.NewArena(t, c.pre)
		arenas[c.name] = a
		for _, img := range c.images(a) {
			p := fmt.Sprintf("/case%d", i)
			dles[p] = append(dles[p], recovertest.Tar(t, img...))
		}
	}
	cfg := hostileSite(t, dles)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && !recovertest.IsRoot() {
				t.Skip("needs root")
			}
			a := arenas[c.name]
			req := c.req
			req.Host, req.Path, req.To = "evil", fmt.Sprintf("/case%d", i), a.Target
			req.Volumes = diskVolumes(t, cfg)
			res, err := Tree(context.Background(), cfg, req, nil)
			switch {
			case len(c.wantErr) == 0 && err != nil:
				t.Errorf("Tree: %v", err)
			case len(c.wantErr) > 0 && err == nil:
				t.Errorf("Tree succeeded, want an error with %q", c.wantErr)
			case err != nil:
				for _, w := range c.wantErr {
					if w = strings.ReplaceAll(w, "TARGET", a.Target); !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			}
			a.Check(t, req.TargetMeta)
			if c.after != nil && res != nil {
				c.after(t, a, res)
			}
		})
	}
}

// TestServerFileAttacks restores single files of a hostile image the way
// the backup server does (restore.File): privileges are left out and
// said, a file is never written through a symlink an earlier restore
// planted, and an existing file is kept unless Overwrite.
func TestServerFileAttacks(t *testing.T) {
	a := recovertest.NewArena(t, false)
	img := recovertest.Tar(t, recovertest.Dumpdir("./"), recovertest.Node("dev/mem", tar.TypeChar, 1, 1), recovertest.Reg("bin/su", "#!/bin/sh\n", 0o4755),
		recovertest.WithXattrs(recovertest.Reg("etc/t", "t\n", 0o644), "trusted.x", "1"),
		recovertest.Symlink("link", "../sentinel"), recovertest.Reg("link/file", "owned\n", 0o644), recovertest.Reg("plain", "plain\n", 0o644))
	cfg := hostileSite(t, map[string][][]byte{"/srv": {img}})
	file := func(name string, over bool) (*Result, error) {
		return File(context.Background(), cfg, Request{Host: "evil", Path: "/srv", File: name, To: a.Target, Overwrite: over, Volumes: diskVolumes(t, cfg)}, nil)
	}

	res, err := file("dev/mem", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped.Count != 1 || res.Dropped.Lines[0] != "dev/mem: character device 1,1 not created" {
		t.Errorf("dev/mem: dropped %q", res.Dropped.Lines)
	}
	if _, err := os.Lstat(filepath.Join(a.Target, "dev/mem")); err == nil {
		t.Error("dev/mem was created")
	}
	res, err = file("/srv/bin/su", false)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := recovertest.FileMode(t, filepath.Join(a.Target, "bin/su")); m != 0o755 || res.Dropped.Count != 1 {
		t.Errorf("bin/su: mode %v, dropped %q", m, res.Dropped.Lines)
	}
	if res, err = file("etc/t", false); err != nil || res.Dropped.Count != 1 {
		t.Errorf("etc/t: %v, dropped %+v", err, res)
	}

	// An earlier whole restore planted link -> ../sentinel (and refused
	// link/file); restoring link/file alone must not go through it.
	if _, err := Tree(context.Background(), cfg, TreeRequest{Host: "evil", Path: "/srv", To: a.Target, Overwrite: true, Volumes: diskVolumes(t, cfg)}, nil); err == nil || !strings.Contains(err.Error(), `"link/file"`) {
		t.Errorf("Tree: %v, want link/file refused", err)
	}
	if fi, err := os.Lstat(filepath.Join(a.Target, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink the image holds was not restored: %v", err)
	}
	for _, over := range []bool{false, true} {
		_, err = file("link/file", over)
		if err == nil || !strings.Contains(err.Error(), "is a symlink") || !strings.Contains(err.Error(), a.Target) {
			t.Errorf("link/file (overwrite %v): %v, want a refusal naming the symlink and the target", over, err)
		}
	}
	if _, err := file("plain", false); err != nil {
		t.Errorf("plain: %v", err)
	}
	if _, err := file("plain", false); err == nil || !strings.Contains(err.Error(), filepath.Join(a.Target, "plain")+" already exists") {
		t.Errorf("plain over an existing file: %v", err)
	}
	if _, err := file("plain", true); err != nil {
		t.Errorf("plain with Overwrite: %v", err)
	}
	a.Check(t, false)
}

// diskVolumes is the volume source of cfg's disk changer, as
// server.VolumeSource gives it to tapir recover -c.
func diskVolumes(t *testing.T, cfg *config.Config) indexd.VolumeSource {
	t.Helper()
	tt := cfg.Tapetype()
	ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &indexd.DiskVolumes{Changer: ch}
}
