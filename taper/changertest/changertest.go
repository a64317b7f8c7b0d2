// Package changertest is the conformance suite of the taper.Changer seam:
// Run checks, against any changer and any wrapper of one, what the seam
// promises (taper/changer.go): Load hands out the drive rewound and makes
// the device of an earlier Load fail with ErrNoMedium; Inventory has no
// side effects; labels written through Load are seen by Inventory (or Scan
// where NeedsScan is declared); a slot out of range is an error naming it;
// a done ctx stops every method before anything moves, and a move or a wait
// in progress when ctx ends; what Properties declares is what the changer
// does, and its devices declare what they can do.
//
// It knows no changer's insides: a fixture gives it the changer and the
// means to put volumes back where a person would.
package changertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/taper"
)

// Fixture is one changer under test, with its volumes in place.
type Fixture struct {
	Changer taper.Changer
	// Full lists slots that hold a volume the suite may label (at least
	// one; with two, the suite also loads one slot after another).
	Full []int
	// Device is what the devices the changer lends must declare.
	Device taper.DeviceProperties
	// Reinsert puts back what Eject took out of reach, as a person would
	// (a single drive's cartridge); nil when Eject leaves every volume in
	// its slot.
	Reinsert func(t *testing.T)
	// Moves counts the volume moves so far (a robot's mtx load and
	// unload); nil when the changer cannot tell.
	Moves func() int
	// Hang, when set, makes the next volume move hang until it is killed
	// and returns a channel that is closed once that move has started (a
	// robot's mtx that never answers).
	Hang func(t *testing.T) <-chan struct{}
}

// Run runs the suite; newFixture makes a fresh fixture for each check.
func Run(t *testing.T, newFixture func(t *testing.T) *Fixture) {
	checks := []struct {
		name string
		fn   func(*testing.T, *Fixture)
	}{
		{"Properties", properties},
		{"LoadRewinds", loadRewinds},
		{"EarlierDeviceHasNoMedium", earlierDevice},
		{"InventoryHasNoSideEffects", inventoryNoSideEffects},
		{"LabelsAreSeen", labelsSeen},
		{"OutOfRange", outOfRange},
		{"DoneContext", doneContext},
		{"CancelWhileMoving", cancelWhileMoving},
		{"CancelWhileWaiting", cancelWhileWaiting},
		{"DeviceProperties", deviceProperties},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if len(f.Full) == 0 {
				t.Fatal("changertest: the fixture lists no full slot")
			}
			t.Cleanup(func() { f.Changer.Close() })
			c.fn(t, f)
		})
	}
}

var labelTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// label is the label the suite writes on slot's volume.
func label(slot int) taper.Label {
	return taper.Label{Datestamp: taper.NeverWritten, Label: fmt.Sprintf("CT-%03d", slot), Org: "changertest", Blocksize: 32 << 10, Created: labelTime}
}

// load loads slot and checks that the device is at the beginning.
func load(t *testing.T, f *Fixture, slot int) taper.Device {
	t.Helper()
	d, err := f.Changer.Load(t.Context(), slot)
	if err != nil {
		t.Fatalf("load slot %d: %v", slot, err)
	}
	if p, err := d.Tell(); err != nil || p.File != 0 || p.Record != 0 {
		t.Fatalf("load slot %d: the device is at %+v (%v), want the beginning of the volume", slot, p, err)
	}
	return d
}

// labelSlot writes the suite's label on slot's volume through Load and
// tells the changer (Labelled), as tapir label does.
func labelSlot(t *testing.T, f *Fixture, slot int) taper.Device {
	t.Helper()
	d := load(t, f, slot)
	l := label(slot)
	if err := taper.WriteLabel(d, l); err != nil {
		t.Fatalf("label slot %d: %v", slot, err)
	}
	if err := f.Changer.Labelled(t.Context(), &l); err != nil {
		t.Fatalf("labelled slot %d: %v", slot, err)
	}
	return d
}

func eject(t *testing.T, f *Fixture) {
	t.Helper()
	if err := f.Changer.Eject(t.Context()); err != nil {
		t.Fatalf("eject: %v", err)
	}
	if f.Reinsert != nil {
		f.Reinsert(t)
	}
}

func moves(f *Fixture) int {
	if f.Moves == nil {
		return 0
	}
	return f.Moves()
}

func slotOf(inv []taper.SlotInfo, slot int) (taper.SlotInfo, bool) {
	for _, s := range inv {
		if s.Slot == slot {
			return s, true
		}
	}
	return taper.SlotInfo{}, false
}

func describe(inv []taper.SlotInfo) string {
	var b strings.Builder
	for _, s := range inv {
		fmt.Fprintf(&b, "[%d ", s.Slot)
		switch {
		case s.Empty:
			b.WriteString("empty")
		case s.Blank:
			b.WriteString("blank")
		case s.Foreign != "":
			b.WriteString("foreign " + s.Foreign)
		case s.Label != nil:
			b.WriteString(s.Label.Label)
		case s.Err != nil:
			b.WriteString("err " + s.Err.Error())
		}
		b.WriteString("]")
	}
	return b.String()
}

func wantNotSupported(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, taper.ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this changer") {
		t.Errorf("%s on a changer that does not declare it: %v, want an error matching ErrNotSupported", what, err)
	}
}

// properties: what the changer declares is what it does.
func properties(t *testing.T, f *Fixture) {
	ctx := t.Context()
	ch := f.Changer
	p := ch.Properties()
	switch {
	case p.Kind != "disk" && p.Kind != "single" && p.Kind != "robot":
		t.Errorf("Kind %q, want disk, single or robot", p.Kind)
	case p.Drives < 1:
		t.Errorf("Drives %d, want at least 1", p.Drives)
	case p.Where == "":
		t.Error("Where is empty: a person must be told where the volumes are")
	}
	if ch.Properties() != p {
		t.Errorf("Properties changed between two calls: %+v then %+v", p, ch.Properties())
	}
	if w := ch.Where(f.Full[0]); w == "" {
		t.Errorf("Where(%d) is empty", f.Full[0])
	}
	if n, err := ch.Slots(ctx); err != nil || n < f.Full[len(f.Full)-1] {
		t.Errorf("Slots = %d, %v; want at least %d", n, err, f.Full[len(f.Full)-1])
	}
	if !p.WaitsForPerson {
		_, _, err := ch.WaitFor(ctx, "volume CT-999", func(*taper.Label, error) bool { return true }, nil)
		wantNotSupported(t, "WaitFor", err)
	}
	if !p.CanErase {
		_, err := ch.Erase(ctx, f.Full[0], "changertest", "CT-999")
		wantNotSupported(t, "Erase", err)
	} else if _, err := ch.Erase(ctx, f.Full[0], "changertest", "CT-999"); err == nil || errors.Is(err, taper.ErrNotSupported) {
		t.Errorf("Erase of a volume that is not CT-999: %v, want a refusal", err)
	}
	if !p.KnowsDrive {
		_, err := ch.Drive(ctx)
		wantNotSupported(t, "Drive", err)
	} else {
		load(t, f, f.Full[0])
		d, err := ch.Drive(ctx)
		if err != nil || !d.Full || d.Slot != f.Full[0] || d.Device == "" {
			t.Errorf("Drive after loading slot %d: %+v %v", f.Full[0], d, err)
		}
	}
	inv, err := ch.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	for _, s := range inv {
		if errors.Is(s.Err, taper.ErrNotScanned) && !p.NeedsScan {
			t.Errorf("slot %d is not scanned, but the changer does not declare NeedsScan", s.Slot)
		}
	}
}

// loadRewinds: Load hands out the drive at the beginning of the volume,
// also when the volume is in the drive already and was read or written.
func loadRewinds(t *testing.T, f *Fixture) {
	slot := f.Full[0]
	labelSlot(t, f, slot)
	d := load(t, f, slot)
	l, err := taper.ReadLabel(d)
	if err != nil || l.Label != label(slot).Label {
		t.Fatalf("slot %d: read back %+v %v, want %s", slot, l, err, label(slot).Label)
	}
	load(t, f, slot) // after reading the label
}

// earlierDevice: a device handed out by an earlier Load fails with
// ErrNoMedium after another Load or an Eject.
func earlierDevice(t *testing.T, f *Fixture) {
	d1 := load(t, f, f.Full[0])
	last := d1
	if len(f.Full) > 1 {
		last = load(t, f, f.Full[1])
		if err := d1.Rewind(); !errors.Is(err, taper.ErrNoMedium) {
			t.Errorf("the device of slot %d after loading slot %d: %v, want ErrNoMedium", f.Full[0], f.Full[1], err)
		}
	}
	eject(t, f)
	if err := last.Rewind(); !errors.Is(err, taper.ErrNoMedium) {
		t.Errorf("the device after Eject: %v, want ErrNoMedium", err)
	}
	if _, err := last.Tell(); err == nil {
		t.Error("Tell on the device after Eject succeeded")
	}
	load(t, f, f.Full[0]) // the changer still works
}

// inventoryNoSideEffects: Inventory moves nothing and leaves the loaded
// drive where it was.
func inventoryNoSideEffects(t *testing.T, f *Fixture) {
	ctx := t.Context()
	slot := f.Full[0]
	labelSlot(t, f, slot)
	d := load(t, f, slot)
	if _, err := taper.ReadLabel(d); err != nil {
		t.Fatal(err)
	}
	pos, err := d.Tell()
	if err != nil {
		t.Fatal(err)
	}
	before := moves(f)
	inv1, err := f.Changer.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	inv2, err := f.Changer.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	if a, b := describe(inv1), describe(inv2); a != b {
		t.Errorf("two inventories differ:\n%s\n%s", a, b)
	}
	if n := moves(f); n != before {
		t.Errorf("inventory moved volumes (%d moves)", n-before)
	}
	if p, err := d.Tell(); err != nil || p != pos {
		t.Errorf("the loaded device is at %+v (%v) after the inventory, was at %+v", p, err, pos)
	}
	if err := d.Rewind(); err != nil {
		t.Errorf("the loaded device after the inventory: %v", err)
	} else if l, err := taper.ReadLabel(d); err != nil || l.Label != label(slot).Label {
		t.Errorf("the loaded device after the inventory reads %+v %v", l, err)
	}
	if s, ok := slotOf(inv1, slot); !ok || s.Label == nil || s.Label.Label != label(slot).Label {
		t.Errorf("inventory with slot %d in the drive: %s, want %s there", slot, describe(inv1), label(slot).Label)
	}
}

// labelsSeen: labels written through Load are what Inventory reports
// (after Scan when the changer declares NeedsScan), also after Eject.
func labelsSeen(t *testing.T, f *Fixture) {
	ctx := t.Context()
	for _, slot := range f.Full {
		labelSlot(t, f, slot)
	}
	eject(t, f)
	inv, err := f.Changer.Inventory(ctx)
	if err == nil && f.Changer.Properties().NeedsScan {
		inv, err = f.Changer.Scan(ctx)
	}
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	for _, slot := range f.Full {
		if s, ok := slotOf(inv, slot); !ok || s.Label == nil || *s.Label != label(slot) {
			t.Errorf("slot %d: inventory %s, want %s", slot, describe(inv), label(slot).Label)
		}
	}
	for _, s := range inv {
		if errors.Is(s.Err, taper.ErrNotScanned) {
			t.Errorf("slot %d is still not scanned: %v", s.Slot, s.Err)
		}
	}
	scan, err := f.Changer.Scan(ctx)
	if err != nil || describe(scan) != describe(inv) {
		t.Errorf("Scan = %s %v, want the inventory %s", describe(scan), err, describe(inv))
	}
}

// outOfRange: slots outside 1..Slots are errors that name the slot.
func outOfRange(t *testing.T, f *Fixture) {
	ctx := t.Context()
	n, err := f.Changer.Slots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range []int{0, -1, n + 1} {
		_, err := f.Changer.Load(ctx, slot)
		if err == nil || errors.Is(err, taper.ErrNotSupported) || !strings.Contains(err.Error(), "slot "+strconv.Itoa(slot)) {
			t.Errorf("load slot %d of %d: %v, want an error naming slot %d", slot, n, err, slot)
		}
		if f.Changer.Properties().CanErase {
			if _, err := f.Changer.Erase(ctx, slot, "changertest", "CT-001"); err == nil || !strings.Contains(err.Error(), "slot "+strconv.Itoa(slot)) {
				t.Errorf("erase slot %d of %d: %v, want an error naming slot %d", slot, n, err, slot)
			}
		}
	}
	load(t, f, f.Full[0]) // the changer still works
}

// doneContext: with a ctx that is done, every method fails at once with
// ctx's error and nothing moves.
func doneContext(t *testing.T, f *Fixture) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ch := f.Changer
	before := moves(f)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s under a cancelled ctx: %v, want context.Canceled", what, err)
		}
	}
	_, err := ch.Load(ctx, f.Full[0])
	check("Load", err)
	_, err = ch.Inventory(ctx)
	check("Inventory", err)
	_, err = ch.Scan(ctx)
	check("Scan", err)
	_, err = ch.Slots(ctx)
	check("Slots", err)
	check("Eject", ch.Eject(ctx))
	if ch.Properties().WaitsForPerson {
		_, _, err := ch.WaitFor(ctx, "volume CT-999", func(*taper.Label, error) bool { return true }, nil)
		check("WaitFor", err)
	}
	if ch.Properties().KnowsDrive {
		_, err := ch.Drive(ctx)
		check("Drive", err)
	}
	if n := moves(f); n != before {
		t.Errorf("%d volume moves under a cancelled ctx", n-before)
	}
	load(t, f, f.Full[0]) // the changer still works
}

// cancelWhileMoving: a move in progress (an mtx run) stops when ctx ends.
func cancelWhileMoving(t *testing.T, f *Fixture) {
	if f.Hang == nil {
		t.Skip("the fixture cannot make a move hang")
	}
	started := f.Hang(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.Changer.Load(ctx, f.Full[0])
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Load returned before its move started: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Load cancelled while moving: %v, want context.Canceled", err)
	}
	load(t, f, f.Full[0]) // the changer still works
}

// cancelWhileWaiting: a wait for a person ends when ctx ends.
func cancelWhileWaiting(t *testing.T, f *Fixture) {
	if !f.Changer.Properties().WaitsForPerson {
		t.Skip("the changer does not wait for a person")
	}
	labelSlot(t, f, f.Full[0])
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var asked []string
	prompt := func(msg string) {
		mu.Lock()
		asked = append(asked, msg)
		mu.Unlock()
		cancel() // the person never comes
	}
	_, _, err := f.Changer.WaitFor(ctx, "volume CT-999", func(*taper.Label, error) bool { return false }, prompt)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("WaitFor ended by ctx: %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || !strings.Contains(strings.Join(asked, "\n"), "CT-999") {
		t.Errorf("WaitFor asked %q, want a request naming CT-999", asked)
	}
}

// deviceProperties: the devices declare what the fixture says, and do it.
func deviceProperties(t *testing.T, f *Fixture) {
	slot := f.Full[0]
	d := labelSlot(t, f, slot)
	if got := d.Properties(); got != f.Device {
		t.Errorf("device properties %+v, want %+v", got, f.Device)
	}
	if err := d.BeginFile("changertest"); err != nil {
		t.Errorf("BeginFile: %v", err)
	}
	if err := d.WriteRecord(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	file, err := d.OpenFile(1)
	switch {
	case f.Device.RandomAccess && err != nil:
		t.Errorf("OpenFile(1) on a device with random access: %v", err)
	case !f.Device.RandomAccess && !errors.Is(err, taper.ErrNoRandomAccess):
		t.Errorf("OpenFile(1) on a device without random access: %v, want ErrNoRandomAccess", err)
	}
	if file != nil {
		if fi, err := file.Stat(); err != nil || fi.Size() != 32<<10 {
			t.Errorf("tape file 1 through OpenFile: %v %v, want 32 KiB", fi, err)
		}
		file.Close()
	}
}
