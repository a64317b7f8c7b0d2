package indexd

import (
	"fmt"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/wire"
)

// withCrypt returns r with each image's encryption (and, with header set,
// its age header) from dumps, the dumps of r.Images in order. A plain
// image's fields stay empty: its reply is what it always was.
func withCrypt(r wire.IndexReply, dumps []catalog.Dump, header bool) wire.IndexReply {
	if len(dumps) != len(r.Images) {
		return r
	}
	for i, d := range dumps {
		if !d.Encrypted() {
			continue
		}
		r.Images[i].Encryption = d.Encryption
		r.Images[i].Recipients = d.Recipients
		if header {
			r.Images[i].CryptHeader = d.CryptHeader
		}
	}
	return r
}

// sealedFrame is what the server sends of one frame of an encrypted
// image: the message, and the ciphertext to read for it (payload bytes
// [off, off+n), n 0 when its only chunk was sent with the frame before).
type sealedFrame struct {
	msg    wire.Sealed
	off, n int64
}

// sealFrames maps the frames of an encrypted image (plaintext
// coordinates) to the age chunks that hold them: each frame's chunks, but
// a chunk already sent with the frame before (two frames share the chunk
// where one ends and the next begins) is carried, not sent again. The
// reads are in payload order and never overlap: every chunk is read and
// sent once.
func sealFrames(d catalog.Dump, frames []image.Frame) ([]sealedFrame, error) {
	what := fmt.Sprintf("level %d image %s of %s:%s", d.Level, d.Datestamp, d.Host, d.Path)
	if len(d.CryptHeader) == 0 {
		return nil, fmt.Errorf("%s is encrypted (age), but the catalog does not hold its age header, which a restore through the index server needs: restore it on the server with `tapir recover -c CONFIG --identity FILE`, or rebuild its catalog entry (tapir admin rebuild)", what)
	}
	l, err := crypt.NewLayout(int64(len(d.CryptHeader)), d.PayloadSize)
	if err != nil {
		return nil, fmt.Errorf("%s: its age header and payload size in the catalog do not fit together (%v): rebuild the catalog from the volume (tapir admin rebuild)", what, err)
	}
	out := make([]sealedFrame, 0, len(frames))
	last := int64(-1) // the last chunk sent
	for _, f := range frames {
		s := wire.Sealed{Chunk: wire.Chunk{Frame: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Size: f.Size}, Offset: f.Offset}
		first, count, off, n, err := l.Span(f.Offset, f.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: frame %d: %v: the catalog's frame list does not match the image (rebuild it)", what, f.Index, err)
		}
		if first == last {
			s.Carry = true
			skip := l.ChunkCipher(first)
			off, n = off+skip, n-skip
		}
		s.Cipher = n
		last = first + count - 1
		out = append(out, sealedFrame{msg: s, off: off, n: n})
	}
	return out, nil
}

// cipherReads are the payload ranges the sealed frames read, as frames
// (PartsFor reads Offset and Size): those with nothing to read left out.
func cipherReads(sf []sealedFrame) []image.Frame {
	out := make([]image.Frame, 0, len(sf))
	for _, s := range sf {
		if s.n > 0 {
			out = append(out, image.Frame{Index: s.msg.Frame, Offset: s.off, Size: s.n})
		}
	}
	return out
}
