package image

import (
	"bufio"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const (
	// DefaultFrameSize is the tar bytes per frame when WriterOptions.FrameSize is 0.
	DefaultFrameSize = 1 << 20
	// MinFrameSize and MaxFrameSize bound WriterOptions.FrameSize. The
	// maximum is the zstd seekable format's limit on a frame's content.
	MinFrameSize = 512
	MaxFrameSize = 1 << 30
	// MaxFrames is the seekable format's limit on the number of frames.
	MaxFrames = 0x8000000
)

// Frame locates one frame of a payload.
type Frame struct {
	Index     int
	TarOffset int64 // offset of the frame's first byte in the tar stream
	TarSize   int64 // tar bytes in the frame
	Offset    int64 // offset of the frame in the payload
	Size      int64 // bytes of the frame in the payload (compressed)
}

// WriterOptions configure a PayloadWriter.
type WriterOptions struct {
	Comp        Comp // "" means CompZstd
	Level       int  // zstd 1..19, gzip 1..9; 0 = the library default
	FrameSize   int  // tar bytes per frame; 0 = DefaultFrameSize
	Concurrency int  // compression workers; 0 = runtime.GOMAXPROCS(0)
	// Checkpoint, when set, is called for every frame in order, after
	// the frame is compressed and hashed and before its bytes are
	// written: f is the frame and sum the SHA-256 state of the payload
	// up to its end (encoding.BinaryMarshaler), from which Resume
	// continues. It runs in the writer's goroutine and must not keep sum.
	Checkpoint func(f Frame, sum []byte)
	// Resume, when set, continues a payload after its first
	// len(Resume.Frames) frames instead of starting one: the next tar
	// byte written is the first of frame len(Resume.Frames), the payload
	// hash continues from Resume.Sum, and Close's seek table lists every
	// frame. The frames must be contiguous and FrameSize tar bytes each;
	// a short last frame ends the payload (only Close may follow).
	Resume *ResumePoint
}

// ResumePoint is where a PayloadWriter continues a payload
// (WriterOptions.Resume): the frames written before, and the SHA-256
// state at the end of the last one, as Checkpoint gave it.
type ResumePoint struct {
	Frames []Frame
	Sum    []byte
}

// Summary describes a finished payload; it fills the header fields
// original-size, payload-size, sha256 and frames, and the catalog's frame list.
type Summary struct {
	OriginalSize, PayloadSize int64
	SHA256                    string
	Frames                    []Frame
}

// PayloadWriter turns a tar stream into a framed payload. It cuts frames of
// exactly FrameSize tar bytes (the last one shorter), compresses them in
// parallel while keeping their order, hashes the payload bytes it writes and,
// on Close, writes the last frame and (zstd) the seek table. At most
// 2*Concurrency frames are in memory at once, whatever the input size.
//
// Write, TarOffset and Close must be called from one goroutine.
type PayloadWriter struct {
	w         io.Writer
	comp      Comp
	frameSize int

	cur     *job
	tarOff  int64
	nSubmit int

	work, order, free chan *job
	nJobs, maxJobs    int
	workers           sync.WaitGroup
	writerDone        chan struct{}

	errMu  sync.Mutex
	err    error
	failed chan struct{}

	closed   bool
	closeErr error
	ended    bool // resumed after a short last frame: no more tar bytes

	checkpoint func(Frame, []byte)

	// owned by the writer goroutine until it finishes
	hash     hash.Hash
	paySize  int64
	frames   []Frame
	sumValid bool
}

type job struct {
	in, out []byte
	err     error
	done    chan struct{}
}

var errClosed = errors.New("image: write to a closed payload writer")

// NewPayloadWriter starts the compression workers. The caller must Close it.
func NewPayloadWriter(w io.Writer, opt WriterOptions) (*PayloadWriter, error) {
	if opt.Comp == "" {
		opt.Comp = CompZstd
	}
	if !opt.Comp.Valid() {
		return nil, fmt.Errorf("image: unknown compression %q: want zst, gz or none", opt.Comp)
	}
	if opt.FrameSize == 0 {
		opt.FrameSize = DefaultFrameSize
	}
	if opt.FrameSize < MinFrameSize || opt.FrameSize > MaxFrameSize {
		return nil, fmt.Errorf("image: frame size %d out of range %d..%d", opt.FrameSize, MinFrameSize, MaxFrameSize)
	}
	switch opt.Comp {
	case CompZstd:
		if opt.Level < 0 || opt.Level > 19 {
			return nil, fmt.Errorf("image: zstd level %d out of range 1..19 (0 = default)", opt.Level)
		}
	case CompGzip:
		if opt.Level < 0 || opt.Level > 9 {
			return nil, fmt.Errorf("image: gzip level %d out of range 1..9 (0 = default)", opt.Level)
		}
	}
	if opt.Concurrency < 0 {
		return nil, fmt.Errorf("image: concurrency %d is negative (0 = GOMAXPROCS)", opt.Concurrency)
	}
	if opt.Concurrency == 0 {
		opt.Concurrency = runtime.GOMAXPROCS(0)
	}
	// Build the compressors first so that a bad option fails here.
	comps := make([]compressor, opt.Concurrency)
	for i := range comps {
		c, err := newCompressor(opt)
		if err != nil {
			for _, c := range comps[:i] {
				c.close()
			}
			return nil, err
		}
		comps[i] = c
	}
	p := &PayloadWriter{
		w:          w,
		comp:       opt.Comp,
		frameSize:  opt.FrameSize,
		maxJobs:    2 * opt.Concurrency,
		writerDone: make(chan struct{}),
		failed:     make(chan struct{}),
		hash:       sha256.New(),
	}
	p.checkpoint = opt.Checkpoint
	if rp := opt.Resume; rp != nil {
		if err := p.resumeAt(rp); err != nil {
			for _, c := range comps {
				c.close()
			}
			return nil, err
		}
	}
	p.work = make(chan *job, p.maxJobs)
	p.order = make(chan *job, p.maxJobs)
	p.free = make(chan *job, p.maxJobs)
	for _, c := range comps {
		p.workers.Add(1)
		go p.worker(c)
	}
	go p.writeLoop()
	return p, nil
}

// resumeAt sets the writer after the frames of rp.
func (p *PayloadWriter) resumeAt(rp *ResumePoint) error {
	var tar, pay int64
	for i, f := range rp.Frames {
		if f.TarOffset != tar || f.Offset != pay || f.Size < 0 || f.TarSize <= 0 || f.TarSize > int64(p.frameSize) {
			return fmt.Errorf("image: resume: frame %d (tar %d+%d, payload %d+%d) does not follow the frames before it (tar %d, payload %d) in frames of %d bytes",
				i, f.TarOffset, f.TarSize, f.Offset, f.Size, tar, pay, p.frameSize)
		}
		if f.TarSize < int64(p.frameSize) {
			if i != len(rp.Frames)-1 {
				return fmt.Errorf("image: resume: frame %d is short (%d tar bytes) but not the last", i, f.TarSize)
			}
			p.ended = true
		}
		tar += f.TarSize
		pay += f.Size
	}
	if p.comp == CompZstd && len(rp.Frames) > MaxFrames {
		return fmt.Errorf("image: resume: %d frames, more than the seek table can describe", len(rp.Frames))
	}
	if len(rp.Frames) > 0 {
		if err := p.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(rp.Sum); err != nil {
			return fmt.Errorf("image: resume: the saved SHA-256 state: %w", err)
		}
	}
	p.frames = append([]Frame(nil), rp.Frames...)
	for i := range p.frames {
		p.frames[i].Index = i
	}
	p.tarOff, p.paySize, p.nSubmit = tar, pay, len(rp.Frames)
	return nil
}

// compressor compresses one frame; each worker owns one.
type compressor interface {
	compress(dst, src []byte) ([]byte, error)
	close()
}

func newCompressor(opt WriterOptions) (compressor, error) {
	switch opt.Comp {
	case CompZstd:
		lvl := zstd.SpeedDefault
		if opt.Level > 0 {
			lvl = zstd.EncoderLevelFromZstd(opt.Level)
		}
		// One encoder per worker, EncodeAll only: every frame is
		// independent and holds exactly its own input. The window stays at
		// the library default (<= 8 MiB) so that zstd -dc needs no --long.
		opts := []zstd.EOption{zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true), zstd.WithZeroFrames(true)}
		if lvl == zstd.SpeedFastest {
			// Level 1 is asked for speed: its literals are stored
			// as they are instead of Huffman-coded, which makes the
			// compressor about a quarter faster on text (the log
			// lines of bench/night.sh's tree: 350-440 MB/s ->
			// 490-530 MB/s per core) for payloads about 2 % larger.
			// The frames are the same standard zstd frames.
			opts = append(opts, zstd.WithNoEntropyCompression(true))
		}
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			return nil, fmt.Errorf("image: zstd encoder: %w", err)
		}
		return zstdComp{enc}, nil
	case CompGzip:
		lvl := gzip.DefaultCompression
		if opt.Level > 0 {
			lvl = opt.Level
		}
		c := &gzipComp{}
		gw, err := gzip.NewWriterLevel(&c.buf, lvl)
		if err != nil {
			return nil, fmt.Errorf("image: gzip level %d: %w", opt.Level, err)
		}
		c.gw = gw
		return c, nil
	}
	return noneComp{}, nil
}

type zstdComp struct{ enc *zstd.Encoder }

func (z zstdComp) compress(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst[:0]), nil
}
func (z zstdComp) close() { z.enc.Close() }

// appendBuf is an io.Writer appending to a slice.
type appendBuf struct{ b []byte }

func (a *appendBuf) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

type gzipComp struct {
	buf appendBuf
	gw  *gzip.Writer
}

func (g *gzipComp) compress(dst, src []byte) ([]byte, error) {
	g.buf.b = dst[:0]
	g.gw.Reset(&g.buf)
	if _, err := g.gw.Write(src); err != nil {
		return dst, fmt.Errorf("image: gzip: %w", err)
	}
	if err := g.gw.Close(); err != nil {
		return dst, fmt.Errorf("image: gzip: %w", err)
	}
	out := g.buf.b
	g.buf.b = nil
	return out, nil
}
func (g *gzipComp) close() {}

type noneComp struct{}

func (noneComp) compress(dst, src []byte) ([]byte, error) { return append(dst[:0], src...), nil }
func (noneComp) close()                                   {}

func (p *PayloadWriter) worker(c compressor) {
	defer p.workers.Done()
	defer c.close()
	for j := range p.work {
		j.out, j.err = c.compress(j.out, j.in)
		j.done <- struct{}{}
	}
}

// writeLoop writes finished frames in order. After a failure it keeps
// draining so that no goroutine blocks, but writes nothing more.
func (p *PayloadWriter) writeLoop() {
	defer close(p.writerDone)
	for j := range p.order {
		<-j.done
		if p.failure() == nil {
			if j.err != nil {
				p.fail(j.err)
			} else if err := p.emitFrame(j); err != nil {
				p.fail(fmt.Errorf("image: writing payload frame %d at payload offset %d: %w", len(p.frames), p.paySize, err))
			} else {
				idx := len(p.frames)
				p.frames = append(p.frames, Frame{
					Index:     idx,
					TarOffset: int64(idx) * int64(p.frameSize),
					TarSize:   int64(len(j.in)),
					Offset:    p.paySize - int64(len(j.out)),
					Size:      int64(len(j.out)),
				})
			}
		}
		j.in = j.in[:0]
		p.free <- j
	}
}

// emitFrame hashes a frame, gives the checkpoint its state, then writes
// it: a checkpoint is always saved before its frame can reach anyone.
func (p *PayloadWriter) emitFrame(j *job) error {
	if p.checkpoint == nil {
		return p.emit(j.out)
	}
	p.hash.Write(j.out)
	idx := len(p.frames)
	f := Frame{Index: idx, TarOffset: int64(idx) * int64(p.frameSize), TarSize: int64(len(j.in)), Offset: p.paySize, Size: int64(len(j.out))}
	st, err := p.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	p.checkpoint(f, st)
	n, err := p.w.Write(j.out)
	p.paySize += int64(n)
	if err == nil && n < len(j.out) {
		err = io.ErrShortWrite
	}
	return err
}

// emit writes b to the destination and the hash.
func (p *PayloadWriter) emit(b []byte) error {
	n, err := p.w.Write(b)
	p.hash.Write(b[:n])
	p.paySize += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func (p *PayloadWriter) fail(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.failed)
	}
}

func (p *PayloadWriter) failure() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *PayloadWriter) getJob() (*job, error) {
	select {
	case j := <-p.free:
		return j, nil
	default:
	}
	if p.nJobs < p.maxJobs {
		p.nJobs++
		return &job{in: make([]byte, 0, p.frameSize), done: make(chan struct{}, 1)}, nil
	}
	select {
	case j := <-p.free:
		return j, nil
	case <-p.failed:
		return nil, p.failure()
	}
}

// submit hands a frame to the workers and the writer; it never blocks
// because there are never more than maxJobs jobs.
func (p *PayloadWriter) submit(j *job) error {
	if p.comp == CompZstd && p.nSubmit >= MaxFrames {
		err := fmt.Errorf("image: more than %d frames: the zstd seek table cannot describe them; use a larger frame size", MaxFrames)
		p.fail(err)
		p.free <- j
		return err
	}
	p.nSubmit++
	p.work <- j
	p.order <- j
	return nil
}

// Write accepts tar bytes.
func (p *PayloadWriter) Write(b []byte) (int, error) {
	if p.closed {
		return 0, errClosed
	}
	if p.ended && len(b) > 0 {
		return 0, errors.New("image: write after the last frame of a resumed payload")
	}
	n := 0
	for len(b) > 0 {
		if err := p.failure(); err != nil {
			return n, err
		}
		if p.cur == nil {
			j, err := p.getJob()
			if err != nil {
				return n, err
			}
			p.cur = j
		}
		k := min(p.frameSize-len(p.cur.in), len(b))
		p.cur.in = append(p.cur.in, b[:k]...)
		b = b[k:]
		n += k
		p.tarOff += int64(k)
		if len(p.cur.in) == p.frameSize {
			j := p.cur
			p.cur = nil
			if err := p.submit(j); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// TarOffset is the number of tar bytes accepted so far. The frame holding
// tar offset off is off / FrameSize, at off % FrameSize inside the frame.
func (p *PayloadWriter) TarOffset() int64 { return p.tarOff }

// Close writes the last frame and, for zstd, the seek table, then stops the
// workers. An empty zstd or gzip payload still gets one empty frame so that
// zstd -dc and gzip -dc accept it. Calling Close again returns the first
// result.
func (p *PayloadWriter) Close() error {
	if p.closed {
		return p.closeErr
	}
	p.closed = true
	j := p.cur
	p.cur = nil
	if j == nil && p.nSubmit == 0 && p.comp != CompNone && p.failure() == nil {
		j, _ = p.getJob() // cannot block: no job was ever taken
	}
	if j != nil && (len(j.in) > 0 || p.nSubmit == 0 && p.comp != CompNone) {
		_ = p.submit(j) // an error is recorded by fail
	}
	close(p.work)
	close(p.order)
	p.workers.Wait()
	<-p.writerDone
	err := p.failure()
	if err == nil && p.comp == CompZstd {
		if err = writeSeekTable(p, p.frames); err != nil {
			err = fmt.Errorf("image: writing the seek table at payload offset %d: %w", p.paySize, err)
		}
	}
	p.closeErr = err
	if err == nil {
		p.sumValid = true
	}
	return err
}

// Sum describes the payload; it is valid only after Close returned nil.
func (p *PayloadWriter) Sum() Summary {
	if !p.sumValid {
		return Summary{}
	}
	return Summary{
		OriginalSize: p.tarOff,
		PayloadSize:  p.paySize,
		SHA256:       hex.EncodeToString(p.hash.Sum(nil)),
		Frames:       p.frames,
	}
}

// emitWriter adapts PayloadWriter.emit to io.Writer for the seek table.
type emitWriter struct{ p *PayloadWriter }

func (e emitWriter) Write(b []byte) (int, error) {
	if err := e.p.emit(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func writeSeekTable(p *PayloadWriter, frames []Frame) error {
	bw := bufio.NewWriterSize(emitWriter{p}, 64<<10)
	if err := AppendSeekTable(bw, frames); err != nil {
		return err
	}
	return bw.Flush()
}
