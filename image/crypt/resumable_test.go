package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
)

// encryptResumed encrypts plain with an Encryptor, saving its state after
// every write, and at each of the cut points (plaintext offsets at which
// a write ended) throws away what followed the saved state and continues
// from it with a new Encryptor, as an agent resumed after a cut does. It
// returns the age file as the destination holds it.
func encryptResumed(t *testing.T, rng *rand.Rand, plain []byte, recipients []string, cuts int) ([]byte, *Encryptor) {
	t.Helper()
	var out bytes.Buffer
	e, err := NewEncryptor(&out, recipients)
	if err != nil {
		t.Fatal(err)
	}
	key, hdr := e.FileKey(), e.Header()
	var states []EncState
	for p, done := plain, 0; ; {
		n := min(len(p), rng.IntN(3*ChunkSize))
		if _, err := e.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p, done = p[n:], done+n
		st, err := e.State()
		if err != nil {
			t.Fatal(err)
		}
		if st.Cipher != CheckpointOffset(int64(len(hdr)), st.Plain) || st.Plain != int64(done) || st.Cipher > int64(out.Len()) {
			t.Fatalf("state after %d bytes: %+v, %d written", done, st, out.Len())
		}
		states = append(states, st)
		if cuts > 0 && len(states) > 1 && rng.IntN(4) == 0 {
			cuts--
			// Go back to an earlier state: the destination keeps only
			// the ciphertext before it (the server holds that much).
			k := rng.IntN(len(states))
			b, _ := states[k].MarshalBinary()
			states = states[:k+1]
			back, err := ParseEncState(b)
			if err != nil {
				t.Fatal(err)
			}
			out.Truncate(int(back.Cipher))
			if e, err = ResumeEncryptor(&out, key, hdr, back); err != nil {
				t.Fatal(err)
			}
			p = plain[back.Plain:]
			done = int(back.Plain)
			continue
		}
		if len(p) == 0 {
			break
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), e
}

// Property: whatever the plaintext and wherever the stream is cut and
// resumed from a saved state, the result is the age file filippo.io/age
// decrypts to the plaintext, of the size CipherSize says, and the
// resumed encryptor's size and SHA-256 are the whole file's.
func TestEncryptorResumeProperty(t *testing.T) {
	id, r := newKey(t)
	_, r2 := newKey(t)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 5*ChunkSize + 77}
	for range 12 {
		sizes = append(sizes, rng.IntN(9*ChunkSize))
	}
	for i, size := range sizes {
		plain := make([]byte, size)
		for j := range plain {
			plain[j] = byte(rng.Uint32())
		}
		rs := []string{r}
		if i%2 == 1 {
			rs = append(rs, r2)
		}
		ct, e := encryptResumed(t, rng, plain, rs, 1+i%5)
		if int64(len(ct)) != CipherSize(int64(len(e.Header())), int64(size)) || e.Size() != int64(len(ct)) {
			t.Fatalf("size %d: %d ciphertext bytes, Size %d, CipherSize %d", size, len(ct), e.Size(), CipherSize(int64(len(e.Header())), int64(size)))
		}
		sum := sha256.Sum256(ct)
		if e.SHA256() != hex.EncodeToString(sum[:]) {
			t.Fatalf("size %d: SHA256 %s, the file's %x", size, e.SHA256(), sum)
		}
		d, err := age.Decrypt(bytes.NewReader(ct), id)
		if err != nil {
			t.Fatalf("size %d: age.Decrypt: %v", size, err)
		}
		got, err := io.ReadAll(d)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: decrypted %d bytes, err %v", size, len(got), err)
		}
		// tapir's own reader and header parser agree.
		hdr, err := ReadHeader(bytes.NewReader(ct), int64(len(ct)))
		if err != nil || !bytes.Equal(hdr, e.Header()) {
			t.Fatalf("size %d: ReadHeader: %v", size, err)
		}
		k, err := Unwrap(hdr, int64(len(ct)), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			buf := make([]byte, size)
			if _, err := NewReaderAt(bytes.NewReader(ct), k).ReadAt(buf, 0); err != nil || !bytes.Equal(buf, plain) {
				t.Fatalf("size %d: ReaderAt: %v", size, err)
			}
		}
	}
}

// The real age CLI decrypts a resumed stream.
func TestEncryptorAgeCLI(t *testing.T) {
	ageBin, err := exec.LookPath("age")
	if err != nil {
		t.Skip("age CLI not installed (scripts/test installs it)")
	}
	dir := t.TempDir()
	id, r := newKey(t)
	keyFile := filepath.Join(dir, "key.txt")
	if err := WriteIdentityFile(keyFile, IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	_, r2 := newKey(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 10, ChunkSize, 3*ChunkSize + 999, 7 * ChunkSize} {
		plain := make([]byte, size)
		for j := range plain {
			plain[j] = byte(rng.Uint32())
		}
		ct, _ := encryptResumed(t, rng, plain, []string{r2, r}, 3)
		cmd := exec.Command(ageBin, "-d", "-i", keyFile)
		cmd.Stdin = bytes.NewReader(ct)
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("size %d: age -d: %v (%d bytes)", size, err, len(out))
		}
	}
}

// A state that does not fit the header is refused, not continued.
func TestResumeEncryptorRefuses(t *testing.T) {
	_, r := newKey(t)
	var out bytes.Buffer
	e, err := NewEncryptor(&out, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	e.Write(make([]byte, ChunkSize+5))
	st, _ := e.State()
	bad := []EncState{
		{Plain: st.Plain, Cipher: st.Cipher + 1, Sum: st.Sum, Pending: st.Pending},
		{Plain: st.Plain, Cipher: st.Cipher, Sum: st.Sum, Pending: st.Pending[:4]},
		{Plain: st.Plain, Cipher: st.Cipher, Sum: []byte("junk"), Pending: st.Pending},
	}
	for i, s := range bad {
		if _, err := ResumeEncryptor(io.Discard, e.FileKey(), e.Header(), s); err == nil {
			t.Errorf("state %d resumed", i)
		}
	}
	if _, err := ResumeEncryptor(io.Discard, e.FileKey()[:3], e.Header(), st); err == nil {
		t.Error("a short file key resumed")
	}
}

func FuzzParseEncState(f *testing.F) {
	s := EncState{Plain: 70000, Cipher: 65700, Sum: make([]byte, 108), Pending: make([]byte, 70000-ChunkSize)}
	b, _ := s.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseEncState(b)
		if err != nil {
			return
		}
		if len(s.Pending) > ChunkSize || len(s.Sum) > maxStateSum || s.Plain < 0 || s.Cipher < 0 {
			t.Fatalf("parsed out of bounds: %d pending, %d sum", len(s.Pending), len(s.Sum))
		}
		b2, _ := s.MarshalBinary()
		if s2, err := ParseEncState(b2); err != nil || s2.Plain != s.Plain || !bytes.Equal(s2.Pending, s.Pending) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// A post-quantum recipient (its stanza body spans several lines) works
// as with age, and is not mixed with a classic one.
func TestEncryptorPostQuantum(t *testing.T) {
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("post-quantum "), 20000)
	ct, _ := encryptResumed(t, rand.New(rand.NewPCG(7, 8)), plain, []string{pq.Recipient().String()}, 2)
	d, err := age.Decrypt(bytes.NewReader(ct), pq)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypted %d bytes: %v", len(got), err)
	}
	if _, err := HeaderLen(ct); err != nil {
		t.Fatalf("the header is not age's canonical form: %v", err)
	}
	_, classic := newKey(t)
	if _, err := NewEncryptor(io.Discard, []string{pq.Recipient().String(), classic}); err == nil {
		t.Fatal("post-quantum and classic recipients mixed")
	}
}
