package taptest

import (
	"errors"
	"os"
	"sync"

	"github.com/tapir-backup/tapir/taper"
)

// Changer wraps a changer; the devices it loads count every record
// written through them, across volumes.
type Changer struct {
	taper.Changer

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
	return &Changer{Changer: ch, release: make(chan struct{}), stalled: make(chan struct{})}
}

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

// Load loads the slot through the wrapped changer and wraps its device.
func (c *Changer) Load(slot int) (taper.Device, error) {
	d, err := c.Changer.Load(slot)
	if err != nil {
		return nil, err
	}
	return &device{Device: d, c: c}, nil
}

type device struct {
	taper.Device
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
	return d.Device.WriteRecord(p)
}

// BeginFile forwards to the wrapped device when it names its files.
func (d *device) BeginFile(stem string) error {
	if n, ok := d.Device.(taper.FileNamer); ok {
		return n.BeginFile(stem)
	}
	return nil
}

// OpenFile forwards to the wrapped device when it has random access.
func (d *device) OpenFile(fileno int) (*os.File, error) {
	if r, ok := d.Device.(taper.RandomAccess); ok {
		return r.OpenFile(fileno)
	}
	return nil, errors.New("taptest: the wrapped device has no random access")
}

var (
	_ taper.Changer      = (*Changer)(nil)
	_ taper.FileNamer    = (*device)(nil)
	_ taper.RandomAccess = (*device)(nil)
)
