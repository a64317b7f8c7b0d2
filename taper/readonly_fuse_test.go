package taper

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// allReadOnly fails the test unless the drive saw at least one open and
// every open was O_RDONLY.
func allReadOnly(t *testing.T, d *fakest.Drive) {
	t.Helper()
	opens := d.Opens()
	if len(opens) == 0 {
		t.Fatal("the drive saw no open")
	}
	for i, f := range opens {
		if f != syscall.O_RDONLY {
			t.Errorf("open %d of %d had access mode %#o, want O_RDONLY: %v", i+1, len(opens), f, opens)
		}
	}
}

// sentOK fails the test unless op was sent and never failed since the
// last ResetTrace.
func sentOK(t *testing.T, d *fakest.Drive, op int16) {
	t.Helper()
	name := fakest.OpName(op)
	n := 0
	for _, e := range d.Trace() {
		if f := strings.Fields(e); f[0] == name {
			n++
			if len(f) > 2 {
				t.Errorf("%s failed on a read-only descriptor: %q", name, e)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s was never sent: %v", name, d.Trace())
	}
}

// A read-only single changer (restore, verify) opens the drive O_RDONLY
// on every path (Load, Inventory, WaitFor, Eject), reads the label,
// refuses to write with an error that says why, and can still set the
// drive options and eject: st allows its ioctls on a read-only
// descriptor, and so does the fake.
func TestSingleReadOnlyThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{Cartridges: []string{"A"}, Empty: true})
	if err := d.Insert("A"); err != nil {
		t.Fatal(err)
	}
	tp := openFUSETape(t, d)
	if err := WriteLabel(tp, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	used := d.Cartridge("A").Used()
	d.ResetTrace()
	if !slices.Equal(d.Opens(), nil) {
		t.Fatalf("opens after ResetTrace: %v", d.Opens())
	}

	dev := d.Path(fakest.NST0)
	c, err := NewSingleChanger(SingleConfig{Device: dev, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	inv, err := c.Inventory(ctx)
	if err != nil || inv[0].Label == nil || inv[0].Label.Label != "T-001" {
		t.Fatalf("inventory: %+v %v", inv, err)
	}
	tape, err := c.Load(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadLabel(tape)
	if err != nil || l.Label != "T-001" {
		t.Fatalf("label: %+v %v", l, err)
	}
	if st, err := tape.Status(); err != nil || !st.WriteProtected {
		t.Errorf("status of a read-only drive: %+v %v, want WriteProtected", st, err)
	}
	if err := tape.Rewind(); err != nil {
		t.Fatal(err)
	}
	if err := tape.SpaceFiles(1); err != nil {
		t.Fatal(err)
	}
	err = tape.WriteRecord(make([]byte, 1024))
	if !errors.Is(err, ErrWriteProtected) || !strings.Contains(err.Error(), "opened read-only") || !strings.Contains(err.Error(), dev) {
		t.Errorf("WriteRecord on a read-only changer's drive: %v", err)
	}
	if err := tape.WriteFilemark(); !errors.Is(err, ErrWriteProtected) {
		t.Errorf("WriteFilemark on a read-only changer's drive: %v", err)
	}

	// WaitFor probes and opens read-only too.
	got, wl, err := c.WaitFor(ctx, "volume T-001", func(l *Label, err error) bool { return err == nil && l.Label == "T-001" }, nil)
	if err != nil || wl.Label != "T-001" {
		t.Fatalf("WaitFor: %+v %v", wl, err)
	}
	if err := got.WriteRecord(make([]byte, 1024)); !errors.Is(err, ErrWriteProtected) {
		t.Errorf("WriteRecord on the volume WaitFor gave: %v", err)
	}

	offl := d.OpCount(mtio.MTOFFL)
	if err := c.Eject(ctx); err != nil {
		t.Fatalf("eject through a read-only descriptor: %v", err)
	}
	if d.OpCount(mtio.MTOFFL) != offl+1 {
		t.Error("eject sent no MTOFFL")
	}
	if name, loaded := d.Loaded(); name != "A" || loaded {
		t.Errorf("after eject: %q loaded=%v", name, loaded)
	}
	sentOK(t, d, mtio.MTOFFL)
	sentOK(t, d, mtio.MTSETDRVBUFFER)
	sentOK(t, d, mtio.MTSETBLK)
	allReadOnly(t, d)
	if n := d.Cartridge("A").Used(); n != used {
		t.Errorf("the cartridge holds %d bytes after reading, %d before: a read-only changer wrote", n, used)
	}
}

// A read-only robot changer opens its drive O_RDONLY when it loads, and
// ejects before unloading through that descriptor.
func TestRobotReadOnlyThroughFUSE(t *testing.T) {
	lib := newFakeLibrary(t, libraryBarcodes, "6")
	d := labelledShelf(t, true)
	t.Setenv("FAKE_MTX_CTL", d.Path(fakest.CtlFile))
	d.ResetTrace()
	c, err := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{d.Path(fakest.NST0)}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for slot, want := range map[int]string{1: "DailySet1-001", 2: "DailySet1-002"} {
		dev, err := c.Load(ctx, slot)
		if err != nil {
			t.Fatal(err)
		}
		if l, err := ReadLabel(dev); err != nil || l.Label != want {
			t.Fatalf("slot %d: label %+v %v", slot, l, err)
		}
		if err := dev.WriteFilemark(); !errors.Is(err, ErrWriteProtected) {
			t.Errorf("slot %d: WriteFilemark on a read-only changer's drive: %v", slot, err)
		}
	}
	if err := c.Eject(ctx); err != nil {
		t.Fatal(err)
	}
	if name, _ := d.Loaded(); name != "" {
		t.Fatalf("drive holds %q after Eject", name)
	}
	sentOK(t, d, mtio.MTOFFL)
	allReadOnly(t, d)
	if t.Failed() {
		t.Logf("trace: %v", d.Trace())
	}
}
