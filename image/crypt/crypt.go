package crypt

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Name is the value of an image header's encryption key for an age payload.
const Name = "age"

// The STREAM layout of an age payload (age-encryption.org/v1).
const (
	ChunkSize = 64 << 10 // plaintext bytes per chunk (the last one fewer)
	TagSize   = 16       // the Poly1305 tag after each chunk
	NonceSize = 16       // the nonce between the age header and the first chunk
	// MaxHeader bounds the age header (recipient stanzas and MAC) tapir
	// reads before the nonce: far above what a few dozen recipients need.
	MaxHeader = 64 << 10
	encChunk  = ChunkSize + TagSize
)

// ErrWrongKey is matched (errors.Is) by the error of Unwrap when none of
// the identities is a recipient of the payload.
var ErrWrongKey = errors.New("no identity given is a recipient of this image")

// ErrDamaged is matched by the error of opening a chunk whose bytes are not
// what was encrypted (a changed byte, a truncation, a chunk out of place).
var ErrDamaged = errors.New("encrypted payload damaged")

// ParseRecipients reads the recipients of a dumptype: age recipient strings
// (age1…) given in the configuration and recipient files (one per line,
// # comments, as `age -R` reads them). It returns them in order, each once.
// An error names the recipient or the file and line.
func ParseRecipients(recipients, files []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(s, where string) error {
		if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
			return fmt.Errorf("%s is a secret key (an identity), not a recipient: the server must never hold it; put its public key (the \"# public key: age1…\" line of the key file, or tapir key new's output) here, and keep the secret key away from the server", where)
		}
		if _, err := parseRecipient(s); err != nil {
			return fmt.Errorf("%s: %q is not an age recipient (want age1…): %v", where, clip(s), err)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
		return nil
	}
	for i, r := range recipients {
		if err := add(strings.TrimSpace(r), fmt.Sprintf("recipient %d", i+1)); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		b, err := readSmallFile(f, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("recipient file %s: %v", f, err)
		}
		n := 0
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, fmt.Sprintf("recipient file %s line %d", f, i+1)); err != nil {
				return nil, err
			}
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("recipient file %s holds no recipient: put one age1… per line", f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no recipients: give recipients = [\"age1…\"] or recipient_files")
	}
	return out, nil
}

func parseRecipient(s string) (age.Recipient, error) {
	if !strings.HasPrefix(s, "age1") {
		return nil, errors.New("unknown recipient type")
	}
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, errors.New("want exactly one recipient")
	}
	return rs[0], nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Fingerprint names a recipient in an image header, a report or the
// catalog: the first 16 hex digits of the SHA-256 of its string.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:8])
}

// Fingerprints returns the fingerprints of recipients, sorted, each once.
func Fingerprints(recipients []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range recipients {
		f := Fingerprint(r)
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// Writer encrypts a payload to its recipients. What it writes to its
// destination is an age file; it counts and hashes those bytes and keeps
// the age header (with the nonce), which the catalog stores so that a
// restore can unwrap the key without reading the image's first bytes.
type Writer struct {
	cw    *countWriter
	enc   io.WriteCloser
	hdr   []byte
	plain int64
}

type countWriter struct {
	w    io.Writer
	h    hash.Hash
	n    int64
	keep *bytes.Buffer // the first bytes, while the header is written
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.keep != nil {
		c.keep.Write(p)
	}
	n, err := c.w.Write(p)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	return n, err
}

// WriterOptions tune a Writer.
type WriterOptions struct {
	// NoSum leaves out the SHA-256 of the ciphertext (SHA256 returns ""),
	// for a caller whose destination hashes the same bytes already (the
	// holding disk's writer does).
	NoSum bool
}

// NewWriter starts an age file on dst for recipients (strings as
// ParseRecipients returns them). The age header and the nonce are written
// to dst before it returns.
func NewWriter(dst io.Writer, recipients []string) (*Writer, error) {
	return NewWriterWith(dst, recipients, WriterOptions{})
}

// NewWriterWith is NewWriter with options.
func NewWriterWith(dst io.Writer, recipients []string, opt WriterOptions) (*Writer, error) {
	if len(recipients) == 0 {
		return nil, errors.New("encryption: no recipients")
	}
	rs := make([]age.Recipient, len(recipients))
	for i, s := range recipients {
		r, err := parseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("encryption: recipient %q: %v", clip(s), err)
		}
		rs[i] = r
	}
	cw := &countWriter{w: dst, keep: &bytes.Buffer{}}
	if !opt.NoSum {
		cw.h = sha256.New()
	}
	enc, err := age.Encrypt(cw, rs...)
	if err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	w := &Writer{cw: cw, enc: enc, hdr: cw.keep.Bytes()}
	cw.keep = nil
	return w, nil
}

// Write encrypts p.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.enc.Write(p)
	w.plain += int64(n)
	return n, err
}

// Close encrypts and writes the last chunk. It does not close dst.
func (w *Writer) Close() error { return w.enc.Close() }

// Header returns the age header and nonce: the payload's first bytes.
func (w *Writer) Header() []byte { return w.hdr }

// Size is the ciphertext bytes written so far (header included).
func (w *Writer) Size() int64 { return w.cw.n }

// PlainSize is the plaintext bytes written so far.
func (w *Writer) PlainSize() int64 { return w.plain }

// SHA256 is the lower-case hex SHA-256 of the ciphertext written so far
// (after Close: of the whole payload); "" with WriterOptions.NoSum.
func (w *Writer) SHA256() string {
	if w.cw.h == nil {
		return ""
	}
	return hex.EncodeToString(w.cw.h.Sum(nil))
}

// Layout is the shape of an age payload of Size bytes whose header (age
// header and nonce) takes HeaderLen bytes.
type Layout struct {
	HeaderLen, Size int64
	chunks          int64
}

// NewLayout checks that size bytes can be an age payload with a header of
// headerLen bytes (every chunk full but the last, which is not empty
// unless it is the only one).
func NewLayout(headerLen, size int64) (Layout, error) {
	if headerLen <= NonceSize || headerLen > MaxHeader+NonceSize {
		return Layout{}, fmt.Errorf("age header of %d bytes: want %d..%d", headerLen, NonceSize+1, MaxHeader+NonceSize)
	}
	body := size - headerLen
	if body < TagSize {
		return Layout{}, fmt.Errorf("an age payload of %d bytes with a %d-byte header is truncated: it cannot hold a chunk", size, headerLen)
	}
	chunks := (body + encChunk - 1) / encChunk
	plain := body - chunks*TagSize
	want := (plain + ChunkSize - 1) / ChunkSize
	if plain == 0 {
		want = 1
	}
	if want != chunks {
		return Layout{}, fmt.Errorf("an age payload of %d bytes with a %d-byte header is truncated or padded: its last chunk holds only a tag", size, headerLen)
	}
	return Layout{HeaderLen: headerLen, Size: size, chunks: chunks}, nil
}

// CipherSize is the size of the age payload of plain bytes with a header
// of headerLen bytes.
func CipherSize(headerLen, plain int64) int64 {
	chunks := (plain + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return headerLen + plain + chunks*TagSize
}

// Chunks is the number of chunks.
func (l Layout) Chunks() int64 { return l.chunks }

// PlainSize is the number of plaintext bytes.
func (l Layout) PlainSize() int64 { return l.Size - l.HeaderLen - l.chunks*TagSize }

// Span returns the chunks that hold plaintext [off, off+n): the first
// chunk's index, how many, and where their ciphertext is in the payload.
// off and n must lie inside the plaintext (n > 0).
func (l Layout) Span(off, n int64) (first, count, cipherOff, cipherLen int64, err error) {
	if off < 0 || n <= 0 || off+n > l.PlainSize() || off+n < off {
		return 0, 0, 0, 0, fmt.Errorf("plaintext bytes %d..%d are outside the %d of the encrypted payload", off, off+n, l.PlainSize())
	}
	first = off / ChunkSize
	last := (off + n - 1) / ChunkSize
	count = last - first + 1
	cipherOff = l.HeaderLen + first*encChunk
	end := l.HeaderLen + (last+1)*encChunk
	if end > l.Size {
		end = l.Size
	}
	return first, count, cipherOff, end - cipherOff, nil
}

// ChunkCipher is the ciphertext bytes of chunk c (every chunk 64 KiB and
// its tag, the last fewer).
func (l Layout) ChunkCipher(c int64) int64 {
	start := l.HeaderLen + c*encChunk
	return min(encChunk, l.Size-start)
}

// MaxCipher is the most ciphertext the chunks holding n plaintext bytes
// take: the chunks they touch (one more when they do not start at a
// chunk's start), with their tags.
func MaxCipher(n int64) int64 {
	return (n/ChunkSize + 2) * encChunk
}

// HeaderLen finds where the age header and nonce end in b, the first
// bytes of a payload (at least the whole header and nonce). The header
// must be exactly as age writes it.
func HeaderLen(b []byte) (int, error) {
	if len(b) > MaxHeader+NonceSize {
		b = b[:MaxHeader+NonceSize]
	}
	if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
		return 0, errors.New("not an age payload: it does not start with age-encryption.org/v1")
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("the age header: %v", err)
	}
	if !bytes.HasPrefix(b, hdr) {
		return 0, errors.New("the age header is not in its canonical form")
	}
	n := len(hdr) + NonceSize
	if n > len(b) {
		return 0, errors.New("the age payload ends inside its nonce")
	}
	return n, nil
}

// ReadHeader reads the age header and nonce from the start of an age
// payload of size bytes.
func ReadHeader(src io.ReaderAt, size int64) ([]byte, error) {
	n := int64(MaxHeader + NonceSize)
	if size < n {
		n = size
	}
	// The header is short; read a little and more only if needed.
	for want := int64(4 << 10); ; want *= 4 {
		if want > n {
			want = n
		}
		b := make([]byte, want)
		if _, err := src.ReadAt(b, 0); err != nil && !(err == io.EOF && want == size) {
			return nil, fmt.Errorf("reading the age header: %w", err)
		}
		hl, err := HeaderLen(b)
		if err == nil {
			return b[:hl], nil
		}
		if want == n {
			return nil, err
		}
	}
}

// Key opens the chunks of one age payload.
type Key struct {
	aead   cipher.AEAD
	layout Layout
}

// Unwrap derives the payload key of an age payload of size bytes from its
// header (age header and nonce, as Writer.Header or ReadHeader give it)
// with identities. None of them a recipient: an error matching ErrWrongKey.
func Unwrap(header []byte, size int64, ids []age.Identity) (*Key, error) {
	hl, err := HeaderLen(header)
	if err != nil {
		return nil, err
	}
	if hl != len(header) {
		return nil, fmt.Errorf("the age header is followed by %d stray bytes", len(header)-hl)
	}
	l, err := NewLayout(int64(hl), size)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("no identity given: pass --identity FILE (written by tapir key new)")
	}
	fileKey, err := age.DecryptHeader(header[:hl-NonceSize], ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("the age header: %v", err)
	}
	aead, err := payloadAEAD(fileKey, header[hl-NonceSize:hl])
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead, layout: l}, nil
}

// Layout is the shape of the payload the key opens.
func (k *Key) Layout() Layout { return k.layout }

// Open decrypts ct, the ciphertext of the count chunks from chunk first
// (as Layout.Span gives them), appending the plaintext to dst.
func (k *Key) Open(dst, ct []byte, first int64) ([]byte, error) {
	if first < 0 || first >= k.layout.chunks {
		return dst, fmt.Errorf("%w: chunk %d of %d", ErrDamaged, first, k.layout.chunks)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	for i := first; len(ct) > 0; i++ {
		if i >= k.layout.chunks {
			return dst, fmt.Errorf("%w: %d bytes after its last chunk", ErrDamaged, len(ct))
		}
		n := int64(encChunk)
		if i == k.layout.chunks-1 {
			n = k.layout.Size - k.layout.HeaderLen - i*encChunk
		}
		if int64(len(ct)) < n {
			return dst, fmt.Errorf("%w: chunk %d is cut short (%d of %d bytes)", ErrDamaged, i, len(ct), n)
		}
		chunkNonce(&nonce, uint64(i), i == k.layout.chunks-1)
		out, err := k.aead.Open(dst, nonce[:], ct[:n], nil)
		if err != nil {
			return dst, fmt.Errorf("%w: chunk %d (payload bytes %d..%d) fails its authentication: a changed byte or the wrong place", ErrDamaged, i, k.layout.HeaderLen+i*encChunk, k.layout.HeaderLen+i*encChunk+n)
		}
		dst = out
		ct = ct[n:]
	}
	return dst, nil
}

// ReaderAt reads the plaintext of an age payload from its ciphertext,
// decrypting only the chunks it is asked for; it never reads the end of
// the payload to read its middle. A read that spans several chunks reads
// their ciphertext at once and opens them on several goroutines. It keeps
// the last chunk it opened, so that a read that starts in the chunk where
// the read before ended does not read it again. Not safe for concurrent
// use.
type ReaderAt struct {
	k      *Key
	src    io.ReaderAt
	ct, pt []byte
	cache  []byte
	cached int64 // chunk in cache, -1 none
}

// NewReaderAt reads the plaintext of the payload in src that k opens.
func NewReaderAt(src io.ReaderAt, k *Key) *ReaderAt {
	return &ReaderAt{k: k, src: src, cached: -1}
}

// Size is the plaintext size.
func (r *ReaderAt) Size() int64 { return r.k.layout.PlainSize() }

// ReadAt fills p with plaintext from off; it fails rather than return
// fewer bytes (io.EOF only when off is at or past the end).
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	size := r.Size()
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if int64(len(p)) > size-off {
		return 0, fmt.Errorf("plaintext bytes %d..%d are outside the %d of the encrypted payload", off, off+int64(len(p)), size)
	}
	if len(p) == 0 {
		return 0, nil
	}
	first, count, _, _, err := r.k.layout.Span(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	last := first + count - 1
	n := 0
	c := first
	if c == r.cached {
		n = copy(p, r.cache[off-c*ChunkSize:])
		c++
	}
	if c > last {
		return n, nil
	}
	// Chunks c..last: one read of their ciphertext, then open them.
	l := r.k.layout
	co := l.HeaderLen + c*encChunk
	end := min(l.HeaderLen+(last+1)*encChunk, l.Size)
	if int64(cap(r.ct)) < end-co {
		r.ct = make([]byte, end-co)
	}
	ct := r.ct[:end-co]
	if _, err := r.src.ReadAt(ct, co); err != nil && !(err == io.EOF && end == l.Size) {
		return n, fmt.Errorf("reading encrypted chunks %d..%d: %w", c, last, err)
	}
	k := last - c + 1
	if int64(cap(r.pt)) < k*ChunkSize {
		r.pt = make([]byte, k*ChunkSize)
	}
	r.cached = -1
	pt, err := r.k.openParallel(r.pt[:k*ChunkSize], ct, c, k)
	if err != nil {
		return n, err
	}
	// pt holds chunks c..last, each ChunkSize bytes but the payload's
	// last, which may be shorter.
	n += copy(p[n:], pt[off+int64(n)-c*ChunkSize:])
	lastStart := (last - c) * ChunkSize
	r.cache = append(r.cache[:0], pt[lastStart:]...)
	r.cached = last
	return n, nil
}

// minParallel is the fewest chunks openParallel spreads over goroutines:
// below it, starting them costs more than it saves.
const minParallel = 4

// openParallel opens the k chunks from chunk first whose ciphertext is
// ct into pt (k*ChunkSize bytes), returning pt cut to the plaintext.
// Chunks are independent: with several CPUs, runs of them are opened on
// as many goroutines.
func (k *Key) openParallel(pt, ct []byte, first, n int64) ([]byte, error) {
	workers := min(int64(runtime.GOMAXPROCS(0)), n/minParallel+1)
	if workers <= 1 {
		out, err := k.Open(pt[:0], ct, first)
		return out, err
	}
	per := (n + workers - 1) / workers
	errs := make([]error, workers)
	lens := make([]int, workers)
	var wg sync.WaitGroup
	for w := int64(0); w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			break
		}
		cLo, cHi := lo*encChunk, min(hi*encChunk, int64(len(ct)))
		dst := pt[lo*ChunkSize : lo*ChunkSize : hi*ChunkSize]
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := k.Open(dst, ct[cLo:cHi], first+lo)
			lens[w], errs[w] = len(out), err
		}()
	}
	wg.Wait()
	total := 0
	for w := range workers {
		if errs[w] != nil {
			return nil, errs[w]
		}
		total += lens[w]
	}
	return pt[:total], nil
}

// NewReader decrypts a whole payload read from r (age -d): every chunk is
// authenticated, the last one included, so a truncated payload is an
// error.
func NewReader(r io.Reader, ids []age.Identity) (io.Reader, error) {
	if len(ids) == 0 {
		return nil, errors.New("no identity given: pass --identity FILE (written by tapir key new)")
	}
	br := bufio.NewReaderSize(r, 64<<10)
	d, err := age.Decrypt(br, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("the age header: %v", err)
	}
	return damagedReader{d}, nil
}

type damagedReader struct{ r io.Reader }

func (d damagedReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return n, err
}
