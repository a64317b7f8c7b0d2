package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frame types. Every frame is: type (1 byte), length (uint32 big endian),
// then length bytes.
const (
	FrameMsg   byte = 'M' // one JSON message
	FrameData  byte = 'D' // payload bytes of an image
	FrameIndex byte = 'I' // a batch of index records (EncodeIndex)
	FrameWarn  byte = 'W' // one line of text that makes a dump STRANGE
	FrameFrame byte = 'F' // a batch of frame records (AppendFrameInfo)
	// FrameListing is a batch of directory listings (AppendListing) of a
	// dump the server cannot read (Request.Listings).
	FrameListing byte = 'L'
	// FrameCheckpoint is a resume point of a client-side encrypted dump
	// (AppendCheckpoint): the server, which sees only ciphertext, learns
	// from it where the frames end.
	FrameCheckpoint byte = 'K'
)

// MaxFrame is the largest frame accepted; larger lengths are a protocol error.
// A Conn may accept less (SetReadLimit).
const MaxFrame = 4 << 20

// ConnBuffers is what a Conn holds besides the frame being read: its read
// and write buffers (a BatchConn under its TLS layer holds 2*BatchSize
// more). A Conn's memory is at most its read limit plus
// ConnBuffers, and while a frame arrives, about twice the bytes that have
// arrived (at least frameStep) rather than its announced length.
const ConnBuffers = 2 * bufSize

const (
	bufSize   = 64 << 10 // read and write buffers of a Conn
	frameStep = 4 << 10  // first allocation for a frame's bytes
)

// ErrProtocol marks a malformed stream.
var ErrProtocol = errors.New("protocol error")

// FrameTooLargeError is a frame whose announced length is over the
// receiving side's limit. It matches ErrProtocol.
type FrameTooLargeError struct {
	Type  byte
	Size  int64 // announced length
	Limit int   // the receiving side's limit
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("%v: the peer announced a frame %q of %d bytes; this side accepts at most %d", ErrProtocol, e.Type, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrProtocol) true.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrProtocol }

// Conn frames messages over a stream. Writes are safe from several
// goroutines; reads (ReadFrame, ReadMsg, ReadEntries, AwaitInput) are for
// one goroutine at a time.
type Conn struct {
	rw    io.ReadWriter
	r     *bufio.Reader
	wmu   sync.Mutex
	w     *bufio.Writer
	under *BatchConn // flushed after w (NewBatchedConn), or nil
	buf   []byte
	limit int
	// partial is how many bytes of a data frame the last ReadFrame had
	// read when it failed.
	partial int
}

// PartialData is how many payload bytes of a data frame the last
// ReadFrame had received when the connection failed in its middle (0
// after a good read): they arrived, and a resumed dump sends them again.
func (c *Conn) PartialData() int { return c.partial }

// NewConn wraps rw (normally a *tls.Conn). It accepts frames of up to
// MaxFrame bytes until SetReadLimit says otherwise.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{rw: rw, r: bufio.NewReaderSize(rw, bufSize), w: bufio.NewWriterSize(rw, bufSize), limit: MaxFrame}
}

// NewBatchedConn is NewConn for a TLS connection tc over under (see
// BatchConn): every flush of the Conn flushes under too. It starts
// under's batching: call it after the handshake.
func NewBatchedConn(tc io.ReadWriter, under *BatchConn) *Conn {
	c := NewConn(tc)
	c.under = under
	under.Batch()
	return c
}

// flush pushes the buffer, and the BatchConn below the TLS layer, to the
// peer; c.wmu is held.
func (c *Conn) flush() error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	if c.under != nil {
		return c.under.Flush()
	}
	return nil
}

// SetReadLimit sets the largest frame this side accepts (n <= 0 or n >
// MaxFrame: MaxFrame). A longer frame is refused by ReadFrame with a
// *FrameTooLargeError before any of its bytes are read.
func (c *Conn) SetReadLimit(n int) {
	if n <= 0 || n > MaxFrame {
		n = MaxFrame
	}
	c.limit = n
}

// ReadLimit returns the largest frame this side accepts.
func (c *Conn) ReadLimit() int { return c.limit }

// WriteFrame writes one frame; flush says whether to push it to the peer now.
func (c *Conn) WriteFrame(typ byte, p []byte, flush bool) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, len(p), MaxFrame)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := c.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := c.w.Write(p); err != nil {
		return err
	}
	if flush {
		return c.flush()
	}
	return nil
}

// Flush pushes buffered frames to the peer.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flush()
}

// WriteMsg writes v as a JSON message frame and flushes.
func (c *Conn) WriteMsg(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteFrame(FrameMsg, b, true)
}

// ReadFrame reads the next frame. The returned slice is valid until the
// next ReadFrame.
//
// The frame's bytes are read as they arrive: the buffer grows with them
// (doubling from frameStep up to the announced length), so a peer that
// announces a large frame and sends a few bytes of it holds a few bytes of
// memory, not the announced length. A buffer that held a large frame is
// kept for the next ones (at most the read limit).
func (c *Conn) ReadFrame() (byte, []byte, error) {
	c.partial = 0
	var hdr [5]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int64(binary.BigEndian.Uint32(hdr[1:]))
	switch hdr[0] {
	case FrameMsg, FrameData, FrameIndex, FrameWarn, FrameFrame, FrameListing, FrameCheckpoint:
	default:
		return 0, nil, fmt.Errorf("%w: unknown frame type %q", ErrProtocol, hdr[0])
	}
	limit := c.limit
	if limit <= 0 {
		limit = MaxFrame
	}
	if n > int64(limit) {
		return 0, nil, &FrameTooLargeError{Type: hdr[0], Size: n, Limit: limit}
	}
	b := c.buf[:0]
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			grown := make([]byte, len(b), int(min(n, int64(max(2*cap(b), frameStep)))))
			copy(grown, b)
			b = grown
			c.buf = b
		}
		k, err := c.r.Read(b[len(b):int(min(n, int64(cap(b))))])
		b = b[:len(b)+k]
		if err != nil && int64(len(b)) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if hdr[0] == FrameData {
				c.partial = len(b)
			}
			return 0, nil, err
		}
	}
	return hdr[0], b, nil
}

// AwaitInput blocks until the peer has sent at least one more byte, or
// reading fails (the peer closed the connection, a deadline passed); it
// consumes nothing. A server calls it while it works on a request, to learn
// that the peer went away. It must not run at the same time as a read.
func (c *Conn) AwaitInput() error {
	_, err := c.r.Peek(1)
	return err
}

// ReadMsg reads the next frame, which must be a message, into v.
func (c *Conn) ReadMsg(v any) error {
	typ, b, err := c.ReadFrame()
	if err != nil {
		return err
	}
	if typ != FrameMsg {
		return fmt.Errorf("%w: expected a message, got frame %q", ErrProtocol, typ)
	}
	return DecodeMsg(b, v)
}

// DecodeMsg decodes a JSON message strictly (unknown fields are errors).
func DecodeMsg(b []byte, v any) error {
	d := json.NewDecoder(bytesReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: bad message: %v", ErrProtocol, err)
	}
	if d.More() {
		return fmt.Errorf("%w: bad message: trailing data", ErrProtocol)
	}
	return nil
}

type byteReader struct {
	b []byte
}

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &byteReader{b} }

// DataWriter is an io.Writer that sends what is written as data frames of
// at most chunk bytes.
type DataWriter struct {
	C     *Conn
	Chunk int
	// Flush pushes every write to the peer at once (a bandwidth-limited
	// stream, whose small writes must not wait in the buffer).
	Flush bool
}

func (d DataWriter) Write(p []byte) (int, error) {
	chunk := d.Chunk
	if chunk <= 0 {
		chunk = 1 << 20
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		if err := d.C.WriteFrame(FrameData, p[:k], false); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	if d.Flush {
		return n, d.C.Flush()
	}
	return n, nil
}
