package recover

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
