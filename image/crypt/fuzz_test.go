package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"filippo.io/age"
)

// The encrypted-payload reader on hostile bytes: a header and ciphertext
// from anywhere (a damaged volume, a hostile client's image) never make it
// panic, read outside the payload or return bytes that were not encrypted
// to the key.
func FuzzEncryptedPayload(f *testing.F) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	r := id.Recipient().String()
	plain := bytes.Repeat([]byte("0123456789abcdef"), 9000)
	var ct bytes.Buffer
	w, err := NewWriter(&ct, []string{r})
	if err != nil {
		f.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	good := ct.Bytes()
	f.Add(good, int64(0), int64(100), uint16(0))
	f.Add(good, int64(ChunkSize-3), int64(10), uint16(len(w.Header())+5))
	f.Add(good[:len(w.Header())+200], int64(5), int64(50), uint16(0))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\nAAAA\n--- AAAA\n0123456789abcdef"), int64(0), int64(1), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, off, n int64, flip uint16) {
		if len(b) > 0 {
			b = bytes.Clone(b)
			b[int(flip)%len(b)] ^= byte(flip >> 8)
		}
		src := bytes.NewReader(b)
		hdr, err := ReadHeader(src, int64(len(b)))
		if err != nil {
			return
		}
		k, err := Unwrap(hdr, int64(len(b)), []age.Identity{id})
		if err != nil {
			return
		}
		ra := NewReaderAt(src, k)
		if n < 0 || n > 1<<20 {
			n = 1 << 10
		}
		p := make([]byte, n)
		m, err := ra.ReadAt(p, off)
		if err == nil {
			// Whatever authenticated is the plaintext the key's owner wrote.
			if off < 0 || off+n > int64(len(plain)) || !bytes.Equal(p[:m], plain[off:off+int64(m)]) {
				t.Fatalf("ReadAt(%d, %d) returned bytes that are not the plaintext", off, n)
			}
		} else if m > int(n) {
			t.Fatalf("ReadAt returned %d of %d bytes", m, n)
		}
		if sr, err := NewReader(bytes.NewReader(b), []age.Identity{id}); err == nil {
			got, err := io.ReadAll(sr)
			if err == nil && !bytes.Equal(got, plain) {
				t.Fatal("the stream returned bytes that are not the plaintext")
			}
			if err != nil && !errors.Is(err, ErrDamaged) {
				t.Fatalf("stream error %v does not say the payload is damaged", err)
			}
		}
	})
}

func FuzzReadPaper(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	f.Add(Paper(id, time.Time{}))
	f.Add(" 1: AGE-S ECRET  0000\n")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ReadPaper(s)
		if err == nil {
			if _, err := ParseIdentities([]byte(out)); err != nil {
				t.Fatalf("ReadPaper accepted a paper whose identity does not parse: %v", err)
			}
		}
	})
}
