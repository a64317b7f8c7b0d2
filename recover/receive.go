package recover

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// receiver reads a restore stream from the connection on a goroutine of
// its own, ahead of the extraction, and decompresses the frames of its
// chunks on several more (workers), so that reading the network,
// decompressing and writing files overlap and the decompression uses
// every CPU (up to image.DefaultMaxWorkers), as `tapir recover --all`
// does with image.NewParallelReader. It hands back every message in the
// order the server sent it, a chunk with its tar bytes (or why they could
// not be had). At most window messages are read ahead, each holding at
// most one frame's stored and decompressed bytes (and, for a sealed frame
// of an encrypted image, the ciphertext and plaintext of its age chunks,
// opened by the workers before they decompress), which the chunk checks
// bound by the image's frame size: whatever the server sends, memory
// stays within image.DefaultParallelMemory, or one frame's bytes when a
// frame is larger (as the restore held before).
type receiver struct {
	cl    *Client
	ctx   context.Context
	infos []wire.ImageInfo
	// keys open the chunks of the encrypted images (nil for a plain one).
	keys []*crypt.Key
	// carry is the ciphertext of the last age chunk of the last sealed
	// frame read (chunk carryChunk of image carryImg, -1 none): the next
	// sealed frame of that image may begin in it, and then it is not
	// sent again (wire.Sealed).
	carry      []byte
	carryImg   int
	carryChunk int64
	// workers decompress chunks: as many as image.NewParallelReader
	// starts, no more than the window or the plan's frames.
	workers int

	free  chan *recvItem // items not in use
	order chan *recvItem // read, in stream order, for next
	work  chan *recvItem // chunks to decompress
	quit  chan struct{}
	wg    sync.WaitGroup
	ended chan struct{} // closed when the reading goroutine returns

	// Chunks of images before skipBelow are not decompressed: the
	// extraction is done with those images (or gave up on one whose
	// frame was damaged), and will only drop them.
	skipBelow atomic.Int64
	// last: next returned the end or an error, after which the reading
	// goroutine returns of itself. stopped: stop ran.
	last, stopped bool
}

// recvItem is one message of the stream and, for a chunk, its bytes.
type recvItem struct {
	m wire.RestoreMsg
	// sealed is set for a frame of an encrypted image (m.Chunk is then
	// its Chunk): in holds the ciphertext of the age chunks of span, plain
	// their plaintext once opened.
	sealed *wire.Sealed
	span   sealedSpan
	plain  []byte
	in     []byte // a chunk's stored bytes
	out    []byte // its tar bytes: own, or in itself with no compression
	own    []byte // the decompression buffer, kept for the item's next chunk
	// err ends the stream: the connection broke, the server broke the
	// protocol, or the restore was interrupted. No item follows.
	err error
	// bad says why a chunk's frame could not be decompressed (damaged,
	// or not what the chunk says).
	bad     error
	skipped bool          // not decompressed (skipBelow)
	done    chan struct{} // closed when out, bad or skipped is set
}

// Bounds on what a chunk may announce (docs/format/index-protocol.md,
// "Limits"): the stored bytes of a frame of t tar bytes are never more
// than maxStored(t), whatever the compression (zstd and gzip store an
// incompressible block with a few bytes of framing: zstd's bound is
// t + t/256 + 64 bytes and a frame header and checksum).
const storedSlack = 64 << 10

func maxStored(tarSize int64) int64 { return tarSize + tarSize/16 + storedSlack }

// frameBound is the most tar bytes a chunk of image info may hold: its
// frame size (every frame but the last holds exactly that many), or
// image.MaxFrameSize when the plan does not say.
func frameBound(info wire.ImageInfo) int64 {
	if info.FrameSize > 0 && info.FrameSize <= image.MaxFrameSize {
		return info.FrameSize
	}
	return image.MaxFrameSize
}

// startReceiver starts reading the stream that follows a restore plan of
// the images infos: workers as for image.NewParallelReader, no more than
// the plan has frames (a single file's restore starts one).
//
// keys (one per image, nil for a plain one; nil for none) open the age
// chunks of the encrypted images' sealed frames.
func (cl *Client) startReceiver(ctx context.Context, infos []wire.ImageInfo, keys []*crypt.Key) *receiver {
	frames := 0
	var biggest int64 = 1
	sealed := false
	for i, ii := range infos {
		if ii.Frames > 0 {
			frames += ii.Frames
			biggest = max(biggest, frameBound(ii))
		}
		sealed = sealed || i < len(keys) && keys[i] != nil
	}
	workers := min(runtime.GOMAXPROCS(0), image.DefaultMaxWorkers)
	window := int64(2*workers + 2)
	per := biggest + maxStored(biggest)
	if sealed {
		// The ciphertext of a frame's chunks and their plaintext.
		per = biggest + 2*crypt.MaxCipher(maxStored(biggest))
	}
	window = max(1, min(window, image.DefaultParallelMemory/per))
	workers = max(1, min(workers, int(window), frames))
	r := &receiver{
		cl:       cl,
		ctx:      ctx,
		infos:    infos,
		keys:     keys,
		carryImg: -1,
		workers:  workers,
		free:     make(chan *recvItem, window),
		order:    make(chan *recvItem, window),
		work:     make(chan *recvItem, window),
		quit:     make(chan struct{}),
		ended:    make(chan struct{}),
	}
	for range window {
		r.free <- &recvItem{}
	}
	r.wg.Add(1 + workers)
	go r.read()
	for range workers {
		go r.decode()
	}
	return r
}

// next returns the next message of the stream, its chunk decompressed (or
// skipped, or bad); after an item with err, or after the end, there is
// none. The caller gives the item back with release when it is done with
// its bytes.
func (r *receiver) next() *recvItem {
	it, ok := <-r.order
	if !ok {
		// The reading goroutine only returns after an item with err or
		// the end, and the caller asks for no more after either.
		return &recvItem{err: fmt.Errorf("%w: the restore stream was read past its end", wire.ErrProtocol)}
	}
	<-it.done
	r.last = it.err != nil || it.m.End != nil
	return it
}

// release gives an item back for the reading goroutine to fill again.
func (r *receiver) release(it *recvItem) {
	if it == nil || it.done == nil {
		return
	}
	it.done = nil
	r.free <- it // never blocks: free has room for every item
}

// stop ends the goroutines and waits for them. When the stream was not
// read to its end (the restore failed or was interrupted), the reading
// goroutine may wait for the connection: the connection's deadline ends
// that wait, and the session is over anyway.
func (r *receiver) stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	close(r.quit)
	if !r.last {
		select {
		case <-r.ended:
		default:
			r.cl.nc.SetDeadline(time.Now())
		}
	}
	r.wg.Wait()
}

// read reads messages and their data frames until the end of the stream,
// an error, or stop. It alone reads the connection while the stream
// flows, and sets its deadlines: the stall time for every read, none
// after the server asked for a volume (a person may take hours), and
// nothing that outlives an interrupt (ctx).
func (r *receiver) read() {
	defer r.wg.Done()
	defer close(r.ended)
	defer close(r.work)
	defer close(r.order)
	waiting := false
	for {
		var it *recvItem
		select {
		case it = <-r.free:
		case <-r.quit:
			return
		}
		it.m, it.out, it.err, it.bad, it.skipped, it.done = wire.RestoreMsg{}, nil, nil, nil, false, make(chan struct{})
		it.sealed, it.span = nil, sealedSpan{}
		err := r.deadline(waiting)
		if err == nil {
			var m wire.RestoreMsg
			err = r.cl.c.ReadMsg(&m)
			if err != nil {
				err = r.failed(err)
			}
			it.m, it.sealed = m, m.Sealed
		}
		if err == nil {
			err = r.check(it)
		}
		if err == nil && it.m.Chunk != nil {
			err = r.readData(it)
		}
		if err != nil {
			it.err = err
			close(it.done)
			r.order <- it
			return
		}
		waiting = it.m.Ask != nil
		// Both channels have room for every item: neither send blocks.
		r.order <- it
		if c := it.m.Chunk; c != nil && int64(c.Image) >= r.skipBelow.Load() {
			r.work <- it
		} else {
			it.skipped = c != nil
			close(it.done)
		}
		if it.m.End != nil {
			return
		}
	}
}

// deadline bounds the next read by the stall time, or not at all while
// the server waits for a person to bring a volume. An interrupt (ctx) or
// stop sets the deadline to now: both are checked after the deadline is
// set here, so that a deadline set here never hides theirs.
func (r *receiver) deadline(waiting bool) error {
	if waiting {
		r.cl.nc.SetDeadline(time.Time{})
	} else {
		r.cl.nc.SetDeadline(time.Now().Add(r.cl.stall()))
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-r.quit:
		return errAbandoned
	default:
	}
	return nil
}

// errAbandoned ends the reading when the restore stops reading the stream
// before its end (it failed, or was interrupted).
var errAbandoned = errors.New("the restore stream was abandoned")

// failed turns a read error into the stream's error: the interrupt when
// there was one, otherwise a sentence about the connection.
func (r *receiver) failed(err error) error {
	if cerr := r.ctx.Err(); cerr != nil {
		return cerr
	}
	select {
	case <-r.quit:
		return errAbandoned
	default:
	}
	return r.cl.broken(err)
}

// check refuses a message the protocol does not allow: not exactly one
// kind, an image out of the plan, a chunk whose sizes no frame of its
// image can have, a plain chunk of an encrypted image or a sealed one of
// a plain image, a sealed frame whose age chunks are not those that hold
// it or that carries a chunk not sent just before. A sealed frame becomes
// it.m.Chunk (its frame), it.sealed and it.span.
func (r *receiver) check(it *recvItem) error {
	m := &it.m
	kinds := 0
	for _, set := range []bool{m.Chunk != nil, it.sealed != nil, m.Image != nil, m.Ask != nil, m.End != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fmt.Errorf("%w: a restore message holds %d of chunk, sealed, image, ask and end, not one", wire.ErrProtocol, kinds)
	}
	if it.sealed != nil {
		m.Chunk = &it.sealed.Chunk
	}
	var img int
	switch {
	case m.Chunk != nil:
		img = m.Chunk.Image
	case m.Image != nil:
		img = m.Image.Image
	default:
		return nil
	}
	if img < 0 || img >= len(r.infos) {
		return fmt.Errorf("%w: a restore message names image %d; the plan has %d", wire.ErrProtocol, img, len(r.infos))
	}
	if c := m.Chunk; c != nil {
		bound := frameBound(r.infos[c.Image])
		if c.TarOffset < 0 || c.TarSize < 0 || c.TarSize > bound || c.Size < 0 || c.Size > maxStored(c.TarSize) {
			return fmt.Errorf("%w: frame %d of image %d: a chunk of %d stored bytes holding %d tar bytes at tar offset %d, in an image of %d-byte frames", wire.ErrProtocol, c.Frame, c.Image, c.Size, c.TarSize, c.TarOffset, bound)
		}
		var key *crypt.Key
		if c.Image < len(r.keys) {
			key = r.keys[c.Image]
		}
		switch {
		case it.sealed == nil && (key != nil || r.infos[c.Image].Encrypted()):
			return fmt.Errorf("%w: frame %d of image %d, an encrypted image, came as plain bytes", wire.ErrProtocol, c.Frame, c.Image)
		case it.sealed != nil && key == nil:
			return fmt.Errorf("%w: frame %d of image %d came sealed, but the plan says the image is not encrypted", wire.ErrProtocol, c.Frame, c.Image)
		case it.sealed != nil:
			sp, err := spanOf(key.Layout(), *it.sealed)
			if err != nil {
				return fmt.Errorf("%w: image %d: %v", wire.ErrProtocol, c.Image, err)
			}
			if it.sealed.Carry && (r.carryImg != c.Image || r.carryChunk != sp.First) {
				return fmt.Errorf("%w: frame %d of image %d begins in age chunk %d, which the sealed frame before did not end with", wire.ErrProtocol, c.Frame, c.Image, sp.First)
			}
			it.span = sp
		}
	}
	return nil
}

// readData reads the data frames of a chunk into it.in, as they arrive
// (never allocating the announced size before the bytes are there).
//
// A sealed frame's bytes are the ciphertext of its age chunks: the
// carried chunk first when the server did not send it again; its last
// chunk is kept as the next carry.
func (r *receiver) readData(it *recvItem) error {
	c := it.m.Chunk
	it.in = it.in[:0]
	want := c.Size
	if s := it.sealed; s != nil {
		if s.Carry {
			it.in = append(it.in, r.carry...)
		}
		want = int64(len(it.in)) + s.Cipher
	}
	for int64(len(it.in)) < want {
		if err := r.deadline(false); err != nil {
			return err
		}
		typ, b, err := r.cl.c.ReadFrame()
		if err != nil {
			return r.failed(err)
		}
		if typ != wire.FrameData || int64(len(it.in)+len(b)) > want {
			return fmt.Errorf("%w: frame %d of image %d: expected %d data bytes, got frame %q of %d bytes", wire.ErrProtocol, c.Frame, c.Image, want-int64(len(it.in)), typ, len(b))
		}
		it.in = append(it.in, b...)
	}
	if it.sealed != nil {
		if int64(len(it.in)) != it.span.Len || it.span.Tail > it.span.Len {
			return fmt.Errorf("%w: frame %d of image %d: %d ciphertext bytes for age chunks of %d", wire.ErrProtocol, c.Frame, c.Image, len(it.in), it.span.Len)
		}
		r.carry = append(r.carry[:0], it.in[int64(len(it.in))-it.span.Tail:]...)
		r.carryImg, r.carryChunk = c.Image, it.span.First+it.span.Count-1
	}
	return nil
}

// decode decompresses chunks until there are no more or stop, each with
// the image's compression (a decoder made on first use, and anew when
// the compression changes from one image to the next).
func (r *receiver) decode() {
	defer r.wg.Done()
	var dec *image.FrameDecoder
	var comp image.Comp
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	for {
		var it *recvItem
		select {
		case it = <-r.work:
		case <-r.quit:
			return
		}
		if it == nil {
			return
		}
		c := it.m.Chunk
		if int64(c.Image) < r.skipBelow.Load() {
			it.skipped = true
			close(it.done)
			continue
		}
		info := r.infos[c.Image]
		if want := image.Comp(info.Comp); dec == nil || comp != want {
			if dec != nil {
				dec.Close()
				dec = nil
			}
			d, err := image.NewFrameDecoder(want, frameBound(info))
			if err != nil {
				it.bad = err
				close(it.done)
				continue
			}
			dec, comp = d, want
		}
		stored := it.in
		if it.sealed != nil {
			// Only chunks that authenticate are decoded: a changed byte
			// anywhere in them fails the frame.
			plain, err := r.keys[c.Image].Open(it.plain[:0], it.in, it.span.First)
			it.plain = plain
			if err != nil {
				it.bad = err
				close(it.done)
				continue
			}
			start := it.sealed.Offset - it.span.First*crypt.ChunkSize
			stored = plain[start : start+c.Size]
		}
		out, err := dec.DecodeTo(it.own[:0], stored, image.Frame{Index: c.Frame, TarOffset: c.TarOffset, TarSize: c.TarSize, Size: c.Size})
		switch {
		case err != nil:
			it.bad = err
		case comp == image.CompNone:
			it.out = out // in itself, not refilled before release
		default:
			it.own, it.out = out, out
		}
		close(it.done)
	}
}
