package server

import (
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/indexd/volumetest"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/fakest"
	"github.com/tapir-backup/tapir/taper/taptest"
)

// mustVolumes is the volume source of cfg's changer, as tapir recover -c
// gets it.
func mustVolumes(t *testing.T, cfg *config.Config) indexd.VolumeSource {
	t.Helper()
	vols, err := VolumeSource(cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return vols
}

// memOpener opens an in-memory fakest drive like taper.OpenTapeDrive
// opens /dev/nst0.
func memOpener(d *fakest.Drive) taper.DriveOpener {
	return func(path string, readOnly bool) (taper.TapeDrive, error) {
		flags := syscall.O_RDWR | syscall.O_NONBLOCK
		if readOnly {
			flags = syscall.O_RDONLY | syscall.O_NONBLOCK
		}
		h, err := d.Open(fakest.NST0, flags)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return h, nil
	}
}

// singleVolumes is the changer-backed source over a single changer whose
// drive (a fakest drive, in memory or through FUSE) holds VS-001; the
// cartridge on the shelf is VS-404, which Bring inserts as a person would.
func singleVolumes(fuse bool) func(t *testing.T) *volumetest.Fixture {
	return func(t *testing.T) *volumetest.Fixture {
		opts := fakest.Options{Capacity: 16 << 20, Cartridges: []string{"C2", "C1"}}
		// The changer looks at the drive often: the person in the test
		// is quick.
		scfg := taper.SingleConfig{Device: "/dev/nst0", Poll: 5 * time.Millisecond}
		var d *fakest.Drive
		if fuse {
			d = fakest.Mount(t, opts)
			scfg.Device = d.Path(fakest.NST0)
		} else {
			d = fakest.New(opts)
			scfg.Open = memOpener(d)
		}
		ch, err := taper.NewSingleChanger(scfg)
		if err != nil {
			t.Fatal(err)
		}
		volumetest.LabelSlot(t, ch, 1, "VS-404", true)
		swap := func(name string) {
			if err := d.Eject(); err != nil {
				t.Error(err)
			}
			if _, err := d.Remove(); err != nil {
				t.Error(err)
			}
			if err := d.Insert(name); err != nil {
				t.Error(err)
			}
		}
		swap("C1")
		volumetest.LabelSlot(t, ch, 1, "VS-001", true)
		cfg := &config.Config{Changer: config.Changer{Type: "single", Device: scfg.Device}}
		src, err := VolumeSource(cfg, Deps{Changer: ch}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &volumetest.Fixture{Source: src, Present: "VS-001", Missing: "VS-404",
			Swap:  func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 1, other, false) },
			Bring: func(t *testing.T) { swap("C2") }}
	}
}

// robotVolumes is the changer-backed source over a robot changer: the
// fake mtx (fakest.Library) and an in-memory fakest drive that follows
// its arm; slot 2 holds VS-001.
func robotVolumes(t *testing.T) *volumetest.Fixture {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake mtx")
	}
	lib, err := fakest.NewLibrary(t.TempDir(), []string{"B00001L6", "B00002L6", ""}, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.Env("") {
		t.Setenv(k, v)
	}
	d := fakest.New(fakest.Options{Capacity: 16 << 20, Cartridges: []string{"B00001L6", "B00002L6"}, Empty: true})
	open := memOpener(d)
	follow := func(path string, readOnly bool) (taper.TapeDrive, error) {
		want, err := lib.DriveBarcode()
		if err != nil {
			return nil, err
		}
		if name, _ := d.Loaded(); name != want {
			if name != "" {
				d.Eject()
				d.Remove()
			}
			if want != "" {
				if err := d.Insert(want); err != nil {
					return nil, err
				}
			}
		}
		return open(path, readOnly)
	}
	ch, err := taper.NewRobotChanger(taper.RobotConfig{Changer: "/dev/sg9", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, Open: follow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Scan(t.Context()); err != nil { // learn the blank volumes
		t.Fatal(err)
	}
	volumetest.LabelSlot(t, ch, 2, "VS-001", true)
	cfg := &config.Config{Changer: config.Changer{Type: "robot", Changer: "/dev/sg9", Device: "/dev/nst0"}}
	src, err := VolumeSource(cfg, Deps{Changer: ch}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &volumetest.Fixture{Source: src, Present: "VS-001", Missing: "VS-404",
		Swap: func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 2, other, false) }}
}

// laterDiskVolumes is the index server's source for a disk changer whose
// directory was missing at start (it wraps the source it makes later).
func laterDiskVolumes(t *testing.T) *volumetest.Fixture {
	dir := t.TempDir()
	ch, err := taper.NewDiskChanger(dir, 3, 64<<20, 32<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	volumetest.LabelSlot(t, ch, 2, "VS-001", true)
	cfg := &config.Config{Changer: config.Changer{Type: "disk", Path: dir, Slots: 3}}
	src := &laterVolumes{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	return &volumetest.Fixture{Source: src, Present: "VS-001", Missing: "VS-404",
		Swap: func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 2, other, false) }}
}

// The one VolumeSource suite against the sources the server makes:
// single (in memory and through FUSE) and robot changers, the same
// through taptest.Changer, and the index server's late disk source.
func TestVolumeSourceConformance(t *testing.T) {
	wrap := func(newFixture func(t *testing.T) *volumetest.Fixture) func(t *testing.T) *volumetest.Fixture {
		return func(t *testing.T) *volumetest.Fixture {
			f := newFixture(t)
			cv := f.Source.(*changerVolumes)
			cv.ch = taptest.Wrap(cv.ch)
			return f
		}
	}
	for _, c := range []struct {
		name string
		fn   func(t *testing.T) *volumetest.Fixture
	}{
		{"single", singleVolumes(false)},
		{"single-fuse", singleVolumes(true)},
		{"robot", robotVolumes},
		{"taptest-single", wrap(singleVolumes(false))},
		{"taptest-robot", wrap(robotVolumes)},
		{"later-disk", laterDiskVolumes},
	} {
		t.Run(c.name, func(t *testing.T) { volumetest.Run(t, c.fn) })
	}
}
