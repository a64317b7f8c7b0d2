package server

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/tapir-backup/tapir/image"
)

// TestFrameGate: whatever pieces a payload arrives in, the gate passes
// exactly its whole frames (counted) and holds the rest; a cut forgets
// what it held, Flush passes it.
func TestFrameGate(t *testing.T) {
	in := make([]byte, 300<<10)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range in {
		in[i] = byte(rnd.IntN(4)) // compressible, not trivially
	}
	for _, comp := range []image.Comp{image.CompZstd, image.CompNone} {
		var payload bytes.Buffer
		pw, err := image.NewPayloadWriter(&payload, image.WriterOptions{Comp: comp, FrameSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(in)
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
		sum := pw.Sum()
		p := payload.Bytes()
		var got bytes.Buffer
		g := newFrameGate(comp == image.CompZstd, 64<<10, func(b []byte) error { got.Write(b); return nil })
		var ends []int64
		g.onFrame = func() { ends = append(ends, g.payload) }
		for len(p) > 0 {
			n := min(len(p), 1+rnd.IntN(100<<10))
			if err := g.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
			// Always a prefix ending on a frame.
			if g.frames > 0 && g.payload != sum.Frames[g.frames-1].Offset+sum.Frames[g.frames-1].Size {
				t.Fatalf("%s: %d frames passed, %d bytes", comp, g.frames, g.payload)
			}
			if int64(got.Len()) != g.payload {
				t.Fatalf("%s: passed %d bytes, counted %d", comp, got.Len(), g.payload)
			}
		}
		whole := int64(len(sum.Frames))
		if comp == image.CompNone {
			whole-- // the short last frame waits for the end
		}
		if g.frames != whole || g.off {
			t.Fatalf("%s: %d frames of %d passed (off %v)", comp, g.frames, len(sum.Frames), g.off)
		}
		if err := g.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), payload.Bytes()) {
			t.Fatalf("%s: the gate changed the payload", comp)
		}
	}
	// Bytes that are not zstd frames turn it off: everything passes.
	var got bytes.Buffer
	g := newFrameGate(true, 64<<10, func(b []byte) error { got.Write(b); return nil })
	g.Write([]byte("not a zstd frame at all"))
	if !g.off || got.String() != "not a zstd frame at all" {
		t.Fatalf("off %v, passed %q", g.off, got.String())
	}
	if _, err := g.Cut(); err == nil {
		t.Fatal("a gate that is off can be cut and resumed")
	}
	// A frame announcing more than the bound turns it off too, holding
	// at most the bound.
	g = newFrameGate(true, 64<<10, func(b []byte) error { return nil })
	hdr := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, 0xff, 0xff, 0x0f} // raw block of ~2 MiB, not last
	g.Write(hdr)
	for i := 0; i < 40 && !g.off; i++ {
		g.Write(make([]byte, 64<<10))
	}
	if !g.off || len(g.buf) > g.maxUnit {
		t.Fatalf("a huge frame: off %v, %d bytes held", g.off, len(g.buf))
	}
}

// FuzzFrameGate: whatever an agent sends as a payload, in whatever
// pieces, the gate passes a prefix of it and holds the rest (together
// exactly what came), never panics and never holds more than its bounds.
func FuzzFrameGate(f *testing.F) {
	var payload bytes.Buffer
	pw, _ := image.NewPayloadWriter(&payload, image.WriterOptions{FrameSize: 4 << 10})
	pw.Write(bytes.Repeat([]byte("tapir frames "), 3000))
	pw.Close()
	f.Add(payload.Bytes(), uint16(1000), false)
	f.Add([]byte("\x28\xb5\x2f\xfd\x00\x50\x01\x00\x00"), uint16(3), true)
	f.Add([]byte("\x5e\x2a\x4d\x18\xff\xff\xff\xff"), uint16(1), false)
	f.Fuzz(func(t *testing.T, in []byte, step uint16, none bool) {
		var got bytes.Buffer
		g := newFrameGate(!none, 4<<10, func(b []byte) error { got.Write(b); return nil })
		n := int(step)%4096 + 1
		for p := in; len(p) > 0; {
			k := min(n, len(p))
			if err := g.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
			if len(g.buf) > g.maxUnit+maxTail {
				t.Fatalf("the gate holds %d bytes", len(g.buf))
			}
		}
		if int64(got.Len()) < g.payload || !bytes.Equal(append(got.Bytes(), g.buf...), in) {
			t.Fatal("passed and held bytes are not the input")
		}
	})
}
