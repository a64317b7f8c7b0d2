package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// frameGate lets only whole frames of a payload through to the holding
// disk, the check and the taper, so that what they have taken is always
// a prefix of the image that ends on a frame: a stream cut for a
// transport reason resumes there (wire.Resume), and nothing downstream
// ever has to take bytes back. The frames are zstd frames (their sizes
// read from their block headers as the bytes arrive) or, for a payload
// sent uncompressed, frameSize bytes each. What follows the last frame
// (the seek table, a skippable frame) is held until the stream's end.
//
// Its memory is bounded (promise 8): a frame longer than maxUnit, a tail
// longer than maxTail or bytes that are not zstd frames turn the gate
// off: it then passes everything through as it comes, and the dump can
// no longer resume (a cut starts it over).
type frameGate struct {
	out       func([]byte) error
	zstd      bool  // zstd frames; else frameSize-byte frames
	frameSize int64 // tar bytes per frame (the uncompressed payload's frame length)
	maxUnit   int

	buf     []byte
	tail    bool  // the frames have ended: everything is held until flush
	off     bool  // passing through: no resume
	frames  int64 // whole frames passed
	pending int64 // whole frames found by whole, not yet passed
	payload int64 // payload bytes passed (whole frames)
	// onFrame, when set, is called after each whole frame passed; err is
	// what it failed with, for the dumper.
	onFrame func()
	err     error

	// A client-side encrypted payload (newCipherGate): the frames are
	// inside the age file, so the agent announces where they end
	// (wire.Checkpoint) and the gate passes ciphertext up to the last
	// announced resume point. payload counts ciphertext then, plain the
	// plaintext of the age file those frames end at.
	cipher  bool
	maxHeld int
	hdrLen  int64
	plain   int64
}

// maxTail bounds what the gate holds after the last frame (a seek table
// of a million frames is 9 MiB).
const maxTail = 64 << 20

// newFrameGate makes a gate for a payload of zstd frames (zstd true) or
// of uncompressed frames of frameSize bytes.
func newFrameGate(zstd bool, frameSize int64, out func([]byte) error) *frameGate {
	return &frameGate{out: out, zstd: zstd, frameSize: frameSize, maxUnit: int(frameSize + frameSize/64 + 1<<20)}
}

// newCipherGate makes a gate for a client-side encrypted payload of
// frames of frameSize tar bytes: it holds what arrives past the last
// checkpoint, at most one frame and a tail (the seek table).
func newCipherGate(frameSize int64, out func([]byte) error) *frameGate {
	g := newFrameGate(false, frameSize, out)
	g.cipher, g.maxHeld = true, g.maxUnit+maxTail
	return g
}

// Write takes payload bytes as they arrive.
func (g *frameGate) Write(b []byte) error {
	if g.off {
		return g.out(b)
	}
	if g.cipher {
		g.buf = append(g.buf, b...)
		if len(g.buf) > g.maxHeld {
			return g.turnOff()
		}
		return nil
	}
	if len(g.buf) == 0 && !g.tail {
		// The common case: whole frames at the start of b go out without
		// a copy.
		n := g.whole(b)
		if n > 0 {
			if err := g.pass(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		if g.off {
			return g.out(b)
		}
	}
	if len(b) == 0 {
		return nil
	}
	g.buf = append(g.buf, b...)
	if !g.tail {
		n := g.whole(g.buf)
		if n > 0 {
			if err := g.pass(g.buf[:n]); err != nil {
				return err
			}
			g.buf = append(g.buf[:0], g.buf[n:]...)
		}
	}
	if !g.off && (!g.tail && len(g.buf) > g.maxUnit || g.tail && len(g.buf) > maxTail) {
		g.off = true
	}
	if g.off {
		b := g.buf
		g.buf = nil
		return g.out(b)
	}
	return nil
}

// pass sends whole frames downstream and counts them (pass is called
// with whole frames only; whole counted them in g.pending).
func (g *frameGate) pass(b []byte) error {
	if err := g.out(b); err != nil {
		return err
	}
	g.payload += int64(len(b))
	g.frames += g.pending
	g.pending = 0
	if g.onFrame != nil {
		g.onFrame()
	}
	return g.err
}

// whole is the length of the whole frames at the start of b (it sets
// tail at a skippable frame, off at bytes that are not a frame).
func (g *frameGate) whole(b []byte) int {
	n := 0
	for !g.tail && !g.off {
		var l int
		if g.zstd {
			var ok bool
			l, ok = g.zstdFrame(b[n:])
			if !ok || l == 0 {
				break
			}
		} else {
			if int64(len(b)-n) < g.frameSize {
				break
			}
			l = int(g.frameSize)
		}
		n += l
		g.pending++
	}
	return n
}

// zstdFrame reads the frame at the start of b: its length when b holds
// all of it (ok), 0 and ok when more bytes are needed. A skippable frame
// sets tail (the frames have ended), bytes that are not a zstd frame set
// off.
func (g *frameGate) zstdFrame(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, true
	}
	magic := binary.LittleEndian.Uint32(b)
	if magic&0xFFFFFFF0 == 0x184D2A50 {
		g.tail = true
		return 0, false
	}
	if magic != 0xFD2FB528 {
		g.off = true
		return 0, false
	}
	if len(b) < 5 {
		return 0, true
	}
	fhd := b[4]
	if fhd&0x08 != 0 {
		g.off = true
		return 0, false
	}
	single := fhd&0x20 != 0
	off := 5
	if !single {
		off++
	}
	off += []int{0, 1, 2, 4}[fhd&3]
	switch fcs := fhd >> 6; {
	case fcs == 0 && single:
		off++
	case fcs == 1:
		off += 2
	case fcs == 2:
		off += 4
	case fcs == 3:
		off += 8
	}
	for {
		if off > g.maxUnit {
			g.off = true
			return 0, false
		}
		if len(b) < off+3 {
			return 0, true
		}
		h := uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16
		last, typ, size := h&1 != 0, (h>>1)&3, int(h>>3)
		off += 3
		switch typ {
		case 1: // RLE: one byte
			off++
		case 3:
			g.off = true
			return 0, false
		default:
			off += size
		}
		if last {
			break
		}
	}
	if fhd&0x04 != 0 {
		off += 4
	}
	if off > g.maxUnit {
		g.off = true
		return 0, false
	}
	if len(b) < off {
		return 0, true
	}
	return off, true
}

// turnOff passes what the gate holds and everything after it as it
// comes: no resume.
func (g *frameGate) turnOff() error {
	g.off = true
	b := g.buf
	g.buf = nil
	if len(b) == 0 {
		return nil
	}
	return g.out(b)
}

// Checkpoint takes a resume point the agent announced for a client-side
// encrypted payload: it passes the ciphertext up to it. A checkpoint that
// goes back, points past the bytes received or elsewhere than the end of
// the age chunks sealed before its plaintext offset is an error (the
// agent's word does not hold: the dump fails).
func (g *frameGate) Checkpoint(ck wire.Checkpoint) error {
	if !g.cipher {
		return errors.New("a checkpoint record in a stream that is not encrypted by the agent")
	}
	if g.off {
		return nil
	}
	if g.hdrLen == 0 {
		hl, err := crypt.HeaderLen(g.buf)
		if err != nil {
			// Not an age file: passed on, the check refuses it.
			return g.turnOff()
		}
		g.hdrLen = int64(hl)
	}
	if ck.Frames <= g.frames || ck.Plain <= g.plain || ck.Frames-g.frames > ck.Plain-g.plain || ck.Cipher < g.payload || ck.Cipher-g.payload > int64(len(g.buf)) ||
		ck.Cipher != crypt.CheckpointOffset(g.hdrLen, ck.Plain) {
		return fmt.Errorf("a checkpoint (%d frames, plaintext offset %d, ciphertext offset %d) that does not follow the one before it (%d frames, %d, %d) or the %d ciphertext bytes received",
			ck.Frames, ck.Plain, ck.Cipher, g.frames, g.plain, g.payload, g.payload+int64(len(g.buf)))
	}
	n := ck.Cipher - g.payload
	if n > 0 {
		if err := g.out(g.buf[:n]); err != nil {
			return err
		}
		g.buf = append(g.buf[:0], g.buf[n:]...)
	}
	g.payload, g.frames, g.plain = ck.Cipher, ck.Frames, ck.Plain
	if g.onFrame != nil {
		g.onFrame()
	}
	return g.err
}

// Flush passes what the gate holds (the stream has ended).
func (g *frameGate) Flush() error {
	b := g.buf
	g.buf = nil
	g.tail = true
	if len(b) == 0 {
		return nil
	}
	return g.out(b)
}

// Cut forgets what the gate holds of a cut stream: the resume sends it
// again. It returns how many bytes that was. A gate that is off cannot
// resume.
func (g *frameGate) Cut() (int64, error) {
	if g.off {
		return 0, errors.New("the stream could not be followed frame by frame")
	}
	n := int64(len(g.buf))
	g.buf, g.tail, g.pending = g.buf[:0], false, 0
	return n, nil
}
