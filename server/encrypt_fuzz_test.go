package server

import (
	"bytes"
	"testing"

	"github.com/tapir-backup/tapir/image/crypt"
)

// FuzzAgeHead: whatever a client sends as the start of a client-side
// encrypted stream, in whatever pieces, the server's reader of the age
// header never panics, keeps at most MaxHeader+NonceSize bytes, and takes
// a header only when crypt.HeaderLen accepts the same bytes.
func FuzzAgeHead(f *testing.F) {
	id, _ := crypt.NewIdentity()
	var ct bytes.Buffer
	w, _ := crypt.NewWriter(&ct, []string{id.Recipient().String()})
	w.Write(bytes.Repeat([]byte("x"), 1000))
	w.Close()
	f.Add(ct.Bytes(), uint16(7))
	f.Add(ct.Bytes()[:50], uint16(1))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 \n"), uint16(3))
	f.Add([]byte("(\xb5/\xfd plain zstd"), uint16(100))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		a := &ageHead{}
		step := int(cut)%4096 + 1
		var err error
		for off := 0; off < len(b) && err == nil && !a.done; off += step {
			err = a.add(b[off:min(len(b), off+step)])
			if len(a.buf) > crypt.MaxHeader+crypt.NonceSize {
				t.Fatalf("kept %d bytes", len(a.buf))
			}
		}
		if a.done {
			n, herr := crypt.HeaderLen(b)
			if herr != nil || n != len(a.hdr) || !bytes.Equal(a.hdr, b[:n]) {
				t.Fatalf("took a %d-byte header that HeaderLen says is %d, %v", len(a.hdr), n, herr)
			}
		}
		if err == nil && !a.done {
			_ = a.endErr()
		}
	})
}
