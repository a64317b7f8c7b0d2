package cryptwire

import (
	"encoding/json"
	"testing"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// FuzzSealed: whatever a sealed message says, decoding it strictly and
// checking it against the payload's layout never panics, and a message
// that passes names chunks inside the payload whose ciphertext is what
// is announced (less a carried chunk), its frame inside the plaintext.
func FuzzSealed(f *testing.F) {
	f.Add([]byte(`{"sealed":{"image":0,"frame":3,"tar_offset":0,"tar_size":100,"size":50,"offset":70000,"cipher":65552}}`), int64(200), int64(300000))
	f.Add([]byte(`{"sealed":{"image":0,"frame":1,"size":10,"offset":5,"carry":true,"cipher":0}}`), int64(150), int64(1000))
	f.Add([]byte(`{"chunk":{"image":0,"frame":0,"tar_offset":0,"tar_size":1,"size":1}}`), int64(100), int64(5000))
	f.Fuzz(func(t *testing.T, msg []byte, headerLen, size int64) {
		var m Msg
		if err := wire.DecodeMsg(msg, &m); err != nil || m.Sealed == nil {
			return
		}
		l, err := crypt.NewLayout(headerLen, size)
		if err != nil {
			return
		}
		s := *m.Sealed
		sp, err := SpanOf(l, s)
		if err != nil {
			return
		}
		full := int64(crypt.ChunkSize + crypt.TagSize)
		if sp.Off != l.HeaderLen+sp.First*full || sp.Off+sp.Len > l.Size || sp.Count < 1 || sp.First+sp.Count > l.Chunks() {
			t.Fatalf("span %+v outside the payload %+v", sp, l)
		}
		if sp.Send != s.Cipher || sp.Send < 0 || sp.Send > sp.Len || sp.Tail <= 0 || sp.Tail > sp.Len {
			t.Fatalf("span %+v for %+v", sp, s)
		}
		if s.Offset < sp.First*crypt.ChunkSize || s.Offset+s.Size > (sp.First+sp.Count)*crypt.ChunkSize || s.Offset+s.Size > l.PlainSize() {
			t.Fatalf("frame %d..%d not in chunks %+v", s.Offset, s.Offset+s.Size, sp)
		}
		if sp.Len > MaxCipher(s.Size) {
			t.Fatalf("span of %d bytes for a frame of %d: over MaxCipher", sp.Len, s.Size)
		}
		// What passes encodes back to the same message.
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var again Msg
		if err := wire.DecodeMsg(b, &again); err != nil || *again.Sealed != s {
			t.Fatalf("re-encoded %s: %v", b, err)
		}
	})
}

// TestImageJSON: an encrypted image's fields ride along the wire type's,
// and a plain reply decodes as before.
func TestImageJSON(t *testing.T) {
	r := Reply{IndexReply: wire.IndexReply{OK: true, Count: 2}, Images: []Image{{ImageInfo: wire.ImageInfo{Datestamp: "20261203010000", Level: 1},
		Encryption: "age", Recipients: []string{"0123456789abcdef"}, CryptHeader: []byte("age-encryption.org/v1\n")}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got Reply
	if err := wire.DecodeMsg(b, &got); err != nil || len(got.Images) != 1 || !got.Images[0].Encrypted() || got.Images[0].Level != 1 || string(got.Images[0].CryptHeader) != "age-encryption.org/v1\n" || got.Count != 2 {
		t.Fatalf("%s decoded as %+v (%v)", b, got, err)
	}
	var plain wire.IndexReply
	if err := wire.DecodeMsg(b, &plain); err == nil {
		t.Errorf("a plain wire.IndexReply took an encrypted image's fields: %s", b)
	}
	old, _ := json.Marshal(wire.IndexReply{OK: true, Images: []wire.ImageInfo{{Datestamp: "20261203010000"}}})
	var fresh Reply
	if err := wire.DecodeMsg(old, &fresh); err != nil || fresh.Images[0].Encrypted() || fresh.Images[0].Datestamp != "20261203010000" {
		t.Errorf("a reply without encryption: %+v %v", fresh, err)
	}
}
