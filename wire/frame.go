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
	FrameFrame byte = 'F' // a batch of FrameInfo (AppendFrameInfo)
)

// MaxFrame is the largest frame accepted; larger lengths are a protocol error.
const MaxFrame = 4 << 20

// ErrProtocol marks a malformed stream.
var ErrProtocol = errors.New("protocol error")

// Conn frames messages over a stream. Writes are safe from several
// goroutines; reads are for one goroutine.
type Conn struct {
	rw  io.ReadWriter
	r   *bufio.Reader
	wmu sync.Mutex
	w   *bufio.Writer
	buf []byte
}

// NewConn wraps rw (normally a *tls.Conn).
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{rw: rw, r: bufio.NewReaderSize(rw, 64<<10), w: bufio.NewWriterSize(rw, 64<<10)}
}

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
		return c.w.Flush()
	}
	return nil
}

// Flush pushes buffered frames to the peer.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
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
func (c *Conn) ReadFrame() (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes announced, limit %d", ErrProtocol, n, MaxFrame)
	}
	switch hdr[0] {
	case FrameMsg, FrameData, FrameIndex, FrameWarn, FrameFrame:
	default:
		return 0, nil, fmt.Errorf("%w: unknown frame type %q", ErrProtocol, hdr[0])
	}
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], b, nil
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
