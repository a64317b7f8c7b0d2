package taper

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// fakeClock is the fake clock with the turns of a waiting loop: the
// test moves time only while the loop waits on it.
type fakeClock struct{ *clock.Fake }

func newFakeClock() fakeClock {
	return fakeClock{clock.NewFake(time.Date(2024, 5, 6, 2, 0, 0, 0, time.UTC))}
}

// waitForWaiter blocks until someone waits on the clock.
func (c fakeClock) waitForWaiter(t *testing.T) {
	t.Helper()
	if err := c.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal("nobody waits on the clock")
	}
}

// fire waits until the loop waits on the clock, then moves time on and
// fires what is due. It returns the number of timers armed before.
func (c fakeClock) fire(t *testing.T, d time.Duration) int {
	t.Helper()
	c.waitForWaiter(t)
	armed := c.Armed()
	c.Advance(d)
	return armed
}

// advance fires the clock and waits until the waiting loop has done its
// round and waits again, so that the test and the loop take turns.
func (c fakeClock) advance(t *testing.T, d time.Duration) {
	t.Helper()
	armed := c.fire(t, d)
	if err := c.BlockUntilArmed(t.Context(), armed+1); err != nil {
		t.Fatal("the waiting loop did not come back to the clock")
	}
}

// memOpener opens the in-memory drive like OpenTapeDrive opens a device.
func memOpener(d *fakest.Drive) DriveOpener {
	return func(path string, readOnly bool) (TapeDrive, error) {
		flags := syscall.O_RDWR | syscall.O_NONBLOCK
		if readOnly {
			flags = syscall.O_RDONLY | syscall.O_NONBLOCK
		}
		h, err := d.Open(fakest.NST0, flags)
		if err != nil {
			return nil, &osPathError{path, err}
		}
		return h, nil
	}
}

type osPathError struct {
	path string
	err  error
}

func (e *osPathError) Error() string { return "open " + e.path + ": " + e.err.Error() }
func (e *osPathError) Unwrap() error { return e.err }

// labelCartridges writes a label on each named cartridge and leaves the
// drive empty.
func labelCartridges(t *testing.T, d *fakest.Drive, labels map[string]string) {
	t.Helper()
	for cart, label := range labels {
		if err := d.Insert(cart); err != nil {
			t.Fatal(err)
		}
		h, _ := d.Open(fakest.NST0, syscall.O_RDWR)
		tp, err := NewTape("mem", h)
		if err != nil {
			t.Fatal(err)
		}
		if label != "" {
			if err := WriteLabel(tp, testLabel(label)); err != nil {
				t.Fatal(err)
			}
		}
		tp.Eject()
		tp.Close()
		if _, err := d.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSingleWaitFor(t *testing.T) {
	d := fakest.New(fakest.Options{Cartridges: []string{"A", "B", "C"}, Empty: true})
	labelCartridges(t, d, map[string]string{"A": "DailySet1-007", "B": "DailySet1-003", "C": ""})
	ejectsAndLoads := map[int16]int{}
	for _, op := range []int16{mtio.MTOFFL, mtio.MTUNLOAD, mtio.MTLOAD, mtio.MTRESET} {
		ejectsAndLoads[op] = d.OpCount(op)
	}
	clk := newFakeClock()
	c, err := NewSingleChanger(SingleConfig{Device: "/dev/nst0", Open: memOpener(d), Clock: clk, Poll: 10 * time.Second, Remind: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prompts := make(chan string, 100)
	type result struct {
		dev Device
		l   *Label
		err error
	}
	done := make(chan result, 1)
	want := func(l *Label, err error) bool { return err == nil && l.Label == "DailySet1-007" }
	go func() {
		dev, l, err := c.WaitFor(context.Background(), "volume DailySet1-007", want, func(m string) { prompts <- m })
		done <- result{dev, l, err}
	}()
	expect := func(sub string) {
		t.Helper()
		select {
		case m := <-prompts:
			if !strings.Contains(m, sub) {
				t.Fatalf("prompt %q, want it to contain %q", m, sub)
			}
		case <-t.Context().Done():
			t.Fatalf("no prompt containing %q", sub)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case m := <-prompts:
			t.Fatalf("unexpected prompt %q", m)
		default:
		}
	}
	expect("insert volume DailySet1-007 into /dev/nst0")
	for range 5 {
		clk.advance(t, 10*time.Second)
	}
	clk.waitForWaiter(t)
	quiet()

	// The operator inserts the wrong volume: said once, then left alone.
	d.Insert("B")
	clk.advance(t, 10*time.Second)
	expect("/dev/nst0 holds volume DailySet1-003, not volume DailySet1-007: eject it and insert volume DailySet1-007")
	before := map[int16]int{}
	for _, op := range []int16{mtio.MTREW, mtio.MTSETBLK, mtio.MTSETDRVBUFFER, mtio.MTFSF, mtio.MTSEEK} {
		before[op] = d.OpCount(op)
	}
	for range 20 {
		clk.advance(t, 10*time.Second)
	}
	clk.waitForWaiter(t)
	quiet()
	for op, n := range before {
		if got := d.OpCount(op) - n; got != 0 {
			t.Errorf("while the unwanted volume sat in the drive, operation %d was sent %d times; only MTIOCGET may be", op, got)
		}
	}
	// A reminder after Remind.
	for range 7 {
		clk.advance(t, 5*time.Minute)
	}
	expect("still waiting for volume DailySet1-007 in /dev/nst0 (since 2024-05-06 02:00)")

	// Swapped for a blank one: said once too.
	d.Eject()
	d.Remove()
	clk.advance(t, 10*time.Second)
	d.Insert("C")
	clk.advance(t, 10*time.Second)
	expect("holds a blank volume, not volume DailySet1-007")

	// The right one.
	d.Eject()
	d.Remove()
	d.Insert("A")
	clk.fire(t, 10*time.Second)
	var r result
	select {
	case r = <-done:
	case <-t.Context().Done():
		t.Fatal("WaitFor did not return with the wanted volume")
	}
	if r.err != nil || r.l == nil || r.l.Label != "DailySet1-007" {
		t.Fatalf("WaitFor = %+v, %v", r.l, r.err)
	}
	if p, err := r.dev.Tell(); err != nil || p.File != 0 || p.Record != 0 {
		t.Fatalf("returned volume not rewound: %+v %v", p, err)
	}
	for op, before := range ejectsAndLoads {
		if n := d.OpCount(op) - before; n != 0 {
			t.Errorf("WaitFor sent operation %d %d times; it must never eject or load", op, n)
		}
	}
	// Inventory while the volume is in use does not touch the drive.
	ops := d.OpCount(mtio.MTREW)
	inv, err := c.Inventory(context.Background())
	if err != nil || len(inv) != 1 || inv[0].Label == nil || inv[0].Label.Label != "DailySet1-007" {
		t.Fatalf("inventory: %+v %v", inv, err)
	}
	if d.OpCount(mtio.MTREW) != ops {
		t.Error("inventory moved the tape in use")
	}
}

func TestSingleWaitForCancelAndBusy(t *testing.T) {
	d := fakest.New(fakest.Options{Empty: true})
	clk := newFakeClock()
	c, _ := NewSingleChanger(SingleConfig{Device: "/dev/nst0", Open: memOpener(d), Clock: clk})
	// Another process holds the drive: said once, still waiting.
	h, _ := d.Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
	ctx, cancel := context.WithCancel(context.Background())
	prompts := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.WaitFor(ctx, "a new volume", func(*Label, error) bool { return true }, func(m string) { prompts <- m })
		done <- err
	}()
	clk.advance(t, DefaultSinglePoll)
	clk.advance(t, DefaultSinglePoll)
	clk.waitForWaiter(t)
	if m := <-prompts; !strings.Contains(m, "busy") || !strings.Contains(m, "fuser /dev/nst0") {
		t.Fatalf("busy prompt %q", m)
	}
	if m := <-prompts; !strings.Contains(m, "insert a new volume into /dev/nst0") {
		t.Fatalf("prompt %q", m)
	}
	if len(prompts) != 0 {
		t.Fatalf("busy said again: %q", <-prompts)
	}
	h.Close()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for a new volume") {
		t.Fatalf("cancelled: %v", err)
	}
	// A device that is not a tape at all is an error at once.
	bad, _ := NewSingleChanger(SingleConfig{Device: "/etc/hostname"})
	if _, _, err := bad.WaitFor(context.Background(), "x", nil, nil); !errors.Is(err, ErrNotTape) {
		t.Fatalf("not a tape: %v", err)
	}
}

func TestSingleLoadInventoryEject(t *testing.T) {
	d := fakest.New(fakest.Options{Cartridges: []string{"A"}, Empty: true})
	labelCartridges(t, d, map[string]string{"A": "T-001"})
	c, _ := NewSingleChanger(SingleConfig{Device: "/dev/nst0", Open: memOpener(d)})
	defer c.Close()
	if n, _ := c.Slots(context.Background()); n != 1 {
		t.Fatalf("Slots = %d", n)
	}
	if _, err := c.Load(context.Background(), 1); !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "insert one") {
		t.Fatalf("load of an empty drive: %v", err)
	}
	if inv, _ := c.Inventory(context.Background()); !inv[0].Empty {
		t.Fatalf("inventory of an empty drive: %+v", inv)
	}
	if _, err := c.Load(context.Background(), 2); err == nil {
		t.Fatal("load of slot 2 accepted")
	}
	d.Insert("A")
	inv, _ := c.Inventory(context.Background())
	if inv[0].Label == nil || inv[0].Label.Label != "T-001" {
		t.Fatalf("inventory: %+v", inv)
	}
	dev, err := c.Load(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLabel(dev); err != nil || l.Label != "T-001" {
		t.Fatalf("label: %+v %v", l, err)
	}
	dev.SpaceFiles(1)
	again, err := c.Load(context.Background(), 1)
	if err != nil || again != dev {
		t.Fatalf("second load: %v", err)
	}
	if p, _ := again.Tell(); p.File != 0 || p.Record != 0 {
		t.Fatalf("second load not rewound: %+v", p)
	}
	offl := d.OpCount(mtio.MTOFFL)
	dev.Close() // the caller may close what it was given; Eject still works
	if err := c.Eject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.OpCount(mtio.MTOFFL) != offl+1 {
		t.Fatal("eject did not unload the drive")
	}
	if name, loaded := d.Loaded(); name != "A" || loaded {
		t.Fatalf("after eject: %q loaded=%v", name, loaded)
	}
	if _, err := dev.ReadRecord(make([]byte, 10)); err == nil {
		t.Fatal("the device handed out before still works after eject")
	}
}

// The st options are sent as configured: scsi2logical by default, nothing
// with none, and an unknown option is refused before any drive is opened.
func TestSingleDriveOptions(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []string
		sends int
	}{{"default", nil, 1}, {"none", []string{}, 0}, {"scsi2logical", []string{"scsi2logical"}, 1}} {
		t.Run(c.name, func(t *testing.T) {
			d := fakest.New(fakest.Options{})
			ch, err := NewSingleChanger(SingleConfig{Device: "/dev/nst0", Open: memOpener(d), DriveOptions: c.opts})
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			if _, err := ch.Load(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			if n := d.OpCount(mtio.MTSETDRVBUFFER); n != c.sends {
				t.Errorf("MTSETDRVBUFFER sent %d times, want %d", n, c.sends)
			}
		})
	}
	_, err := NewSingleChanger(SingleConfig{Device: "/dev/nst0", DriveOptions: []string{"async_writes"}})
	if err == nil || !strings.Contains(err.Error(), `"async_writes" is not known`) || !strings.Contains(err.Error(), "/dev/nst0") {
		t.Errorf("unknown option: %v", err)
	}
}
