package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// Whole nights on a tape drive through the real st ioctl path (the FUSE
// fake drive; skipped without /dev/fuse or root), with the single changer:
// night 1 labels the blank cartridge in the drive and writes it; night 2
// needs another cartridge (tapecycle 1), asks for it, waits while an
// operator swaps cartridges, and writes it. A file restores from each
// night through the catalog, and verify reads the tape back.
func TestSingleDriveNights(t *testing.T) {
	drive := fakest.Mount(t, fakest.Options{Capacity: 64 << 20, Cartridges: []string{"TAPE01", "TAPE02"}})
	s := newSite(t, "")
	s.cfg.Changer = config.Changer{Type: "single", Device: drive.Path(fakest.NST0), Tapetype: "small",
		// No wait for a volume runs out in the test: the operator acts
		// when the run asks (a run that waits for ever is caught by go
		// test -timeout).
		Wait: config.Duration(24 * time.Hour), Poll: config.Duration(100 * time.Millisecond), Remind: config.Duration(time.Hour)}
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 64 << 20
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Tapecycle = 1

	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Label != "test-001" || !rep.Volumes[0].New {
		t.Fatalf("night 1 volumes %+v\n%s", rep.Volumes, out)
	}
	night1 := rep.Datestamp

	// Night 2: test-001 is inside tapecycle; the run asks for a blank one
	// (autolabel) and waits; the operator swaps cartridges.
	os.WriteFile(filepath.Join(s.data, "etc", "night2.conf"), []byte("night 2\n"), 0o644)
	var logs syncBuffer
	go func() {
		if !logs.waitFor(t, func(log string) bool { return strings.Contains(log, "operator action needed") }) {
			return
		}
		if err := drive.Eject(); err != nil {
			t.Error(err)
		}
		if _, err := drive.Remove(); err != nil {
			t.Error(err)
		}
		if err := drive.Insert("TAPE02"); err != nil {
			t.Error(err)
		}
	}()
	rep, out, err = s.night(t, Deps{Log: slogTo(&logs)})
	if err != nil {
		t.Fatalf("night 2: %v\n%s\n%s", err, out, logs.String())
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Label != "test-002" {
		t.Fatalf("night 2 volumes %+v\n%s", rep.Volumes, out)
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusOK {
			t.Errorf("night 2 %s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	// The image of night 2 is on the tape, read through the st ioctls.
	res, err := Verify(context.Background(), s.cfg, "test-002", Deps{Log: testLogger(t)})
	if err != nil || res.Bad() != 0 || len(res.Images) != 2 {
		t.Fatalf("verify test-002: %+v %v", res, err)
	}
	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	to := t.TempDir()
	got, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "etc/night2.conf", To: to, Volumes: vols}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got.Written); !bytes.Equal(b, []byte("night 2\n")) {
		t.Errorf("restored %q", b)
	}
	// The same restore while the drive fails to locate (issue 14), and
	// while MTIOCPOS fails too: the tape re-positions from its beginning
	// with one rewind and never spaces to the end of data.
	for _, posFails := range []bool{false, true} {
		drive.ResetTrace()
		drive.FailOp(mtio.MTSEEK, 1, syscall.EIO)
		drive.SetPosition(!posFails)
		got, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "etc/night2.conf", To: t.TempDir(), Volumes: vols}, testLogger(t))
		drive.SetPosition(true)
		if err != nil {
			t.Fatalf("restore with a failing locate (MTIOCPOS fails %v): %v", posFails, err)
		}
		if b, _ := os.ReadFile(got.Written); !bytes.Equal(b, []byte("night 2\n")) {
			t.Errorf("restored %q with a failing locate", b)
		}
		trace := drive.Trace()
		failed := -1
		for i, e := range trace {
			if strings.HasPrefix(e, "MTSEEK ") && strings.HasSuffix(e, " EIO") {
				failed = i
			}
			if strings.HasPrefix(e, "MTEOM") {
				t.Errorf("a restore spaced to the end of data: %q", trace)
			}
		}
		if failed < 0 {
			t.Fatalf("the injected MTSEEK failure did not happen (MTIOCPOS fails %v): %q", posFails, trace)
		}
		rewinds := 0
		for _, e := range trace[failed:] {
			if strings.HasPrefix(e, "MTREW ") {
				rewinds++
			}
		}
		t.Logf("trace (MTIOCPOS fails %v): %q", posFails, trace)
		if rewinds != 1 {
			t.Errorf("%d rewinds after the failed locate, want 1 (MTIOCPOS fails %v): %q", rewinds, posFails, trace)
		}
	}
	// The night-1 volume is not in the drive: a restore from it says which
	// volume to load, at once.
	_, err = restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "etc/passwd", To: t.TempDir(), AsOf: night1, Volumes: vols}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "test-001") {
		t.Errorf("restore from the volume not in the drive: %v", err)
	}
	if msg, err := TapeCurrent(context.Background(), s.cfg, Deps{}); err != nil || !strings.Contains(msg, "holds volume test-002") {
		t.Errorf("tape current: %q %v", msg, err)
	}
	if err := TapeEject(context.Background(), s.cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	if name, loaded := drive.Loaded(); loaded {
		t.Errorf("after tape eject the drive still holds %s", name)
	}
}

// Whole nights in a tape library: the robot changer drives a fake mtx (a
// script keeping the library's state) whose loads move the cartridges of
// the FUSE st drive. Night 1 reads the barcoded volumes' labels once
// (all blank), labels and writes the first and, when it fills, the second
// (the image spans them through an unload and a load); night 2 takes a
// fresh one (tapecycle 1). verify and a restore load the volumes they need.
func TestRobotNights(t *testing.T) {
	// Enough cartridges that two nights of up to runtapes volumes each
	// after night 2 need no reuse: the look-ahead promotes no full.
	barcodes := []string{"B00001L8", "B00002L8", "B00003L8", "B00004L8", "B00005L8", "B00006L8", "B00007L8", "B00008L8"}
	drive := fakest.Mount(t, fakest.Options{Capacity: 4 << 20, Cartridges: barcodes, Empty: true})
	lib, err := fakest.NewLibrary(t.TempDir(), barcodes, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.Env(drive.Path(fakest.CtlFile)) {
		t.Setenv(k, v)
	}
	s := newSite(t, "")
	s.cfg.Changer = config.Changer{Type: "robot", Changer: "/dev/sg3", MTX: lib.MTX, Device: drive.Path(fakest.NST0),
		Drives: []string{drive.Path(fakest.NST0)}, StateFile: filepath.Join(s.dir, "changer.json"), Tapetype: "small",
		Poll: config.Duration(time.Second), Remind: config.Duration(time.Hour)}
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 4 << 20
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Tapecycle, s.cfg.Runtapes = 1, 2
	random := filepath.Join(s.dir, "random")
	randomFiles(t, random, 4, 1<<20) // does not compress: with the rest, more than one 4 MiB volume
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: random, Dumptype: "default"})

	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	if len(rep.Volumes) != 2 || rep.Volumes[0].Label != "test-001" || rep.Volumes[1].Label != "test-002" || !strings.Contains(out, "spans 2 volumes") {
		t.Fatalf("night 1 volumes %+v\n%s", rep.Volumes, out)
	}
	calls := strings.Join(lib.Calls(), "; ")
	for _, want := range []string{"load 1 0", "unload 1 0", "load 2 0"} {
		if !strings.Contains(calls, want) {
			t.Errorf("mtx was not asked to %q: %s", want, calls)
		}
	}
	os.WriteFile(filepath.Join(s.data, "etc", "night2.conf"), []byte("night 2\n"), 0o644)
	rep, out, err = s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Label != "test-003" {
		t.Fatalf("night 2 volumes %+v\n%s", rep.Volumes, out)
	}
	slots, next, err := TapeInventory(t.Context(), s.cfg, Deps{}, false)
	if err != nil || len(slots) != 8 || slots[2].Label != "test-003" || !strings.Contains(next, "test-004") {
		t.Errorf("inventory %+v, next %q, %v", slots, next, err)
	}
	for _, label := range []string{"test-001", "test-002"} {
		res, err := Verify(context.Background(), s.cfg, label, Deps{Log: testLogger(t)})
		if err != nil || res.Bad() != 0 {
			t.Errorf("verify %s: %+v %v", label, res, err)
		}
	}
	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "big.bin", To: t.TempDir(), Volumes: vols}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(s.data, "big.bin"))
	if b, _ := os.ReadFile(got.Written); !bytes.Equal(b, want) {
		t.Errorf("big.bin restored from the library differs")
	}
}

// tapir label leaves the cartridge in a single drive unless the
// configuration ejects (issue 14): the operator who labels in the
// afternoon must not have to reinsert it for the night.
func TestLabelEjectsOnlyWhenConfigured(t *testing.T) {
	drive := fakest.Mount(t, fakest.Options{Capacity: 64 << 20, Cartridges: []string{"TAPE01"}})
	s := newSite(t, "")
	s.cfg.Changer = config.Changer{Type: "single", Device: drive.Path(fakest.NST0), Tapetype: "small",
		Wait: config.Duration(24 * time.Hour), Poll: config.Duration(100 * time.Millisecond), Remind: config.Duration(time.Hour)}
	for _, eject := range []bool{false, true} {
		s.cfg.Eject = eject
		if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-001", Slot: 1, Force: true}, Deps{Log: testLogger(t)}); err != nil {
			t.Fatalf("label (eject = %v): %v", eject, err)
		}
		name, loaded := drive.Loaded()
		if loaded == eject {
			t.Errorf("eject = %v: after tapir label the drive holds %q (loaded %v)", eject, name, loaded)
		}
		if !eject {
			if msg, err := TapeCurrent(t.Context(), s.cfg, Deps{}); err != nil || !strings.Contains(msg, "holds volume test-001") {
				t.Errorf("tape current after label: %q %v", msg, err)
			}
		}
	}
}
