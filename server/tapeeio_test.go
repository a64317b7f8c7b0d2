package server

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// A tape drive that returns EIO in the middle of an image, or on the
// filemark that ends it (through the real st ioctl path, the FUSE fake
// drive, with the single changer): the truncated tape file stays on the
// volume, the catalog records it as a failed write with its file number
// and the error, the report names it, verify lists it as a failed write
// (SKIP: not a file the catalog does not know, not a bad image), and the
// image stays on the holding disk for the next run.
func TestTapeEIOLeavesARecordedFailedFile(t *testing.T) {
	for _, c := range []struct {
		name   string
		inject func(d *fakest.Drive)
		why    string // in the failed file's reason
	}{
		// Object 0 is the label, 1 its filemark, 2 the image's header:
		// 20 is well inside the image.
		{"record", func(d *fakest.Drive) { d.InjectError(20, syscall.EIO) }, "truncated after"},
		// MTWEOF 1 ends the label, 2 the image.
		{"filemark", func(d *fakest.Drive) { d.FailOp(mtio.MTWEOF, 2, syscall.EIO) }, "its filemark failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, drive := singleDriveSite(t, 64<<20, "TAPE01")
			dt := config.DefaultDumptype()
			dt.Compress = config.CompressNone
			s.cfg.Dumptypes["raw"] = dt
			s.dles(t, "raw", 4, 1<<20, "a") // one image of 4 MiB: 64 records of 64 KiB
			s.cfg.Runtapes = 1              // no second try: the image stays on the holding disk
			c.inject(drive)
			rep, out, err := s.night(t, Deps{})
			if err == nil || !strings.Contains(err.Error(), "not safe on a volume") {
				t.Fatalf("night: %v, want the run to fail with its image not on a volume\n%s", err, out)
			}
			for _, d := range rep.DLEs {
				if d.Status != report.StatusHolding || !strings.Contains(d.Reason, "holding disk") {
					t.Errorf("%s: %s %q, want it left on the holding disk", d.Path, d.Status, d.Reason)
				}
			}
			if left := holdingFiles(t, s); len(left) != 1 {
				t.Errorf("holding files %v, want the one image", left)
			}
			drive.ClearErrors()

			cat := s.catalog(t)
			failed, err := cat.FailedFiles(t.Context(), "test-001")
			if err != nil || len(failed) != 1 {
				t.Fatalf("failed files of test-001: %+v %v\n%s", failed, err, out)
			}
			f := failed[0]
			if f.FileNo != 1 || f.Datestamp != rep.Datestamp || f.Host != "localhost" || !strings.Contains(f.Reason, c.why) || !strings.Contains(f.Reason, "I/O error") {
				t.Errorf("failed file %+v, want file 1, %q, naming the I/O error", f, c.why)
			}
			if !strings.Contains(out, "volume test-001 file 1: localhost:") || !strings.Contains(out, "recorded as a failed file") {
				t.Errorf("the report does not name the truncated file:\n%s", out)
			}
			if good, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood); len(good) != 0 {
				t.Errorf("the catalog records %d good dumps after the failed write: %+v", len(good), good)
			}
			vr, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
			if err != nil {
				t.Fatalf("verify test-001: %v", err)
			}
			if vr.Bad() != 0 || vr.Orphans() != 0 {
				t.Errorf("verify counts %d bad, %d orphans: %+v", vr.Bad(), vr.Orphans(), vr.Images)
			}
			if len(vr.Images) != 1 || !vr.Images[0].FailedWrite || vr.Images[0].FileNo != 1 || !strings.HasPrefix(vr.Images[0].Detail, "failed write recorded") {
				t.Errorf("verify lists %+v, want file 1 as a failed write", vr.Images)
			}
		})
	}
}

// The filemark that ends a part at the early warning fails with EIO (st
// reports there a write error of records it buffered): that part is not
// kept as part 1 of the image, which would then restore with whatever the
// drive lost. It is recorded as a failed file, the volume is given up,
// and the image is written again, whole, on the next cartridge the
// operator inserts.
func TestTapeEIOOnEarlyWarningFilemark(t *testing.T) {
	s, drive := singleDriveSite(t, 64<<20, "TAPE01", "TAPE02")
	if err := drive.Cartridge("TAPE01").SetCapacity(2<<20, 256<<10); err != nil {
		t.Fatal(err)
	}
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 4, 1<<20, "a") // 4 MiB: past TAPE01's early warning
	s.cfg.Runtapes = 2
	drive.FailOp(mtio.MTWEOF, 2, syscall.EIO) // 1 ends the label, 2 the part at the early warning
	var logs syncBuffer
	go func() {
		if !logs.waitFor(t, func(log string) bool { return strings.Contains(log, "operator action needed") }) {
			return
		}
		for _, err := range []error{drive.Eject(), func() error { _, err := drive.Remove(); return err }(), drive.Insert("TAPE02")} {
			if err != nil {
				t.Error(err)
			}
		}
	}()
	rep, out, err := s.night(t, Deps{Log: slogTo(&logs)})
	if err != nil {
		t.Fatalf("night: %v\n%s\n%s", err, out, logs.String())
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusStrange && d.Status != report.StatusOK {
			t.Errorf("%s: %s %q", d.Path, d.Status, d.Reason)
		}
		if len(d.Parts) != 1 || d.Parts[0].Volume != "test-002" {
			t.Errorf("%s is on %+v, want it whole on test-002", d.Path, d.Parts)
		}
	}
	cat := s.catalog(t)
	failed, err := cat.FailedFiles(t.Context(), "test-001")
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed files of test-001: %+v %v\n%s", failed, err, out)
	}
	if f := failed[0]; f.FileNo != 1 || !strings.Contains(f.Reason, "its filemark failed") || !strings.Contains(f.Reason, "early warning") || !strings.Contains(f.Reason, "I/O error") {
		t.Errorf("failed file %+v, want file 1, its filemark at the early warning failed with an I/O error", f)
	}
	vr, err := Verify(context.Background(), s.cfg, "test-002", Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 || vr.Orphans() != 0 || len(vr.Images) != 1 || !vr.Images[0].OK {
		t.Errorf("verify test-002: %+v %v", vr, err)
	}
	// The operator puts TAPE01 back for its verify.
	if err := drive.Eject(); err != nil {
		t.Fatal(err)
	}
	if _, err := drive.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := drive.Insert("TAPE01"); err != nil {
		t.Fatal(err)
	}
	vr, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 || vr.Orphans() != 0 {
		t.Fatalf("verify test-001: %+v %v", vr, err)
	}
	if len(vr.Images) != 1 || !vr.Images[0].FailedWrite || vr.Images[0].FileNo != 1 {
		t.Errorf("verify test-001 lists %+v, want file 1 as a failed write", vr.Images)
	}
}
