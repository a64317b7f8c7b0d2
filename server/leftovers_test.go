package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/rebuild"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/taptest"
)

// childExitAfterCommit is the exit status of a child dump that died
// between the catalog commit of a holding image and its delete.
const childExitAfterCommit = 3

// A run killed between the catalog commit of an image (CommitTaped) and
// the delete of its holding file: the holding copy is not lost space.
// `tapir admin holding list` says what it is, and the next run deletes it
// once the catalog's parts are shown to cover its payload with the same
// SHA-256, and names it in the report.
func TestKilledAfterCommitCopyIsRemoved(t *testing.T) {
	s := newSite(t, "")
	s.cfg.DLEs = s.cfg.DLEs[:1]
	saveConfig(t, s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPIR_TEST_CHILD=dump", "TAPIR_TEST_CONFIG="+s.cfgPath, "TAPIR_TEST_EXIT_AFTER_COMMIT=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != childExitAfterCommit {
		t.Fatalf("the child did not die after the commit: %v\n%s", err, out)
	}
	left := holdingFiles(t, s)
	if len(left) != 1 {
		t.Fatalf("holding after the kill: %v, want the one taped image", left)
	}
	copyPath := left[0]

	ims, err := HoldingList(t.Context(), s.cfg)
	if err != nil || len(ims) != 1 {
		t.Fatalf("list: %+v %v", ims, err)
	}
	if ims[0].State != "taped" || ims[0].Detail != "already on volume(s) test-001 file 1; the next run removes it" || ims[0].DumpID != 0 {
		t.Errorf("holding list says %q (%s), want taped, already on test-001 file 1", ims[0].State, ims[0].Detail)
	}

	rep, text, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("the night after: %v\n%s", err, text)
	}
	want := fmt.Sprintf("holding: removed %s (", copyPath)
	if !strings.Contains(text, want) || !strings.Contains(text, "already on volume(s) test-001 file 1 since") ||
		!strings.Contains(text, "(a run was killed after taping it, before deleting the copy)") {
		t.Errorf("the report does not name the removed copy (%q):\n%s", want, text)
	}
	if left := holdingFiles(t, s); len(left) != 0 {
		t.Errorf("holding after the next night: %v", left)
	}
	if rep.Status() != report.RunOK || len(rep.Problems) != 0 {
		t.Errorf("status %s, problems %v: removing a redundant copy is housekeeping", rep.Status(), rep.Problems)
	}
	assertGoodMeansOnVolume(t, s)
}

// alreadyTaped finds the good dump a holding file copies only when the
// catalog's parts cover the payload and the SHA-256 agrees; a file named
// like a good dump with another payload is not a copy and is kept.
func TestAlreadyTapedChecksTheCopy(t *testing.T) {
	s := newSite(t, "")
	if _, text, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	cat := s.catalog(t)
	good, err := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	if err != nil || len(good) == 0 {
		t.Fatalf("good dumps: %v %v", good, err)
	}
	d := good[0]
	h := &image.Header{Datestamp: d.Datestamp, Host: d.Host, Path: d.Path, Level: d.Level, PayloadSize: d.PayloadSize, SHA256: d.SHA256}
	tc, err := alreadyTaped(t.Context(), cat, h)
	if err != nil || tc == nil || tc.dump.ID != d.ID || len(tc.parts) != 1 {
		t.Fatalf("the exact copy: %+v %v", tc, err)
	}
	other := *h
	other.SHA256 = strings.Repeat("0", 64)
	if tc, err := alreadyTaped(t.Context(), cat, &other); tc != nil || err == nil || !strings.Contains(err.Error(), "it is another image") {
		t.Errorf("another payload under the same name: %+v %v", tc, err)
	}
	other = *h
	other.PayloadSize++
	if tc, err := alreadyTaped(t.Context(), cat, &other); tc != nil || err == nil {
		t.Errorf("another size under the same name: %+v %v", tc, err)
	}
	other = *h
	other.Datestamp = "20000101000000"
	if tc, err := alreadyTaped(t.Context(), cat, &other); tc != nil || err != nil {
		t.Errorf("no such dump: %+v %v, want nothing", tc, err)
	}
}

// A drive that fails in the middle of an image leaves a truncated tape
// file: the catalog records it as a failed file (verify skips it), the
// report names it as a problem (the night is strange, not ok), and the
// image goes to the next volume.
func TestFailedTapeWriteIsRecorded(t *testing.T) {
	s := newSite(t, "")
	tt := s.cfg.Tapetype()
	dc, err := taper.NewDiskChanger(s.cfg.Changer.Path, s.cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := taptest.Wrap(dc)
	ch.FailAfter(5, syscall.EIO) // the label, a header, then some records of an image
	s.cfg.Runtapes = 2           // room for the retry on the next volume
	rep, text, err := s.night(t, Deps{Changer: ch})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for name, st := range statuses(rep) {
		if st != report.StatusOK {
			t.Errorf("%s: %s", name, st)
		}
	}
	cat := s.catalog(t)
	failed, err := cat.FailedFiles(t.Context(), "test-001")
	if err != nil || len(failed) == 0 {
		t.Fatalf("failed files of test-001: %+v %v\n%s", failed, err, text)
	}
	good, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	for _, f := range failed {
		files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", fmt.Sprintf("%05d.*", f.FileNo)))
		if len(files) != 1 {
			t.Errorf("failed file %d of test-001 is not on the volume: %v", f.FileNo, files)
		}
		if f.Datestamp != rep.Datestamp || f.Host != "localhost" || !strings.Contains(f.Reason, "truncated") {
			t.Errorf("failed file %+v", f)
		}
		for _, d := range good {
			parts, _ := cat.Parts(t.Context(), d.ID)
			for _, p := range parts {
				if p.Volume == "test-001" && p.FileNo == f.FileNo {
					t.Errorf("tape file %d of test-001 is both failed and a part of %s:%s", f.FileNo, d.Host, d.Path)
				}
			}
		}
		where := fmt.Sprintf("volume test-001 file %d", f.FileNo)
		if !strings.Contains(text, where+": localhost:") || !strings.Contains(text, "recorded as a failed file") {
			t.Errorf("the report does not name %s:\n%s", where, text)
		}
	}
	if rep.Status() != report.RunStrange {
		t.Errorf("status %s, want strange", rep.Status())
	}
	// verify lists the truncated file as a failed write, not as a bad image.
	vr, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 {
		t.Fatalf("verify test-001: %+v %v", vr, err)
	}
	listed := 0
	for _, im := range vr.Images {
		if im.FailedWrite {
			listed++
		}
	}
	if listed != len(failed) {
		t.Errorf("verify lists %d failed writes, the catalog records %d", listed, len(failed))
	}
	assertGoodMeansOnVolume(t, s)

	// A rebuild from the volumes alone records the images written again
	// whole, skips the truncated files (no problem) and records them as
	// failed files again.
	db := filepath.Join(t.TempDir(), "rebuilt.db")
	rch, err := taper.NewDiskChanger(s.cfg.Changer.Path, s.cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := rebuild.Rebuild(context.Background(), rebuild.Options{Catalog: db, Changer: rch, Holding: []string{s.cfg.Holding[0].Path}, Org: s.cfg.Org})
	if err != nil || len(rb.Problems) != 0 || len(rb.Skipped) != len(failed) || rb.Dumps != len(good) {
		t.Fatalf("rebuild: %+v %v; want %d images, %d skipped, no problem", rb, err, len(good), len(failed))
	}
	rcat, err := catalog.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer rcat.Close()
	again, err := rcat.FailedFiles(t.Context(), "test-001")
	if err != nil || len(again) != len(failed) {
		t.Fatalf("failed files after the rebuild: %+v %v, want %d", again, err, len(failed))
	}
	for i, f := range again {
		if f.FileNo != failed[i].FileNo {
			t.Errorf("the rebuild records file %d as failed, the run recorded file %d", f.FileNo, failed[i].FileNo)
		}
	}
}

// A holding disk or changer directory that does not exist (an unmounted
// disk) is never created: `tapir check` reports each, and a night does
// without it. Without the changer's directory no volume is usable: the
// night is degraded. Without the holding disk the images go straight to
// a volume, and the night says so.
func TestMissingDirectoriesAreNotCreated(t *testing.T) {
	s := newSite(t, "")
	vtapes, hold := s.cfg.Changer.Path, s.cfg.Holding[0].Path
	for _, d := range []string{vtapes, hold} {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	absent := func(when string) {
		t.Helper()
		for _, d := range []string{vtapes, hold} {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: %s exists (%v); tapir must not create it", when, d, err)
			}
		}
	}
	c := Check(context.Background(), s.cfg, Deps{}, CheckOptions{})
	var problems []string
	for _, p := range c.Problems {
		problems = append(problems, p.Where+": "+p.What)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		"holding disk " + hold + ": does not exist: mount it, or create it with mkdir if it is new",
		"changer: disk changer " + vtapes + ": the directory does not exist: mount it, or create it with mkdir if it is new",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("check does not report %q:\n%s", want, all)
		}
	}
	absent("after check")

	// The changer's directory is missing: degraded, with the reason.
	if err := os.Mkdir(hold, 0o750); err != nil {
		t.Fatal(err)
	}
	s.cfg.Reserve = 0 // fulls may wait on the holding disk
	rep, text, err := s.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) || rep.Degraded == nil || !strings.Contains(rep.Degraded.Reason, vtapes+": the directory does not exist") {
		t.Fatalf("night without the changer's directory: %v %+v\n%s", err, rep.Degraded, text)
	}
	if rep.Status() != report.RunDegraded {
		t.Errorf("status %s, want degraded\n%s", rep.Status(), text)
	}
	if run, err := s.catalog(t).Run(t.Context(), rep.Datestamp); err != nil || run.Status != report.RunDegraded {
		t.Errorf("catalog: run %+v %v, want degraded", run, err)
	}
	if _, err := os.Stat(vtapes); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the night created %s", vtapes)
	}

	// The holding disk is missing (unmounted, with the degraded night's
	// images on it): straight to a volume, and a problem.
	if err := os.Mkdir(vtapes, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(hold, hold+".unmounted"); err != nil {
		t.Fatal(err)
	}
	s.cfg.Autoflush = true
	rep, text, err = s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night without the holding disk: %v\n%s", err, text)
	}
	if _, err := os.Stat(hold); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the night created %s", hold)
	}
	want := "holding disk " + hold + " does not exist: mount it, or create it with mkdir if it is new; it is not used tonight"
	if len(rep.Problems) != 1 || rep.Problems[0].What != want || strings.Count(text, "does not exist: mount it") != 1 {
		t.Errorf("problems %+v, want once %q\n%s", rep.Problems, want, text)
	}
	if rep.Status() != report.RunStrange {
		t.Errorf("status %s, want strange", rep.Status())
	}
	for _, d := range rep.DLEs {
		if d.Flushed != "" {
			t.Errorf("%s:%s flushed from a disk that is not there", d.Host, d.Path)
		} else if d.Status != report.StatusOK {
			t.Errorf("%s:%s %s %s", d.Host, d.Path, d.Status, d.Reason)
		}
	}
	// The degraded night's images wait on the missing disk: not lost.
	if !strings.Contains(text, "which does not exist now; it stays waiting until the disk is back") {
		t.Errorf("the report does not say the waiting images stay waiting:\n%s", text)
	}
	if hold, _ := s.catalog(t).DumpsWithStatus(t.Context(), catalog.DumpHolding); len(hold) != 2 {
		t.Errorf("%d dumps wait, want the 2 of the degraded night", len(hold))
	}
}

// A damaged image of an earlier run is never taped, and the night that
// finds it is not ok: it names the file and the reason, and exits with
// an error.
func TestDamagedLeftoverIsNotOK(t *testing.T) {
	s := newSite(t, "")
	path, auto := s.cfg.Changer.Path, s.cfg.Autolabel
	s.cfg.Changer.Path, s.cfg.Autolabel, s.cfg.Reserve = filepath.Join(s.dir, "blank-vtapes"), "", 0
	rep, text, err := s.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) || rep.Status() != report.RunDegraded {
		t.Fatalf("degraded night: %s %v\n%s", rep.Status(), err, text)
	}
	s.cfg.Changer.Path, s.cfg.Autolabel, s.cfg.Autoflush = path, auto, true
	files := holdingFiles(t, s)
	if len(files) != 2 {
		t.Fatalf("holding: %v", files)
	}
	bad := files[0]
	b, _ := os.ReadFile(bad)
	b[len(b)-100] ^= 0x40
	os.WriteFile(bad, b, 0o640)

	rep, text, err = s.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) || !strings.Contains(err.Error(), "damaged or lost") {
		t.Errorf("err = %v, want ErrRunFailed naming the damaged image", err)
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusOK {
			t.Errorf("%s:%s %s", d.Host, d.Path, d.Status)
		}
	}
	if rep.Status() != report.RunStrange || len(rep.Problems) != 1 || rep.Problems[0].Where != bad ||
		!strings.Contains(rep.Problems[0].What, "is damaged (") || !strings.Contains(text, "PROBLEMS:\n  "+bad+": ") {
		t.Errorf("status %s problems %+v\n%s", rep.Status(), rep.Problems, text)
	}
	if run, err := s.catalog(t).Run(t.Context(), rep.Datestamp); err != nil || run.Status != report.RunStrange {
		t.Errorf("catalog: %+v %v", run, err)
	}
	if left := holdingFiles(t, s); len(left) != 1 || left[0] != bad {
		t.Errorf("holding: %v, want only the damaged image", left)
	}
}

// failingLoad is a changer whose volumes cannot be loaded: the run sees a
// usable volume at the start and finds out only when it tries it.
type failingLoad struct{ taper.Changer }

func (failingLoad) Load(context.Context, int) (taper.Device, error) {
	return nil, errors.New("the robot arm is jammed")
}

// A night that cannot write the volume it chose writes none: it is
// degraded, like one that knew from the start, not merely strange.
func TestNoVolumeLateIsDegraded(t *testing.T) {
	s := newSite(t, "")
	tt := s.cfg.Tapetype()
	dc, err := taper.NewDiskChanger(s.cfg.Changer.Path, s.cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, text, err := s.night(t, Deps{Changer: failingLoad{dc}})
	if !errors.Is(err, ErrRunFailed) {
		t.Fatalf("err = %v\n%s", err, text)
	}
	if rep.Degraded == nil || !strings.Contains(rep.Degraded.Reason, "the robot arm is jammed") || rep.Status() != report.RunDegraded {
		t.Errorf("degraded %+v, status %s\n%s", rep.Degraded, rep.Status(), text)
	}
	if run, err := s.catalog(t).Run(t.Context(), rep.Datestamp); err != nil || run.Status != report.RunDegraded {
		t.Errorf("catalog: %+v %v", run, err)
	}
}

// A volume the catalog knows, with images on it, that is in no slot of
// the changer is a problem of `tapir check` and a note of the run; a
// known volume without images in no slot is only an information.
func TestMissingVolumesReported(t *testing.T) {
	s := newSite(t, "")
	if _, text, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	cat := s.catalog(t)
	if _, err := cat.AddVolume(t.Context(), catalog.Volume{Label: "test-009", Slot: 9, Blocksize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	// test-001 leaves the changer (taken out of its slot).
	if err := os.Rename(filepath.Join(s.cfg.Changer.Path, "slot1"), filepath.Join(s.dir, "shelf-test-001")); err != nil {
		t.Fatal(err)
	}
	want := "volume(s) test-001 are in the catalog but in no slot of the changer: insert them, or run `tapir admin rmvolume -c " + s.cfg.File + " LABEL` if they are lost"
	c := Check(context.Background(), s.cfg, Deps{}, CheckOptions{})
	found := false
	for _, p := range c.Problems {
		found = found || (p.Where == "volumes" && p.What == want)
	}
	if !found {
		t.Errorf("check problems %+v, want volumes: %s", c.Problems, want)
	}
	info := strings.Join(c.Info, "\n")
	if !strings.Contains(info, "Volume(s) test-009 are in the catalog, hold no image of it, and are in no slot of the changer.") || strings.Contains(want, "test-009") {
		t.Errorf("check info:\n%s", info)
	}

	_, text, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.Contains(text, "taper: "+want) || !strings.Contains(text, "taper: Volume(s) test-009 are in the catalog, hold no image") {
		t.Errorf("the report does not name the missing volumes:\n%s", text)
	}
}

// findMissingVolumes: a retired volume with images is expected to be out
// of the changer (a vault); unreadable slots are counted.
func TestFindMissingVolumes(t *testing.T) {
	s := newSite(t, "")
	if _, text, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	cat := s.catalog(t)
	inv := []taper.SlotInfo{{Slot: 1, Blank: true}, {Slot: 2, Err: errors.New("EIO")}}
	m, err := findMissingVolumes(t.Context(), cat, inv)
	if err != nil || len(m.WithImages) != 1 || m.WithImages[0] != "test-001" || m.Unread != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	if p := m.problem("F"); !strings.Contains(p, "(1 slot(s) could not be read; a volume there is not seen)") {
		t.Errorf("problem: %s", p)
	}
	if err := cat.SetVolumeReuse(t.Context(), "test-001", false); err != nil {
		t.Fatal(err)
	}
	m, err = findMissingVolumes(t.Context(), cat, inv)
	if err != nil || len(m.WithImages) != 0 || len(m.Retired) != 1 || m.problem("F") != "" || len(m.info()) != 1 {
		t.Fatalf("retired: %+v %v", m, err)
	}
	m, err = findMissingVolumes(t.Context(), cat, []taper.SlotInfo{{Slot: 1, Label: &taper.Label{Label: "test-001"}}})
	if err != nil || len(m.WithImages)+len(m.Retired)+len(m.Empty) != 0 {
		t.Fatalf("in its slot: %+v %v", m, err)
	}
}

// The index server of a site whose vtape disk is not mounted still
// serves (browsing needs only the catalog); a restore says why it cannot
// read the volume, and works once the directory is back. Nothing is
// created where the disk should be.
func TestIndexVolumesWaitForTheChangerDirectory(t *testing.T) {
	s := newSite(t, "")
	if _, text, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	vtapes := s.cfg.Changer.Path
	if err := os.Rename(vtapes, vtapes+".unmounted"); err != nil {
		t.Fatal(err)
	}
	l := &laterVolumes{cfg: s.cfg, cat: s.catalog(t), log: testLogger(t)}
	_, err := l.Locate(context.Background(), "test-001")
	if !errors.Is(err, indexd.ErrVolumeMissing) || !errors.Is(err, taper.ErrNoChangerRoot) {
		t.Fatalf("Locate without the directory: %v", err)
	}
	if _, err := os.Stat(vtapes); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was created", vtapes)
	}
	if err := os.Rename(vtapes+".unmounted", vtapes); err != nil {
		t.Fatal(err)
	}
	if where, err := l.Locate(context.Background(), "test-001"); err != nil || where != "slot 1" {
		t.Fatalf("Locate once mounted: %q %v", where, err)
	}
}
