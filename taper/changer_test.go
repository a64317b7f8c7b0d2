package taper

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewDiskChangerCreatesSlots(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vtapes")
	if err := os.MkdirAll(filepath.Join(root, "slot7"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "slot7", "00000.LABEL"), []byte("keep me"), 0o644)
	var logbuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logbuf, nil))
	c, err := NewDiskChanger(root, 3, 1<<30, 256<<10, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		fi, err := os.Stat(c.SlotDir(i))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750&^currentUmask() {
			t.Fatalf("slot %d: %v %v", i, fi.Mode(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "slot7", "00000.LABEL")); err != nil {
		t.Fatalf("an extra slot was touched: %v", err)
	}
	if !strings.Contains(logbuf.String(), "slot7") {
		t.Errorf("extra slot not logged: %s", logbuf.String())
	}
	if n, _ := c.Slots(context.Background()); n != 3 {
		t.Fatalf("Slots = %d", n)
	}
	// Opening again is idempotent.
	if _, err := NewDiskChanger(root, 3, 1<<30, 256<<10, nil); err != nil {
		t.Fatal(err)
	}

	os.WriteFile(filepath.Join(root, "slot4"), nil, 0o644)
	bad := []struct {
		name      string
		root      string
		slots     int
		capacity  int64
		blocksize int64
		want      string
	}{
		{"file as slot", root, 4, 1 << 30, 256 << 10, "not a directory"},
		{"no root", "", 4, 1 << 30, 256 << 10, "no directory"},
		{"missing root", filepath.Join(root, "unmounted"), 2, 1 << 30, 256 << 10, "does not exist: mount it, or create it with mkdir"},
		{"file as root", filepath.Join(root, "slot4"), 2, 1 << 30, 256 << 10, "not a directory"},
		{"no slots", root, 0, 1 << 30, 256 << 10, "0 slots"},
		{"no capacity", root, 2, 0, 256 << 10, "capacity"},
		{"bad blocksize", root, 2, 1 << 30, 1000, "blocksize"},
	}
	for _, b := range bad {
		if _, err := NewDiskChanger(b.root, b.slots, b.capacity, b.blocksize, nil); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want an error mentioning %q", b.name, err, b.want)
		}
	}
}

// A missing changer directory is an unmounted disk or a typo: it is an
// error, and nothing is created where it should be.
func TestNewDiskChangerMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mnt", "vtapes")
	_, err := NewDiskChanger(root, 3, 1<<30, 256<<10, nil)
	if !errors.Is(err, ErrNoChangerRoot) || !strings.Contains(err.Error(), root) {
		t.Fatalf("err = %v, want ErrNoChangerRoot naming %s", err, root)
	}
	if _, err := os.Stat(filepath.Dir(root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was created where the changer should be: %v", err)
	}
}

func currentUmask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "d")
	os.Mkdir(p, 0o777)
	fi, _ := os.Stat(p)
	return 0o777 &^ fi.Mode().Perm()
}

func TestDiskChangerInventoryAndLoad(t *testing.T) {
	root := t.TempDir()
	c, err := NewDiskChanger(root, 5, 1<<30, testBS, nil)
	if err != nil {
		t.Fatal(err)
	}
	// slot 1: ours; slot 2: blank; slot 3: foreign; slot 4: removed; slot 5: damaged.
	d, err := c.Load(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLabel(d, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	d3, err := c.Load(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Tell(); !errors.Is(err, ErrNoMedium) {
		t.Fatalf("the device of slot 1 still works after loading slot 3: %v", err)
	}
	d3.WriteRecord(labelText("AMANDA: TAPESTART DATE X TAPE Old-01\n"))
	d3.WriteFilemark()
	os.Remove(c.SlotDir(4))
	os.WriteFile(filepath.Join(c.SlotDir(5), "00001.x"), nil, 0o640)

	// Load slot 1 and position it; Inventory must not disturb it.
	d1, err := c.Load(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Loaded() != 1 {
		t.Fatalf("Loaded = %d", c.Loaded())
	}
	d1.SeekToEnd()
	before, _ := d1.Tell()
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after, err := d1.Tell(); err != nil || after != before {
		t.Fatalf("Inventory moved the loaded drive: %+v -> %+v (%v)", before, after, err)
	}
	if len(inv) != 5 {
		t.Fatalf("%d slots in the inventory", len(inv))
	}
	if s := inv[0]; s.Slot != 1 || s.Label == nil || s.Label.Label != "T-001" || s.Blank || s.Foreign != "" || s.Err != nil {
		t.Errorf("slot 1: %+v", s)
	}
	if s := inv[1]; s.Slot != 2 || !s.Blank || s.Label != nil {
		t.Errorf("slot 2: %+v", s)
	}
	if s := inv[2]; s.Slot != 3 || !strings.Contains(s.Foreign, "Amanda") || s.Label != nil {
		t.Errorf("slot 3: %+v", s)
	}
	if s := inv[3]; s.Slot != 4 || !s.Empty {
		t.Errorf("slot 4: %+v", s)
	}
	if s := inv[4]; s.Slot != 5 || s.Err == nil || !strings.Contains(s.Err.Error(), "damaged") {
		t.Errorf("slot 5: %+v", s)
	}
	// Nothing was created by the inventory.
	if _, err := os.Stat(c.SlotDir(4)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inventory recreated slot 4: %v", err)
	}
	if names, _ := filepath.Glob(filepath.Join(c.SlotDir(2), "*")); len(names) != 0 {
		t.Errorf("inventory wrote into blank slot 2: %v", names)
	}

	// The vtape of a labelled slot uses the label's blocksize.
	d1.BeginFile("img")
	if err := d1.WriteRecord(fill(1, FirstRecordSize)); err != nil {
		t.Fatal(err)
	}
	if err := d1.WriteRecord(fill(2, 2*testBS)); err == nil {
		t.Error("a record larger than the label's blocksize was accepted")
	}

	if _, err := c.Load(context.Background(), 4); !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "load slot 4") {
		t.Errorf("load of an empty slot: %v", err)
	}
	if _, err := c.Load(context.Background(), 6); err == nil || !strings.Contains(err.Error(), "slots are 1 to 5") {
		t.Errorf("load of slot 6: %v", err)
	}
	d2, err := c.Load(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	// Unloading slot 1 ended its file with a filemark.
	if inv, _ := c.Inventory(context.Background()); inv[0].Label == nil {
		t.Fatalf("slot 1 after unload: %+v", inv[0])
	}
	if err := c.Eject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Loaded() != 0 {
		t.Errorf("Loaded after Eject = %d", c.Loaded())
	}
	if err := d2.Rewind(); !errors.Is(err, ErrNoMedium) {
		t.Errorf("device after changer eject: %v", err)
	}
	if err := c.SetEarlyWarning(1 << 30); err == nil {
		t.Error("early warning equal to the capacity accepted")
	}
	if err := c.SetEarlyWarning(1 << 20); err != nil {
		t.Error(err)
	}
}

// TestDiskChangersDrives: the drives of one disk changer share its slots;
// a slot another drive holds is neither loaded nor erased, and the
// inventory reads a slot while another drive writes it.
func TestDiskChangersDrives(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, c := range []struct {
		slots, drives int
		want          string
	}{
		{3, 0, "0 drives: want 1 to 64"},
		{3, 65, "65 drives: want 1 to 64"},
		{2, 3, "3 drives but only 2 slots"},
	} {
		if _, err := NewDiskChangers(root, c.slots, 1<<30, testBS, c.drives, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d slots, %d drives: %v, want %q", c.slots, c.drives, err, c.want)
		}
	}
	cs, err := NewDiskChangers(root, 3, 1<<30, testBS, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d views, want 2", len(cs))
	}
	for i, c := range cs {
		if p := c.Properties(); p.Drives != 2 || p.Drive != i || p.Kind != "disk" {
			t.Errorf("view %d: %+v", i, p)
		}
	}
	if p := mustDisk(t, root); p.Properties().Drives != 1 || p.Properties().Drive != 0 {
		t.Errorf("NewDiskChanger: %+v, want one drive, drive 0", p.Properties())
	}
	d0, err := cs[0].Load(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLabel(d0, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	_, err = cs[1].Load(ctx, 1)
	if !errors.Is(err, ErrInOtherDrive) || !strings.Contains(err.Error(), "drive 0 is using it") || !strings.Contains(err.Error(), "load slot 1 into drive 1") {
		t.Errorf("drive 1 loads the slot of drive 0: %v", err)
	}
	if cs[1].Loaded() != 0 || cs[0].Loaded() != 1 {
		t.Errorf("after the refused load: drive 0 holds %d, drive 1 holds %d", cs[0].Loaded(), cs[1].Loaded())
	}
	if _, err := cs[1].Erase(ctx, 1, "test", "T-001"); err == nil || !strings.Contains(err.Error(), "in drive 0; eject it first") {
		t.Errorf("drive 1 erases the slot of drive 0: %v", err)
	}
	// Drive 0 writes a file; drive 1's view reads the slot's label meanwhile.
	if err := d0.BeginFile("img"); err != nil {
		t.Fatal(err)
	}
	if err := d0.WriteRecord(fill(1, FirstRecordSize)); err != nil {
		t.Fatal(err)
	}
	inv, err := cs[1].Inventory(ctx)
	if err != nil || inv[0].Label == nil || inv[0].Label.Label != "T-001" {
		t.Fatalf("drive 1's inventory while drive 0 writes slot 1: %+v %v", inv, err)
	}
	// Drive 1's Eject leaves drive 0's file open.
	if _, err := cs[1].Load(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := cs[1].Eject(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d0.WriteRecord(fill(2, testBS)); err != nil {
		t.Errorf("drive 0 after drive 1's Eject: %v", err)
	}
	if err := cs[0].Eject(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[1].Load(ctx, 1); err != nil {
		t.Errorf("drive 1 loads slot 1 after drive 0 ejected it: %v", err)
	}
}

func mustDisk(t *testing.T, root string) *DiskChanger {
	t.Helper()
	c, err := NewDiskChanger(root, 3, 1<<30, testBS, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
