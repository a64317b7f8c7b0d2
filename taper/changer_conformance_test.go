package taper_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/changertest"
	"github.com/tapir-backup/tapir/taper/fakest"
	"github.com/tapir-backup/tapir/taper/taptest"
)

// The one Changer conformance suite, against every changer and every
// wrapper of one.

func diskFixture(t *testing.T) *changertest.Fixture {
	ch, err := taper.NewDiskChanger(t.TempDir(), 3, 64<<20, 32<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &changertest.Fixture{Changer: ch, Full: []int{1, 2}, Device: taper.DeviceProperties{NamesFiles: true, RandomAccess: true}}
}

// diskDriveFixture is one view (drive) of a disk changer with two drives;
// the other drive holds a slot of its own open, which the view must not
// disturb.
func diskDriveFixture(drive int) func(t *testing.T) *changertest.Fixture {
	return func(t *testing.T) *changertest.Fixture {
		cs, err := taper.NewDiskChangers(t.TempDir(), 4, 64<<20, 32<<10, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		other := cs[1-drive]
		d, err := other.Load(t.Context(), 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := d.Tell(); err != nil {
				t.Errorf("the other drive's device after the checks: %v", err)
			}
		})
		return &changertest.Fixture{Changer: cs[drive], Full: []int{1, 2}, Device: taper.DeviceProperties{NamesFiles: true, RandomAccess: true}}
	}
}

// diskGroup is a disk changer with two drives.
func diskGroup(t *testing.T) *changertest.Group {
	cs, err := taper.NewDiskChangers(t.TempDir(), 4, 64<<20, 32<<10, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &changertest.Group{Views: []taper.Changer{cs[0], cs[1]}, Full: []int{1, 2, 3}}
}

// singleFixture is the single changer over a fakest drive holding a blank
// cartridge: in memory, or mounted through FUSE (skipped without it).
func singleFixture(fuse bool) func(t *testing.T) *changertest.Fixture {
	return func(t *testing.T) *changertest.Fixture {
		opts := fakest.Options{Capacity: 16 << 20, Cartridges: []string{"C1"}}
		cfg := taper.SingleConfig{Device: "/dev/nst0"}
		var d *fakest.Drive
		if fuse {
			d = fakest.Mount(t, opts)
			cfg.Device = d.Path(fakest.NST0)
		} else {
			d = fakest.New(opts)
			cfg.Open = taper.MemOpener(d)
		}
		ch, err := taper.NewSingleChanger(cfg)
		if err != nil {
			t.Fatal(err)
		}
		reinsert := func(t *testing.T) { // the person puts the ejected cartridge back
			t.Helper()
			name, err := d.Remove()
			if err == nil {
				err = d.Insert(name)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return &changertest.Fixture{Changer: ch, Full: []int{1}, Reinsert: reinsert}
	}
}

// robotFixture is the robot changer over the fake mtx (fakest.Library)
// and an in-memory fakest drive that follows the library's arm. Its mtx
// is a wrapper that can make the next load hang until it is killed.
func robotFixture(t *testing.T) *changertest.Fixture {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake mtx")
	}
	dir := t.TempDir()
	lib, err := fakest.NewLibrary(dir, []string{"B00001L6", "B00002L6", ""}, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.Env("") {
		t.Setenv(k, v)
	}
	hang, started := filepath.Join(dir, "hang"), filepath.Join(dir, "started")
	wrapper := filepath.Join(dir, "mtx-hang")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %q ] && [ \"$3\" = load ]; then rm -f %q; echo started > %q; exec sleep 3600; fi\nexec %q \"$@\"\n", hang, hang, started, lib.MTX)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := fakest.New(fakest.Options{Capacity: 16 << 20, Cartridges: []string{"B00001L6", "B00002L6"}, Empty: true})
	ch, err := taper.NewRobotChanger(taper.RobotConfig{Changer: "/dev/sg9", MTX: wrapper, Drives: []string{"/dev/nst0"},
		Open: taper.FollowingOpener(t, lib, d)})
	if err != nil {
		t.Fatal(err)
	}
	moves := func() int {
		n := 0
		for _, c := range lib.Calls() {
			if strings.HasPrefix(c, "load") || strings.HasPrefix(c, "unload") {
				n++
			}
		}
		return n
	}
	hangNext := func(t *testing.T) <-chan struct{} {
		if err := syscall.Mkfifo(started, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hang, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		ch := make(chan struct{})
		go func() {
			if f, err := os.Open(started); err == nil { // blocks until the hanging mtx opens it
				f.Close()
			}
			close(ch)
		}()
		t.Cleanup(func() { // release the reader if the mtx never came
			if f, err := os.OpenFile(started, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		})
		return ch
	}
	return &changertest.Fixture{Changer: ch, Full: []int{1, 2}, Moves: moves, Hang: hangNext}
}

// wrapped runs a fixture's changer through taptest.Changer.
func wrapped(newFixture func(t *testing.T) *changertest.Fixture) func(t *testing.T) *changertest.Fixture {
	return func(t *testing.T) *changertest.Fixture {
		f := newFixture(t)
		f.Changer = taptest.Wrap(f.Changer)
		return f
	}
}

func TestChangerConformance(t *testing.T) {
	fixtures := []struct {
		name string
		fn   func(t *testing.T) *changertest.Fixture
	}{
		{"disk", diskFixture},
		{"disk-drive0-of-2", diskDriveFixture(0)},
		{"disk-drive1-of-2", diskDriveFixture(1)},
		{"single", singleFixture(false)},
		{"single-fuse", singleFixture(true)},
		{"robot", robotFixture},
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) { changertest.Run(t, f.fn) })
		t.Run("taptest-"+f.name, func(t *testing.T) { changertest.Run(t, wrapped(f.fn)) })
	}
}

// TestChangerDrivesConformance runs the checks of several drives used at
// once against every changer that has them.
func TestChangerDrivesConformance(t *testing.T) {
	groups := []struct {
		name string
		fn   func(t *testing.T) *changertest.Group
	}{
		{"disk", diskGroup},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { changertest.RunDrives(t, g.fn) })
	}
}
