package server

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
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

// TestCipherGate: a client-side encrypted payload passes only up to the
// checkpoints the agent announced (the age header with the first), a cut
// forgets what follows the last one, and checkpoints that go back, point
// past what came or elsewhere than a chunk boundary fail the stream.
func TestCipherGate(t *testing.T) {
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	enc, err := crypt.NewEncryptor(&ct, []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	var cks []wire.Checkpoint
	for i := range 6 {
		b := make([]byte, 40<<10+rnd.IntN(100<<10))
		enc.Write(b)
		st, _ := enc.State()
		cks = append(cks, wire.Checkpoint{Frames: int64(i + 1), Plain: st.Plain, Cipher: st.Cipher})
	}
	enc.Close()
	all := ct.Bytes()
	var got bytes.Buffer
	g := newCipherGate(64<<10, func(b []byte) error { got.Write(b); return nil })
	frames := 0
	g.onFrame = func() { frames++ }
	if err := g.Write(all[:cks[2].Cipher+100]); err != nil {
		t.Fatal(err)
	}
	if got.Len() != 0 {
		t.Fatalf("%d bytes passed before any checkpoint", got.Len())
	}
	for _, ck := range cks[:3] {
		if err := g.Checkpoint(ck); err != nil {
			t.Fatal(err)
		}
		if int64(got.Len()) != ck.Cipher || g.frames != ck.Frames || g.plain != ck.Plain {
			t.Fatalf("after %+v: passed %d, gate at %d frames, %d plain", ck, got.Len(), g.frames, g.plain)
		}
	}
	if frames != 3 {
		t.Fatalf("onFrame called %d times", frames)
	}
	bad := []wire.Checkpoint{
		cks[1], // goes back
		{Frames: 4, Plain: cks[3].Plain, Cipher: cks[3].Cipher}, // past what came
		{Frames: 4, Plain: cks[2].Plain + 10, Cipher: cks[2].Cipher + 5},
	}
	for _, ck := range bad {
		if err := g.Checkpoint(ck); err == nil {
			t.Fatalf("checkpoint %+v taken", ck)
		}
	}
	n, err := g.Cut()
	if err != nil || n != 100 {
		t.Fatalf("Cut: %d held, %v", n, err)
	}
	// The resume sends from the last checkpoint.
	g.Write(all[cks[2].Cipher:])
	for _, ck := range cks[3:] {
		if err := g.Checkpoint(ck); err != nil {
			t.Fatal(err)
		}
	}
	g.Flush()
	if !bytes.Equal(got.Bytes(), all) {
		t.Fatal("the gate changed the payload")
	}
	// Not an age file: passed on as it comes (the check refuses it).
	got.Reset()
	g = newCipherGate(64<<10, func(b []byte) error { got.Write(b); return nil })
	g.Write([]byte("plaintext, not age"))
	if err := g.Checkpoint(wire.Checkpoint{Frames: 1, Plain: 5, Cipher: 3}); err != nil || !g.off || got.String() != "plaintext, not age" {
		t.Fatalf("off %v, %v, passed %q", g.off, err, got.String())
	}
	// Beyond its bound it turns off.
	g = newCipherGate(64<<10, func(b []byte) error { return nil })
	for i := 0; i < 2000 && !g.off; i++ {
		g.Write(make([]byte, 64<<10))
	}
	if !g.off || len(g.buf) != 0 {
		t.Fatalf("no checkpoints: off %v, %d held", g.off, len(g.buf))
	}
}

// FuzzCipherGate: whatever ciphertext and checkpoints a hostile agent
// sends, the cipher gate passes a prefix of the bytes and holds the rest
// (together exactly what came), never panics and never holds more than
// its bound.
func FuzzCipherGate(f *testing.F) {
	id, _ := crypt.NewIdentity()
	var ct bytes.Buffer
	enc, _ := crypt.NewEncryptor(&ct, []string{id.Recipient().String()})
	enc.Write(make([]byte, 100<<10))
	st, _ := enc.State()
	enc.Close()
	f.Add(ct.Bytes(), wire.AppendCheckpoint(nil, wire.Checkpoint{Frames: 1, Plain: st.Plain, Cipher: st.Cipher}), uint16(500))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 x\n\n--- y\n0123456789abcdef"), []byte{1, 1, 1}, uint16(3))
	f.Fuzz(func(t *testing.T, in, cks []byte, step uint16) {
		var got bytes.Buffer
		g := newCipherGate(4<<10, func(b []byte) error { got.Write(b); return nil })
		n := int(step)%4096 + 1
		for p := in; len(p) > 0; {
			k := min(n, len(p))
			if err := g.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
			if len(cks) >= 3 {
				ck, err := wire.DecodeCheckpoint(cks[:3])
				cks = cks[3:]
				if err == nil {
					g.Checkpoint(ck)
				}
			}
			if len(g.buf) > g.maxHeld {
				t.Fatalf("the gate holds %d bytes", len(g.buf))
			}
			if int64(got.Len()) != g.payload && !g.off {
				t.Fatalf("passed %d bytes, counted %d", got.Len(), g.payload)
			}
		}
		if !bytes.Equal(append(got.Bytes(), g.buf...), in) {
			t.Fatal("passed and held bytes are not the input")
		}
	})
}
