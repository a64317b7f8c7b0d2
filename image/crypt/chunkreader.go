package crypt

import (
	"fmt"
	"io"
)

// ChunkReader decrypts an age payload read in order from its first byte
// (the age header and nonce, then the chunks) with a key already
// unwrapped: every chunk is authenticated, the last one as the last, and a
// failure names the chunk (ErrDamaged). verify and rebuild read whole
// payloads with it, hashing the ciphertext on the way.
type ChunkReader struct {
	r     io.Reader
	key   *Key
	next  int64 // the next chunk to read
	ct    []byte
	plain []byte
	buf   []byte // plaintext not yet returned
	err   error
}

// NewChunkReader skips the age header and nonce of r (k's layout says how
// long they are) and decrypts what follows.
func NewChunkReader(r io.Reader, k *Key) (*ChunkReader, error) {
	l := k.Layout()
	if n, err := io.CopyN(io.Discard, r, l.HeaderLen); err != nil {
		return nil, fmt.Errorf("%w: the payload ends inside its age header (%d of %d bytes): %v", ErrDamaged, n, l.HeaderLen, err)
	}
	return &ChunkReader{r: r, key: k, ct: make([]byte, encChunk)}, nil
}

// Read returns plaintext; io.EOF after the last chunk authenticated.
func (c *ChunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		l := c.key.Layout()
		if c.next >= l.Chunks() {
			c.err = io.EOF
			continue
		}
		off := l.HeaderLen + c.next*encChunk
		ct := c.ct[:min(encChunk, l.Size-off)]
		if k, err := io.ReadFull(c.r, ct); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("%w: the payload ends inside chunk %d (payload byte %d)", ErrDamaged, c.next, off+int64(k))
			}
			c.err = err
			continue
		}
		var err error
		if c.plain, err = c.key.Open(c.plain[:0], ct, c.next); err != nil {
			c.err = err
			continue
		}
		c.buf = c.plain
		c.next++
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
