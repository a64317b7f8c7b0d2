package recover

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// TestExtractorRefusesEscapes: names that would land outside the target
// (.., absolute, through a symlink the archive planted, hard links to
// outside) are refused with an error and nothing is written outside.
func TestExtractorRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dotdot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"nested dotdot", []tar.Header{{Name: "./a/../../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"absolute", []tar.Header{{Name: "/tmp/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"through symlink", []tar.Header{
			{Name: "./link", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777},
			{Name: "./link/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"hard link out", []tar.Header{{Name: "./h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "target")
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tc.entries {
				h := h
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
				if h.Size > 0 {
					tw.Write([]byte("x"))
				}
			}
			tw.Close()
			x := &Extractor{Dir: dir, Overwrite: true}
			_, err := x.All(tar.NewReader(&buf))
			if err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("got %v, want a refusal", err)
			}
			if _, err := os.Stat(filepath.Join(base, "evil")); err == nil {
				t.Errorf("a file was written outside the target")
			}
		})
	}
}

// attack is one hostile image (or chain of images) and what an extract
// of it must do.
type attack struct {
	name   string
	images func(a *arena) [][]tent
	x      Extractor // options (Dir is set by the test)
	pre    bool      // the target holds a file of its own
	// oneByOne extracts entry by entry, going on after an entry fails
	// (as the shell does); otherwise each image goes through All.
	oneByOne bool
	// wantErr: the extract fails with an error holding each of these
	// ("" = it succeeds); TARGET stands for the target directory.
	wantErr []string
	// after checks the target (a is the arena).
	after func(t *testing.T, a *arena, x *Extractor)
}

// attacks are the attack classes of issue 12 on the Extractor, each as a
// client could put it in its image.
func attacks() []attack {
	return []attack{
		{
			name: "dot symlink then a file through it",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink(".", a.Parent), reg("./victim", "owned\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true, Incremental: true},
			wantErr: []string{`refusing to restore "."`, "a symlink to", "into TARGET", "target directory itself"},
		},
		{
			name: "dot-slash symlink to a relative place",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("./", "../sentinel"), reg("./file", "owned\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true, Incremental: true},
			wantErr: []string{`refusing to restore "./"`, "into TARGET"},
		},
		{
			name: "dot symlink, entries one by one",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink(".", a.Parent), reg("./victim", "owned\n", 0o644), reg("victim", "owned\n", 0o644)}}
			},
			x:        Extractor{Overwrite: true, Incremental: true, Warn: func(string) {}},
			oneByOne: true,
			wantErr:  []string{`refusing to restore "."`, "into TARGET"},
			after: func(t *testing.T, a *arena, x *Extractor) {
				// One by one (as the shell goes): the files after the
				// refused "." land inside the target.
				if b, err := os.ReadFile(filepath.Join(a.Target, "victim")); err != nil || string(b) != "owned\n" {
					t.Errorf("target/victim: %q %v", b, err)
				}
			},
		},
		{
			name: "dot regular file over a non-empty target",
			pre:  true,
			images: func(a *arena) [][]tent {
				return [][]tent{{reg(".", "flat\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true, Incremental: true},
			wantErr: []string{`refusing to restore "."`, "(a file)", "into TARGET"},
			after: func(t *testing.T, a *arena, x *Extractor) {
				if _, err := os.Stat(filepath.Join(a.Target, "mine")); err != nil {
					t.Errorf("the target's own file is gone: %v", err)
				}
			},
		},
		{
			name:    "dot hard link",
			images:  func(a *arena) [][]tent { return [][]tent{{hardlink("./", "../victim")}} },
			x:       Extractor{Overwrite: true},
			wantErr: []string{`refusing to restore "./"`, "a hard link"},
		},
		{
			name:    "dot fifo",
			images:  func(a *arena) [][]tent { return [][]tent{{node(".", tar.TypeFifo, 0, 0)}} },
			x:       Extractor{Overwrite: true, SamePrivileges: true},
			wantErr: []string{`refusing to restore "."`, "a fifo"},
		},
		{
			name: "dot directory does not re-mode the target",
			images: func(a *arena) [][]tent {
				d := dir("./", 0o7777)
				d.Hdr.Uid, d.Hdr.Gid = 4321, 4321
				return [][]tent{{d, reg("./f", "x", 0o644)}}
			},
			x: Extractor{Overwrite: true, Incremental: true, SamePrivileges: true},
		},
		{
			name: "dot directory with TargetMeta sets the target's mode",
			images: func(a *arena) [][]tent {
				return [][]tent{{dir("./", 0o705)}}
			},
			x: Extractor{TargetMeta: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				if m, _ := fileMode(t, a.Target); m.Perm() != 0o705 {
					t.Errorf("target mode %v, want 0705 (asked for with TargetMeta)", m)
				}
			},
		},
		{
			name: "dotdot and absolute names",
			images: func(a *arena) [][]tent {
				return [][]tent{{reg("../victim", "owned\n", 0o644)}, {reg(filepath.Join(a.Parent, "victim"), "owned\n", 0o644)}, {dir("..", 0o777)}, {reg("a/../../victim", "x", 0o644)}}
			},
			x:       Extractor{Overwrite: true, Warn: func(string) {}},
			wantErr: []string{"refusing to restore", "into TARGET"},
		},
		{
			name: "symlink then a file through it",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("link", a.Parent), reg("link/victim", "owned\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true},
			wantErr: []string{`refusing to restore "link/victim" into TARGET`, "is a symlink"},
		},
		{
			// The Extractor remembers checked directories and holds the
			// last one open: replacing one by a symlink must forget them.
			name: "a directory, files in it, the directory replaced by a symlink, a file through it",
			images: func(a *arena) [][]tent {
				return [][]tent{{reg("d/a", "mine\n", 0o644), reg("d/b", "mine\n", 0o644),
					symlink("d", a.Parent), reg("d/victim", "owned\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true},
			wantErr: []string{`refusing to restore "d/victim" into TARGET`, "is a symlink"},
		},
		{
			name: "a file over a symlink of the same name replaces the symlink",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("s", "../sentinel"), reg("s", "new\n", 0o600)}}
			},
			x: Extractor{Overwrite: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				b, err := os.ReadFile(filepath.Join(a.Target, "s"))
				if m, ok := fileMode(t, filepath.Join(a.Target, "s")); err != nil || !ok || !m.IsRegular() || string(b) != "new\n" {
					t.Errorf("target/s is %v %q (%v), want the file of the image", m, b, err)
				}
			},
		},
		{
			name: "a file where a directory was, then a file under it",
			images: func(a *arena) [][]tent {
				return [][]tent{{reg("d/a", "x\n", 0o644), reg("d", "now a file\n", 0o644), reg("d/b", "x\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true},
			wantErr: []string{`cannot restore "d/b" into TARGET`, "is not a directory"},
		},
		{
			name: "symlink in one image, a file through it in the next",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("./link", "../sentinel")}, {reg("./link/file", "owned\n", 0o644)}}
			},
			x:       Extractor{Overwrite: true, Incremental: true},
			wantErr: []string{`refusing to restore "./link/file" into TARGET`, "is a symlink"},
		},
		{
			name: "symlink then a directory entry of the same name with a listing",
			images: func(a *arena) [][]tent {
				// Followed, the empty listing would purge the sentinel.
				return [][]tent{{symlink("./s", "../sentinel")}, {dumpdir("./s/")}}
			},
			x: Extractor{Overwrite: true, Incremental: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				if m, ok := fileMode(t, filepath.Join(a.Target, "s")); !ok || !m.IsDir() {
					t.Errorf("target/s is %v, want the directory of the later image", m)
				}
			},
		},
		{
			name: "symlink then a directory entry of the same name, no overwrite",
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("./s", "../sentinel")}, {dumpdir("./s/")}}
			},
			x:       Extractor{Incremental: true},
			wantErr: []string{"already exists"},
		},
		{
			name: "hard links pointing out",
			images: func(a *arena) [][]tent {
				return [][]tent{
					{hardlink("h1", "../victim")},
					{hardlink("h2", filepath.Join(a.Parent, "victim"))},
					{symlink("up", ".."), hardlink("h3", "up/victim")},
					{symlink("s", "../sentinel"), hardlink("h4", "s/file")},
				}
			},
			x:       Extractor{Overwrite: true, Warn: func(string) {}},
			wantErr: []string{"refusing to restore", "is a hard link to", "into TARGET"},
		},
		{
			name: "listings that name .. or absolute paths",
			images: func(a *arena) [][]tent {
				return [][]tent{
					{dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: ".."})},
					{dumpdir("./d/", gnutar.DirEntry{Kind: 'Y', Name: "../victim"})},
					{dumpdir("./d/", gnutar.DirEntry{Kind: 'N', Name: a.Parent})},
					{dumpdir("./", gnutar.DirEntry{Kind: 'R', Name: "../victim"}, gnutar.DirEntry{Kind: 'T', Name: "x"})},
				}
			},
			x:       Extractor{Overwrite: true, Incremental: true},
			wantErr: []string{"dumpdir entry", "into TARGET"},
		},
		{
			name: "a listing purges inside the target only",
			pre:  true,
			images: func(a *arena) [][]tent {
				return [][]tent{{symlink("./out", ".."), dumpdir("./", gnutar.DirEntry{Kind: 'Y', Name: "kept"}), reg("./kept", "k", 0o644)}}
			},
			x: Extractor{Overwrite: true, Incremental: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				for _, gone := range []string{"mine", "out"} {
					if _, err := os.Lstat(filepath.Join(a.Target, gone)); err == nil {
						t.Errorf("target/%s survived the listing", gone)
					}
				}
				if len(x.Removed) != 2 {
					t.Errorf("removed %q, want mine and out", x.Removed)
				}
			},
		},
		{
			name: "privileges left out",
			images: func(a *arena) [][]tent {
				return [][]tent{{
					node("dev/sda", tar.TypeBlock, 8, 0),
					node("dev/mem", tar.TypeChar, 1, 1),
					hardlink("dev/mem2", "dev/mem"),
					reg("bin/su", "#!/bin/sh\n", 0o4755),
					reg("bin/wall", "#!/bin/sh\n", 0o2755),
					withXattrs(reg("bin/ping", "#!/bin/sh\n", 0o755), "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "user.note", "kept"),
					withXattrs(reg("etc/t", "t\n", 0o644), "trusted.overlay.opaque", "y"),
					dir("shared", 0o2775),
					node("fifo", tar.TypeFifo, 0, 0),
				}}
			},
			x: Extractor{Overwrite: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				for _, p := range []string{"dev/sda", "dev/mem", "dev/mem2"} {
					if _, err := os.Lstat(filepath.Join(a.Target, p)); err == nil {
						t.Errorf("%s was created", p)
					}
				}
				for p, want := range map[string]os.FileMode{"bin/su": 0o755, "bin/wall": 0o755, "shared": 0o775 | os.ModeSetgid | os.ModeDir, "fifo": 0o666 | os.ModeNamedPipe} {
					m, _ := fileMode(t, filepath.Join(a.Target, p))
					if m != want {
						t.Errorf("%s: mode %v, want %v", p, m, want)
					}
				}
				for p, name := range map[string]string{"bin/ping": "security.capability", "etc/t": "trusted.overlay.opaque"} {
					if _, err := unix.Lgetxattr(filepath.Join(a.Target, p), name, make([]byte, 64)); err == nil {
						t.Errorf("%s: xattr %s was set", p, name)
					}
				}
				if v := make([]byte, 16); true {
					if n, err := unix.Lgetxattr(filepath.Join(a.Target, "bin/ping"), "user.note", v); err != nil || string(v[:n]) != "kept" {
						t.Errorf("bin/ping: user.note = %q %v, want kept", v[:max(n, 0)], err)
					}
				}
				want := []string{
					"dev/sda: block device 8,0 not created",
					"dev/mem: character device 1,1 not created",
					"dev/mem2: hard link to dev/mem, which was left out, not created",
					"bin/su: setuid bit left out (mode 4755 restored as 0755)",
					"bin/wall: setgid bit left out (mode 2755 restored as 0755)",
					"bin/ping: xattr security.capability left out",
					"etc/t: xattr trusted.overlay.opaque left out",
				}
				if got := strings.Join(x.Dropped.Lines, "\n"); got != strings.Join(want, "\n") || x.Dropped.Count != len(want) {
					t.Errorf("dropped (%d):\n%s\nwant:\n%s", x.Dropped.Count, got, strings.Join(want, "\n"))
				}
			},
		},
		{
			name: "privileges kept when asked",
			images: func(a *arena) [][]tent {
				return [][]tent{{
					node("dev/null", tar.TypeChar, 1, 3),
					reg("bin/su", "#!/bin/sh\n", 0o4755),
					withXattrs(reg("etc/t", "t\n", 0o644), "trusted.overlay.opaque", "y"),
				}}
			},
			x: Extractor{Overwrite: true, SamePrivileges: true},
			after: func(t *testing.T, a *arena, x *Extractor) {
				if x.Dropped.Count != 0 {
					t.Errorf("dropped %q with SamePrivileges", x.Dropped.Lines)
				}
				if m, _ := fileMode(t, filepath.Join(a.Target, "bin/su")); m != 0o755|os.ModeSetuid {
					t.Errorf("bin/su: mode %v, want setuid", m)
				}
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(a.Target, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
					t.Errorf("dev/null: %v mode %o rdev %d", err, st.Mode, st.Rdev)
				}
				if _, err := unix.Lgetxattr(filepath.Join(a.Target, "etc/t"), "trusted.overlay.opaque", make([]byte, 8)); err != nil {
					t.Errorf("etc/t: trusted xattr not set: %v", err)
				}
			},
		},
		{
			name:    "an existing file without Overwrite",
			pre:     true,
			images:  func(a *arena) [][]tent { return [][]tent{{reg("mine", "theirs\n", 0o644)}} },
			x:       Extractor{},
			wantErr: []string{filepath.Join("TARGET", "mine") + " already exists", "--overwrite"},
		},
	}
}

// TestExtractorAttacks runs every attack through the Extractor: the
// error names the entry and the target, nothing outside the target is
// created, changed or removed, and the target stays the same directory.
func TestExtractorAttacks(t *testing.T) {
	for _, tc := range attacks() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.x.SamePrivileges && !isRoot() && tc.after != nil {
				t.Skip("recreating device nodes and trusted xattrs needs root")
			}
			a := newArena(t, tc.pre)
			x := tc.x
			x.Dir = a.Target
			var errs []string
			for i, img := range tc.images(a) {
				tr := tar.NewReader(bytes.NewReader(mkTar(t, img...)))
				if !tc.oneByOne {
					if _, err := x.All(tr); err != nil {
						errs = append(errs, fmt.Sprintf("image %d: %v", i, err))
					}
					continue
				}
				for {
					hdr, err := tr.Next()
					if err != nil {
						break
					}
					if _, err := x.Entry(hdr, tr); err != nil {
						errs = append(errs, fmt.Sprintf("image %d: %v", i, err))
					}
				}
				x.Close()
			}
			if len(tc.wantErr) == 0 && len(errs) > 0 {
				t.Errorf("errors: %s", strings.Join(errs, "\n"))
			}
			if len(tc.wantErr) > 0 {
				if len(errs) == 0 {
					t.Errorf("no error, want one with %q", tc.wantErr)
				}
				for _, e := range errs {
					for _, w := range tc.wantErr {
						if w = strings.ReplaceAll(w, "TARGET", a.Target); !strings.Contains(e, w) {
							t.Errorf("error %q lacks %q", e, w)
						}
					}
				}
			}
			a.Check(t, x.TargetMeta)
			if tc.after != nil {
				tc.after(t, a, &x)
			}
		})
	}
}

// TestDroppedIsCapped: a million device nodes do not make a million
// lines: the first MaxDroppedLines are kept, all are counted.
func TestDroppedIsCapped(t *testing.T) {
	a := newArena(t, false)
	var es []tent
	for i := range 3 * MaxDroppedLines {
		es = append(es, node(fmt.Sprintf("dev/n%d", i), tar.TypeChar, 1, 3))
	}
	x := &Extractor{Dir: a.Target}
	if _, err := x.All(tar.NewReader(bytes.NewReader(mkTar(t, es...)))); err != nil {
		t.Fatal(err)
	}
	if len(x.Dropped.Lines) != MaxDroppedLines || x.Dropped.Count != 3*MaxDroppedLines {
		t.Errorf("%d lines, count %d; want %d and %d", len(x.Dropped.Lines), x.Dropped.Count, MaxDroppedLines, 3*MaxDroppedLines)
	}
	a.Check(t, false)
}
