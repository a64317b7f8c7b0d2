package gnutar

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// purgeTree builds the same tree under root each time: a directory d whose
// entries cover every purge rule, and things outside d that symlinks in d
// point to and that must survive.
func purgeTree(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"d/ddir/sub", "d/nasdir", "d/yasdir/x", "d/gone/deep", "outdir"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"d/nfile", "d/yfile", "d/dasfile", "d/extra", "d/gone/deep/f", "d/ddir/sub/keep", "outside", "outdir/keep"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"d/extralink":   "../outside",    // not listed: the link goes, not its target
		"d/gone/outlnk": "../../outdir",  // inside a removed subtree: not followed
		"d/dlink":       "../outdir",     // D but a symlink to a directory: removed
		"d/ylink":       "../outdir",     // Y and not a directory: kept
		"d/nlink":       "/nonexistent/", // N: kept whatever it is
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// purgeEntries is the dumpdir of d used with purgeTree.
func purgeEntries() []DirEntry {
	es := []DirEntry{
		{'D', "ddir"}, {'D', "dasfile"}, {'D', "dlink"}, {'D', "missing"},
		{'N', "nfile"}, {'N', "nasdir"}, {'N', "nlink"},
		{'Y', "yfile"}, {'Y', "yasdir"}, {'Y', "ylink"},
	}
	SortDumpdir(es)
	return es
}

// listTree returns every path under root with a letter for its type.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		kind := "f"
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			kind = "l"
		case d.IsDir():
			kind = "d"
		}
		out = append(out, kind+" "+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPurgeMatchesGNUTar applies one dumpdir with the real
// `tar --listed-incremental=/dev/null -x` to one copy of a tree and with
// Purge to another, and wants the same result.
func TestPurgeMatchesGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	base := t.TempDir()
	gnu, ours := filepath.Join(base, "gnu"), filepath.Join(base, "ours")
	purgeTree(t, gnu)
	purgeTree(t, ours)

	archive := filepath.Join(base, "inc.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = tw.WriteHeader(&tar.Header{
		Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0),
		Format: tar.FormatPAX, PAXRecords: map[string]string{PAXDumpdir: EncodeDumpdir(purgeEntries())},
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	run(t, gnu, tarPath, "--listed-incremental=/dev/null", "-xf", archive)

	removed, err := Purge(filepath.Join(ours, "d"), purgeEntries())
	if err != nil {
		t.Fatal(err)
	}
	wantRemoved := []string{"dasfile", "dlink", "extra", "extralink", "gone", "yasdir"}
	for i, n := range wantRemoved {
		wantRemoved[i] = filepath.Join(ours, "d", n)
	}
	if !reflect.DeepEqual(removed, wantRemoved) {
		t.Errorf("Purge removed %q, want %q", removed, wantRemoved)
	}
	g, o := listTree(t, gnu), listTree(t, ours)
	if !reflect.DeepEqual(g, o) {
		t.Fatalf("GNU tar left\n%s\nPurge left\n%s", strings.Join(g, "\n"), strings.Join(o, "\n"))
	}
	for _, p := range []string{"outside", "outdir/keep", "d/ddir/sub/keep"} {
		if _, err := os.Stat(filepath.Join(ours, p)); err != nil {
			t.Errorf("%s should survive: %v", p, err)
		}
	}
}

func TestPurgeEmptyDumpdir(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"c", "a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Purge(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	if !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %q, want %q", removed, want)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("%d entries left", len(es))
	}
}

func TestPurgeRefuses(t *testing.T) {
	tests := []struct {
		name    string
		entries []DirEntry
		want    string
	}{
		{"slash", []DirEntry{{'Y', "a/b"}}, "unsafe name"},
		{"dotdot", []DirEntry{{'N', ".."}}, "unsafe name"},
		{"dot", []DirEntry{{'D', "."}}, "unsafe name"},
		{"empty", []DirEntry{{'Y', ""}}, "unsafe name"},
		{"nul", []DirEntry{{'Y', "a\x00b"}}, "unsafe name"},
		{"rename", []DirEntry{{'R', "x/a"}, {'T', "x/b"}}, "rename"},
		{"temp dir", []DirEntry{{'X', "x/tmp"}}, "rename"},
		{"unknown kind", []DirEntry{{'Q', "a"}}, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			removed, err := Purge(dir, tt.entries)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Purge error = %v, want it to say %q and name %s", err, tt.want, dir)
			}
			if len(removed) != 0 {
				t.Fatalf("removed %q despite the error", removed)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Fatalf("victim removed: %v", err)
			}
		})
	}

	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{link: "symlink", filepath.Join(real, "precious"): "not a directory", filepath.Join(base, "none"): "no such file"} {
		if _, err := Purge(p, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Purge(%s) error = %v, want %q", p, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(real, "precious")); err != nil {
		t.Fatalf("purge through a symlink removed a file: %v", err)
	}
}

func TestPurgeKeepsListedOrder(t *testing.T) {
	// Purge does not depend on the order of entries (GNU tar does: it
	// binary-searches, which is why writers must use SortDumpdir).
	dir := t.TempDir()
	for _, n := range []string{"z", "a", "m"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Purge(dir, []DirEntry{{'Y', "z"}, {'N', "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "m")}; !reflect.DeepEqual(removed, want) {
		t.Fatalf("removed %q, want %q", removed, want)
	}
	names, _ := os.ReadDir(dir)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"a", "z"}) {
		t.Fatalf("left %q", got)
	}
}

// TestPurgeRootNames: PurgeRoot works on an open root and returns plain
// names, and names the directory as the root does in its errors.
func TestPurgeRootNames(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"keep", "gone"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	removed, err := PurgeRoot(root, []DirEntry{{'Y', "keep"}})
	if err != nil || !reflect.DeepEqual(removed, []string{"gone"}) {
		t.Fatalf("PurgeRoot = %q, %v; want [gone]", removed, err)
	}
	if _, err := PurgeRoot(root, []DirEntry{{'Y', ".."}}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("PurgeRoot of \"..\": %v, want a refusal naming %s", err, dir)
	}
}
