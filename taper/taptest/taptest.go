package taptest

import (
	"context"
	"os"
	"sync"

	"github.com/tapir-backup/tapir/taper"
)

// Changer wraps a changer; the devices it loads count every record
// written through them, across volumes. It forwards every method of the
// changer it wraps, and its devices declare exactly what the wrapped
// devices declare, so that code under test takes the paths production
// takes.
type Changer struct {
	ch taper.Changer // the wrapped changer

	mu      sync.Mutex
	records int
	stallAt int           // > 0: the write of record number stallAt blocks
	release chan struct{} // closed by Resume
	stalled chan struct{} // closed when a write blocks
	failAt  int           // > 0: the write of record number failAt fails
	failErr error
}

// Wrap returns a Changer around ch.
func Wrap(ch taper.Changer) *Changer {
	return &Changer{ch: ch, release: make(chan struct{}), stalled: make(chan struct{})}
}

// Unwrap returns the wrapped changer.
func (c *Changer) Unwrap() taper.Changer { return c.ch }

// StallAfter makes the n-th record written from now block until Resume.
func (c *Changer) StallAfter(n int) {
	c.mu.Lock()
	c.stallAt = c.records + n
	c.mu.Unlock()
}

// Stalled is closed once a write is blocked.
func (c *Changer) Stalled() <-chan struct{} { return c.stalled }

// Resume lets the blocked write (and every later one) through.
func (c *Changer) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.release:
	default:
		close(c.release)
	}
}

// FailAfter makes the n-th record written from now fail with err (not
// written), like a drive's I/O error.
func (c *Changer) FailAfter(n int, err error) {
	c.mu.Lock()
	c.failAt, c.failErr = c.records+n, err
	c.mu.Unlock()
}

// Records is the number of records written so far.
func (c *Changer) Records() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// Properties forwards to the wrapped changer.
func (c *Changer) Properties() taper.Properties { return c.ch.Properties() }

// Slots forwards to the wrapped changer.
func (c *Changer) Slots(ctx context.Context) (int, error) { return c.ch.Slots(ctx) }

// Load loads the slot through the wrapped changer and wraps its device.
func (c *Changer) Load(ctx context.Context, slot int) (taper.Device, error) {
	d, err := c.ch.Load(ctx, slot)
	if err != nil {
		return nil, err
	}
	return &device{d: d, c: c}, nil
}

// Inventory forwards to the wrapped changer.
func (c *Changer) Inventory(ctx context.Context) ([]taper.SlotInfo, error) {
	return c.ch.Inventory(ctx)
}

// Scan forwards to the wrapped changer.
func (c *Changer) Scan(ctx context.Context) ([]taper.SlotInfo, error) { return c.ch.Scan(ctx) }

// Eject forwards to the wrapped changer.
func (c *Changer) Eject(ctx context.Context) error { return c.ch.Eject(ctx) }

// WaitFor forwards to the wrapped changer and wraps the device it returns.
func (c *Changer) WaitFor(ctx context.Context, what string, want func(*taper.Label, error) bool, prompt func(string)) (taper.Device, *taper.Label, error) {
	d, l, err := c.ch.WaitFor(ctx, what, want, prompt)
	if err != nil {
		return nil, l, err
	}
	return &device{d: d, c: c}, l, nil
}

// Labelled forwards to the wrapped changer.
func (c *Changer) Labelled(ctx context.Context, l *taper.Label) error {
	return c.ch.Labelled(ctx, l)
}

// Erase forwards to the wrapped changer.
func (c *Changer) Erase(ctx context.Context, slot int, org, label string) (int, error) {
	return c.ch.Erase(ctx, slot, org, label)
}

// Drive forwards to the wrapped changer.
func (c *Changer) Drive(ctx context.Context) (taper.DriveInfo, error) { return c.ch.Drive(ctx) }

// Where forwards to the wrapped changer.
func (c *Changer) Where(slot int) string { return c.ch.Where(slot) }

// Close forwards to the wrapped changer.
func (c *Changer) Close() error { return c.ch.Close() }

// device wraps a device of the wrapped changer: writes count (and stall or
// fail on purpose); everything else goes to the wrapped device.
type device struct {
	d taper.Device
	c *Changer
}

func (d *device) WriteRecord(p []byte) error {
	c := d.c
	c.mu.Lock()
	c.records++
	n := c.records
	stall := c.stallAt > 0 && n == c.stallAt
	fail := c.failAt > 0 && n == c.failAt
	c.mu.Unlock()
	if stall {
		close(c.stalled)
		<-c.release
	}
	if fail {
		return c.failErr
	}
	return d.d.WriteRecord(p)
}

func (d *device) Name() string                          { return d.d.Name() }
func (d *device) Status() (taper.Status, error)         { return d.d.Status() }
func (d *device) Rewind() error                         { return d.d.Rewind() }
func (d *device) WriteFilemark() error                  { return d.d.WriteFilemark() }
func (d *device) ReadRecord(p []byte) (int, error)      { return d.d.ReadRecord(p) }
func (d *device) SpaceFiles(n int) error                { return d.d.SpaceFiles(n) }
func (d *device) SpaceRecords(n int) error              { return d.d.SpaceRecords(n) }
func (d *device) SeekToEnd() error                      { return d.d.SeekToEnd() }
func (d *device) Tell() (taper.Position, error)         { return d.d.Tell() }
func (d *device) Seek(p taper.Position) error           { return d.d.Seek(p) }
func (d *device) Eject() error                          { return d.d.Eject() }
func (d *device) Close() error                          { return d.d.Close() }
func (d *device) Properties() taper.DeviceProperties    { return d.d.Properties() }
func (d *device) BeginFile(stem string) error           { return d.d.BeginFile(stem) }
func (d *device) OpenFile(fileno int) (*os.File, error) { return d.d.OpenFile(fileno) }

var (
	_ taper.Changer = (*Changer)(nil)
	_ taper.Device  = (*device)(nil)
)
