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
	r := newRobotLibrary(t, 1, []string{"B00001L6", "B00002L6", ""})
	ch, err := taper.NewRobotChanger(taper.RobotConfig{Changer: "/dev/sg9", MTX: r.mtx, Drives: []string{"/dev/nst0"},
		Open: taper.FollowingOpener(t, r.lib, r.drives[0])})
	if err != nil {
		t.Fatal(err)
	}
	return &changertest.Fixture{Changer: ch, Full: []int{1, 2}, Moves: r.moves, Hang: r.hangNext}
}

// robotDriveFixture is one view (drive) of the robot changer of a library
// with two drives, both tapir's; the other drive holds the volume of slot
// 3 open, which the view must not disturb.
func robotDriveFixture(drive int) func(t *testing.T) *changertest.Fixture {
	return func(t *testing.T) *changertest.Fixture {
		r := newRobotLibrary(t, 2, []string{"B00001L6", "B00002L6", "B00003L6", ""})
		cs, err := taper.NewRobotChangers(taper.RobotConfig{Changer: "/dev/sg9", MTX: r.mtx, Drives: r.paths,
			Open: r.opener(t)}, []int{0, 1})
		if err != nil {
			t.Fatal(err)
		}
		other := cs[1-drive]
		d, err := other.Load(t.Context(), 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := d.Tell(); err != nil {
				t.Errorf("the other drive's device after the checks: %v", err)
			}
			if bc, _ := r.lib.DriveBarcode(1 - drive); bc != "B00003L6" {
				t.Errorf("the other drive holds %q after the checks, want B00003L6", bc)
			}
			other.Close()
		})
		return &changertest.Fixture{Changer: cs[drive], Full: []int{1, 2}, Moves: r.moves, Hang: r.hangNext}
	}
}

// robotGroupFixture is the robot changer of a library with two drives,
// both tapir's: in-memory fakest drives that follow the library's arm, or
// mounted through FUSE (skipped without it), moved by the fake mtx
// through their ctl files.
func robotGroupFixture(fuse bool) func(t *testing.T) *changertest.Group {
	return func(t *testing.T) *changertest.Group {
		slots := []string{"B00001L6", "B00002L6", "B00003L6", ""}
		cfg := taper.RobotConfig{Changer: "/dev/sg9"}
		var r *robotLibrary
		if fuse {
			r = newRobotLibraryFUSE(t, 2, slots)
		} else {
			r = newRobotLibrary(t, 2, slots)
			cfg.Open = r.opener(t)
		}
		cfg.MTX, cfg.Drives = r.mtx, r.paths
		cs, err := taper.NewRobotChangers(cfg, []int{0, 1})
		if err != nil {
			t.Fatal(err)
		}
		return &changertest.Group{Views: []taper.Changer{cs[0], cs[1]}, Full: []int{1, 2, 3}, Moves: r.moves}
	}
}

// robotLibrary is the fake mtx over a library of fakest drives sharing a
// shelf, with a wrapper mtx that can make the next load hang.
type robotLibrary struct {
	lib    *fakest.Library
	drives []*fakest.Drive
	paths  []string // device of each drive
	mtx    string   // the wrapper
	dir    string
}

func newRobotLibrary(t *testing.T, drives int, slots []string) *robotLibrary {
	return makeRobotLibrary(t, slots, fakest.NewDrives(drives, robotDriveOptions(slots)), nil)
}

// newRobotLibraryFUSE mounts the drives (skipping the test without FUSE)
// and lets the fake mtx move their cartridges through their ctl files.
func newRobotLibraryFUSE(t *testing.T, drives int, slots []string) *robotLibrary {
	ds := fakest.MountDrives(t, drives, robotDriveOptions(slots))
	return makeRobotLibrary(t, slots, ds, func(d *fakest.Drive) string { return d.Path(fakest.NST0) })
}

func robotDriveOptions(slots []string) fakest.Options {
	var carts []string
	for _, s := range slots {
		if s != "" {
			carts = append(carts, s)
		}
	}
	return fakest.Options{Capacity: 16 << 20, Cartridges: carts, Empty: true}
}

func makeRobotLibrary(t *testing.T, slots []string, drives []*fakest.Drive, path func(*fakest.Drive) string) *robotLibrary {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake mtx")
	}
	dir := t.TempDir()
	lib, err := fakest.NewLibraryDrives(dir, len(drives), slots, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &robotLibrary{lib: lib, drives: drives, dir: dir, mtx: filepath.Join(dir, "mtx-hang")}
	var ctls []string
	for i, d := range drives {
		if path != nil {
			r.paths = append(r.paths, path(d))
			ctls = append(ctls, d.Path(fakest.CtlFile))
		} else {
			r.paths = append(r.paths, fmt.Sprintf("/dev/nst%d", i))
		}
	}
	for k, v := range lib.EnvDrives(ctls...) {
		t.Setenv(k, v)
	}
	hang, started := filepath.Join(dir, "hang"), filepath.Join(dir, "started")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %q ] && [ \"$3\" = load ]; then rm -f %q; echo started > %q; exec sleep 3600; fi\nexec %q \"$@\"\n", hang, hang, started, lib.MTX)
	if err := os.WriteFile(r.mtx, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// opener is the robot arm for the in-memory drives.
func (r *robotLibrary) opener(t *testing.T) taper.DriveOpener {
	return taper.FollowingOpeners(t, r.lib, r.drives, r.paths)
}

// moves counts the mtx loads and unloads so far.
func (r *robotLibrary) moves() int {
	n := 0
	for _, c := range r.lib.Calls() {
		if strings.HasPrefix(c, "load") || strings.HasPrefix(c, "unload") {
			n++
		}
	}
	return n
}

// hangNext makes the next mtx load hang until it is killed.
func (r *robotLibrary) hangNext(t *testing.T) <-chan struct{} {
	hang, started := filepath.Join(r.dir, "hang"), filepath.Join(r.dir, "started")
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
		{"robot-drive0-of-2", robotDriveFixture(0)},
		{"robot-drive1-of-2", robotDriveFixture(1)},
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
		{"robot", robotGroupFixture(false)},
		{"robot-fuse", robotGroupFixture(true)},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { changertest.RunDrives(t, g.fn) })
		t.Run("taptest-"+g.name, func(t *testing.T) {
			changertest.RunDrives(t, func(t *testing.T) *changertest.Group {
				grp := g.fn(t)
				for i, v := range grp.Views {
					grp.Views[i] = taptest.Wrap(v)
				}
				return grp
			})
		})
	}
}
