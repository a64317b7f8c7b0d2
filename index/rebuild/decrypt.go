package rebuild

import (
	"errors"
	"fmt"
	"io"

	"github.com/tapir-backup/tapir/image/crypt"
)

// chunkReader decrypts an age payload read in order (its header and
// nonce first), chunk by chunk with a key already unwrapped: every chunk
// is authenticated, the last one as the last, and a failure names the
// chunk (crypt.ErrDamaged).
type chunkReader struct {
	r     io.Reader
	key   *crypt.Key
	next  int64 // the next chunk to read
	ct    []byte
	plain []byte
	buf   []byte // plaintext not yet returned
	err   error
}

// newChunkReader skips the age header and nonce of r (k's layout says how
// long they are) and decrypts what follows.
func newChunkReader(r io.Reader, k *crypt.Key) (*chunkReader, error) {
	l := k.Layout()
	if n, err := io.CopyN(io.Discard, r, l.HeaderLen); err != nil {
		return nil, fmt.Errorf("%w: the payload ends inside its age header (%d of %d bytes): %v", crypt.ErrDamaged, n, l.HeaderLen, err)
	}
	return &chunkReader{r: r, key: k, ct: make([]byte, crypt.ChunkSize+crypt.TagSize)}, nil
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		l := c.key.Layout()
		if c.next >= l.Chunks() {
			c.err = io.EOF
			continue
		}
		off := l.HeaderLen + c.next*(crypt.ChunkSize+crypt.TagSize)
		ct := c.ct[:min(crypt.ChunkSize+crypt.TagSize, l.Size-off)]
		if k, err := io.ReadFull(c.r, ct); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("%w: the payload ends inside chunk %d (payload byte %d)", crypt.ErrDamaged, c.next, off+int64(k))
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

// damageSeen remembers whether a read failed because the ciphertext is
// damaged (the error may reach the caller wrapped without %w).
type damageSeen struct {
	r       io.ReaderAt
	damaged bool
}

func (d *damageSeen) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.r.ReadAt(p, off)
	if errors.Is(err, crypt.ErrDamaged) {
		d.damaged = true
	}
	return n, err
}
