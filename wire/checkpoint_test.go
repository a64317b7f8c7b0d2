package wire

import (
	"bytes"
	"testing"
)

func TestCheckpointRoundTrip(t *testing.T) {
	for _, c := range []Checkpoint{{}, {Frames: 1, Plain: 65536, Cipher: 200}, {Frames: 1 << 40, Plain: 1 << 61, Cipher: 1 << 62}} {
		got, err := DecodeCheckpoint(AppendCheckpoint(nil, c))
		if err != nil || got != c {
			t.Fatalf("%+v: got %+v, %v", c, got, err)
		}
	}
	if _, err := DecodeCheckpoint(append(AppendCheckpoint(nil, Checkpoint{Frames: 1}), 0)); err == nil {
		t.Fatal("stray byte accepted")
	}
	if _, err := DecodeCheckpoint([]byte{1, 2}); err == nil {
		t.Fatal("truncated record accepted")
	}
}

// FuzzDecodeCheckpoint: any bytes decode to a checkpoint in range that
// encodes back to them, or to an error.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(AppendCheckpoint(nil, Checkpoint{Frames: 3, Plain: 3 << 20, Cipher: 3<<20 + 200}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return
		}
		if c.Frames < 0 || c.Plain < 0 || c.Cipher < 0 {
			t.Fatalf("negative: %+v", c)
		}
		if e := AppendCheckpoint(nil, c); !bytes.Equal(e, b) {
			// Non-minimal uvarints decode too; the value round-trips.
			if c2, err := DecodeCheckpoint(e); err != nil || c2 != c {
				t.Fatalf("round trip %+v: %+v %v", c, c2, err)
			}
		}
	})
}
