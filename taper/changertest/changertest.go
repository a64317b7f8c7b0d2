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
// RunDrives checks a group of drives of one changer used at once (one view
// per drive): each view loads and writes its own slot while the others
// write theirs; a slot held open by one view is refused to another
// (ErrInOtherDrive) and nothing moves; one view's Eject leaves the others'
// devices working; every view reports the same inventory; and random
// sequences never have a slot open in two drives.
//
// It knows no changer's insides: a fixture gives it the changer and the
// means to put volumes back where a person would.
package changertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
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

// Group is the changers of one library under test, one view per drive
// (taper.NewDiskChangers, taper.NewRobotChangers), with its volumes in
// place.
type Group struct {
	// Views are the views of the group's drives, at least two.
	Views []taper.Changer
	// Full lists slots that hold a volume the suite may label: more than
	// there are views, so that every view can hold one and one is free.
	Full []int
	// Moves counts the volume moves so far (a robot's mtx load and
	// unload); nil when the changer cannot tell.
	Moves func() int
}

// RunDrives runs the checks of a group of drives that tapir uses at once:
// every view declares the group; two views load two slots and write and
// read them at the same time; a slot held open by one view cannot be
// loaded by another (ErrInOtherDrive, naming the drive, moving nothing);
// the Eject of one view leaves the other's device working; every view
// reports the same inventory; and a random sequence of loads, ejects and
// inventories on random views never has a slot open in two drives and
// always lists every full slot exactly once. newGroup makes a fresh group
// for each check.
func RunDrives(t *testing.T, newGroup func(t *testing.T) *Group) {
	checks := []struct {
		name string
		fn   func(*testing.T, *Group)
	}{
		{"Properties", groupProperties},
		{"ConcurrentWrites", concurrentWrites},
		{"HeldInOtherDrive", heldInOtherDrive},
		{"EjectLeavesOthers", ejectLeavesOthers},
		{"SameInventory", sameInventory},
		{"OutOfRangeInGroup", outOfRangeInGroup},
		{"RandomSequences", randomSequences},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			g := newGroup(t)
			if len(g.Views) < 2 {
				t.Fatalf("changertest: the group has %d views, want at least 2", len(g.Views))
			}
			if len(g.Full) <= len(g.Views) {
				t.Fatalf("changertest: the group lists %d full slots for %d views, want more", len(g.Full), len(g.Views))
			}
			t.Cleanup(func() {
				for _, v := range g.Views {
					v.Close()
				}
			})
			c.fn(t, g)
		})
	}
}

func groupMoves(g *Group) int {
	if g.Moves == nil {
		return 0
	}
	return g.Moves()
}

// viewLoad loads slot through view i and checks that the device is at the
// beginning.
func viewLoad(t *testing.T, g *Group, i, slot int) taper.Device {
	t.Helper()
	d, err := g.Views[i].Load(t.Context(), slot)
	if err != nil {
		t.Fatalf("view %d (drive %d): load slot %d: %v", i, g.Views[i].Properties().Drive, slot, err)
	}
	if p, err := d.Tell(); err != nil || p.File != 0 || p.Record != 0 {
		t.Fatalf("view %d: load slot %d: the device is at %+v (%v), want the beginning", i, slot, p, err)
	}
	return d
}

// viewLabel writes the suite's label on slot through view i and tells the
// changer.
func viewLabel(t *testing.T, g *Group, i, slot int) taper.Device {
	t.Helper()
	d := viewLoad(t, g, i, slot)
	l := label(slot)
	if err := taper.WriteLabel(d, l); err != nil {
		t.Fatalf("view %d: label slot %d: %v", i, slot, err)
	}
	if err := g.Views[i].Labelled(t.Context(), &l); err != nil {
		t.Fatalf("view %d: labelled slot %d: %v", i, slot, err)
	}
	return d
}

// labelAll labels every full slot through view 0 and ejects it, so that
// every label is known (also to a changer that NeedsScan).
func labelAll(t *testing.T, g *Group) {
	t.Helper()
	for _, slot := range g.Full {
		viewLabel(t, g, 0, slot)
	}
	if err := g.Views[0].Eject(t.Context()); err != nil {
		t.Fatalf("view 0: eject: %v", err)
	}
}

// readsLabel checks that d, rewound, reads the suite's label of slot.
func readsLabel(t *testing.T, what string, d taper.Device, slot int) {
	t.Helper()
	if err := d.Rewind(); err != nil {
		t.Errorf("%s: rewind: %v", what, err)
		return
	}
	if l, err := taper.ReadLabel(d); err != nil || l.Label != label(slot).Label {
		t.Errorf("%s: reads label %+v %v, want %s", what, l, err, label(slot).Label)
	}
}

// groupProperties: every view declares the group and its own drive.
func groupProperties(t *testing.T, g *Group) {
	seen := map[int]int{}
	p0 := g.Views[0].Properties()
	for i, v := range g.Views {
		p := v.Properties()
		if p.Drives != len(g.Views) {
			t.Errorf("view %d: Drives %d, want %d (the views of the group)", i, p.Drives, len(g.Views))
		}
		if p.Kind != p0.Kind || p.Where != p0.Where || p.NeedsScan != p0.NeedsScan || p.CanErase != p0.CanErase || p.KnowsDrive != p0.KnowsDrive || p.WaitsForPerson != p0.WaitsForPerson {
			t.Errorf("view %d declares %+v, view 0 %+v: the views of one changer differ only in Drive", i, p, p0)
		}
		if j, dup := seen[p.Drive]; dup {
			t.Errorf("views %d and %d both declare drive %d", j, i, p.Drive)
		}
		seen[p.Drive] = i
	}
}

// concurrentWrites: two views load two slots at the same time, write a
// label and a file each at the same time, and read back their own.
func concurrentWrites(t *testing.T, g *Group) {
	ctx := t.Context()
	var wg sync.WaitGroup
	const records = 20
	for i := range g.Views {
		slot := g.Full[i]
		wg.Go(func() {
			d, err := g.Views[i].Load(ctx, slot)
			if err != nil {
				t.Errorf("view %d: load slot %d: %v", i, slot, err)
				return
			}
			l := label(slot)
			if err := taper.WriteLabel(d, l); err != nil {
				t.Errorf("view %d: label slot %d: %v", i, slot, err)
				return
			}
			if err := g.Views[i].Labelled(ctx, &l); err != nil {
				t.Errorf("view %d: labelled: %v", i, err)
			}
			if err := d.BeginFile("changertest"); err != nil {
				t.Errorf("view %d: BeginFile: %v", i, err)
				return
			}
			rec := make([]byte, 32<<10)
			for r := range records {
				for k := range rec {
					rec[k] = byte(slot*31 + r + k)
				}
				if err := d.WriteRecord(rec); err != nil {
					t.Errorf("view %d: slot %d: write record %d: %v", i, slot, r, err)
					return
				}
			}
			if err := d.WriteFilemark(); err != nil {
				t.Errorf("view %d: slot %d: filemark: %v", i, slot, err)
				return
			}
			readsLabel(t, fmt.Sprintf("view %d, slot %d", i, slot), d, slot)
			if err := d.SpaceFiles(1); err != nil {
				t.Errorf("view %d: slot %d: space to file 1: %v", i, slot, err)
				return
			}
			buf := make([]byte, 64<<10)
			for r := range records {
				n, err := d.ReadRecord(buf)
				if err != nil || n != len(rec) {
					t.Errorf("view %d: slot %d: read record %d: %d bytes, %v", i, slot, r, n, err)
					return
				}
				for k := range n {
					if buf[k] != byte(slot*31+r+k) {
						t.Errorf("view %d: slot %d: record %d differs at byte %d: another drive's data?", i, slot, r, k)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	inv, err := g.Views[0].Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	for i := range g.Views {
		if s, ok := slotOf(inv, g.Full[i]); !ok || s.Label == nil || s.Label.Label != label(g.Full[i]).Label {
			t.Errorf("inventory while the drives hold their volumes: %s, want %s in slot %d", describe(inv), label(g.Full[i]).Label, g.Full[i])
		}
	}
}

// heldInOtherDrive: a slot held open by one view cannot be loaded by
// another: ErrInOtherDrive naming the drive, nothing moved, both devices
// still working.
func heldInOtherDrive(t *testing.T, g *Group) {
	ctx := t.Context()
	labelAll(t, g)
	a, b := g.Full[0], g.Full[1]
	d0 := viewLoad(t, g, 0, a)
	d1 := viewLoad(t, g, 1, b)
	if _, err := taper.ReadLabel(d0); err != nil {
		t.Fatal(err)
	}
	pos, err := d0.Tell()
	if err != nil {
		t.Fatal(err)
	}
	drive0 := g.Views[0].Properties().Drive
	before := groupMoves(g)
	_, err = g.Views[1].Load(ctx, a)
	if !errors.Is(err, taper.ErrInOtherDrive) || !strings.Contains(err.Error(), "drive "+strconv.Itoa(drive0)) || !strings.Contains(err.Error(), "slot "+strconv.Itoa(a)) {
		t.Errorf("view 1: load slot %d held by drive %d: %v, want ErrInOtherDrive naming slot %d and drive %d", a, drive0, err, a, drive0)
	}
	if n := groupMoves(g); n != before {
		t.Errorf("the refused load moved %d volumes", n-before)
	}
	if p, err := d0.Tell(); err != nil || p != pos {
		t.Errorf("view 0's device is at %+v (%v) after the refused load, was at %+v", p, err, pos)
	}
	readsLabel(t, "view 0 after the refused load", d0, a)
	readsLabel(t, "view 1 after its refused load", d1, b)
	// The holder may load its own slot again.
	readsLabel(t, "view 0 reloading its slot", viewLoad(t, g, 0, a), a)
	// Once the holder has ejected it, the slot is free for the other view.
	if err := g.Views[0].Eject(ctx); err != nil {
		t.Fatal(err)
	}
	readsLabel(t, "view 1 after view 0 ejected the slot", viewLoad(t, g, 1, a), a)
	// And view 1's former slot is free for view 0.
	readsLabel(t, "view 0 loading view 1's former slot", viewLoad(t, g, 0, b), b)
}

// ejectLeavesOthers: the Eject of one view ends only its own device.
func ejectLeavesOthers(t *testing.T, g *Group) {
	ctx := t.Context()
	a, b := g.Full[0], g.Full[1]
	d0 := viewLabel(t, g, 0, a)
	d1 := viewLabel(t, g, 1, b)
	if err := d1.BeginFile("changertest"); err != nil {
		t.Fatal(err)
	}
	if err := d1.WriteRecord(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	if err := g.Views[0].Eject(ctx); err != nil {
		t.Fatalf("view 0: eject: %v", err)
	}
	if err := d0.Rewind(); !errors.Is(err, taper.ErrNoMedium) {
		t.Errorf("view 0's device after its Eject: %v, want ErrNoMedium", err)
	}
	// View 1 goes on writing the file it began.
	if err := d1.WriteRecord(make([]byte, 32<<10)); err != nil {
		t.Errorf("view 1: write after view 0's Eject: %v", err)
	}
	if err := d1.WriteFilemark(); err != nil {
		t.Errorf("view 1: filemark after view 0's Eject: %v", err)
	}
	readsLabel(t, "view 1 after view 0's Eject", d1, b)
	if g.Views[1].Properties().KnowsDrive {
		if di, err := g.Views[1].Drive(ctx); err != nil || !di.Full || di.Slot != b {
			t.Errorf("view 1: Drive after view 0's Eject: %+v %v, want slot %d", di, err, b)
		}
		if di, err := g.Views[0].Drive(ctx); err != nil || di.Full {
			t.Errorf("view 0: Drive after its Eject: %+v %v, want empty", di, err)
		}
	}
	// An empty drive ejects again without harm to the other.
	if err := g.Views[0].Eject(ctx); err != nil {
		t.Errorf("view 0: second eject: %v", err)
	}
	readsLabel(t, "view 1 after view 0's second Eject", d1, b)
}

// sameInventory: every view reports the same inventory, with volumes in
// drives at their home slots.
func sameInventory(t *testing.T, g *Group) {
	ctx := t.Context()
	labelAll(t, g)
	for i := range g.Views {
		viewLoad(t, g, i, g.Full[i])
	}
	var first string
	for i, v := range g.Views {
		inv, err := v.Inventory(ctx)
		if err != nil {
			t.Fatalf("view %d: inventory: %v", i, err)
		}
		s := describe(inv)
		if i == 0 {
			first = s
		} else if s != first {
			t.Errorf("view %d's inventory differs from view 0's:\n%s\n%s", i, s, first)
		}
		for _, slot := range g.Full {
			if si, ok := slotOf(inv, slot); !ok || si.Label == nil || si.Label.Label != label(slot).Label {
				t.Errorf("view %d: inventory %s, want %s in slot %d", i, s, label(slot).Label, slot)
			}
		}
	}
}

// outOfRangeInGroup: a slot outside 1..Slots is an error naming it from
// every view, whatever the other views hold or do not hold, never
// ErrInOtherDrive.
func outOfRangeInGroup(t *testing.T, g *Group) {
	ctx := t.Context()
	n, err := g.Views[0].Slots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for i, v := range g.Views {
			for _, slot := range []int{0, -1, n + 1} {
				_, err := v.Load(ctx, slot)
				if err == nil || errors.Is(err, taper.ErrInOtherDrive) || !strings.Contains(err.Error(), "slot "+strconv.Itoa(slot)) {
					t.Errorf("view %d: load slot %d of %d: %v, want an error naming slot %d", i, slot, n, err, slot)
				}
			}
		}
	}
	check() // no view holds anything
	viewLoad(t, g, 0, g.Full[0])
	check() // view 0 holds a slot
	viewLoad(t, g, 1, g.Full[1])
}

// randomSequences: random loads, ejects, closes and inventories on random
// views.
// The model says which view holds which slot; the changer must agree: a
// load of a slot another view holds fails with ErrInOtherDrive and moves
// nothing, any other load succeeds; a device of a view reads its own
// slot's label; no slot is ever open in two drives; the inventory lists
// every full slot exactly once.
func randomSequences(t *testing.T, g *Group) {
	ctx := t.Context()
	labelAll(t, g)
	seed := time.Now().UnixNano()
	if s := os.Getenv("CHANGERTEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("CHANGERTEST_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (CHANGERTEST_SEED=%d repeats this sequence)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	n := len(g.Views)
	holds := make([]int, n) // view -> slot it holds, 0 for none
	devs := make([]taper.Device, n)
	// closed: the view was closed while it held its slot. Close moves
	// nothing; whether the slot stays held (a disk changer's vtape stays
	// usable) or is freed for another drive to take (a robot's drive is
	// released) is the changer's to say, so a load of that slot by another
	// view may succeed or be refused.
	closed := make([]bool, n)
	holder := func(slot int) int {
		for i, s := range holds {
			if s == slot {
				return i
			}
		}
		return -1
	}
	steps := 40
	if testing.Short() {
		steps = 15
	}
	for step := range steps {
		i := rng.Intn(n)
		switch op := rng.Intn(6); {
		case op < 3: // load
			slot := g.Full[rng.Intn(len(g.Full))]
			h := holder(slot)
			before := groupMoves(g)
			d, err := g.Views[i].Load(ctx, slot)
			switch {
			case h >= 0 && h != i && closed[h] && err == nil:
				holds[h], closed[h] = 0, false // the closed view's drive gave it up
				holds[i], devs[i], closed[i] = slot, d, false
			case h >= 0 && h != i:
				if !errors.Is(err, taper.ErrInOtherDrive) {
					t.Fatalf("step %d: view %d loads slot %d held by view %d: %v, want ErrInOtherDrive", step, i, slot, h, err)
				}
				if m := groupMoves(g); m != before {
					t.Fatalf("step %d: the refused load moved %d volumes", step, m-before)
				}
			case err != nil:
				t.Fatalf("step %d: view %d loads slot %d (held by nobody else): %v", step, i, slot, err)
			default:
				if devs[i] != nil && holds[i] != slot { // (the same slot may lend the same device again)
					if err := devs[i].Rewind(); !errors.Is(err, taper.ErrNoMedium) {
						t.Fatalf("step %d: view %d's earlier device after loading slot %d: %v, want ErrNoMedium", step, i, slot, err)
					}
				}
				holds[i], devs[i], closed[i] = slot, d, false
			}
		case op == 4: // close
			if err := g.Views[i].Close(); err != nil {
				t.Fatalf("step %d: view %d: close: %v", step, i, err)
			}
			if holds[i] != 0 {
				closed[i], devs[i] = true, nil
			}
		case op == 3: // eject
			if err := g.Views[i].Eject(ctx); err != nil {
				t.Fatalf("step %d: view %d: eject: %v", step, i, err)
			}
			if devs[i] != nil {
				if err := devs[i].Rewind(); !errors.Is(err, taper.ErrNoMedium) {
					t.Fatalf("step %d: view %d's device after its Eject: %v, want ErrNoMedium", step, i, err)
				}
			}
			holds[i], devs[i], closed[i] = 0, nil, false
		default: // inventory
			inv, err := g.Views[i].Inventory(ctx)
			if err != nil {
				t.Fatalf("step %d: view %d: inventory: %v", step, i, err)
			}
			count := map[int]int{}
			for _, s := range inv {
				count[s.Slot]++
			}
			for _, slot := range g.Full {
				s, _ := slotOf(inv, slot)
				if count[slot] != 1 || s.Label == nil || s.Label.Label != label(slot).Label {
					t.Fatalf("step %d: view %d: inventory %s: want slot %d listed once with %s", step, i, describe(inv), slot, label(slot).Label)
				}
			}
		}
		// No slot is open in two drives, and every device reads its own.
		seen := map[int]int{}
		for v, slot := range holds {
			if slot == 0 {
				continue
			}
			if w, dup := seen[slot]; dup {
				t.Fatalf("step %d: slot %d is open in the drives of views %d and %d", step, slot, w, v)
			}
			seen[slot] = v
			if closed[v] {
				continue
			}
			readsLabel(t, fmt.Sprintf("step %d: view %d holding slot %d", step, v, slot), devs[v], slot)
			if g.Views[v].Properties().KnowsDrive {
				if di, err := g.Views[v].Drive(ctx); err != nil || !di.Full || di.Slot != slot {
					t.Fatalf("step %d: view %d: Drive %+v %v, want slot %d", step, v, di, err, slot)
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}
