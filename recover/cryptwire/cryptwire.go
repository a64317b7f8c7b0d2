// Package cryptwire holds the index protocol's messages for encrypted
// images (docs/format/index-protocol.md, "Encrypted images"): the
// encryption of an image in a reply, and the sealed chunk of a restore
// stream, which carries the age ciphertext of the chunks that hold one
// frame. Each type embeds the wire type it extends, so that its JSON is
// the wire message with a few more fields; wire's strict decoding of the
// plain messages is untouched, and a reply or stream without an encrypted
// image is exactly what it was.
//
// The index server (index/indexd) writes these; the recover shell
// (recover) reads them. They belong in package wire next to the types
// they extend, and will move there; until then they live with the shell,
// which may not depend on the index rooms (internal/rooms).
package cryptwire

import (
	"fmt"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// Image is an image of a history, view, plan or restore reply, with its
// encryption.
type Image struct {
	wire.ImageInfo
	// Encryption is "age" for an encrypted payload ("" or absent: none).
	Encryption string `json:"encryption,omitempty"`
	// Recipients are the fingerprints (crypt.Fingerprint) of the
	// recipients the payload is encrypted to.
	Recipients []string `json:"recipients,omitempty"`
	// CryptHeader (plan and restore replies) is the payload's age header
	// and nonce, from the catalog: the shell unwraps the payload key from
	// it with its identity before anything is written. Absent when the
	// catalog does not hold it (the image cannot then be restored through
	// the index server).
	CryptHeader []byte `json:"crypt_header,omitempty"`
}

// Encrypted reports whether the image's payload is encrypted.
func (im Image) Encrypted() bool { return im.Encryption != "" && im.Encryption != "none" }

// Reply is wire.IndexReply whose images say how they are encrypted.
type Reply struct {
	wire.IndexReply
	Images []Image `json:"images,omitempty"`
}

// Msg is a restore stream message: wire.RestoreMsg, or Sealed. Exactly one
// of Chunk, Sealed, Image, Ask and End is set.
type Msg struct {
	wire.RestoreMsg
	Sealed *Sealed `json:"sealed,omitempty"`
}

// Sealed announces one frame of an encrypted image: Cipher bytes of age
// ciphertext follow in data frames. The embedded Chunk describes the frame
// as a plain chunk does (Size: its stored bytes, in the plaintext of the
// payload); Offset is where those bytes start in the plaintext. The bytes
// that follow are the ciphertext of the age chunks that hold plaintext
// [Offset, Offset+Size) (crypt.Layout.Span), except, when Carry is set,
// their first chunk: it is the last chunk of the sealed message before,
// of the same image, which the shell keeps, so that a chunk shared by two
// frames in a row crosses the network once.
type Sealed struct {
	wire.Chunk
	Offset int64 `json:"offset"`
	Carry  bool  `json:"carry,omitempty"`
	Cipher int64 `json:"cipher"`
}

// Span is the ciphertext of a sealed frame of the payload l: the age
// chunks [First, First+Count) hold its plaintext; their ciphertext is
// payload bytes [Off, Off+Len), of which Send are sent (the first chunk
// left out when carried), and the last chunk's ciphertext is the Tail
// bytes at the end.
type Span struct {
	First, Count, Off, Len, Send, Tail int64
}

// SpanOf checks a sealed frame against the layout of its payload and
// returns its span. An error says what does not fit (a protocol error on
// the shell's side).
func SpanOf(l crypt.Layout, s Sealed) (Span, error) {
	if s.Offset < 0 || s.Size <= 0 {
		return Span{}, fmt.Errorf("frame %d: %d stored bytes at plaintext offset %d", s.Frame, s.Size, s.Offset)
	}
	first, count, off, n, err := l.Span(s.Offset, s.Size)
	if err != nil {
		return Span{}, fmt.Errorf("frame %d: %v", s.Frame, err)
	}
	sp := Span{First: first, Count: count, Off: off, Len: n, Send: n}
	sp.Tail = ChunkCipher(l, first+count-1)
	if s.Carry {
		sp.Send -= ChunkCipher(l, first)
	}
	if s.Cipher != sp.Send {
		return Span{}, fmt.Errorf("frame %d: %d ciphertext bytes announced; age chunks %d..%d are %d bytes (carry %v: %d to send)", s.Frame, s.Cipher, first, first+count-1, n, s.Carry, sp.Send)
	}
	return sp, nil
}

// ChunkCipher is the ciphertext bytes of age chunk c of the payload l
// (every chunk 64 KiB and its tag, the last fewer).
func ChunkCipher(l crypt.Layout, c int64) int64 {
	full := int64(crypt.ChunkSize + crypt.TagSize)
	start := l.HeaderLen + c*full
	return min(full, l.Size-start)
}

// MaxCipher is the most ciphertext a sealed frame of at most stored
// plaintext bytes takes: the chunks it touches (one more when it does not
// start at a chunk's start) with their tags.
func MaxCipher(stored int64) int64 {
	chunks := stored/crypt.ChunkSize + 2
	return chunks * (crypt.ChunkSize + crypt.TagSize)
}
