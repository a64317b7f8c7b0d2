package taper

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// newFakeLibrary writes the fake mtx (fakest.Library) with the given
// slots and one drive, and points the environment at it.
func newFakeLibrary(t *testing.T, slots []string, ie string) *fakest.Library {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	lib, err := fakest.NewLibrary(t.TempDir(), slots, ie)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.Env("") {
		t.Setenv(k, v)
	}
	return lib
}

func driveBarcode(t *testing.T, lib *fakest.Library) string {
	t.Helper()
	bc, err := lib.DriveBarcode(0)
	if err != nil {
		t.Fatal(err)
	}
	return bc
}

// followingOpener opens the in-memory drive after making its cartridge
// match the fake library's drive 0: the library's robot arm, for tests
// without FUSE.
func followingOpener(t *testing.T, lib *fakest.Library, d *fakest.Drive) DriveOpener {
	return followingOpeners(t, lib, map[string]*fakest.Drive{"": d})
}

// followingOpeners opens the in-memory drive of a device path (drives[i]
// is the library's drive i; the path "" stands for every path, with one
// drive) after making the cartridges of all of them match the fake
// library's drives, read from one state of the library: the robot arm of
// a library with several drives, whose drives share a shelf
// (fakest.NewDrives).
func followingOpeners(t *testing.T, lib *fakest.Library, byPath map[string]*fakest.Drive, order ...string) DriveOpener {
	var mu sync.Mutex
	drives := make([]*fakest.Drive, 0, len(order))
	for _, p := range order {
		drives = append(drives, byPath[p])
	}
	if len(order) == 0 {
		drives = append(drives, byPath[""])
	}
	return func(path string, readOnly bool) (TapeDrive, error) {
		mu.Lock()
		defer mu.Unlock()
		want, err := lib.DriveBarcodes()
		if err != nil {
			t.Error(err)
			return nil, err
		}
		opened := byPath[path]
		if opened == nil {
			opened = byPath[""]
		}
		for i, d := range drives {
			// A cartridge the library does not have there goes; so does
			// one the drive ejected (MTOFFL) that the library has put
			// back since, in the drive being opened.
			name, loaded := d.Loaded()
			if i < len(want) && name != "" && (name != want[i] || !loaded && d == opened) {
				d.Eject()
				d.Remove()
			}
		}
		for i, d := range drives {
			if name, _ := d.Loaded(); i < len(want) && name != want[i] && want[i] != "" {
				if err := d.Insert(want[i]); err != nil {
					t.Error(err)
					return nil, err
				}
			}
		}
		if opened == nil {
			return nil, syscall.ENOENT
		}
		return memOpener(opened)(path, readOnly)
	}
}

var libraryBarcodes = []string{"A00001L6", "A00002L6", "A00003L6", "", "", "A00009L6"}

// labelledShelf makes the library's cartridges, labelled (A00003L6
// blank), in a fakest drive, mounted through FUSE when mount is set.
func labelledShelf(t *testing.T, mount bool) *fakest.Drive {
	t.Helper()
	opts := fakest.Options{Cartridges: []string{"A00001L6", "A00002L6", "A00003L6", "A00009L6"}, Empty: true}
	var d *fakest.Drive
	if mount {
		d = fakest.Mount(t, opts)
	} else {
		d = fakest.New(opts)
	}
	labelCartridges(t, d, map[string]string{"A00001L6": "DailySet1-001", "A00002L6": "DailySet1-002", "A00003L6": ""})
	return d
}

func TestRobotChanger(t *testing.T) {
	lib := newFakeLibrary(t, libraryBarcodes, "6")
	d := labelledShelf(t, false)
	stateFile := filepath.Join(t.TempDir(), "robot.json")
	cfg := RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, StateFile: stateFile, Open: followingOpener(t, lib, d)}
	c, err := NewRobotChanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Slots(context.Background()); err != nil || n != 6 {
		t.Fatalf("Slots = %d %v", n, err)
	}
	inv, err := c.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 5 || !errors.Is(inv[0].Err, ErrNotScanned) || !strings.Contains(inv[0].Err.Error(), "slot 1 holds volume A00001L6") || !inv[3].Empty {
		t.Fatalf("inventory before a scan: %+v", inv)
	}

	inv, err = c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inv[0].Label == nil || inv[0].Label.Label != "DailySet1-001" || inv[1].Label.Label != "DailySet1-002" || !inv[2].Blank || !inv[4].Empty {
		t.Fatalf("inventory after the scan: %+v", inv)
	}
	// Loading slot 2 puts the volume of slot 3 back first (ejected first).
	offl := d.OpCount(mtio.MTOFFL)
	dev, err := c.Load(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLabel(dev); err != nil || l.Label != "DailySet1-002" {
		t.Fatalf("label in the drive: %+v %v", l, err)
	}
	if d.OpCount(mtio.MTOFFL) != offl+1 {
		t.Errorf("the drive was not ejected before the unload")
	}
	calls := lib.Calls()
	if tail := strings.Join(calls[len(calls)-3:], "; "); tail != "status; unload 3 0; load 2 0" {
		t.Errorf("mtx calls end with %q, want the unload of slot 3 before the load of slot 2", tail)
	}
	// The volume in the drive is reported in its home slot.
	inv, _ = c.Inventory(context.Background())
	if inv[1].Label == nil || inv[1].Label.Label != "DailySet1-002" {
		t.Fatalf("inventory with slot 2 in the drive: %+v", inv[1])
	}
	// Loading the loaded slot moves nothing.
	n := len(lib.Calls())
	if _, err := c.Load(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if got := lib.Calls()[n:]; len(got) != 1 || got[0] != "status" {
		t.Errorf("reloading the loaded slot ran %v", got)
	}
	// The run relabels the volume and closes the device: the changer
	// learns the new label when it unloads.
	if err := WriteLabel(dev, testLabel("DailySet1-099")); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if err := c.Eject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bc := driveBarcode(t, lib); bc != "" {
		t.Fatalf("drive still holds %q after Eject", bc)
	}
	if err := c.Eject(context.Background()); err != nil {
		t.Fatalf("eject of an empty drive: %v", err)
	}

	for slot, want := range map[int]string{4: "slot 4: the slot is empty", 6: "import/export element", 9: "no such slot"} {
		if _, err := c.Load(context.Background(), slot); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "robot changer /dev/sg3") {
			t.Errorf("load slot %d: %v, want %q", slot, err, want)
		}
	}

	// What was learned survives a restart, barcode by barcode.
	c.Close()
	c2, err := NewRobotChanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	inv, _ = c2.Inventory(context.Background())
	if inv[1].Label == nil || inv[1].Label.Label != "DailySet1-099" || inv[0].Label.Label != "DailySet1-001" {
		t.Fatalf("inventory after a restart: %+v", inv)
	}
	os.WriteFile(stateFile, []byte("{"), 0o644)
	if _, err := NewRobotChanger(cfg); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged state file: %v", err)
	}
}

func TestRobotChangerErrors(t *testing.T) {
	lib := newFakeLibrary(t, []string{"A00001L6"}, "")
	for _, c := range []struct {
		cfg  RobotConfig
		want string
	}{
		{RobotConfig{Drives: []string{"/dev/nst0"}}, "no changer device"},
		{RobotConfig{Changer: "/dev/sg3"}, "no tape drives"},
		{RobotConfig{Changer: "/dev/sg3", Drives: []string{"/dev/nst0"}, Drive: 1}, "drives configured are 0 to 0"},
	} {
		if _, err := NewRobotChanger(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	c, _ := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: filepath.Join(t.TempDir(), "no-mtx"), Drives: []string{"/dev/nst0"}})
	if _, err := c.Inventory(context.Background()); err == nil || !strings.Contains(err.Error(), "install mtx or set the changer's mtx path") {
		t.Errorf("missing mtx: %v", err)
	}
	// mtx failing: the error carries what it said.
	c, _ = NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, Open: func(string, bool) (TapeDrive, error) {
		return nil, syscall.ENXIO
	}})
	err := c.mtxFail()
	if err == nil || !strings.Contains(err.Error(), "mtx: unknown command frob") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("failing mtx: %v", err)
	}
	// A drive that never comes online.
	clk := newFakeClock()
	c, _ = NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, Clock: clk,
		Open: func(string, bool) (TapeDrive, error) { return nil, syscall.ENXIO }})
	done := make(chan error, 1)
	go func() { _, err := c.Load(context.Background(), 1); done <- err }()
	for range int(DefaultRobotLoadWait / DefaultRobotPoll) {
		select {
		case err := <-done:
			t.Fatalf("Load returned before the wait was over: %v", err)
		default:
		}
		clk.fire(t, DefaultRobotPoll)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "did not come online within 5m0s") || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("drive never online: %v", err)
	}
}

// mtxFail runs an mtx command the fake does not know.
func (c *RobotChanger) mtxFail() error {
	_, err := c.mtx.run(context.Background(), "frob")
	return err
}

func TestRobotChangerNoBarcodes(t *testing.T) {
	lib := newFakeLibrary(t, libraryBarcodes, "6")
	d := labelledShelf(t, false)
	c, err := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, IgnoreBarcodes: true, Open: followingOpener(t, lib, d)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inv, err := c.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if inv[0].Label == nil || inv[0].Label.Label != "DailySet1-001" || !inv[2].Blank {
		t.Fatalf("inventory: %+v", inv)
	}
	if got := lib.Calls(); got[0] != "nobarcode status" {
		t.Errorf("first call %q, want nobarcode status", got[0])
	}
	if _, ok := c.labels["slot:1"]; !ok {
		t.Errorf("labels not kept by slot: %v", c.labels)
	}
}

// TestRobotChangerFUSE runs the robot with the fakest drive mounted: the
// fake mtx moves the cartridges through the drive's ctl file and the tape
// side uses the real device path.
func TestRobotChangerFUSE(t *testing.T) {
	lib := newFakeLibrary(t, libraryBarcodes, "6")
	d := labelledShelf(t, true)
	t.Setenv("FAKE_MTX_CTL", d.Path(fakest.CtlFile))
	c, err := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{d.Path(fakest.NST0)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dev, err := c.Load(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLabel(dev); err != nil || l.Label != "DailySet1-001" {
		t.Fatalf("label: %+v %v", l, err)
	}
	if name, loaded := d.Loaded(); name != "A00001L6" || !loaded {
		t.Fatalf("drive holds %q (loaded %v)", name, loaded)
	}
	if _, err := c.Load(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	inv, _ := c.Inventory(context.Background())
	if inv[0].Label == nil || !inv[2].Blank {
		t.Fatalf("inventory: %+v", inv)
	}
	if err := c.Eject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if name, _ := d.Loaded(); name != "" {
		t.Fatalf("drive holds %q after Eject", name)
	}

	// A library that cannot take a cartridge the drive did not eject: the
	// unload fails and says so.
	c2, _ := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{d.Path(fakest.NST0)}, NoEjectBeforeUnload: true})
	defer c2.Close()
	if _, err := c2.Load(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	err = c2.Eject(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unload drive 0 into slot 2") || !strings.Contains(err.Error(), "MOVE MEDIUM from drive 0 to Element Address 2 Failed") {
		t.Fatalf("unload without eject: %v", err)
	}
}
