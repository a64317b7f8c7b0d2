package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// levelOf is the level each DLE (by base name) got in a report.
func levelOf(rep *report.Run) map[string]int {
	m := map[string]int{}
	for _, d := range rep.DLEs {
		m[filepath.Base(d.Path)] = d.Level
	}
	return m
}

// A write-protected slot: the overwrite fails at the label, and the
// images on that volume stay in the catalog (they are still on it); a
// failed tapir label leaves the catalog unchanged.
func TestWriteProtectedOverwriteKeepsImages(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 2
	s.cfg.DLEs = s.cfg.DLEs[:1]
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	if _, out, err := s.night(t, Deps{Clock: day(0)}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	// Night 2 gets a full on the blank slot 2 (forced here, so that the
	// volume of night 1 holds no newest chain afterwards).
	if _, err := Force(t.Context(), s.cfg, "localhost", s.data, true); err != nil {
		t.Fatal(err)
	}
	if rep, out, err := s.night(t, Deps{Clock: day(1)}); err != nil || rep.Volumes[0].Label != "test-002" {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	cat := s.catalog(t)
	before, err := cat.DumpsOnVolume(t.Context(), "test-001")
	if err != nil || len(before) != 1 || before[0].Level != 0 {
		t.Fatalf("test-001 before: %v %v", before, err)
	}
	var explain bytes.Buffer
	if err := ExplainNext(t.Context(), s.cfg, Deps{Log: testLogger(t)}, &explain); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"The next run writes test-001 in slot 1", "would leave the catalog; each is superseded", "newest chain: full of ", "test-002 (in slot 2): written"} {
		if !strings.Contains(explain.String(), want) {
			t.Errorf("tape next --explain lacks %q:\n%s", want, explain.String())
		}
	}
	slot1 := filepath.Join(s.cfg.Changer.Path, "slot1")
	if err := os.Chmod(slot1, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(slot1, 0o755) })
	rep, out, err := s.night(t, Deps{Clock: day(2)})
	if err == nil || rep.Status() == report.RunOK || !strings.Contains(out, "write-protected") || !strings.Contains(out, "the images on it stay in the catalog") {
		t.Fatalf("night 3 on a write-protected volume: %v\n%s", err, out)
	}
	after, err := cat.DumpsOnVolume(t.Context(), "test-001")
	if err != nil || len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("the L0 on the write-protected test-001 left the catalog: %v %v\n%s", after, err, out)
	}
	v, err := cat.Volume(t.Context(), "test-001")
	if err != nil || v.Overwriting != "" || v.Written != before[0].Datestamp {
		t.Errorf("test-001 after the failed overwrite: %+v %v", v, err)
	}

	// tapir label --force on the write-protected volume changes nothing.
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-009", Slot: 1, Force: true}, Deps{Log: testLogger(t)}); err == nil {
		t.Fatal("labelled a write-protected volume")
	}
	if _, err := cat.Volume(t.Context(), "test-009"); err == nil {
		t.Error("a failed tapir label left a label row that no cartridge carries")
	}
	if after, _ := cat.DumpsOnVolume(t.Context(), "test-001"); len(after) != 1 {
		t.Errorf("a failed tapir label dropped the images of test-001: %v", after)
	}
}

// A volume outside tapecycle that holds the only chain of a DLE (here one
// no longer in the disk list, so no new full will ever move it) is never
// overwritten: the night is FAIL and says what it kept and what to do.
func TestChainVolumeNeverOverwritten(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 2
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	if _, out, err := s.night(t, Deps{Clock: day(0)}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	gone := s.cfg.DLEs[1]
	s.cfg.DLEs = s.cfg.DLEs[:1]
	if _, err := Force(t.Context(), s.cfg, "localhost", s.data, true); err != nil {
		t.Fatal(err)
	}
	if _, out, err := s.night(t, Deps{Clock: day(1)}); err != nil {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	rep, out, err := s.night(t, Deps{Clock: day(2)})
	if err == nil || rep.Status() != report.RunFailed || len(rep.Refused) != 1 || !strings.Contains(rep.Refused[0], "test-001") ||
		!strings.Contains(out, "REFUSED TO OVERWRITE test-001") || !strings.Contains(out, gone.Path) || !strings.Contains(rep.Subject(), "FAIL") {
		t.Fatalf("night 3 may only keep test-001 and fail: %v refused %v\n%s", err, rep.Refused, out)
	}
	if d, _ := s.catalog(t).DumpsOnVolume(t.Context(), "test-001"); len(d) != 2 {
		t.Errorf("test-001 lost images: %v", d)
	}
	var explain bytes.Buffer
	if err := ExplainNext(t.Context(), s.cfg, Deps{Log: testLogger(t)}, &explain); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(explain.String(), "can write no volume") || !strings.Contains(explain.String(), "test-001 (in slot 1): written") || !strings.Contains(explain.String(), "holds the newest chain of localhost:"+gone.Path) {
		t.Errorf("tape next --explain:\n%s", explain.String())
	}
	if files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", "0000*")); len(files) != 3 {
		t.Errorf("test-001 should still hold its label and 2 images: %v", files)
	}
}

// A kill between the phases of an overwrite: the next look at the volumes
// finishes it (the new label is on the volume: the old images leave the
// catalog) or undoes it (the old label is still there: they stay).
func TestInterruptedOverwriteResolved(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 3
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	for n := range 2 {
		if _, out, err := s.night(t, Deps{Clock: day(n)}); err != nil {
			t.Fatalf("night %d: %v\n%s", n+1, err, out)
		}
	}
	cat := s.catalog(t)
	// Killed after phase 1, before the label: test-001 still carries its label.
	if err := cat.BeginOverwrite(t.Context(), "test-001", "20300101000000", "test-001"); err != nil {
		t.Fatal(err)
	}
	// Killed after the new label was on test-002, before phase 2.
	if err := cat.BeginOverwrite(t.Context(), "test-002", "20300101000001", "test-002"); err != nil {
		t.Fatal(err)
	}
	ch, err := taper.NewDiskChanger(s.cfg.Changer.Path, 3, 256<<20, 64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ch.Load(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := taper.WriteLabel(dev, taper.Label{Datestamp: "20300101000001", Label: "test-002", Org: "test", Blocksize: 64 << 10, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ch.Eject(t.Context())
	had1, _ := cat.DumpsOnVolume(t.Context(), "test-001")
	notes, err := resolveOverwrites(t.Context(), cat, mustInventory(t, ch), 64<<10, time.Now())
	if err != nil || len(notes) != 2 {
		t.Fatalf("resolve: %v %v", notes, err)
	}
	if d, _ := cat.DumpsOnVolume(t.Context(), "test-001"); len(d) != len(had1) || len(d) == 0 {
		t.Errorf("test-001 (never overwritten) lost images: %v", d)
	}
	if d, _ := cat.DumpsOnVolume(t.Context(), "test-002"); len(d) != 0 {
		t.Errorf("test-002 (overwritten) still lists images: %v", d)
	}
	for _, l := range []string{"test-001", "test-002"} {
		if v, err := cat.Volume(t.Context(), l); err != nil || v.Overwriting != "" {
			t.Errorf("%s still marked: %+v %v", l, v, err)
		}
	}
	if v, _ := cat.Volume(t.Context(), "test-002"); v.Written != "20300101000001" {
		t.Errorf("test-002 written %q, want the interrupted run's", v.Written)
	}
}

func mustInventory(t *testing.T, ch taper.Changer) []taper.SlotInfo {
	t.Helper()
	inv, err := ch.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// The look-ahead in a run: in a tight rotation (tapecycle 1, 3 slots) the
// planner gives a DLE a full before its chain would block the volume a
// coming run needs, so night after night a volume is reused and none is
// refused, and every DLE keeps a complete chain on volumes that hold it.
func TestLookAheadKeepsRotation(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 3
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	promoted, reused := 0, 0
	for n := range 8 {
		rep, out, err := s.night(t, Deps{Clock: day(n)})
		if err != nil || rep.Status() != report.RunOK {
			t.Fatalf("night %d: %v\n%s", n+1, err, out)
		}
		if strings.Contains(out, "chain at risk") {
			promoted++
		}
		if strings.Contains(out, "superseded by newer chains, and left the catalog") {
			reused++
		}
		chains, err := s.catalog(t).Chains(t.Context())
		if err != nil || len(chains) != 2 {
			t.Fatalf("night %d: chains %v %v", n+1, chains, err)
		}
		for _, ch := range chains {
			for _, l := range ch.Volumes {
				if _, err := os.Stat(filepath.Join(s.cfg.Changer.Path, "slot"+strings.TrimPrefix(l, "test-00"), "00000.LABEL")); err != nil {
					t.Errorf("night %d: the chain of %s is on %s, which is in no slot", n+1, ch.Path, l)
				}
			}
		}
	}
	if promoted == 0 || reused == 0 {
		t.Errorf("8 nights in 3 slots promoted %d fulls and reused %d volumes; want both", promoted, reused)
	}
}

// tapir check says what the chains need: too few slots for the rotation is
// a problem, the full the look-ahead gives at the next run is said, and a
// volume refused for its chains is a problem (issue 11: check said "NO
// PROBLEMS FOUND" after a night overwrote the only full).
func TestCheckSpeaksOfChains(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 2
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t), Clock: day(0)}, CheckOptions{})
	if !hasProblem(c, "the changer needs at least 3 slots (it has 2)") {
		t.Errorf("check does not say the rotation is too short: %+v", c.Problems)
	}
	if _, out, err := s.night(t, Deps{Clock: day(0)}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	c = Check(context.Background(), s.cfg, Deps{Log: testLogger(t), Clock: day(1)}, CheckOptions{})
	said := strings.Join(c.Info, "\n")
	if !strings.Contains(said, "The next run gives localhost:"+s.data+" a full: its last full") {
		t.Errorf("check does not announce the promoted fulls:\n%s", said)
	}
	// A DLE gone from the disk list keeps its chain on test-001 for good.
	s.cfg.DLEs = s.cfg.DLEs[:1]
	if _, out, err := s.night(t, Deps{Clock: day(1)}); err != nil {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	c = Check(context.Background(), s.cfg, Deps{Log: testLogger(t), Clock: day(2)}, CheckOptions{})
	if !hasProblem(c, "holds the newest restorable chain of localhost:"+filepath.Join(s.data, "sub")) {
		t.Errorf("check does not say test-001 is kept for a chain: %+v", c.Problems)
	}
}

func hasProblem(c *report.Check, what string) bool {
	for _, p := range c.Problems {
		if strings.Contains(p.What, what) {
			return true
		}
	}
	return false
}
