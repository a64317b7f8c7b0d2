package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// NewStreamReader returns the whole tar stream of a payload read from r
// (which must start after the image header). zstd skippable frames,
// including the seek table, are skipped; gzip members are concatenated.
func NewStreamReader(r io.Reader, comp Comp) (io.ReadCloser, error) {
	switch comp {
	case CompZstd:
		dec, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("image: zstd payload: %w", err)
		}
		return &wrapReader{r: dec, what: "zstd payload", closeFn: func() error { dec.Close(); return nil }}, nil
	case CompGzip:
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("image: gzip payload: %w", err)
		}
		return &wrapReader{r: gr, what: "gzip payload", closeFn: gr.Close}, nil
	case CompNone:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("image: unknown compression %q: want zst, gz or none", comp)
}

// wrapReader names the payload in errors.
type wrapReader struct {
	r       io.Reader
	what    string
	closeFn func() error
}

func (w *wrapReader) Read(b []byte) (int, error) {
	n, err := w.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("image: %s: %w", w.what, err)
	}
	return n, err
}

func (w *wrapReader) Close() error { return w.closeFn() }

// NewReaderAt returns the tar stream from tar offset tarOff on, reading
// from r (which must start at the payload) only the frames it needs, one
// at a time, as the caller consumes them. frames is the payload's frame
// list (from ReadSeekTable or the catalog) and must be contiguous.
func NewReaderAt(r io.ReaderAt, comp Comp, frames []Frame, tarOff int64) (io.ReadCloser, error) {
	if !comp.Valid() {
		return nil, fmt.Errorf("image: unknown compression %q: want zst, gz or none", comp)
	}
	if r == nil {
		return nil, errors.New("image: NewReaderAt needs a payload to read from")
	}
	if len(frames) == 0 {
		return nil, errors.New("image: empty frame list: nothing to read")
	}
	maxTar, err := checkFrameList(comp, frames)
	if err != nil {
		return nil, err
	}
	last := frames[len(frames)-1]
	if tarOff < frames[0].TarOffset || tarOff >= last.TarOffset+last.TarSize {
		return nil, fmt.Errorf("image: tar offset %d is outside the frames (tar bytes %d..%d)", tarOff, frames[0].TarOffset, last.TarOffset+last.TarSize)
	}
	i := sort.Search(len(frames), func(i int) bool { return frames[i].TarOffset+frames[i].TarSize > tarOff })
	skip := tarOff - frames[i].TarOffset
	if comp == CompNone {
		f := frames[i]
		end := last.Offset + last.Size
		return io.NopCloser(io.NewSectionReader(r, f.Offset+skip, end-f.Offset-skip)), nil
	}
	dec, err := NewFrameDecoder(comp, max(maxTar, 1))
	if err != nil {
		return nil, err
	}
	return &frameReader{r: r, dec: dec, frames: frames[i:], skip: skip}, nil
}

// checkFrameList refuses a frame list with impossible sizes or gaps and
// returns the most tar bytes a frame holds.
func checkFrameList(comp Comp, frames []Frame) (int64, error) {
	var maxTar int64
	for i, f := range frames {
		if f.TarSize < 0 || f.TarSize > MaxFrameSize || f.Size < 0 || (comp != CompNone && f.Size == 0) ||
			(comp == CompNone && f.Size != f.TarSize) {
			return 0, fmt.Errorf("image: frame %d of the list has impossible sizes (tar %d, stored %d): the frame list is corrupt", f.Index, f.TarSize, f.Size)
		}
		if i > 0 {
			p := frames[i-1]
			if f.TarOffset != p.TarOffset+p.TarSize || f.Offset != p.Offset+p.Size {
				return 0, fmt.Errorf("image: frame %d of the list does not follow frame %d: the frame list is not contiguous", f.Index, p.Index)
			}
		} else if f.TarOffset < 0 || f.Offset < 0 {
			return 0, fmt.Errorf("image: frame %d of the list has a negative offset: the frame list is corrupt", f.Index)
		}
		maxTar = max(maxTar, f.TarSize)
	}
	return maxTar, nil
}

// frameReader decompresses one frame at a time.
type frameReader struct {
	r      io.ReaderAt
	dec    *FrameDecoder
	frames []Frame // frames still to read
	skip   int64   // bytes to drop from the next frame
	in     []byte
	out    []byte // undelivered output of the current frame
	err    error
}

func (f *frameReader) Read(b []byte) (int, error) {
	for len(f.out) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if len(f.frames) == 0 {
			return 0, io.EOF
		}
		if err := f.next(); err != nil {
			f.err = err
			return 0, err
		}
	}
	n := copy(b, f.out)
	f.out = f.out[n:]
	return n, nil
}

func (f *frameReader) next() error {
	fr := f.frames[0]
	f.frames = f.frames[1:]
	if int64(cap(f.in)) < fr.Size {
		f.in = make([]byte, fr.Size)
	}
	in := f.in[:fr.Size]
	if err := readAt(f.r, in, fr.Offset); err != nil {
		return fmt.Errorf("image: reading frame %d (%d bytes at payload offset %d): %w", fr.Index, fr.Size, fr.Offset, err)
	}
	out, err := f.dec.Decode(in, fr)
	if err != nil {
		return fmt.Errorf("image: frame %d at payload offset %d: %w: the payload is damaged or the frame list does not match the payload", fr.Index, fr.Offset, err)
	}
	f.out = out[f.skip:]
	f.skip = 0
	return nil
}

func (f *frameReader) Close() error {
	f.dec.Close()
	f.frames, f.out, f.in = nil, nil, nil
	if f.err == nil {
		f.err = errors.New("image: read from a closed frame reader")
	}
	return nil
}

// FrameDecoder is the one place a stored frame of a payload becomes tar
// bytes: it checks the frame's sizes against its entry in the frame list,
// decompresses it with the payload's compression (zstd verifies a frame's
// checksum when it has one, gzip its member's CRC-32) and checks that it
// holds exactly the tar bytes the list says. It keeps its buffers and
// decompressor from frame to frame; it is not safe for concurrent use.
type FrameDecoder struct {
	comp   Comp
	maxTar int64
	zdec   *zstd.Decoder
	gz     *gzip.Reader
	buf    []byte
}

// NewFrameDecoder returns a decoder for frames of comp that hold at most
// maxTar tar bytes each (at most MaxFrameSize; 0 means MaxFrameSize).
func NewFrameDecoder(comp Comp, maxTar int64) (*FrameDecoder, error) {
	if !comp.Valid() {
		return nil, fmt.Errorf("image: unknown compression %q: want zst, gz or none", comp)
	}
	if maxTar <= 0 || maxTar > MaxFrameSize {
		maxTar = MaxFrameSize
	}
	d := &FrameDecoder{comp: comp, maxTar: maxTar}
	if comp == CompZstd {
		// A zstd window is at least 1 KiB even for a frame of 600 tar
		// bytes, so the limit never goes below 1 MiB (it bounds, it does
		// not allocate); the frame's size is checked against the list.
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(maxTar, 1<<20))))
		if err != nil {
			return nil, fmt.Errorf("image: zstd decoder: %w", err)
		}
		d.zdec = dec
	}
	return d, nil
}

// Decode returns the tar bytes of frame f, whose stored bytes are in. The
// result is valid until the next call (with no compression it is in
// itself). An error says, without naming the frame (the caller knows
// which it is and where it came from), how the frame differs from f: its
// stored size, data that does not decompress or fails its checksum, or
// the number of tar bytes it holds.
func (d *FrameDecoder) Decode(in []byte, f Frame) ([]byte, error) {
	out, err := d.decodeTo(d.buf[:0], in, f)
	if err == nil && d.comp != CompNone {
		d.buf = out
	}
	return out, err
}

// decodeTo is Decode appending to dst (whose contents are dropped) instead
// of the decoder's own buffer; with no compression it returns in.
func (d *FrameDecoder) decodeTo(dst, in []byte, f Frame) ([]byte, error) {
	if f.Size < 0 || f.TarSize < 0 || f.TarSize > d.maxTar || (d.comp == CompNone && f.Size != f.TarSize) {
		return nil, fmt.Errorf("the frame list gives it impossible sizes (tar %d, stored %d)", f.TarSize, f.Size)
	}
	if int64(len(in)) != f.Size {
		return nil, fmt.Errorf("it is %d bytes, the frame list says %d", len(in), f.Size)
	}
	var out []byte
	var err error
	switch d.comp {
	case CompZstd:
		out, err = d.zdec.DecodeAll(in, dst[:0])
	case CompGzip:
		out, err = d.gunzip(dst[:0], in, f.TarSize)
	case CompNone:
		out = in
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	if int64(len(out)) != f.TarSize {
		return nil, fmt.Errorf("it decompresses to %d tar bytes, the frame list says %d", len(out), f.TarSize)
	}
	return out, nil
}

func (d *FrameDecoder) gunzip(dst, in []byte, want int64) ([]byte, error) {
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(bytes.NewReader(in))
	} else {
		err = d.gz.Reset(bytes.NewReader(in))
	}
	if err != nil {
		return nil, err
	}
	d.gz.Multistream(false)
	ab := appendBuf{b: dst}
	// Read at most one byte more than expected so a bad frame cannot
	// inflate without bound.
	if _, err := io.Copy(&ab, io.LimitReader(d.gz, want+1)); err != nil {
		return nil, err
	}
	return ab.b, nil
}

// Close releases the decompressor; Decode must not be called after it.
func (d *FrameDecoder) Close() {
	if d.zdec != nil {
		d.zdec.Close()
		d.zdec = nil
	}
	d.buf = nil
}

// VerifyPayload reads the payload from r to its end and checks its size and
// SHA-256 against the header.
func VerifyPayload(r io.Reader, h *Header) error {
	if h == nil {
		return errors.New("image: VerifyPayload needs a header")
	}
	if h.SHA256 == "" {
		return fmt.Errorf("image %s: the header has no sha256 (streamed image): verify against the catalog's checksum instead", h.Name())
	}
	sum := sha256.New()
	var limit int64 = 1 << 62
	if h.PayloadSize >= 0 {
		limit = h.PayloadSize + 1
	}
	n, err := io.Copy(sum, io.LimitReader(r, limit))
	if err != nil {
		return fmt.Errorf("image %s: reading the payload after %d bytes: %w", h.Name(), n, err)
	}
	if h.PayloadSize >= 0 && n != h.PayloadSize {
		if n > h.PayloadSize {
			return fmt.Errorf("image %s: payload is longer than the %d bytes the header says: trailing data or wrong header", h.Name(), h.PayloadSize)
		}
		return fmt.Errorf("image %s: payload is %d bytes, the header says %d: the image is truncated", h.Name(), n, h.PayloadSize)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 {
		return fmt.Errorf("image %s: payload sha256 %s does not match the header's %s: the image is corrupt", h.Name(), got, h.SHA256)
	}
	return nil
}
