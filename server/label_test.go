package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tapir label: a blank volume is labelled; a volume holding images the
// catalog knows, or another configuration's, is refused without --force;
// with --force its images leave the catalog; a label outside labelstr or
// already in use is always refused.
func TestLabel(t *testing.T) {
	s := newSite(t, "")
	deps := Deps{Log: testLogger(t)}
	res, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-007", Slot: 2}, deps)
	if err != nil || res.Was != "a blank volume" {
		t.Fatalf("label a blank volume: %+v %v", res, err)
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "other-001", Slot: 3}, deps); err == nil || !strings.Contains(err.Error(), "labelstr") {
		t.Errorf("label outside labelstr: %v", err)
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-007", Slot: 3}, deps); err == nil || !strings.Contains(err.Error(), "already in the catalog") {
		t.Errorf("label in use: %v", err)
	}
	// A night writes test-007 (the only labelled volume; autolabel off).
	s.cfg.Autolabel = ""
	if _, out, err := s.night(t, deps); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-008", Slot: 2}, deps); err == nil || !strings.Contains(err.Error(), "image(s) the catalog still knows") {
		t.Fatalf("relabel a written volume: %v", err)
	}
	res, err = Label(t.Context(), s.cfg, LabelOptions{Label: "test-008", Slot: 2, Force: true}, deps)
	if err != nil || len(res.Dropped) != 2 {
		t.Fatalf("forced relabel: %+v %v", res, err)
	}
	if d, _ := s.catalog(t).DumpsOnVolume(t.Context(), "test-008"); len(d) != 0 {
		t.Errorf("images still recorded on the relabelled volume: %v", d)
	}
	// Another program's data in slot 3.
	os.WriteFile(filepath.Join(s.cfg.Changer.Path, "slot3", "00000.LABEL"), append([]byte("AMANDA: TAPESTART DATE X TAPE Daily-01\n"), make([]byte, 32<<10-40)...), 0o640)
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-009", Slot: 3}, deps); err == nil || !strings.Contains(err.Error(), "Amanda") {
		t.Errorf("label over an Amanda volume: %v", err)
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-009", Slot: 3, Force: true}, deps); err != nil {
		t.Errorf("forced label over an Amanda volume: %v", err)
	}
}

// autolabel takes blank volumes only, unless autolabel_media names more:
// a volume holding another program's data is never written by default,
// and taken (and labelled) when "non-tapir" is allowed.
func TestAutolabelMedia(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Changer.Slots = 1
	slot := filepath.Join(s.cfg.Changer.Path, "slot1")
	os.MkdirAll(slot, 0o750)
	os.WriteFile(filepath.Join(slot, "00000.LABEL"), append([]byte("AMANDA: TAPESTART DATE X TAPE Daily-01\n"), make([]byte, 32<<10-40)...), 0o640)
	rep, out, _ := s.night(t, Deps{})
	if rep.Degraded == nil || !strings.Contains(out, "Amanda") {
		t.Fatalf("an Amanda volume was used without autolabel_media:\n%s", out)
	}
	s.cfg.AutolabelMedia = []string{"blank", "non-tapir"}
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) != 1 || !rep.Volumes[0].New || !strings.Contains(out, "autolabel took the volume in slot 1") {
		t.Errorf("volumes %+v\n%s", rep.Volumes, out)
	}
}

// tapir tape inventory shows every slot, what the catalog knows of it and
// which volume the next run writes; slot N reads a label.
func TestTapeInventory(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Tapecycle = 1
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	slots, next, err := TapeInventory(t.Context(), s.cfg, Deps{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteTapeInventory(&b, slots, next)
	if len(slots) != 5 || slots[0].Label != "test-001" || slots[0].State != "in tapecycle" || slots[1].State != "next: blank" ||
		!strings.Contains(next, "a new volume labelled test-002 in slot 2") {
		t.Errorf("inventory:\n%s", b.String())
	}
	msg, err := TapeLoad(context.Background(), s.cfg, Deps{}, 1)
	if err != nil || !strings.Contains(msg, "volume test-001") {
		t.Errorf("slot 1: %q %v", msg, err)
	}
	if msg, err := TapeCurrent(context.Background(), s.cfg, Deps{}); err != nil || !strings.Contains(msg, "no drive") {
		t.Errorf("current: %q %v", msg, err)
	}
}
