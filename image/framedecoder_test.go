package image

import (
	"bytes"
	"strings"
	"testing"
)

// framesOf writes tar (any bytes will do) as a payload of comp in frames of
// frameSize and returns the payload and its frame list.
func framesOf(t testing.TB, comp Comp, tar []byte, frameSize int) ([]byte, []Frame) {
	t.Helper()
	var payload bytes.Buffer
	pw, err := NewPayloadWriter(&payload, WriterOptions{Comp: comp, FrameSize: frameSize, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(tar); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	return payload.Bytes(), pw.Sum().Frames
}

func decoderInput(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/300)
	}
	return b
}

func TestFrameDecoder(t *testing.T) {
	tar := decoderInput(5000)
	for _, comp := range []Comp{CompZstd, CompGzip, CompNone} {
		t.Run(string(comp), func(t *testing.T) {
			payload, frames := framesOf(t, comp, tar, MinFrameSize*4)
			d, err := NewFrameDecoder(comp, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			stored := func(f Frame) []byte { return payload[f.Offset : f.Offset+f.Size] }
			for _, f := range frames {
				out, err := d.Decode(stored(f), f)
				if err != nil {
					t.Fatalf("frame %d: %v", f.Index, err)
				}
				if !bytes.Equal(out, tar[f.TarOffset:f.TarOffset+f.TarSize]) {
					t.Fatalf("frame %d: wrong tar bytes", f.Index)
				}
			}
			f := frames[1]
			short := f
			short.TarSize--
			flipped := append([]byte(nil), stored(f)...)
			flipped[len(flipped)/2] ^= 0x40
			for _, tc := range []struct {
				name string
				in   []byte
				f    Frame
				want string
			}{
				{"truncated", stored(f)[:f.Size-1], f, "the frame list says"},
				{"tar size", stored(f), short, "the frame list "},
				{"impossible", stored(f), Frame{TarSize: -1, Size: f.Size}, "impossible sizes"},
				{"too large", stored(f), Frame{TarSize: MaxFrameSize + 1, Size: f.Size}, "impossible sizes"},
			} {
				if _, err := d.Decode(tc.in, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
				}
			}
			if comp != CompNone {
				// zstd's content checksum or the gzip CRC-32 (or the data
				// itself) catches a flipped byte.
				if _, err := d.Decode(flipped, f); err == nil {
					t.Errorf("a flipped byte went unnoticed")
				}
			}
			// The decoder recovers from a bad frame.
			if out, err := d.Decode(stored(frames[0]), frames[0]); err != nil || !bytes.Equal(out, tar[:frames[0].TarSize]) {
				t.Errorf("after a bad frame: %v", err)
			}
		})
	}
	if _, err := NewFrameDecoder("xz", 0); err == nil || !strings.Contains(err.Error(), "unknown compression") {
		t.Errorf("xz: %v", err)
	}
}

// FuzzFrameDecoder: whatever bytes and frame-list entry it is given, the
// decoder never panics, and what it accepts is exactly the tar bytes the
// entry announces.
func FuzzFrameDecoder(f *testing.F) {
	tar := decoderInput(3000)
	comps := []Comp{CompZstd, CompGzip, CompNone}
	for k, comp := range comps {
		payload, frames := framesOf(f, comp, tar, MinFrameSize*2)
		for _, fr := range frames[:2] {
			f.Add(byte(k), payload[fr.Offset:fr.Offset+fr.Size], fr.TarSize, fr.Size)
		}
	}
	f.Add(byte(0), []byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, k byte, in []byte, tarSize, size int64) {
		comp := comps[int(k)%len(comps)]
		d, err := NewFrameDecoder(comp, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out, err := d.Decode(in, Frame{TarSize: tarSize, Size: size})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if int64(len(out)) != tarSize || int64(len(in)) != size {
			t.Fatalf("accepted %d stored bytes as %d tar bytes for an entry of %d/%d", len(in), len(out), size, tarSize)
		}
	})
}
