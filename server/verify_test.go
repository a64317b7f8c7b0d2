package server

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/taper/fakest"
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

// singleDriveSite is a site whose changer is the single drive of a FUSE
// fake st drive (skipped without /dev/fuse) with cartridges of capacity
// bytes; the run waits for a cartridge until the test's operator acts.
func singleDriveSite(t *testing.T, capacity int64, cartridges ...string) (*site, *fakest.Drive) {
	t.Helper()
	drive := fakest.Mount(t, fakest.Options{Capacity: capacity, Cartridges: cartridges})
	s := newSite(t, "")
	s.cfg.Changer = config.Changer{Type: "single", Device: drive.Path(fakest.NST0), Tapetype: "small",
		Wait: config.Duration(24 * time.Hour), Poll: config.Duration(100 * time.Millisecond), Remind: config.Duration(time.Hour)}
	tt := s.cfg.Tapetypes["small"]
	tt.Length = config.Size(capacity)
	s.cfg.Tapetypes["small"] = tt
	return s, drive
}

// traceMotion checks a drive trace for a read in one forward pass: no
// backward spacing, MTSEEK targets that never decrease; it returns the
// number of rewinds.
func traceMotion(t *testing.T, trace []string) (rewinds int) {
	t.Helper()
	last := int64(-1)
	for _, e := range trace {
		op, arg, _ := strings.Cut(e, " ")
		switch op {
		case "MTREW":
			rewinds++
			last = -1 // a rewind starts over (counted by the caller)
		case "MTBSF", "MTBSR":
			t.Errorf("backward motion %q: %q", e, trace)
		case "MTSEEK":
			arg, _, _ = strings.Cut(arg, " ")
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				t.Fatalf("trace entry %q: %v", e, err)
			}
			if n < last {
				t.Errorf("MTSEEK %d after MTSEEK %d: backward: %q", n, last, trace)
			}
			last = n
		}
	}
	return rewinds
}

// tapir verify reads a volume of three images on a tape drive in one
// forward pass (issue 14): one rewind when it is loaded, every image and
// header reached by locating or spacing forward, never back.
func TestVerifyOnePassOnTape(t *testing.T) {
	s, drive := singleDriveSite(t, 64<<20, "TAPE01")
	more := filepath.Join(s.dir, "src", "more")
	randomFiles(t, more, 3, 200<<10)
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: more, Dumptype: "default"})
	if rep, out, err := s.night(t, Deps{}); err != nil || len(rep.Volumes) != 1 {
		t.Fatalf("night: %v\n%s", err, out)
	}
	// What one load of the volume costs the drive (the changer reads the
	// label, rewinding around it): the verify loads it once.
	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	drive.ResetTrace()
	_, release, err := vols.Open(t.Context(), "test-001", nil)
	if err != nil {
		t.Fatal(err)
	}
	release()
	load := traceMotion(t, drive.Trace())
	if load == 0 {
		t.Fatalf("loading the volume did not rewind it: %q", drive.Trace())
	}

	drive.ResetTrace()
	var asked []string
	res, err := Verify(t.Context(), s.cfg, "test-001", Deps{Log: testLogger(t), Ask: func(msg string) { asked = append(asked, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 || len(res.Images) != 3 {
		t.Fatalf("verify: %+v", res.Images)
	}
	for _, im := range res.Images {
		if !im.OK || !strings.Contains(im.Detail, "SHA-256 matches") {
			t.Errorf("file %d: %+v", im.FileNo, im)
		}
	}
	trace := drive.Trace()
	t.Logf("trace: %q", trace)
	if n := traceMotion(t, trace); n != load {
		t.Errorf("%d rewinds, want %d (one load of the volume): %q", n, load, trace)
	}
	// Once the reads start (the first positioning), nothing rewinds.
	moved := false
	for _, e := range trace {
		moved = moved || strings.HasPrefix(e, "MTSEEK ") || strings.HasPrefix(e, "MTFSF ")
		if moved && strings.HasPrefix(e, "MTREW ") {
			t.Errorf("a rewind after the reads began: %q", trace)
			break
		}
	}
	if len(asked) != 1 || asked[0] != "The following tapes are needed: test-001" {
		t.Errorf("asked %q", asked)
	}
}
