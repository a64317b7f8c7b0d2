package rebuild

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image/crypt"
)

// FuzzChunkReader: an encrypted payload with a byte changed or cut short
// is read by the rebuild's chunk reader either as the very plaintext that
// was encrypted or with an error (crypt.ErrDamaged once the key opened
// the header); never a panic, never other plaintext.
func FuzzChunkReader(f *testing.F) {
	id, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	recips := []string{id.Recipient().String()}
	f.Add([]byte("hello"), uint32(0), byte(0), uint32(0))
	f.Add(bytes.Repeat([]byte("tapir "), 30000), uint32(200), byte(1), uint32(0))
	f.Add(bytes.Repeat([]byte("x"), 2*crypt.ChunkSize), uint32(0), byte(0), uint32(crypt.ChunkSize+crypt.TagSize))
	f.Add([]byte{}, uint32(5), byte(0x80), uint32(1))
	f.Fuzz(func(t *testing.T, plain []byte, pos uint32, x byte, cut uint32) {
		if len(plain) > 4*crypt.ChunkSize {
			plain = plain[:4*crypt.ChunkSize]
		}
		var ct bytes.Buffer
		w, err := crypt.NewWriter(&ct, recips)
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
		hdr, err := crypt.ReadHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		key, err := crypt.Unwrap(hdr, int64(len(b)), []age.Identity{id})
		if err != nil {
			return
		}
		cr, err := newChunkReader(bytes.NewReader(b), key)
		if err != nil {
			return
		}
		out, err := io.ReadAll(cr)
		if err != nil {
			if !errors.Is(err, crypt.ErrDamaged) {
				t.Fatalf("error %v does not match ErrDamaged", err)
			}
			return
		}
		if !bytes.Equal(out, plain) {
			t.Fatalf("read %d bytes of other plaintext (changed byte %d ^ %#x, cut %d)", len(out), pos, x, cut)
		}
	})
}
