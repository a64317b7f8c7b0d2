package gen

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	o := Options{Size: 3 * MiB, Seed: 7, Largest: MiB + 5}
	a, b := t.TempDir(), t.TempDir()
	sa, err := Generate(a, o)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Generate(b, o)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb || sa.Bytes != o.Size {
		t.Fatalf("stats %+v and %+v, want %d bytes", sa, sb, o.Size)
	}
	if sa.TextBytes < o.Size*2/5 || sa.TextBytes > o.Size*3/5 {
		t.Errorf("text bytes %d of %d, want about half", sa.TextBytes, sa.Bytes)
	}
	n := 0
	err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs", rel)
		}
		n++
		return nil
	})
	if err != nil || n != sa.Files {
		t.Fatalf("walked %d files (err %v), generated %d", n, err, sa.Files)
	}
}

func TestFlat(t *testing.T) {
	st, err := Generate(t.TempDir(), Options{Files: 250})
	if err != nil || st.Files != 250 || st.Bytes != 0 || st.Dirs != 3 {
		t.Fatalf("got %+v, %v", st, err)
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"1GiB": GiB, "256MiB": 256 * MiB, "100M": 100 * MiB, "64k": 64 * KiB, "4096": 4096, "0": 0, "1.5GB": 3 * GiB / 2} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GiB", "-1", "12X"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) succeeded", s)
		}
	}
}
