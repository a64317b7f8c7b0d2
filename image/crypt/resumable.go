package crypt

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// FileKeySize is the size of an age file key.
const FileKeySize = 16

// Encryptor writes an age file (age-encryption.org/v1) whose state can
// be saved between chunks and restored in another process, so that a
// stream cut in the middle continues with the same ciphertext it would
// have had: a client-side encrypted dump that resumes (docs/format/
// agent-protocol.md, "Resuming a cut dump"). It writes the format
// itself: the header (version line, one stanza per recipient wrapping
// the file key, the MAC line), the 16-byte nonce, then the STREAM
// chunks of ChunkSize plaintext bytes, each sealed with ChaCha20-Poly1305
// under the payload key and the nonce counter||last-flag. What
// filippo.io/age and the age CLI decrypt.
//
// A chunk is sealed only once the plaintext after it has begun (the
// last one carries the final flag), so after any Write the state holds
// up to ChunkSize bytes of pending plaintext.
type Encryptor struct {
	dst     io.Writer
	fileKey []byte
	hdr     []byte // age header and nonce
	aead    cipher.AEAD
	counter uint64 // chunks sealed
	pending []byte // plaintext of the chunk being filled
	sealed  []byte
	n       int64 // ciphertext bytes written (header included)
	plain   int64
	h       hash.Hash
	closed  bool
	err     error
}

// NewEncryptor starts an age file on dst for recipients (strings as
// ParseRecipients returns them): it writes the header and the nonce.
func NewEncryptor(dst io.Writer, recipients []string) (*Encryptor, error) {
	if len(recipients) == 0 {
		return nil, errors.New("encryption: no recipients")
	}
	fileKey := make([]byte, FileKeySize)
	if _, err := rand.Read(fileKey); err != nil {
		return nil, fmt.Errorf("encryption: drawing the file key: %w", err)
	}
	var hb strings.Builder
	hb.WriteString("age-encryption.org/v1\n")
	var firstLabels []string
	for i, s := range recipients {
		r, err := parseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("encryption: recipient %q: %v", clip(s), err)
		}
		// As age does: recipients that say labels (post-quantum ones)
		// are used only with recipients of the same labels.
		var stanzas []*age.Stanza
		var labels []string
		if rl, ok := r.(age.RecipientWithLabels); ok {
			stanzas, labels, err = rl.WrapWithLabels(fileKey)
		} else {
			stanzas, err = r.Wrap(fileKey)
		}
		if err != nil {
			return nil, fmt.Errorf("encryption: wrapping the file key for recipient %d: %v", i+1, err)
		}
		slices.Sort(labels)
		if i == 0 {
			firstLabels = labels
		} else if !slices.Equal(labels, firstLabels) {
			return nil, fmt.Errorf("encryption: recipient %d cannot be used with recipient 1 (labels %v and %v: post-quantum and classic recipients do not mix)", i+1, labels, firstLabels)
		}
		for _, st := range stanzas {
			if err := writeStanza(&hb, st); err != nil {
				return nil, fmt.Errorf("encryption: recipient %d: %v", i+1, err)
			}
		}
	}
	hb.WriteString("---")
	mac := hmac.New(sha256.New, derive(fileKey, nil, "header"))
	mac.Write([]byte(hb.String()))
	hb.WriteString(" " + base64.RawStdEncoding.EncodeToString(mac.Sum(nil)) + "\n")
	if hb.Len() > MaxHeader {
		return nil, fmt.Errorf("encryption: the age header of %d recipients takes %d bytes, more than %d", len(recipients), hb.Len(), MaxHeader)
	}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encryption: drawing the nonce: %w", err)
	}
	hdr := append([]byte(hb.String()), nonce...)
	e, err := newEncryptor(dst, fileKey, hdr)
	if err != nil {
		return nil, err
	}
	if err := e.out(hdr); err != nil {
		return nil, fmt.Errorf("encryption: writing the age header: %w", err)
	}
	return e, nil
}

// writeStanza writes one recipient stanza: "-> type args…", then its
// body in unpadded standard base64, 64 columns a line, the last line
// shorter (empty when the body fills whole lines).
func writeStanza(w *strings.Builder, st *age.Stanza) error {
	for _, s := range append([]string{st.Type}, st.Args...) {
		if s == "" {
			return errors.New("a stanza with an empty type or argument")
		}
		for _, c := range s {
			if c < 33 || c > 126 {
				return fmt.Errorf("a stanza type or argument with the character %q", c)
			}
		}
	}
	w.WriteString("-> " + strings.Join(append([]string{st.Type}, st.Args...), " ") + "\n")
	b := base64.RawStdEncoding.EncodeToString(st.Body)
	for len(b) >= 64 {
		w.WriteString(b[:64] + "\n")
		b = b[64:]
	}
	w.WriteString(b + "\n")
	return nil
}

// derive is HKDF-SHA256 of the file key with salt and info, 32 bytes:
// the header's MAC key (info "header") or the payload key (the nonce as
// salt, info "payload").
func derive(fileKey, salt []byte, info string) []byte {
	k := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, fileKey, salt, []byte(info)), k); err != nil {
		panic("crypt: HKDF: " + err.Error()) // cannot happen for 32 bytes
	}
	return k
}

// payloadAEAD is the cipher of the payload of the age file whose file key
// and nonce are given.
func payloadAEAD(fileKey, nonce []byte) (cipher.AEAD, error) {
	return chacha20poly1305.New(derive(fileKey, nonce, "payload"))
}

// chunkNonce is the STREAM nonce of chunk c: 11-byte big-endian counter,
// then 1 for the last chunk, 0 otherwise.
func chunkNonce(nonce *[chacha20poly1305.NonceSize]byte, c uint64, last bool) {
	*nonce = [chacha20poly1305.NonceSize]byte{}
	binary.BigEndian.PutUint64(nonce[3:11], c)
	if last {
		nonce[11] = 1
	}
}

func newEncryptor(dst io.Writer, fileKey, hdr []byte) (*Encryptor, error) {
	if len(fileKey) != FileKeySize {
		return nil, fmt.Errorf("encryption: a file key of %d bytes (want %d)", len(fileKey), FileKeySize)
	}
	if len(hdr) <= NonceSize {
		return nil, errors.New("encryption: no age header")
	}
	aead, err := payloadAEAD(fileKey, hdr[len(hdr)-NonceSize:])
	if err != nil {
		return nil, err
	}
	return &Encryptor{dst: dst, fileKey: append([]byte(nil), fileKey...), hdr: append([]byte(nil), hdr...), aead: aead,
		pending: make([]byte, 0, ChunkSize), sealed: make([]byte, 0, encChunk), h: sha256.New()}, nil
}

// out writes ciphertext to dst, counting and hashing it.
func (e *Encryptor) out(b []byte) error {
	n, err := e.dst.Write(b)
	e.h.Write(b[:n])
	e.n += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		e.err = err
	}
	return err
}

func (e *Encryptor) seal(last bool) error {
	var nonce [chacha20poly1305.NonceSize]byte
	chunkNonce(&nonce, e.counter, last)
	e.sealed = e.aead.Seal(e.sealed[:0], nonce[:], e.pending, nil)
	e.pending = e.pending[:0]
	e.counter++
	return e.out(e.sealed)
}

// Write encrypts p.
func (e *Encryptor) Write(p []byte) (int, error) {
	if e.closed {
		return 0, errors.New("encryption: write after close")
	}
	if e.err != nil {
		return 0, e.err
	}
	n := 0
	for len(p) > 0 {
		if len(e.pending) == ChunkSize {
			if err := e.seal(false); err != nil {
				return n, err
			}
		}
		k := copy(e.pending[len(e.pending):ChunkSize], p)
		e.pending = e.pending[:len(e.pending)+k]
		p = p[k:]
		n += k
		e.plain += int64(k)
	}
	return n, nil
}

// Close seals the last chunk (an empty payload is one empty chunk). It
// does not close dst.
func (e *Encryptor) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	if e.err != nil {
		return e.err
	}
	return e.seal(true)
}

// Header returns the age header and nonce: the payload's first bytes.
func (e *Encryptor) Header() []byte { return e.hdr }

// FileKey returns the file key: whoever holds it reads the payload.
func (e *Encryptor) FileKey() []byte { return e.fileKey }

// Size is the ciphertext bytes written so far (header included).
func (e *Encryptor) Size() int64 { return e.n }

// PlainSize is the plaintext bytes written so far.
func (e *Encryptor) PlainSize() int64 { return e.plain }

// SHA256 is the lower-case hex SHA-256 of the ciphertext written so far.
func (e *Encryptor) SHA256() string { return hex.EncodeToString(e.h.Sum(nil)) }

// CheckpointOffset is where the ciphertext of an age file whose header
// and nonce take headerLen bytes stands once plain plaintext bytes were
// written to an Encryptor: after the chunks sealed, which are all but
// the one being filled (a full one too waits for the bytes after it).
func CheckpointOffset(headerLen, plain int64) int64 {
	sealed := plain / ChunkSize
	if plain > 0 && plain%ChunkSize == 0 {
		sealed--
	}
	return headerLen + sealed*encChunk
}

// EncState is the state of an Encryptor between two writes, without its
// file key and header (saved once): from it, ResumeEncryptor continues
// the same age file.
type EncState struct {
	Plain   int64  // plaintext bytes written
	Cipher  int64  // ciphertext bytes written, header included
	Sum     []byte // SHA-256 state of the ciphertext (crypto/sha256 MarshalBinary)
	Pending []byte // plaintext of the chunk being filled
}

// State returns the state after the writes so far.
func (e *Encryptor) State() (EncState, error) {
	if e.closed || e.err != nil {
		return EncState{}, errors.New("encryption: no state of a closed or failed encryptor")
	}
	sum, err := e.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return EncState{}, err
	}
	return EncState{Plain: e.plain, Cipher: e.n, Sum: sum, Pending: append([]byte(nil), e.pending...)}, nil
}

// maxStateSum bounds the hash state a saved state may carry.
const maxStateSum = 1024

// MarshalBinary encodes the state (the inverse of ParseEncState).
func (s EncState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 32+len(s.Sum)+len(s.Pending))
	b = append(b, 1) // version
	b = binary.AppendUvarint(b, uint64(s.Plain))
	b = binary.AppendUvarint(b, uint64(s.Cipher))
	b = binary.AppendUvarint(b, uint64(len(s.Sum)))
	b = append(b, s.Sum...)
	b = binary.AppendUvarint(b, uint64(len(s.Pending)))
	return append(b, s.Pending...), nil
}

// ParseEncState decodes a state saved with MarshalBinary. It checks the
// shape only; ResumeEncryptor checks that it fits its header.
func ParseEncState(b []byte) (EncState, error) {
	var s EncState
	if len(b) == 0 || b[0] != 1 {
		return s, errors.New("encryptor state: unknown version")
	}
	b = b[1:]
	num := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("encryptor state: truncated")
		}
		b = b[n:]
		return v, nil
	}
	bytesOf := func(max uint64) ([]byte, error) {
		l, err := num()
		if err != nil {
			return nil, err
		}
		if l > max || l > uint64(len(b)) {
			return nil, errors.New("encryptor state: a length out of range")
		}
		v := append([]byte(nil), b[:l]...)
		b = b[l:]
		return v, nil
	}
	p, err := num()
	if err != nil {
		return s, err
	}
	c, err := num()
	if err != nil {
		return s, err
	}
	if p > 1<<62 || c > 1<<62 {
		return s, errors.New("encryptor state: offsets out of range")
	}
	s.Plain, s.Cipher = int64(p), int64(c)
	if s.Sum, err = bytesOf(maxStateSum); err != nil {
		return s, err
	}
	if s.Pending, err = bytesOf(ChunkSize); err != nil {
		return s, err
	}
	if len(b) != 0 {
		return s, errors.New("encryptor state: trailing bytes")
	}
	return s, nil
}

// ResumeEncryptor continues on dst the age file whose file key and header
// (with the nonce) are given, from the state st that Encryptor.State gave
// after some writes: the next byte it writes is ciphertext byte st.Cipher.
func ResumeEncryptor(dst io.Writer, fileKey, header []byte, st EncState) (*Encryptor, error) {
	hl, err := HeaderLen(header)
	if err != nil {
		return nil, fmt.Errorf("encryption: resume: %v", err)
	}
	if hl != len(header) {
		return nil, errors.New("encryption: resume: stray bytes after the age header")
	}
	if st.Plain < 0 || st.Cipher != CheckpointOffset(int64(hl), st.Plain) {
		return nil, fmt.Errorf("encryption: resume: the state (%d plaintext bytes, %d ciphertext bytes) does not fit an age file with a %d-byte header", st.Plain, st.Cipher, hl)
	}
	sealed := (st.Cipher - int64(hl)) / encChunk
	if int64(len(st.Pending)) != st.Plain-sealed*ChunkSize {
		return nil, fmt.Errorf("encryption: resume: %d pending bytes, want %d", len(st.Pending), st.Plain-sealed*ChunkSize)
	}
	e, err := newEncryptor(dst, fileKey, header)
	if err != nil {
		return nil, err
	}
	if err := e.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Sum); err != nil {
		return nil, fmt.Errorf("encryption: resume: the saved hash state: %v", err)
	}
	e.counter = uint64(sealed)
	e.pending = append(e.pending, st.Pending...)
	e.n, e.plain = st.Cipher, st.Plain
	return e, nil
}
