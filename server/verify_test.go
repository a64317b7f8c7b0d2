package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/config"
)

// tapir verify reads every image of a volume back: whole images (also the
// parts on other volumes) against the catalog's SHA-256 and their tar
// streams to the end; a flipped byte on the volume is reported per image.
func TestVerify(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: filepath.Join(s.dir, "src", "big"), Dumptype: "raw"})
	randomFiles(t, filepath.Join(s.dir, "src", "big"), 6, 1<<20)
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 5 << 20 // the 6 MiB image spans two volumes
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Runtapes = 3
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 || len(res.Images) < 1 {
		t.Fatalf("verify of a good volume: %+v", res.Images)
	}
	spanned := false
	for _, im := range res.Images {
		if im.Parts > 1 && strings.Contains(im.Detail, "all 2 parts") {
			spanned = true
		}
	}
	if !spanned {
		t.Errorf("no image was verified across its parts: %+v", res.Images)
	}
	// Flip a byte in the middle of the first image on the volume.
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", "00001.*"))
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 1
	os.WriteFile(files[0], b, 0o640)
	res, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || res.Images[0].OK || !strings.Contains(res.Images[0].Detail, "SHA-256 mismatch") {
		t.Errorf("verify after a flipped byte: %+v", res.Images)
	}
	if _, err := Verify(context.Background(), s.cfg, "test-999", Deps{}); err == nil {
		t.Error("verify of an unknown volume succeeded")
	}
}
