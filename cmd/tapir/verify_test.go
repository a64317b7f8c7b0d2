package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyAndRebuildCommands: tapir verify says which tapes it needs
// and exits 0 on a good volume; a
// byte changed in an image header (the level of an L1 made 0) makes it
// exit 1 naming the field, and tapir admin rebuild leaves that image out
// (exit 1, saying which volume, file and byte) instead of recording an L1
// as a good L0; a tape file the catalog does not know is an ORPHAN and
// makes verify exit 1 too.
func TestVerifyAndRebuildCommands(t *testing.T) {
	site, cfg := indexSite(t)
	for _, label := range []string{"TEST-001", "TEST-002"} {
		out, stderr, code := run(t, "verify", "-c", cfg, label)
		if code != 0 || !strings.HasPrefix(out, "The following tapes are needed: "+label+"\n") ||
			!strings.Contains(out, "OK      file 1: web1:/srv level") || !strings.Contains(out, "all 1 image(s) verified") {
			t.Fatalf("verify %s: exit %d\n%s%s", label, code, out, stderr)
		}
	}
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot2", "00001.*"))
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), good...)
	b[bytes.Index(b, []byte(" lev 1 "))+5] = '0'
	os.WriteFile(files[0], b, 0o640)

	out, stderr, code := run(t, "verify", "-c", cfg, "TEST-002")
	if code != 1 || !strings.Contains(out, "BAD     file 1: web1:/srv level 1 of 20250608010000 part 1: ") ||
		!strings.Contains(out, `line 1 (level)`) || !strings.Contains(out, "header field level says 0, the catalog says 1") ||
		!strings.Contains(stderr, "volume TEST-002: 1 of 1 tape file(s) failed verification") {
		t.Errorf("verify with a damaged header: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "admin", "rebuild", "-c", cfg, "--force")
	if code != 1 || !strings.Contains(out, "1 images (1 parts)") ||
		!strings.Contains(out, "volume TEST-002 file 1: image NOT RECORDED: image header: checksum mismatch") || !strings.Contains(out, `line 1 (level)`) {
		t.Errorf("rebuild with a damaged header: exit %d\n%s%s", code, out, stderr)
	}
	out, _, _ = run(t, "admin", "find", "-c", cfg, "web1")
	if strings.Contains(out, "2025-06-08") || !strings.Contains(out, "2025-06-07") {
		t.Errorf("after the rebuild, find says:\n%s", out)
	}

	// An orphan: the header repaired, but the catalog (rebuilt without the
	// image) does not know the file.
	os.WriteFile(files[0], good, 0o640)
	out, stderr, code = run(t, "verify", "-c", cfg, "TEST-002")
	if code != 1 || !strings.Contains(out, "ORPHAN  file 1: web1:/srv level 1 of 20250608010000 part 1: ORPHAN: this image is not in the catalog") ||
		!strings.Contains(stderr, "1 of them not in the catalog: run `tapir admin rebuild`") {
		t.Errorf("verify with an orphan: exit %d\n%s%s", code, out, stderr)
	}
}
