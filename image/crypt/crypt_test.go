package crypt

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func newKey(t testing.TB) (*age.X25519Identity, string) {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id, id.Recipient().String()
}

func seal(t testing.TB, plain []byte, recipients ...string) ([]byte, *Writer) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, recipients)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes, as a payload writer gives them.
	for p := plain; len(p) > 0; {
		n := min(len(p), 1+len(p)%70001)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w
}

// countingReaderAt counts the bytes read, to prove a read of the middle
// touches only the chunks that hold it.
type countingReaderAt struct {
	b    []byte
	read int64
	max  int64 // highest offset read
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.read += int64(len(p))
	if e := off + int64(len(p)); e > c.max {
		c.max = e
	}
	if off >= int64(len(c.b)) {
		return 0, io.EOF
	}
	n := copy(p, c.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Every size around the chunk boundaries, and random reads of each: what
// ReaderAt returns is the plaintext, the Writer's counts and sum are the
// ciphertext's, and the layout matches what age wrote.
func TestRoundTripProperty(t *testing.T) {
	id, r := newKey(t)
	_, r2 := newKey(t)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 17}
	for range 6 {
		sizes = append(sizes, rng.IntN(5*ChunkSize))
	}
	for _, size := range sizes {
		plain := make([]byte, size)
		for i := range plain {
			plain[i] = byte(rng.Uint32())
		}
		ct, w := seal(t, plain, r, r2)
		if w.Size() != int64(len(ct)) || w.PlainSize() != int64(size) {
			t.Fatalf("size %d: writer counted %d/%d, wrote %d", size, w.Size(), w.PlainSize(), len(ct))
		}
		if !bytes.HasPrefix(ct, w.Header()) {
			t.Fatalf("size %d: Header is not the payload's prefix", size)
		}
		if got := CipherSize(int64(len(w.Header())), int64(size)); got != int64(len(ct)) {
			t.Fatalf("size %d: CipherSize %d, age wrote %d", size, got, len(ct))
		}
		src := &countingReaderAt{b: ct}
		hdr, err := ReadHeader(src, int64(len(ct)))
		if err != nil || !bytes.Equal(hdr, w.Header()) {
			t.Fatalf("size %d: ReadHeader: %v", size, err)
		}
		k, err := Unwrap(hdr, int64(len(ct)), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		if k.Layout().PlainSize() != int64(size) {
			t.Fatalf("size %d: layout says %d plaintext bytes", size, k.Layout().PlainSize())
		}
		ra := NewReaderAt(src, k)
		for range 20 {
			if size == 0 {
				break
			}
			off := rng.IntN(size)
			n := 1 + rng.IntN(min(size-off, 3*ChunkSize))
			src.read, src.max = 0, 0
			p := make([]byte, n)
			if _, err := ra.ReadAt(p, int64(off)); err != nil {
				t.Fatalf("size %d: ReadAt(%d, %d): %v", size, off, n, err)
			}
			if !bytes.Equal(p, plain[off:off+n]) {
				t.Fatalf("size %d: ReadAt(%d, %d) differs", size, off, n)
			}
			_, count, co, cl, _ := k.Layout().Span(int64(off), int64(n))
			if src.read > cl || src.max > co+cl {
				t.Fatalf("size %d: ReadAt(%d, %d) read %d bytes up to %d; its %d chunks are %d bytes up to %d", size, off, n, src.read, src.max, count, cl, co+cl)
			}
		}
		// The whole stream, with the second recipient's key too.
		sr, err := NewReader(bytes.NewReader(ct), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(sr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: stream: %v", size, err)
		}
	}
}

func TestWrongKeyAndDamage(t *testing.T) {
	id, r := newKey(t)
	other, _ := newKey(t)
	plain := bytes.Repeat([]byte("tapir "), 40000)
	ct, w := seal(t, plain, r)
	if _, err := Unwrap(w.Header(), int64(len(ct)), []age.Identity{other}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
	if _, err := Unwrap(w.Header(), int64(len(ct)), nil); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("no key: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(ct), []age.Identity{other}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("stream, wrong key: %v", err)
	}
	k, err := Unwrap(w.Header(), int64(len(ct)), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte in every chunk in turn: the chunk is refused, by
	// ReaderAt and by the stream.
	hl := len(w.Header())
	for c := int64(0); c < k.Layout().Chunks(); c++ {
		bad := bytes.Clone(ct)
		bad[hl+int(c)*encChunk+7] ^= 0x20
		p := make([]byte, 10)
		_, err := NewReaderAt(bytes.NewReader(bad), k).ReadAt(p, c*ChunkSize)
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("chunk %d flipped: ReadAt %v, want ErrDamaged", c, err)
		}
		sr, err := NewReader(bytes.NewReader(bad), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(sr); !errors.Is(err, ErrDamaged) {
			t.Fatalf("chunk %d flipped: stream %v, want ErrDamaged", c, err)
		}
	}
	// Truncated at a chunk boundary: the layout or the last chunk's flag
	// tells.
	cut := ct[:hl+encChunk]
	if k2, err := Unwrap(w.Header(), int64(len(cut)), []age.Identity{id}); err == nil {
		if _, err := NewReaderAt(bytes.NewReader(cut), k2).ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrDamaged) {
			t.Fatalf("truncated: %v", err)
		}
	}
	// A flipped header byte: the header MAC refuses it.
	badHdr := bytes.Clone(w.Header())
	badHdr[len(badHdr)-NonceSize-5] ^= 1
	if _, err := Unwrap(badHdr, int64(len(ct)), []age.Identity{id}); err == nil {
		t.Fatal("a flipped header byte unwrapped")
	}
}

// The real age CLI reads what Writer writes, and ReaderAt reads what age
// writes.
func TestAgeCLIInterop(t *testing.T) {
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
	plain := make([]byte, 3*ChunkSize+999)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	ct, _ := seal(t, plain, r)
	cmd := exec.Command(ageBin, "-d", "-i", keyFile)
	cmd.Stdin = bytes.NewReader(ct)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("age -d: %v (%d bytes)", err, len(out))
	}
	cmd = exec.Command(ageBin, "-r", r)
	cmd.Stdin = bytes.NewReader(plain)
	byAge, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ReadIdentities(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := ReadHeader(bytes.NewReader(byAge), int64(len(byAge)))
	if err != nil {
		t.Fatal(err)
	}
	k, err := Unwrap(hdr, int64(len(byAge)), ids.List)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1000)
	if _, err := NewReaderAt(bytes.NewReader(byAge), k).ReadAt(p, 2*ChunkSize-500); err != nil || !bytes.Equal(p, plain[2*ChunkSize-500:2*ChunkSize+500]) {
		t.Fatalf("reading age's file: %v", err)
	}
}

func TestIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	id, r := newKey(t)
	f := filepath.Join(dir, "k")
	if err := WriteIdentityFile(f, IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := WriteIdentityFile(f, IdentityFileText(id, time.Now())); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("second write: %v", err)
	}
	fi, _ := os.Stat(f)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	ids, err := ReadIdentities(f)
	if err != nil || len(ids.Recipients) != 1 || ids.Recipients[0] != r {
		t.Fatalf("read: %v %v", ids, err)
	}
	os.Chmod(f, 0o644)
	if _, err := ReadIdentities(f); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
}

func TestPaperRoundTrip(t *testing.T) {
	id, r := newKey(t)
	p := Paper(id, time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	if !strings.Contains(p, r) || !strings.Contains(p, Fingerprint(r)) {
		t.Fatalf("paper lacks the recipient:\n%s", p)
	}
	back, err := ReadPaper(p)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ParseIdentities([]byte(back))
	if err != nil || ids.Recipients[0] != r {
		t.Fatalf("paper read back: %v", err)
	}
	// Lower case and other spacing, as a person types it.
	typed := strings.ToLower(strings.ReplaceAll(p, "  ", "   "))
	typed = strings.ReplaceAll(typed, "recipient:   "+strings.ToLower(r), "recipient: "+r)
	if _, err := ReadPaper(typed); err != nil {
		t.Fatalf("typed in lower case: %v", err)
	}
	// Every single mistyped character is found, and its line named.
	lines := strings.Split(p, "\n")
	for li, l := range lines {
		m := paperLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		for ci := strings.Index(l, ":") + 2; ci < len(l)-6; ci++ {
			if l[ci] == ' ' {
				continue
			}
			bad := []byte(l)
			if bad[ci] == 'Q' {
				bad[ci] = 'P'
			} else {
				bad[ci] = 'Q'
			}
			mod := append(append(append([]string{}, lines[:li]...), string(bad)), lines[li+1:]...)
			_, err := ReadPaper(strings.Join(mod, "\n"))
			if err == nil || !strings.Contains(err.Error(), "key line "+m[1]) {
				t.Fatalf("line %s char %d mistyped: %v", m[1], ci, err)
			}
		}
	}
	// A missing line.
	var short []string
	for _, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "2:") {
			short = append(short, l)
		}
	}
	if _, err := ReadPaper(strings.Join(short, "\n")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing line: %v", err)
	}
}

func TestParseRecipients(t *testing.T) {
	_, r1 := newKey(t)
	_, r2 := newKey(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "r.txt")
	os.WriteFile(f, []byte("# team key\n"+r2+"\n\n"+r1+"\n"), 0o644)
	got, err := ParseRecipients([]string{r1}, []string{f})
	if err != nil || len(got) != 2 || got[0] != r1 || got[1] != r2 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseRecipients([]string{"age1nope"}, nil); err == nil || !strings.Contains(err.Error(), "recipient 1") {
		t.Fatalf("bad recipient: %v", err)
	}
	os.WriteFile(f, []byte(r1+"\nAGE-SECRET-KEY-1XYZ\n"), 0o644)
	if _, err := ParseRecipients(nil, []string{f}); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "secret key") || strings.Contains(err.Error(), "XYZ") {
		t.Fatalf("secret key in a recipient file: %v", err)
	}
	if _, err := ParseRecipients(nil, nil); err == nil {
		t.Fatal("no recipients accepted")
	}
	if len(Fingerprint(r1)) != 16 || Fingerprint(r1) == Fingerprint(r2) {
		t.Fatal("fingerprints")
	}
}

func TestWriterNoSum(t *testing.T) {
	_, r := newKey(t)
	var a, b bytes.Buffer
	w, err := NewWriterWith(&a, []string{r}, WriterOptions{NoSum: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 100000))
	w.Close()
	if w.SHA256() != "" || w.Size() != int64(a.Len()) {
		t.Fatalf("NoSum: sum %q, size %d of %d", w.SHA256(), w.Size(), a.Len())
	}
	w2, _ := NewWriter(&b, []string{r})
	w2.Close()
	if len(w2.SHA256()) != 64 {
		t.Fatal("NewWriter has no sum")
	}
}
