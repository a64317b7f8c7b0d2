package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
)

// FuzzChunkReader: an encrypted payload with a byte changed or cut short
// is read by the chunk reader either as the very plaintext that
// was encrypted or with an error (ErrDamaged once the key opened
// the header); never a panic, never other plaintext.
func FuzzChunkReader(f *testing.F) {
	id, err := NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	recips := []string{id.Recipient().String()}
	f.Add([]byte("hello"), uint32(0), byte(0), uint32(0))
	f.Add(bytes.Repeat([]byte("tapir "), 30000), uint32(200), byte(1), uint32(0))
	f.Add(bytes.Repeat([]byte("x"), 2*ChunkSize), uint32(0), byte(0), uint32(ChunkSize+TagSize))
	f.Add([]byte{}, uint32(5), byte(0x80), uint32(1))
	f.Fuzz(func(t *testing.T, plain []byte, pos uint32, x byte, cut uint32) {
		if len(plain) > 4*ChunkSize {
			plain = plain[:4*ChunkSize]
		}
		var ct bytes.Buffer
		w, err := NewWriter(&ct, recips)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b := ct.Bytes()
		if len(b) > 0 {
			b[int(pos)%len(b)] ^= x
		}
		if cut > 0 {
			b = b[:len(b)-int(cut)%len(b)]
		}
		hdr, err := ReadHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		key, err := Unwrap(hdr, int64(len(b)), []age.Identity{id})
		if err != nil {
			return
		}
		cr, err := NewChunkReader(bytes.NewReader(b), key)
		if err != nil {
			return
		}
		out, err := io.ReadAll(cr)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v does not match ErrDamaged", err)
			}
			return
		}
		if !bytes.Equal(out, plain) {
			t.Fatalf("read %d bytes of other plaintext (changed byte %d ^ %#x, cut %d)", len(out), pos, x, cut)
		}
	})
}
