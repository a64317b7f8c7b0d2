package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// volumeSite is a configuration with a disk changer of 4 slots and a
// catalog, filled without any agent: volumes test-001..003 in slots 1..3
// (labels written on the vtapes), and
//
//	a:/x  full on test-001 (run 1), level 1 on test-002 (run 2)
//	b:/y  full on test-001 (run 1), full on test-003 (run 3)
//	c:/z  full of run 2 with parts on test-002 and test-003
//
// so that the newest chains are a:/x on 001+002, b:/y on 003, c:/z on
// 002+003.
func volumeSite(t *testing.T) (*config.Config, *taper.DiskChanger) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "tapir.toml")
	os.WriteFile(p, []byte(`org = "test"
statedir = "state"
tapecycle = 2

[changer]
type = "disk"
path = "vtapes"
slots = 4
tapetype = "small"

[tapetype.small]
length = "64 MiB"
blocksize = "64 KiB"
`), 0o644)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cfg.Changer.Path, 0o750); err != nil {
		t.Fatal(err)
	}
	tt := cfg.Tapetype()
	dc, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	t0 := time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC)
	stamps := []string{"20250301010000", "20250302010000", "20250303010000"}
	for i, l := range []string{"test-001", "test-002", "test-003"} {
		slot := i + 1
		writeVtapeLabel(t, dc, slot, l, stamps[i])
		if _, err := cat.AddVolume(t.Context(), catalog.Volume{Label: l, Slot: slot, Blocksize: 64 << 10, Created: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.StartVolumeWrite(t.Context(), l, slot, 64<<10, stamps[i]); err != nil {
			t.Fatal(err)
		}
	}
	runs := map[string]int64{}
	for _, ds := range stamps {
		id, err := cat.BeginRun(t.Context(), ds, "test", t0)
		if err != nil {
			t.Fatal(err)
		}
		runs[ds] = id
	}
	dump := func(ds, host, path string, level int, vols ...string) {
		t.Helper()
		id, err := cat.CreateDump(t.Context(), &catalog.Dump{RunID: runs[ds], Host: host, Path: path, Level: level, FrameSize: 1 << 20, Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.SetDumpHolding(t.Context(), id, 2000, 1000, strings.Repeat("ab", 32), 0, "", nil, t0); err != nil {
			t.Fatal(err)
		}
		var parts []catalog.Part
		per := int64(1000 / len(vols))
		for i, v := range vols {
			n := per
			if i == len(vols)-1 {
				n = 1000 - per*int64(i)
			}
			parts = append(parts, catalog.Part{Volume: v, Part: i + 1, FileNo: 1, LogicalPos: -1, Offset: per * int64(i), Length: n})
		}
		if err := cat.CommitTaped(t.Context(), id, parts, t0); err != nil {
			t.Fatal(err)
		}
	}
	dump(stamps[0], "a", "/x", 0, "test-001")
	dump(stamps[0], "b", "/y", 0, "test-001")
	dump(stamps[1], "a", "/x", 1, "test-002")
	dump(stamps[1], "c", "/z", 0, "test-002", "test-003")
	dump(stamps[2], "b", "/y", 0, "test-003")
	return cfg, dc
}

// writeVtapeLabel writes label on the vtape of slot, with one data file.
func writeVtapeLabel(t *testing.T, dc *taper.DiskChanger, slot int, label, stamp string) {
	t.Helper()
	d, err := dc.Load(context.Background(), slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := taper.WriteLabel(d, taper.Label{Datestamp: stamp, Label: label, Org: "test", Blocksize: 64 << 10, Created: time.Unix(1740790800, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteRecord(make([]byte, taper.FirstRecordSize)); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if err := dc.Eject(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func openCatalog(t *testing.T, cfg *config.Config) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func vtapeFiles(t *testing.T, dc *taper.DiskChanger, slot int) []string {
	t.Helper()
	ents, err := os.ReadDir(dc.SlotDir(slot))
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func dumpNamesOf(ds []catalog.Dump) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Host+":"+d.Path+"@"+d.Datestamp[:8])
	}
	slices.Sort(out)
	return out
}

// tapir admin rmvolume: without --yes it says what would be lost and
// changes nothing; with --yes the catalog forgets the volume and its
// images, and the chains it reported broken are exactly those that are
// gone; the media is left alone.
func TestRemoveVolume(t *testing.T) {
	cfg, dc := volumeSite(t)
	cat := openCatalog(t, cfg)
	chainsBefore, _ := cat.Chains(t.Context())

	res, err := RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-001"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WriteRemoveVolume(&out, res)
	for _, want := range []string{
		"volume test-001 (written by run 20250301010000, ",
		"2 images would leave the catalog:\n  20250301010000 a:/x level 0 (good, 1000 B)\n  20250301010000 b:/y level 0 (good, 1000 B)\n",
		"breaks the newest chain of a:/x (full of 2025-03-01 on test-001 and 1 incremental): nothing newer can restore it\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "b:/y (full") || res.Removed {
		t.Errorf("dry run:\n%s", out.String())
	}
	if _, err := cat.Volume(t.Context(), "test-001"); err != nil {
		t.Errorf("the dry run removed the volume: %v", err)
	}
	if d, _ := cat.DumpsOnVolume(t.Context(), "test-001"); len(d) != 2 {
		t.Errorf("the dry run dropped images: %v", d)
	}
	if chains, _ := cat.Chains(t.Context()); len(chains) != len(chainsBefore) {
		t.Errorf("the dry run changed the chains: %+v", chains)
	}

	res, err = RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-001", Yes: true}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpNamesOf(res.Dropped); !slices.Equal(got, []string{"a:/x@20250301", "b:/y@20250301"}) {
		t.Errorf("dropped %v", got)
	}
	if _, err := cat.Volume(t.Context(), "test-001"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("test-001 is still in the catalog: %v", err)
	}
	// The chains reported broken are exactly those no longer in the
	// catalog's newest chains as they were.
	after, _ := cat.Chains(t.Context())
	var gone []string
	for _, c := range chainsBefore {
		still := false
		for _, a := range after {
			if a.Host == c.Host && a.Path == c.Path && a.Full().ID == c.Full().ID && len(a.Dumps) == len(c.Dumps) {
				still = true
			}
		}
		if !still {
			gone = append(gone, c.Host+":"+c.Path)
		}
	}
	var broken []string
	for _, b := range res.Broken {
		broken = append(broken, b.Host+":"+b.Path)
	}
	if !slices.Equal(gone, broken) || !slices.Equal(broken, []string{"a:/x"}) {
		t.Errorf("reported broken %v, chains gone %v", broken, gone)
	}
	out.Reset()
	WriteRemoveVolume(&out, res)
	if !strings.Contains(out.String(), "2 images left the catalog") || !strings.Contains(out.String(), "removed volume test-001 from the catalog") ||
		!strings.Contains(out.String(), "the volume itself is untouched") {
		t.Errorf("output:\n%s", out.String())
	}
	if f := vtapeFiles(t, dc, 1); len(f) != 2 {
		t.Errorf("the media was touched without --erase: %v", f)
	}

	if _, err := RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-001", Yes: true}, Deps{}); err == nil || !strings.Contains(err.Error(), "volume test-001 is not in the catalog") {
		t.Errorf("remove again: %v", err)
	}
}

// rmvolume --erase: the slot holding the volume is emptied once the
// catalog has forgotten it, a part of an image on another volume leaves the
// catalog with it; a slot that holds another label is never erased, and
// then nothing is changed; a tape drive is refused with how to erase a
// cartridge.
func TestRemoveVolumeErase(t *testing.T) {
	cfg, dc := volumeSite(t)
	cat := openCatalog(t, cfg)

	res, err := RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-002", Erase: true}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WriteRemoveVolume(&out, res)
	for _, want := range []string{
		"20250302010000 c:/z level 0 (good, 1000 B, parts on test-002, test-003)",
		"breaks the newest chain of a:/x (full of 2025-03-01 on test-001 and 1 incremental)",
		"breaks the newest chain of c:/z (full of 2025-03-02 on test-002, test-003)",
		"would erase slot 2 (" + dc.SlotDir(2) + "): 2 tape files",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if f := vtapeFiles(t, dc, 2); len(f) != 2 {
		t.Fatalf("the dry run erased: %v", f)
	}

	res, err = RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-002", Erase: true, Yes: true}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Removed || !res.Erased || res.Files != 2 || len(vtapeFiles(t, dc, 2)) != 0 {
		t.Errorf("result %+v, slot 2 holds %v", res, vtapeFiles(t, dc, 2))
	}
	if got := dumpNamesOf(res.Dropped); !slices.Equal(got, []string{"a:/x@20250302", "c:/z@20250302"}) {
		t.Errorf("dropped %v", got)
	}
	if d, _ := cat.DumpsOnVolume(t.Context(), "test-003"); len(d) != 1 || d[0].Host != "b" {
		t.Errorf("test-003 still lists %v (c:/z's part left with its dump)", d)
	}
	inv, _ := dc.Inventory(context.Background())
	if !inv[1].Blank || inv[0].Label == nil || inv[2].Label == nil {
		t.Errorf("inventory after the erase: %+v", inv)
	}

	// Slot 3 now holds another label than the catalog's test-003.
	writeVtapeLabel(t, dc, 3, "test-009", "20250309010000")
	for _, yes := range []bool{false, true} {
		_, err = RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-003", Erase: true, Yes: yes}, Deps{})
		if err == nil || !strings.Contains(err.Error(), "no slot of the disk changer") ||
			!strings.Contains(err.Error(), `slot 3, where the catalog last saw it, holds volume test-009 of configuration "test"`) ||
			!strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("erase a slot holding another label (yes %v): %v", yes, err)
		}
	}
	if _, err := cat.Volume(t.Context(), "test-003"); err != nil {
		t.Errorf("the refused erase changed the catalog: %v", err)
	}
	if f := vtapeFiles(t, dc, 3); len(f) != 2 {
		t.Errorf("the slot of another volume was touched: %v", f)
	}

	single := *cfg
	single.Changer.Type, single.Changer.Device = "single", "/dev/nst3"
	if _, err := RemoveVolume(t.Context(), &single, RmVolumeOptions{Label: "test-003", Erase: true, Yes: true}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "erase the cartridge with mt -f /dev/nst3 erase") {
		t.Errorf("--erase on a tape drive: %v", err)
	}
	if _, err := cat.Volume(t.Context(), "test-003"); err != nil {
		t.Errorf("the refused erase changed the catalog: %v", err)
	}
}

// rmvolume --yes takes the run lock: never under a running night.
func TestRemoveVolumeTakesTheRunLock(t *testing.T) {
	cfg, _ := volumeSite(t)
	lock, err := lockRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RemoveVolume(t.Context(), cfg, RmVolumeOptions{Label: "test-001", Yes: true}, Deps{})
	lock.unlock()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("remove under a running night: %v", err)
	}
	if _, err := openCatalog(t, cfg).Volume(t.Context(), "test-001"); err != nil {
		t.Errorf("the volume was removed under the lock: %v", err)
	}
}

// tapir admin no-reuse|reuse: the flag is set and what changed is said; an
// unknown label is an error naming it, and then nothing changes.
func TestSetReuse(t *testing.T) {
	cfg, _ := volumeSite(t)
	cat := openCatalog(t, cfg)

	if _, err := SetReuse(t.Context(), cfg, []string{"test-001", "nope-7", "nope-8"}, false); err == nil ||
		!strings.Contains(err.Error(), "volumes nope-7, nope-8 are not in the catalog") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("unknown labels: %v", err)
	}
	if v, _ := cat.Volume(t.Context(), "test-001"); !v.Reuse {
		t.Error("test-001 was changed although the command failed")
	}
	if _, err := SetReuse(t.Context(), cfg, []string{"nope-7"}, true); err == nil || !strings.Contains(err.Error(), "volume nope-7 is not in the catalog") {
		t.Errorf("reuse of an unknown label: %v", err)
	}

	ch, err := SetReuse(t.Context(), cfg, []string{"test-003", "test-003"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WriteReuse(&out, ch)
	if len(ch) != 1 || ch[0].Was != true || ch[0].Reuse != false ||
		out.String() != "test-003: now not reusable (no-reuse), was reusable (last written by run 20250303010000)\n" {
		t.Errorf("no-reuse: %+v\n%s", ch, out.String())
	}
	if v, _ := cat.Volume(t.Context(), "test-003"); v.Reuse {
		t.Error("test-003 is still reusable")
	}
	ch, _ = SetReuse(t.Context(), cfg, []string{"test-003"}, false)
	out.Reset()
	WriteReuse(&out, ch)
	if !strings.HasPrefix(out.String(), "test-003: already not reusable (no-reuse)") {
		t.Errorf("no-reuse again:\n%s", out.String())
	}
	ch, _ = SetReuse(t.Context(), cfg, []string{"test-003"}, true)
	out.Reset()
	WriteReuse(&out, ch)
	if !strings.HasPrefix(out.String(), "test-003: now reusable, was not reusable (no-reuse)") ||
		!strings.Contains(out.String(), "it holds the newest chain of b:/y, c:/z: it is not overwritten before a newer full of each is on another volume") {
		t.Errorf("reuse:\n%s", out.String())
	}
	if v, _ := cat.Volume(t.Context(), "test-003"); !v.Reuse {
		t.Error("test-003 is not reusable again")
	}
}
