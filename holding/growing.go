package holding

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/internal/clock"
)

// ErrReaderClosed is returned by a GrowingReader read after Close.
var ErrReaderClosed = errors.New("holding: reader of a growing image closed")

// Growing is an image being written to the holding disk that the taper
// may read while the dumper still writes it. The dumper writes through
// it (Write publishes every write and wakes the readers) and ends it
// with Finish, once the image is complete and recorded, or with Fail.
// A reader (NewReader) follows the growing payload: it waits for the
// dumper's next write, never polls, and sees the end of the image
// (io.EOF) and its final header only after Finish; after Fail it gets
// the dumper's error.
type Growing struct {
	w     *Writer
	clock clock.Clock
	start time.Time

	mu      sync.Mutex
	n       int64    // payload bytes written and visible in the files
	paths   []string // chunk files, final names (the .tmp name while written)
	ends    []int64  // payload offset at which each chunk ends
	changed chan struct{}
	final   *image.Header // set by Finish
	err     error         // set by Fail
	notify  func()        // called after every change (outside mu)
}

// Follow makes w readable while it grows. clk measures the dump rate and
// the readers' waits.
func Follow(w *Writer, clk clock.Clock) *Growing {
	clk = clock.Or(clk)
	return &Growing{w: w, clock: clk, start: clk.Now(), changed: make(chan struct{})}
}

// OnChange sets a function called after every write, Finish and Fail
// (from the dumper's goroutine; it must not block).
func (g *Growing) OnChange(f func()) {
	g.mu.Lock()
	g.notify = f
	g.mu.Unlock()
}

// Write appends payload bytes to the image and publishes them.
func (g *Growing) Write(p []byte) (int, error) {
	n, err := g.w.Write(p)
	g.publish(nil, nil)
	return n, err
}

// publish takes the writer's state (from the writer's goroutine), sets
// the end when final or err is given, and wakes the readers.
func (g *Growing) publish(final *image.Header, err error) {
	paths := make([]string, len(g.w.chunks))
	ends := make([]int64, len(g.w.chunks))
	var end int64
	for i, c := range g.w.chunks {
		paths[i] = c.final
		sz := c.size
		if i == 0 {
			sz -= image.HeaderSize
		}
		end += max(sz, 0)
		ends[i] = end
	}
	g.mu.Lock()
	if g.final != nil || g.err != nil {
		g.mu.Unlock()
		return
	}
	g.n, g.paths, g.ends = g.w.n, paths, ends
	g.final, g.err = final, err
	close(g.changed)
	g.changed = make(chan struct{})
	notify := g.notify
	g.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// Finish ends the image: the dumper has written all of it, and h (its
// size and SHA-256 computed by the holding writer) is the header it has
// on the holding disk. Call it only once the image is recorded.
func (g *Growing) Finish(h image.Header) {
	if h.Extra != nil {
		x := make(map[string]string, len(h.Extra))
		for k, v := range h.Extra {
			x[k] = v
		}
		h.Extra = x
	}
	g.publish(&h, nil)
}

// Fail ends the image with the dumper's error: readers get it instead of
// the rest of the image.
func (g *Growing) Fail(err error) {
	if err == nil {
		err = errors.New("the dump failed")
	}
	g.publish(nil, err)
}

// Progress returns the payload bytes written so far and the rate at which
// they were written since Follow (bytes per second; 0 before any time
// passed).
func (g *Growing) Progress() (written int64, rate float64) {
	g.mu.Lock()
	n := g.n
	g.mu.Unlock()
	d := g.clock.Now().Sub(g.start)
	if d <= 0 {
		return n, 0
	}
	return n, float64(n) / d.Seconds()
}

// Final returns the header given to Finish, nil while the image grows or
// after Fail.
func (g *Growing) Final() *image.Header {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.final
}

// Err returns the error given to Fail, nil otherwise.
func (g *Growing) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// NewReader returns a reader of the payload from its start.
func (g *Growing) NewReader() *GrowingReader {
	return &GrowingReader{g: g, closed: make(chan struct{})}
}

// GrowingReader reads a Growing image's payload, waiting for the dumper
// when it has read all that is written. Not safe for concurrent Reads;
// Close may be called from another goroutine and ends a waiting Read.
type GrowingReader struct {
	g         *Growing
	closeOnce sync.Once
	closed    chan struct{}

	waiting func() // tests: called when a Read is about to wait

	mu     sync.Mutex // held by a Read except while it waits, and by Close
	off    int64
	files  []*os.File
	waited time.Duration
}

// Read reads the next payload bytes. When it has read all the dumper has
// written it waits for more (an event of the dumper, or Close); it
// returns io.EOF only after Finish, and the dumper's error after Fail.
func (r *GrowingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	g := r.g
	for {
		r.mu.Lock()
		select {
		case <-r.closed:
			r.mu.Unlock()
			return 0, ErrReaderClosed
		default:
		}
		g.mu.Lock()
		n, paths, ends, final, gerr, changed := g.n, g.paths, g.ends, g.final, g.err, g.changed
		g.mu.Unlock()
		switch {
		case gerr != nil:
			r.mu.Unlock()
			return 0, fmt.Errorf("the dump writing it to the holding disk failed after %d bytes: %w", n, gerr)
		case r.off < n:
			k, err := r.readAt(p[:min(int64(len(p)), n-r.off)], paths, ends)
			r.mu.Unlock()
			return k, err
		case final != nil:
			r.mu.Unlock()
			return 0, io.EOF
		}
		middle := r.off > 0
		r.mu.Unlock()
		// The dumper has not written the next bytes yet: the drive waits
		// for them (counted from the first byte on: in the middle of the
		// image).
		t0 := g.clock.Now()
		if r.waiting != nil {
			r.waiting()
		}
		select {
		case <-changed:
		case <-r.closed:
			return 0, ErrReaderClosed
		}
		if middle {
			r.mu.Lock()
			r.waited += g.clock.Now().Sub(t0)
			r.mu.Unlock()
		}
	}
}

// readAt reads p at the reader's offset from the chunk files.
func (r *GrowingReader) readAt(p []byte, paths []string, ends []int64) (int, error) {
	i := 0
	for i < len(ends) && ends[i] <= r.off {
		i++
	}
	if i == len(ends) {
		return 0, fmt.Errorf("holding: growing image: offset %d beyond its chunks", r.off)
	}
	for len(r.files) <= i {
		k := len(r.files)
		f, err := os.Open(paths[k] + TmpSuffix)
		if errors.Is(err, os.ErrNotExist) { // committed meanwhile
			f, err = os.Open(paths[k])
		}
		if err != nil {
			return 0, fmt.Errorf("holding: open chunk %d of a growing image: %w", k+1, err)
		}
		r.files = append(r.files, f)
	}
	start := int64(0)
	if i > 0 {
		start = ends[i-1]
	}
	fileOff := r.off - start
	if i == 0 {
		fileOff += image.HeaderSize
	}
	p = p[:min(int64(len(p)), ends[i]-r.off)]
	k, err := r.files[i].ReadAt(p, fileOff)
	r.off += int64(k)
	if err != nil && !(errors.Is(err, io.EOF) && k == len(p)) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return k, fmt.Errorf("holding %s: %w", r.files[i].Name(), err)
	}
	return k, nil
}

// Waited is the time Read waited for the dumper after the first byte:
// the time the taper was starved by it.
func (r *GrowingReader) Waited() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waited
}

// Close ends the reader (a waiting Read returns ErrReaderClosed, later
// Reads too) and closes its files.
func (r *GrowingReader) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, f := range r.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	r.files = nil
	return errors.Join(errs...)
}
