package taper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// newFakeLibraryDrives is newFakeLibrary with drives drives.
func newFakeLibraryDrives(t *testing.T, drives int, slots []string, ie string) *fakest.Library {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	lib, err := fakest.NewLibraryDrives(t.TempDir(), drives, slots, ie)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lib.Env("") {
		t.Setenv(k, v)
	}
	return lib
}

// labelledShelfDrives is labelledShelf for n drives sharing the shelf.
func labelledShelfDrives(t *testing.T, n int, mount bool) []*fakest.Drive {
	t.Helper()
	opts := fakest.Options{Cartridges: []string{"A00001L6", "A00002L6", "A00003L6", "A00009L6"}, Empty: true}
	var ds []*fakest.Drive
	if mount {
		ds = fakest.MountDrives(t, n, opts)
	} else {
		ds = fakest.NewDrives(n, opts)
	}
	labelCartridges(t, ds[0], map[string]string{"A00001L6": "DailySet1-001", "A00002L6": "DailySet1-002", "A00003L6": ""})
	return ds
}

// twoDriveConfig is a robot over the fake library's drives 0 and 1, in
// memory, following the library's arm.
func twoDriveConfig(t *testing.T, lib *fakest.Library, ds []*fakest.Drive) RobotConfig {
	paths := []string{"/dev/nst0", "/dev/nst1"}
	return RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: paths,
		Open: followingOpeners(t, lib, map[string]*fakest.Drive{paths[0]: ds[0], paths[1]: ds[1]}, paths...)}
}

func TestNewRobotChangersErrors(t *testing.T) {
	cfg := RobotConfig{Changer: "/dev/sg3", Drives: []string{"/dev/nst0", "/dev/nst1", ""}}
	for _, c := range []struct {
		use  []int
		want string
	}{
		{nil, "no drive to use; say which of the drives (0 to 2)"},
		{[]int{0, 3}, "drive 3: the drives configured are 0 to 2"},
		{[]int{2}, "drive 2 has no device"},
		{[]int{1, 0, 1}, "drive 1 is listed twice"},
	} {
		if _, err := NewRobotChangers(cfg, c.use); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("use %v: %v, want %q", c.use, err, c.want)
		}
	}
	same := RobotConfig{Changer: "/dev/sg3", Drives: []string{"/dev/nst0", "/dev/nst0"}}
	if _, err := NewRobotChangers(same, []int{0, 1}); err == nil || !strings.Contains(err.Error(), "drives 0 and 1 have the same device /dev/nst0") {
		t.Errorf("two drives on one device: %v", err)
	}
	cs, err := NewRobotChangers(cfg, []int{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		if p := cs[i].Properties(); p.Drives != 2 || p.Drive != want {
			t.Errorf("view %d: %+v, want drive %d of 2", i, p, want)
		}
	}
	one, err := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", Drives: cfg.Drives, Drive: 1})
	if err != nil || one.Properties().Drives != 1 || one.Properties().Drive != 1 {
		t.Errorf("NewRobotChanger of drive 1: %+v %v", one, err)
	}
}

// TestRobotChangersLeftInOtherDrive: a volume an earlier run left in
// another of tapir's drives is put back (ejected there first) when a view
// loads its slot; one held open by another view is refused; one in a
// drive that is not tapir's, or that cannot be opened, is refused with
// what to do, and nothing moves.
func TestRobotChangersLeftInOtherDrive(t *testing.T) {
	ctx := context.Background()
	lib := newFakeLibraryDrives(t, 2, libraryBarcodes, "6")
	ds := labelledShelfDrives(t, 2, false)
	if _, err := lib.Run("load", "2", "1"); err != nil { // an earlier run's volume
		t.Fatal(err)
	}
	cfg := twoDriveConfig(t, lib, ds)
	cs, err := NewRobotChangers(cfg, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].Close()
	defer cs[1].Close()
	inv, err := cs[0].Inventory(ctx)
	if err != nil || inv[1].Empty || !strings.Contains(fmt.Sprint(inv[1].Err), "slot 2 holds volume A00002L6") {
		t.Fatalf("inventory with slot 2's volume in drive 1: %+v %v", inv, err)
	}
	n := len(lib.Calls())
	offl := ds[1].OpCount(mtio.MTOFFL)
	dev, err := cs[0].Load(ctx, 2)
	if err != nil {
		t.Fatalf("load slot 2, left in drive 1: %v", err)
	}
	if l, err := ReadLabel(dev); err != nil || l.Label != "DailySet1-002" {
		t.Fatalf("label in drive 0: %+v %v", l, err)
	}
	if got := strings.Join(lib.Calls()[n:], "; "); got != "status; unload 2 1; status; load 2 0" {
		t.Errorf("mtx calls %q, want drive 1 put back before the load into drive 0", got)
	}
	if ds[1].OpCount(mtio.MTOFFL) != offl+1 {
		t.Error("drive 1 was not ejected before its unload")
	}
	if bc, _ := lib.DriveBarcodes(); len(bc) != 2 || bc[0] != "A00002L6" || bc[1] != "" {
		t.Errorf("the library's drives hold %q", bc)
	}
	// Now drive 0's view holds it: drive 1's view is refused.
	n = len(lib.Calls())
	_, err = cs[1].Load(ctx, 2)
	if !errors.Is(err, ErrInOtherDrive) || !strings.Contains(err.Error(), "drive 0 (/dev/nst0) is using it") || !strings.Contains(err.Error(), "load slot 2 into drive 1") {
		t.Errorf("drive 1 loads the slot drive 0 holds: %v", err)
	}
	for _, c := range lib.Calls()[n:] {
		if c != "status" {
			t.Errorf("the refused load ran mtx %s", c)
		}
	}
	if _, err := dev.Tell(); err != nil {
		t.Errorf("drive 0's device after drive 1's refused load: %v", err)
	}

	// The volume left in drive 1, which is not one of tapir's drives.
	cs[0].Eject(ctx)
	if _, err := lib.Run("load", "1", "1"); err != nil {
		t.Fatal(err)
	}
	only0, err := NewRobotChanger(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{"/dev/nst0"}, Open: cfg.Open})
	if err != nil {
		t.Fatal(err)
	}
	defer only0.Close()
	n = len(lib.Calls())
	_, err = only0.Load(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "its volume A00001L6 is in drive 1 of the library, which is not one of tapir's drives") || !strings.Contains(err.Error(), "mtx -f /dev/sg3 unload 1 1") {
		t.Errorf("load of a slot whose volume is in a drive not tapir's: %v", err)
	}
	// Drive 1 configured but not used by this group, and busy.
	busy := cfg
	busy.Open = func(path string, ro bool) (TapeDrive, error) {
		if path == "/dev/nst1" {
			return nil, syscall.EBUSY
		}
		return cfg.Open(path, ro)
	}
	b0, err := NewRobotChangers(busy, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	defer b0[0].Close()
	_, err = b0[0].Load(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "is in drive 1 (/dev/nst1), which cannot be opened to put it back") || !strings.Contains(err.Error(), "another program is using that drive") {
		t.Errorf("load of a slot whose volume is in a busy drive: %v", err)
	}
	for _, c := range lib.Calls()[n:] {
		if c != "status" {
			t.Errorf("the refused loads ran mtx %s", c)
		}
	}
	if bc, _ := lib.DriveBarcode(1); bc != "A00001L6" {
		t.Errorf("drive 1 holds %q after the refused loads, want A00001L6 still", bc)
	}
}

// TestRobotChangersStateFile: two views that load, label and eject at the
// same time share one memory of labels and one state file, which holds
// both labels afterwards.
func TestRobotChangersStateFile(t *testing.T) {
	ctx := context.Background()
	lib := newFakeLibraryDrives(t, 2, libraryBarcodes, "6")
	ds := labelledShelfDrives(t, 2, false)
	cfg := twoDriveConfig(t, lib, ds)
	cfg.StateFile = filepath.Join(t.TempDir(), "robot.json")
	cs, err := NewRobotChangers(cfg, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, slot := range []int{1, 3} {
		wg.Go(func() {
			for round := range 3 {
				dev, err := cs[i].Load(ctx, slot)
				if err != nil {
					t.Errorf("view %d: load slot %d: %v", i, slot, err)
					return
				}
				l := testLabel(fmt.Sprintf("DailySet1-%d%02d", round, slot))
				if err := WriteLabel(dev, l); err != nil {
					t.Errorf("view %d: label slot %d: %v", i, slot, err)
					return
				}
				if err := cs[i].Labelled(ctx, &l); err != nil {
					t.Errorf("view %d: labelled: %v", i, err)
				}
				if _, err := cs[i].Inventory(ctx); err != nil {
					t.Errorf("view %d: inventory: %v", i, err)
				}
				if err := cs[i].Eject(ctx); err != nil {
					t.Errorf("view %d: eject: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	b, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st robotState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file after concurrent use: %v\n%s", err, b)
	}
	for bc, want := range map[string]string{"A00001L6": "DailySet1-201", "A00003L6": "DailySet1-203"} {
		if l := st.Labels[bc]; l.Label == nil || l.Label.Label != want {
			t.Errorf("state file: %s holds %+v, want %s\n%s", bc, l, want, b)
		}
	}
	again, err := NewRobotChanger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := again.Inventory(ctx)
	if err != nil || inv[0].Label == nil || inv[0].Label.Label != "DailySet1-201" || inv[2].Label == nil || inv[2].Label.Label != "DailySet1-203" {
		t.Errorf("inventory after a restart: %+v %v", inv, err)
	}
}

// TestRobotChangersFUSE: two fakest drives mounted through FUSE, moved by
// the fake mtx through their own ctl files, written at the same time by
// two views; each cartridge holds what its own view wrote.
func TestRobotChangersFUSE(t *testing.T) {
	ctx := context.Background()
	lib := newFakeLibraryDrives(t, 2, libraryBarcodes, "6")
	ds := labelledShelfDrives(t, 2, true)
	for k, v := range lib.EnvDrives(ds[0].Path(fakest.CtlFile), ds[1].Path(fakest.CtlFile)) {
		t.Setenv(k, v)
	}
	cs, err := NewRobotChangers(RobotConfig{Changer: "/dev/sg3", MTX: lib.MTX, Drives: []string{ds[0].Path(fakest.NST0), ds[1].Path(fakest.NST0)}}, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].Close()
	defer cs[1].Close()
	const records = 64
	rec := func(slot, r int) []byte {
		b := make([]byte, testBS)
		for k := range b {
			b[k] = byte(slot*7 + r + k)
		}
		return b
	}
	slots := []int{1, 2}
	var wg sync.WaitGroup
	for i, slot := range slots {
		wg.Go(func() {
			dev, err := cs[i].Load(ctx, slot)
			if err != nil {
				t.Errorf("view %d: load slot %d: %v", i, slot, err)
				return
			}
			if err := dev.SeekToEnd(); err != nil {
				t.Errorf("view %d: seek to end: %v", i, err)
				return
			}
			if err := dev.BeginFile("img"); err != nil {
				t.Errorf("view %d: BeginFile: %v", i, err)
				return
			}
			for r := range records {
				if err := dev.WriteRecord(rec(slot, r)); err != nil {
					t.Errorf("view %d: slot %d: record %d: %v", i, slot, r, err)
					return
				}
			}
			if err := dev.WriteFilemark(); err != nil {
				t.Errorf("view %d: slot %d: filemark: %v", i, slot, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, bc := range []string{"A00001L6", "A00002L6"} {
		if name, loaded := ds[i].Loaded(); name != bc || !loaded {
			t.Errorf("fakest drive %d holds %q (loaded %v), want %s", i, name, loaded, bc)
		}
		got := ds[i].Cartridge(bc).Records(1)
		if len(got) != records {
			t.Errorf("cartridge %s: %d records in file 1, want %d", bc, len(got), records)
			continue
		}
		for r, b := range got {
			if !bytes.Equal(b, rec(slots[i], r)) {
				t.Errorf("cartridge %s: record %d is not what view %d wrote", bc, r, i)
				break
			}
		}
	}
	// Drive 1's Eject leaves drive 0 loaded; drive 0 then takes slot 2.
	if err := cs[1].Eject(ctx); err != nil {
		t.Fatal(err)
	}
	if name, _ := ds[1].Loaded(); name != "" {
		t.Errorf("fakest drive 1 holds %q after its Eject", name)
	}
	if name, loaded := ds[0].Loaded(); name != "A00001L6" || !loaded {
		t.Errorf("fakest drive 0 holds %q (loaded %v) after drive 1's Eject", name, loaded)
	}
	dev, err := cs[0].Load(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLabel(dev); err != nil || l.Label != "DailySet1-002" {
		t.Errorf("slot 2 in drive 0: %+v %v", l, err)
	}
}

// TestRobotChangersSlotZero: slot 0 is no slot, also when another view
// holds nothing (its holding is 0).
func TestRobotChangersSlotZero(t *testing.T) {
	lib := newFakeLibraryDrives(t, 2, libraryBarcodes, "6")
	ds := labelledShelfDrives(t, 2, false)
	cs, err := NewRobotChangers(twoDriveConfig(t, lib, ds), []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs[0].Load(context.Background(), 0)
	if err == nil || errors.Is(err, ErrInOtherDrive) || !strings.Contains(err.Error(), "load slot 0: no such slot") {
		t.Errorf("load slot 0: %v, want no such slot", err)
	}
}
