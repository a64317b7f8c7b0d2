package image

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// ParallelOptions bound a parallel reader.
type ParallelOptions struct {
	// Workers decompress frames at once; 0 means runtime.GOMAXPROCS(0),
	// at most DefaultMaxWorkers.
	Workers int
	// MaxMemory bounds the bytes of frames (stored and decompressed) held
	// at once; 0 means DefaultParallelMemory. At least one frame is
	// always held, whatever its size.
	MaxMemory int64
}

// DefaultMaxWorkers caps the default number of workers: eight zstd
// decoders outrun any disk a restore writes to, and each holds its own
// buffers (about a frame's worth), which a 64-CPU server would multiply.
const DefaultMaxWorkers = 8

// DefaultParallelMemory is ParallelOptions.MaxMemory when it is 0: with
// 1 MiB frames it lets 2*Workers+2 frames be in flight on any machine of
// up to a dozen CPUs, and stays far below a restore's 128 MiB budget.
const DefaultParallelMemory = 48 << 20

// NewParallelReader returns the whole tar stream of the frames, read from
// r (which must start at the payload) in order and decompressed several at
// once, ahead of the caller, by opt.Workers goroutines. It yields exactly
// the bytes a sequential decoder would (NewReaderAt from the first frame)
// and fails, naming the frame, at the first frame that cannot be read or
// decoded: nothing after a damaged frame is delivered. frames must be
// contiguous (ReadSeekTable or the catalog). r is only read by one
// goroutine at a time. Close stops the goroutines and waits for them.
func NewParallelReader(r io.ReaderAt, comp Comp, frames []Frame, opt ParallelOptions) (io.ReadCloser, error) {
	if !comp.Valid() {
		return nil, fmt.Errorf("image: unknown compression %q: want zst, gz or none", comp)
	}
	if r == nil {
		return nil, errors.New("image: NewParallelReader needs a payload to read from")
	}
	if len(frames) == 0 {
		return nil, errors.New("image: empty frame list: nothing to read")
	}
	maxTar, err := checkFrameList(comp, frames)
	if err != nil {
		return nil, err
	}
	if opt.Workers < 0 || opt.MaxMemory < 0 {
		return nil, fmt.Errorf("image: parallel reader: negative workers (%d) or memory (%d); 0 means the default", opt.Workers, opt.MaxMemory)
	}
	workers := opt.Workers
	if workers == 0 {
		workers = min(runtime.GOMAXPROCS(0), DefaultMaxWorkers)
	}
	budget := opt.MaxMemory
	if budget == 0 {
		budget = DefaultParallelMemory
	}
	var maxSize int64
	for _, f := range frames {
		maxSize = max(maxSize, f.Size)
	}
	window := int64(2*workers + 2)
	if per := maxTar + maxSize; per > 0 {
		window = max(1, min(window, budget/per))
	}
	workers = int(min(int64(workers), window))
	p := &parallelReader{
		r:      r,
		frames: frames,
		free:   make(chan *slot, window),
		work:   make(chan *slot, window),
		order:  make(chan *slot, window),
		quit:   make(chan struct{}),
	}
	for range window {
		p.free <- &slot{}
	}
	decs := make([]*FrameDecoder, workers)
	for i := range decs {
		if decs[i], err = NewFrameDecoder(comp, max(maxTar, 1)); err != nil {
			for _, d := range decs[:i] {
				d.Close()
			}
			return nil, err
		}
	}
	p.wg.Add(1 + workers)
	go p.dispatch()
	for _, d := range decs {
		go p.decode(d)
	}
	return p, nil
}

// slot carries one frame from the dispatcher through a worker to the
// reader; slots are reused, so memory is bounded by their number.
type slot struct {
	f    Frame
	in   []byte
	out  []byte
	err  error
	done chan struct{}
}

type parallelReader struct {
	r      io.ReaderAt
	frames []Frame

	free  chan *slot // slots not in use
	work  chan *slot // read, to decode
	order chan *slot // read, in frame order, for Read
	quit  chan struct{}
	wg    sync.WaitGroup

	cur    *slot  // the slot Read is delivering
	out    []byte // its undelivered bytes
	err    error  // sticky
	closed bool
}

// dispatch reads the frames' stored bytes in order, one frame at a time
// (so r is never read concurrently), and hands each to the workers and,
// in order, to Read.
func (p *parallelReader) dispatch() {
	defer p.wg.Done()
	defer close(p.order)
	defer close(p.work)
	for _, f := range p.frames {
		var s *slot
		select {
		case s = <-p.free:
		case <-p.quit:
			return
		}
		s.f, s.err, s.done = f, nil, make(chan struct{})
		if int64(cap(s.in)) < f.Size {
			s.in = make([]byte, f.Size)
		}
		s.in = s.in[:f.Size]
		if err := readAt(p.r, s.in, f.Offset); err != nil {
			s.err = fmt.Errorf("image: reading frame %d (%d bytes at payload offset %d): %w", f.Index, f.Size, f.Offset, err)
			close(s.done)
			p.order <- s
			return
		}
		// Both channels have room for every slot: neither send blocks.
		p.order <- s
		p.work <- s
	}
}

// decode decompresses frames until there are no more or the reader is
// closed.
func (p *parallelReader) decode(d *FrameDecoder) {
	defer p.wg.Done()
	defer d.Close()
	for {
		var s *slot
		select {
		case s = <-p.work:
		case <-p.quit:
			return
		}
		if s == nil {
			return
		}
		// out is s.out grown as needed (kept for the slot's next frame),
		// or, with no compression, s.in itself.
		out, err := d.decodeTo(s.out[:0], s.in, s.f)
		if err != nil {
			s.err = fmt.Errorf("image: frame %d at payload offset %d: %w: the payload is damaged or the frame list does not match the payload", s.f.Index, s.f.Offset, err)
		} else {
			s.out = out
		}
		close(s.done)
	}
}

func (p *parallelReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.cur != nil {
			p.free <- p.cur // never blocks: free has room for every slot
			p.cur = nil
		}
		s, ok := <-p.order
		if !ok {
			p.err = io.EOF
			return 0, io.EOF
		}
		<-s.done
		p.cur = s
		if s.err != nil {
			p.err = s.err
			return 0, p.err
		}
		p.out = s.out
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

// Close stops the dispatcher and the workers and waits for them.
func (p *parallelReader) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.quit)
	// The dispatcher may wait to send on order: drain it.
	go func() {
		for range p.order {
		}
	}()
	p.wg.Wait()
	p.out, p.cur = nil, nil
	if p.err == nil || p.err == io.EOF {
		p.err = errors.New("image: read from a closed parallel reader")
	}
	return nil
}
