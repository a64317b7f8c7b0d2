package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/fakest"
	"github.com/tapir-backup/tapir/taper/taptest"
)

// twoDriveSite is a site of four DLEs whose disk changer has two vtape
// drives, each wrapped so that a test can hold its writes.
func twoDriveSite(t *testing.T, runtapes int) (*site, []*taptest.Changer) {
	t.Helper()
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	dt.Strategy = "noinc"
	dt.FrameSize = 64 << 10
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 4, 256<<10, "a", "b", "c", "d") // 1 MiB each
	s.cfg.Runtapes = runtapes
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 6
	s.cfg.Changer.Tapers = 2
	s.cfg.TapeWholeImages = true // whole images from holding: the drives take them from the queue
	drives, err := taper.NewDiskChangers(s.cfg.Changer.Path, s.cfg.Changer.Slots, int64(s.cfg.Tapetype().Length), int64(s.cfg.Tapetype().Blocksize), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wrapped []*taptest.Changer
	for _, d := range drives {
		wrapped = append(wrapped, taptest.Wrap(d))
	}
	return s, wrapped
}

// resumeOnLog returns a logger that resumes the held drive w the first
// time a message beginning with msg is logged.
func resumeOnLog(t *testing.T, w *taptest.Changer, msg string) *slog.Logger {
	var once sync.Once
	return slog.New(notifyHandler{testLogger(t).Handler(), func(r slog.Record) {
		if strings.HasPrefix(r.Message, msg) {
			once.Do(w.Resume)
		}
	}})
}

func changersOf(ws []*taptest.Changer) []taper.Changer {
	var out []taper.Changer
	for _, w := range ws {
		out = append(out, w)
	}
	return out
}

// restoreAll restores every DLE of the site from its volumes and compares
// it with the source tree.
func restoreAll(t *testing.T, s *site) {
	t.Helper()
	for _, d := range s.cfg.DLEs {
		to := t.TempDir()
		if _, err := restore.Tree(context.Background(), s.cfg, restore.TreeRequest{Host: d.Host, Path: d.Path, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t)); err != nil {
			t.Fatalf("restore %s: %v", d.Path, err)
		}
		if b, err := exec.Command("diff", "-r", d.Path, to).CombinedOutput(); err != nil {
			t.Errorf("restored %s differs: %s", d.Path, b)
		}
	}
}

// Two drives write at once, each whole images to its own volume: drive 0
// is held in the middle of an image until drive 1 is in the middle of
// another one. The report names the drive of each volume and sums each
// drive's use; every image restores.
func TestTwoDrivesWriteAtOnce(t *testing.T) {
	t.Run("whole images", func(t *testing.T) { twoDrivesAtOnce(t, true) })
	// Taping while dumping: each drive may follow a dump in progress.
	t.Run("streamed", func(t *testing.T) { twoDrivesAtOnce(t, false) })
}

func twoDrivesAtOnce(t *testing.T, whole bool) {
	s, ws := twoDriveSite(t, 2)
	s.cfg.TapeWholeImages = whole
	if !whole {
		tt := s.cfg.Tapetypes["small"]
		tt.Speed = 1 // start rule: a drive slower than any dumper starts at the first bytes
		s.cfg.Tapetypes["small"] = tt
	}
	// Records: the label, then an image's header and data. Each drive
	// blocks in its third record, so both are in the middle of an image
	// at once before either goes on: one drive alone would hang here.
	for _, w := range ws {
		w.StallAfter(3)
	}
	go func() {
		<-ws[0].Stalled()
		<-ws[1].Stalled()
		ws[0].Resume()
		ws[1].Resume()
	}()
	rep, out, err := s.night(t, Deps{Changers: changersOf(ws)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) != 2 {
		t.Fatalf("%d volumes, want one per drive: %+v\n%s", len(rep.Volumes), rep.Volumes, out)
	}
	drives := map[string]string{}
	for _, v := range rep.Volumes {
		if prev, ok := drives[v.Drive]; ok || v.Drive == "" {
			t.Fatalf("volume %s by %q, and %s by the same drive: %+v", v.Label, v.Drive, prev, rep.Volumes)
		}
		drives[v.Drive] = v.Label
		if v.Files == 0 {
			t.Errorf("volume %s (%s) holds no image", v.Label, v.Drive)
		}
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusOK || len(d.Parts) != 1 {
			t.Errorf("%s: %s, %d parts (want OK, whole on one volume)", d.Path, d.Status, len(d.Parts))
		}
	}
	for _, want := range []string{"USAGE BY DRIVE", "by drive 0", "by drive 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// The metrics give each drive's rate and starvation (none for whole
	// images: the holding disk fed both; a streamed image may wait for
	// its dumper).
	m := gather(t, NewCollector(func() *config.Config { return s.cfg }, s.catalog(t), testLogger(t)))
	for _, d := range []string{"drive 0", "drive 1"} {
		rate, ok := m["tapir_last_run_drive_rate_bytes_per_second{drive="+d+"}"]
		starved, ok2 := m["tapir_last_run_drive_starved_seconds{drive="+d+"}"]
		if !ok || !ok2 || rate <= 0 || (whole && starved != 0) {
			t.Errorf("%s: rate %v (%v), starved %v (%v)", d, rate, ok, starved, ok2)
		}
	}
	restoreAll(t, s)
	// The next night writes with both drives again, never on a volume of
	// the night before (tapecycle 1 keeps the newest).
	nextNightOnOtherVolumes(t, s, rep)
}

// nextNightOnOtherVolumes runs the site's next night with its configured
// changer and checks that it writes none of the volumes of rep's night
// (tapecycle 1 keeps the newest).
func nextNightOnOtherVolumes(t *testing.T, s *site, rep *report.Run) {
	t.Helper()
	first := map[string]bool{}
	for _, v := range rep.Volumes {
		first[v.Label] = true
	}
	next, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("the next night: %v\n%s", err, out)
	}
	for _, v := range next.Volumes {
		if first[v.Label] {
			t.Errorf("the next night wrote %s, a volume of the night before (tapecycle 1 keeps it)\n%s", v.Label, out)
		}
	}
}

// runtapes counts the volumes of all drives together: with runtapes 1,
// two tapers write with one drive, and the report says why.
func TestTapersBeyondRuntapes(t *testing.T) {
	s, ws := twoDriveSite(t, 1)
	rep, out, err := s.night(t, Deps{Changers: changersOf(ws)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) != 1 || !strings.Contains(out, "runtapes = 1: the run writes with 1 drive(s)") {
		t.Fatalf("volumes %+v\n%s", rep.Volumes, out)
	}
	if ws[1].Records() != 0 {
		t.Errorf("drive 1 wrote %d records though runtapes leaves it no volume", ws[1].Records())
	}
	restoreAll(t, s)
}

// A drive that fails in the middle of an image does not stop the other:
// the image is written again on the failing drive's next volume, and
// runtapes bounds the volumes of both drives together.
func TestOneDriveFails(t *testing.T) {
	s, ws := twoDriveSite(t, 3)
	// Drive 0 holds its first image until drive 1 has failed one: drive 1
	// must take the second image, and fails after its header.
	ws[0].StallAfter(3)
	ws[1].FailAfter(3, syscall.EIO)
	log := resumeOnLog(t, ws[0], "taping failed")
	rep, out, err := s.night(t, Deps{Changers: changersOf(ws), Log: log})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) > 3 {
		t.Fatalf("%d volumes, runtapes is 3: %+v", len(rep.Volumes), rep.Volumes)
	}
	labels := map[string]bool{}
	for _, v := range rep.Volumes {
		if labels[v.Label] {
			t.Fatalf("volume %s written twice in one run: %+v", v.Label, rep.Volumes)
		}
		labels[v.Label] = true
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusOK {
			t.Errorf("%s: %s %s\n%s", d.Path, d.Status, d.Reason, out)
		}
	}
	cat := s.catalog(t)
	var cut []catalog.FailedFile
	for _, v := range rep.Volumes {
		ff, err := cat.FailedFiles(t.Context(), v.Label)
		if err != nil {
			t.Fatal(err)
		}
		cut = append(cut, ff...)
	}
	if len(cut) == 0 {
		t.Errorf("the cut tape file on drive 1 is not recorded as failed\n%s", out)
	}
	restoreAll(t, s)
}

// Every image of a two-drive night is on exactly one volume, and no two
// drives wrote the same volume: checked in the catalog over several
// nights with volumes that fill (images span on their drive's next one).
func TestTwoDrivesCatalogOverNights(t *testing.T) {
	s, _ := twoDriveSite(t, 4)
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 3 << 20 // 2 MiB usable before the early warning, for 4 MiB a night: images span on their drive
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Changer.Slots = 12
	for night := range 3 {
		// Each run opens its changer afresh, as the configuration's.
		rep, out, err := s.night(t, Deps{})
		if err != nil {
			t.Fatalf("night %d: %v\n%s", night, err, out)
		}
		byLabel := map[string]string{}
		for _, v := range rep.Volumes {
			if _, dup := byLabel[v.Label]; dup {
				t.Fatalf("night %d wrote %s twice: %+v", night, v.Label, rep.Volumes)
			}
			byLabel[v.Label] = v.Drive
		}
		// An image's parts are on volumes of one drive, in order.
		for _, d := range rep.DLEs {
			var ds []string
			for _, p := range d.Parts {
				ds = append(ds, byLabel[p.Volume])
			}
			for _, x := range ds {
				if x != ds[0] {
					t.Errorf("night %d: %s has parts on volumes of %v", night, d.Path, ds)
				}
			}
		}
	}
	cat := s.catalog(t)
	good, err := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{} // volume/file -> dump
	for _, d := range good {
		parts, err := cat.Parts(t.Context(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			k := fmt.Sprintf("%s/%d", p.Volume, p.FileNo)
			if other, ok := files[k]; ok {
				t.Errorf("tape file %s holds dump %d and dump %d", k, other, d.ID)
			}
			files[k] = d.ID
		}
	}
	restoreAll(t, s)
}

// A drive that can get no volume (its load fails) leaves the run; the
// image it took goes to the other drive, and the report says so.
func TestJammedDriveLeavesTheOthers(t *testing.T) {
	s, ws := twoDriveSite(t, 2)
	ws[0].StallAfter(3) // drive 0 holds its first image until drive 1 left
	log := resumeOnLog(t, ws[0], "a drive can write no further volume")
	rep, out, err := s.night(t, Deps{Changers: []taper.Changer{ws[0], failingLoad{ws[1]}}, Log: log})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Drive != "drive 0" {
		t.Errorf("volumes %+v, want the one of drive 0", rep.Volumes)
	}
	if !strings.Contains(out, "drive 1 can write no further volume") || !strings.Contains(out, "the robot arm is jammed") {
		t.Errorf("the report does not say drive 1 left and why:\n%s", out)
	}
	restoreAll(t, s)
}

// A night in a library with two FUSE st drives (real ioctls through the
// kernel, a fake mtx moving the cartridges): drive 0 is held in the
// middle of its first image until drive 1 has taped one, so both write at
// once; verify and the restores then read every volume with the first
// drive, unloading drive 1's cartridge first. A second night writes with
// both again.
func TestRobotTwoDrivesNight(t *testing.T) {
	barcodes := []string{"B00001L8", "B00002L8", "B00003L8", "B00004L8", "B00005L8", "B00006L8"}
	drives := fakest.MountDrives(t, 2, fakest.Options{Capacity: 32 << 20, Cartridges: barcodes, Empty: true})
	lib, err := fakest.NewLibraryDrives(t.TempDir(), 2, barcodes, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.EnvDrives(drives[0].Path(fakest.CtlFile), drives[1].Path(fakest.CtlFile)) {
		t.Setenv(k, v)
	}
	s, _ := twoDriveSite(t, 2)
	dev0, dev1 := drives[0].Path(fakest.NST0), drives[1].Path(fakest.NST0)
	s.cfg.Changer = config.Changer{Type: "robot", Changer: "/dev/sg3", MTX: lib.MTX, Device: dev0, Drives: []string{dev0, dev1}, Tapers: 2,
		StateFile: filepath.Join(s.dir, "changer.json"), Tapetype: "small", Poll: config.Duration(time.Second), Remind: config.Duration(time.Hour)}
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 32 << 20
	s.cfg.Tapetypes["small"] = tt

	var mu sync.Mutex
	label0, stalled, resumed := "", false, false
	log := slog.New(notifyHandler{testLogger(t).Handler(), func(r slog.Record) {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Message == "writing volume" && attrs["device"] == "tape:"+dev0:
			label0 = attrs["label"]
		case r.Message == "tape file begun" && attrs["volume"] == label0 && !stalled:
			stalled = true
			drives[0].Stall() // its next record waits
		case r.Message == "taped" && attrs["volume"] != label0 && stalled && !resumed:
			resumed = true
			drives[0].Resume()
		}
	}})
	rep, out, err := s.night(t, Deps{Log: log})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !resumed || len(rep.Volumes) != 2 {
		t.Fatalf("drive 0 held %v, released %v; volumes %+v\n%s", stalled, resumed, rep.Volumes, out)
	}
	for i, want := range []string{"drive 0 (" + dev0 + ")", "drive 1 (" + dev1 + ")"} {
		if !strings.Contains(out, "by "+want) {
			t.Errorf("the report does not name %s (volume %d)\n%s", want, i, out)
		}
	}
	calls := strings.Join(lib.Calls(), "; ")
	if !strings.Contains(calls, " 0") || !strings.Contains(calls, " 1") {
		t.Errorf("mtx did not load both drives: %s", calls)
	}
	for _, v := range rep.Volumes {
		res, err := Verify(context.Background(), s.cfg, v.Label, Deps{Log: testLogger(t)})
		if err != nil || res.Bad() != 0 {
			t.Errorf("verify %s (%s): %+v %v", v.Label, v.Drive, res, err)
		}
	}
	restoreAll(t, s)
	nextNightOnOtherVolumes(t, s, rep)
}

// SIGTERM while both drives write: each finishes the image it writes
// (committed, restorable), nothing else is taped, the rest stays on the
// holding disk for the next run, which flushes it with both drives.
func TestStopWhileTwoDrivesWrite(t *testing.T) {
	s, ws := twoDriveSite(t, 2)
	s.cfg.Runtapes = 4
	for _, w := range ws {
		w.StallAfter(3)
	}
	stop := make(chan struct{})
	go func() {
		<-ws[0].Stalled()
		<-ws[1].Stalled()
		close(stop) // both drives in the middle of an image
		ws[0].Resume()
		ws[1].Resume()
	}()
	rep, out, err := s.night(t, Deps{Changers: changersOf(ws), Stop: stop})
	if err != nil && !errors.Is(err, ErrRunFailed) {
		t.Fatalf("%v\n%s", err, out)
	}
	onTape := 0
	for _, d := range rep.DLEs {
		switch d.Status {
		case report.StatusOK:
			onTape++
		case report.StatusHolding:
		case report.StatusFailed:
			if !strings.Contains(d.Reason, "asked to stop") {
				t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
			}
		default:
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	if onTape != 2 {
		t.Errorf("%d images on a volume after the stop, want the 2 the drives were writing\n%s", onTape, out)
	}
	// The next run (autoflush) tapes what the stopped one left.
	s.cfg.Autoflush = true
	rep, out, err = s.night(t, Deps{})
	if err != nil {
		t.Fatalf("the night after the stop: %v\n%s", err, out)
	}
	if n := len(holdingFiles(t, s)); n != 0 {
		t.Errorf("%d holding files left after the next night\n%s", n, out)
	}
	restoreAll(t, s)
}

// scanWatch is a drive of a library that learns labels by loading
// volumes (NeedsScan): the slots in unknown are not scanned until a Scan,
// which it counts per drive.
type scanWatch struct {
	taper.Changer
	mu      *sync.Mutex
	unknown map[int]bool // shared by the drives of the library
	scans   int
}

func (w *scanWatch) Properties() taper.Properties {
	p := w.Changer.Properties()
	p.NeedsScan = true
	return p
}

func (w *scanWatch) Inventory(ctx context.Context) ([]taper.SlotInfo, error) {
	inv, err := w.Changer.Inventory(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range inv {
		if w.unknown[inv[i].Slot] {
			inv[i] = taper.SlotInfo{Slot: inv[i].Slot, Err: fmt.Errorf("slot %d: %w", inv[i].Slot, taper.ErrNotScanned)}
		}
	}
	return inv, err
}

func (w *scanWatch) Scan(ctx context.Context) ([]taper.SlotInfo, error) {
	w.mu.Lock()
	w.scans++
	clear(w.unknown)
	w.mu.Unlock()
	return w.Changer.Inventory(ctx)
}

// A volume whose label the library does not know, found while drive 0
// writes, is scanned through the drive that needs a volume (drive 1),
// never through drive 0: a robot's scan loads volumes into the drive it
// uses, which would take drive 0's cartridge out in the middle of an
// image.
func TestScanThroughTheDriveThatNeedsAVolume(t *testing.T) {
	s, ws := twoDriveSite(t, 2)
	var mu sync.Mutex
	unknown := map[int]bool{}
	sw := []*scanWatch{{Changer: ws[0], mu: &mu, unknown: unknown}, {Changer: ws[1], mu: &mu, unknown: unknown}}
	v := &volumes{cfg: s.cfg, cat: s.catalog(t), datestamp: "20261203000000", clock: clock.Real, log: testLogger(t), notes: func(string) {}}
	v.setDrives([]taper.Changer{sw[0], sw[1]})
	vol0, err := v.drives[0].Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	unknown[4], unknown[5] = true, true // cartridges put into the library now
	mu.Unlock()
	vol1, err := v.drives[1].Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sw[0].scans != 0 || sw[1].scans != 1 {
		t.Errorf("scans through drive 0: %d, through drive 1: %d; want none through the drive that writes, one through the drive that needs a volume", sw[0].scans, sw[1].scans)
	}
	if vol0.Slot == vol1.Slot {
		t.Fatalf("both drives got slot %d", vol0.Slot)
	}
	// Drive 0 still holds its volume and writes on.
	if err := vol0.Dev.BeginFile("x"); err != nil {
		t.Fatal(err)
	}
	if err := vol0.Dev.WriteRecord(make([]byte, 32<<10)); err != nil {
		t.Errorf("drive 0 after drive 1 took a volume: %v", err)
	}
	v.finish(t.Context(), false)
}
