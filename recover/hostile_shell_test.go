package recover

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

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
		return &Shell{Client: cl, Out: &out, Lcd: a.Target, SamePrivileges: same}, a, &out
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
	a.Check(t, false)
	if isRoot() {
		if m, _ := fileMode(t, filepath.Join(a.Target, "bin/su")); m&os.ModeSetuid == 0 {
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
	if m, _ := fileMode(t, filepath.Join(a.Target, "bin/su")); m != 0o755 {
		t.Errorf("admin extract: bin/su is %v, want 0755", m)
	}
	a.Check(t, false)

	if isRoot() {
		sh, a, out = shell("admin", wire.RoleAdmin, true)
		if err := exec(sh, out, "sethost evil", "setdisk /srv", "add bin", "extract"); err != nil {
			t.Errorf("admin extract with SamePrivileges: %v\n%s", err, out)
		}
		if m, _ := fileMode(t, filepath.Join(a.Target, "bin/su")); m&os.ModeSetuid == 0 || strings.Contains(out.String(), "left out") {
			t.Errorf("admin extract with SamePrivileges: bin/su %v\n%s", m, out)
		}
	}
}
