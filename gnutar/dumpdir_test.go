package gnutar

import (
	"archive/tar"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDumpdirRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		entries []DirEntry
		enc     string
	}{
		{"empty directory", nil, "\x00"},
		{"GNU tar level 1", []DirEntry{{'N', "b"}, {'Y', "c"}}, "Nb\x00Yc\x00\x00"},
		{"all kinds we write", []DirEntry{{'D', "sub"}, {'N', "old"}, {'Y', "new file"}}, "Dsub\x00Nold\x00Ynew file\x00\x00"},
		{"rename", []DirEntry{{'R', "a/x"}, {'T', "a/y"}, {'Y', "y"}}, "Ra/x\x00Ta/y\x00Yy\x00\x00"},
		{"cyclic rename", []DirEntry{{'X', "foo/tmp"}, {'R', "foo/a"}, {'T', ""}}, "Xfoo/tmp\x00Rfoo/a\x00T\x00\x00"},
		{"odd bytes in names", []DirEntry{{'Y', "\xff\n é"}}, "Y\xff\n é\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeDumpdir(tt.entries); got != tt.enc {
				t.Fatalf("EncodeDumpdir = %q, want %q", got, tt.enc)
			}
			got, err := DecodeDumpdir(tt.enc)
			if err != nil {
				t.Fatalf("DecodeDumpdir(%q): %v", tt.enc, err)
			}
			if !reflect.DeepEqual(got, tt.entries) {
				t.Fatalf("DecodeDumpdir(%q) = %q, want %q", tt.enc, got, tt.entries)
			}
		})
	}
}

func TestDecodeDumpdirErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "empty"},
		{"Ya\x00", "lacks its terminating NUL"},
		{"Ya", "not NUL-terminated"},
		{"Qa\x00\x00", "unknown kind 'Q'"},
		{"Y\x00\x00", "empty name"},
		{"N\x00\x00", "empty name"},
		{"\x00x", "stray bytes"},
		{"Ya\x00\x00\x00", "stray bytes"},
		{"Ya\x00\x00Yb\x00\x00", "stray bytes"},
	}
	for _, tt := range tests {
		_, err := DecodeDumpdir(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeDumpdir(%q) error = %v, want it to say %q", tt.in, err, tt.want)
		}
	}
}

func TestSortDumpdir(t *testing.T) {
	es := []DirEntry{{'Y', "b"}, {'D', "B"}, {'N', "a"}, {'Y', "a.txt"}, {'Y', "é"}}
	SortDumpdir(es)
	want := []DirEntry{{'D', "B"}, {'N', "a"}, {'Y', "a.txt"}, {'Y', "b"}, {'Y', "é"}}
	if !reflect.DeepEqual(es, want) {
		t.Fatalf("SortDumpdir = %q, want %q", es, want)
	}
}

// TestDumpdirFromGNUTar decodes the dumpdirs of a real GNU tar
// --listed-incremental level 1 archive and re-encodes them byte for byte.
func TestDumpdirFromGNUTar(t *testing.T) {
	tarPath := needGNUTar(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"d1/sub", "d2"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"top", "d1/b", "d1/c"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(dir, "snap")
	run(t, dir, tarPath, "--format=posix", "--listed-incremental="+snap, "-cf", "l0.tar", "-C", src, ".")
	// GNU tar dumps what changed after the level 0 started; a timestamp in
	// the future keeps that true however coarse the filesystem clock is.
	changed := filepath.Join(src, "d1/c")
	if err := os.WriteFile(changed, []byte("changed, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(changed, future, future); err != nil {
		t.Fatal(err)
	}
	run(t, dir, tarPath, "--format=posix", "--listed-incremental="+snap, "-cf", "l1.tar", "-C", src, ".")

	f, err := os.Open(filepath.Join(dir, "l1.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]DirEntry{
		"./":        {{'D', "d1"}, {'D', "d2"}, {'N', "top"}},
		"./d1/":     {{'N', "b"}, {'Y', "c"}, {'D', "sub"}},
		"./d1/sub/": nil,
		"./d2/":     nil,
	}
	seen := 0
	for _, e := range readTar(t, f) {
		if e.hdr.Typeflag != tar.TypeDir {
			continue
		}
		raw, ok := e.hdr.PAXRecords[PAXDumpdir]
		if !ok {
			t.Fatalf("%s: no %s record", e.hdr.Name, PAXDumpdir)
		}
		got, err := DecodeDumpdir(raw)
		if err != nil {
			t.Fatalf("%s: %v", e.hdr.Name, err)
		}
		if enc := EncodeDumpdir(got); enc != raw {
			t.Errorf("%s: re-encoded %q, GNU tar wrote %q", e.hdr.Name, enc, raw)
		}
		w, ok := want[strings.TrimSuffix(e.hdr.Name, "/")+"/"]
		if !ok {
			t.Fatalf("unexpected directory %q", e.hdr.Name)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: dumpdir %q, want %q", e.hdr.Name, got, w)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("saw %d directories, want %d", seen, len(want))
	}
}

func FuzzDecodeDumpdir(f *testing.F) {
	for _, s := range []string{"\x00", "Nb\x00Yc\x00\x00", "Dsub\x00\x00", "Xt\x00Ra\x00T\x00\x00", "", "Y", "Ya\x00", "Qa\x00\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		es, err := DecodeDumpdir(v)
		if err != nil {
			return
		}
		if enc := EncodeDumpdir(es); enc != v {
			t.Fatalf("DecodeDumpdir(%q) = %q re-encodes as %q", v, es, enc)
		}
	})
}
