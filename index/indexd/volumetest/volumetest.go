// Package volumetest is the conformance suite of the indexd.VolumeSource
// seam: Run checks, against any source of volumes and any wrapper of one,
// what the seam promises (index/indexd/volumes.go): Locate finds a volume
// that is there; a volume that is not there is an error matching
// ErrVolumeMissing that names it and says what to do, from Locate and
// Open alike; Open lends the drive at the beginning of the volume, after
// checking its label (a wrong volume in the slot is detected); release
// gives the drive back; Opens beyond the declared drives wait for a
// release, and that wait ends with ctx.
//
// It knows no source's insides: a fixture gives it the source, the
// labels, and the means to swap a volume as a person would.
package volumetest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
)

// Fixture is one source under test.
type Fixture struct {
	Source indexd.VolumeSource
	// Present is the label of a volume the source can lend.
	Present string
	// Missing is the label of a volume that is not there.
	Missing string
	// Swap puts a volume labelled other where Present is, as a person who
	// swapped cartridges would, without telling anyone; nil skips the
	// check.
	Swap func(t *testing.T, other string)
	// Bring does what a person asked for Missing does: puts a volume
	// labelled Missing where the source finds it (a single drive: eject
	// the cartridge, insert the one labelled Missing). Sources that wait
	// for a person need it; nil skips the check.
	Bring func(t *testing.T)
}

// Run runs the suite; newFixture makes a fresh fixture for each check.
func Run(t *testing.T, newFixture func(t *testing.T) *Fixture) {
	checks := []struct {
		name string
		fn   func(*testing.T, *Fixture)
	}{
		{"Properties", properties},
		{"LocatePresent", locatePresent},
		{"Missing", missing},
		{"OpenAndRelease", openAndRelease},
		{"OpensSerialise", opensSerialise},
		{"CancelWaitingOpen", cancelWaitingOpen},
		{"WrongVolume", wrongVolume},
		{"AskForMissing", askForMissing},
		{"CancelWaitForPerson", cancelWaitForPerson},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newFixture(t)) })
	}
}

// LabelSlot writes label on the volume of slot through ch, tells ch when
// tell is set (as tapir label does), and releases the drive.
func LabelSlot(t *testing.T, ch taper.Changer, slot int, label string, tell bool) {
	t.Helper()
	ctx := context.Background()
	d, err := ch.Load(ctx, slot)
	if err != nil {
		t.Fatalf("load slot %d: %v", slot, err)
	}
	l := taper.Label{Datestamp: taper.NeverWritten, Label: label, Org: "volumetest", Blocksize: 32 << 10, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := taper.WriteLabel(d, l); err != nil {
		t.Fatalf("label slot %d %s: %v", slot, label, err)
	}
	if tell {
		if err := ch.Labelled(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
}

// open opens Present and checks the device is at the beginning of the
// volume, with Present's label.
func open(t *testing.T, ctx context.Context, f *Fixture) (taper.Device, func()) {
	t.Helper()
	d, release, err := f.Source.Open(ctx, f.Present, nil)
	if err != nil {
		t.Fatalf("open %s: %v", f.Present, err)
	}
	if p, err := d.Tell(); err != nil || p.File != 0 || p.Record != 0 {
		release()
		t.Fatalf("open %s: the device is at %+v (%v), want the beginning of the volume", f.Present, p, err)
	}
	l, err := taper.ReadLabel(d)
	if err != nil || l.Label != f.Present {
		release()
		t.Fatalf("open %s: the volume lent reads %+v %v", f.Present, l, err)
	}
	return d, release
}

func properties(t *testing.T, f *Fixture) {
	p := f.Source.Properties()
	if p.Drives < 1 {
		t.Errorf("Drives %d, want at least 1", p.Drives)
	}
	if p.Where == "" {
		t.Error("Where is empty: a person must be told where the volumes are")
	}
}

func locatePresent(t *testing.T, f *Fixture) {
	where, err := f.Source.Locate(t.Context(), f.Present)
	if err != nil || where == "" {
		t.Errorf("locate %s: %q %v", f.Present, where, err)
	}
}

// wantMissing checks the error for a volume that is not available.
func wantMissing(t *testing.T, what, label string, err error) {
	t.Helper()
	if !errors.Is(err, indexd.ErrVolumeMissing) {
		t.Errorf("%s %s: %v, want an error matching ErrVolumeMissing", what, label, err)
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, label) {
		t.Errorf("%s %s: %q does not name the volume", what, label, msg)
	}
	if !strings.Contains(msg, "put") && !strings.Contains(msg, "load") && !strings.Contains(msg, "insert") {
		t.Errorf("%s %s: %q does not say where to put the volume", what, label, msg)
	}
}

func missing(t *testing.T, f *Fixture) {
	ctx := t.Context()
	_, err := f.Source.Locate(ctx, f.Missing)
	wantMissing(t, "locate", f.Missing, err)
	d, release, err := f.Source.Open(ctx, f.Missing, nil)
	if err == nil {
		release()
		t.Fatalf("open %s lent %s", f.Missing, d.Name())
	}
	wantMissing(t, "open", f.Missing, err)
	_, release = open(t, ctx, f) // the failed Open gave the drive back
	release()
}

func openAndRelease(t *testing.T, f *Fixture) {
	ctx := t.Context()
	_, release := open(t, ctx, f)
	release()
	release() // twice is harmless
	_, release = open(t, ctx, f)
	release()
}

// opensSerialise: beyond the declared drives, an Open returns only after
// a release. (That an Open waits cannot be shown without a clock; the
// check uses the lent drive while the other Open runs, so that one that
// does not wait is caught in the act, as a reader would be.)
func opensSerialise(t *testing.T, f *Fixture) {
	ctx := t.Context()
	n := f.Source.Properties().Drives
	var releases []func()
	var held taper.Device
	for range n {
		d, release := open(t, ctx, f)
		held = d
		releases = append(releases, release)
	}
	var released atomic.Bool
	done := make(chan bool, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		d, release, err := f.Source.Open(ctx, f.Present, nil)
		if err != nil {
			t.Errorf("the waiting open: %v", err)
			done <- false
			return
		}
		after := released.Load()
		if _, err := taper.ReadLabel(d); err != nil {
			t.Errorf("the waiting open's device: %v", err)
		}
		release()
		done <- after
	}()
	// Use the drive lent while the other Open runs: an Open that does not
	// wait would take it away (or rewind it) under this reader, or finish
	// before the release below.
	<-started
	for i := range 50 {
		if err := held.Rewind(); err != nil {
			t.Fatalf("the lent drive, read %d, while another Open runs: %v", i, err)
		}
		if l, err := taper.ReadLabel(held); err != nil || l.Label != f.Present {
			t.Fatalf("the lent drive, read %d, while another Open runs: %+v %v", i, l, err)
		}
	}
	released.Store(true)
	for _, r := range releases {
		r()
	}
	if !<-done {
		t.Errorf("an Open beyond the %d drive(s) lent a drive before it was given back", n)
	}
}

// cancelWaitingOpen: an Open waiting for a drive ends with its ctx.
func cancelWaitingOpen(t *testing.T, f *Fixture) {
	n := f.Source.Properties().Drives
	var releases []func()
	for range n {
		_, release := open(t, t.Context(), f)
		releases = append(releases, release)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, release, err := f.Source.Open(ctx, f.Present, nil)
		if err == nil {
			release()
		}
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("an Open waiting for a drive, its ctx cancelled: %v, want context.Canceled", err)
	}
	for _, r := range releases {
		r()
	}
	_, release := open(t, t.Context(), f)
	release()
}

// wrongVolume: a volume that is not the one asked for is never lent.
func wrongVolume(t *testing.T, f *Fixture) {
	if f.Swap == nil {
		t.Skip("the fixture cannot swap volumes")
	}
	ctx := t.Context()
	if _, err := f.Source.Locate(ctx, f.Present); err != nil {
		t.Fatal(err)
	}
	f.Swap(t, "SWAPPED-1")
	d, release, err := f.Source.Open(ctx, f.Present, nil)
	if err == nil {
		release()
		t.Fatalf("open %s after the swap lent %s", f.Present, d.Name())
	}
	if !errors.Is(err, indexd.ErrVolumeMissing) || !strings.Contains(err.Error(), f.Present) {
		t.Errorf("open %s after the swap: %v, want an error matching ErrVolumeMissing naming it", f.Present, err)
	}
}

// askForMissing: given an Ask, a source that waits for a person asks for
// a volume that is not there, naming it, and lends it once a person
// brought it; any other source fails at once without asking.
func askForMissing(t *testing.T, f *Fixture) {
	ctx := t.Context()
	asked := make(chan string, 64)
	ask := func(msg string) {
		select {
		case asked <- msg:
		default:
		}
	}
	if !f.Source.Properties().WaitsForPerson {
		_, release, err := f.Source.Open(ctx, f.Missing, ask)
		if err == nil {
			release()
			t.Fatalf("open %s lent a drive", f.Missing)
		}
		wantMissing(t, "open (with ask)", f.Missing, err)
		if len(asked) > 0 {
			t.Errorf("a source that does not wait for a person asked: %q", <-asked)
		}
		return
	}
	if f.Bring == nil {
		t.Skip("the fixture cannot bring a volume")
	}
	type result struct {
		d       taper.Device
		release func()
		err     error
	}
	done := make(chan result, 1)
	go func() {
		d, release, err := f.Source.Open(ctx, f.Missing, ask)
		done <- result{d, release, err}
	}()
	var msg string
	select {
	case msg = <-asked:
	case r := <-done:
		if r.err == nil {
			r.release()
		}
		t.Fatalf("open %s returned before asking anyone: %v", f.Missing, r.err)
	}
	if !strings.Contains(msg, f.Missing) {
		t.Errorf("the request %q does not name %s", msg, f.Missing)
	}
	f.Bring(t)
	r := <-done
	if r.err != nil {
		t.Fatalf("open %s after it was brought: %v", f.Missing, r.err)
	}
	defer r.release()
	if p, err := r.d.Tell(); err != nil || p.File != 0 || p.Record != 0 {
		t.Errorf("open %s: the device is at %+v (%v), want the beginning of the volume", f.Missing, p, err)
	}
	if l, err := taper.ReadLabel(r.d); err != nil || l.Label != f.Missing {
		t.Errorf("open %s lent a volume that reads %+v %v", f.Missing, l, err)
	}
}

// cancelWaitForPerson: a wait for a person ends with the ctx, and gives
// the drive back.
func cancelWaitForPerson(t *testing.T, f *Fixture) {
	if !f.Source.Properties().WaitsForPerson {
		t.Skip("the source does not wait for a person")
	}
	ctx, cancel := context.WithCancel(t.Context())
	var once atomic.Bool
	_, release, err := f.Source.Open(ctx, f.Missing, func(string) {
		if once.CompareAndSwap(false, true) {
			cancel()
		}
	})
	if err == nil {
		release()
		t.Fatalf("open %s lent a drive", f.Missing)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), f.Missing) {
		t.Errorf("a cancelled wait for %s: %v, want context.Canceled naming the volume", f.Missing, err)
	}
	_, release = open(t, t.Context(), f)
	release()
}
