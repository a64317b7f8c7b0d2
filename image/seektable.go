package image

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The zstd seekable format (facebook/zstd contrib/seekable_format):
// a skippable frame {magic 0x184D2A5E u32, frame size u32, entries, footer}
// at the very end of the payload; entries are {compressed u32, decompressed
// u32 [, checksum u32]}; the footer is {number of frames u32, descriptor
// u8, seekable magic 0x8F92EAB1 u32}. All little-endian.
const (
	skippableMagic  = 0x184D2A5E
	seekableMagic   = 0x8F92EAB1
	seekFooterSize  = 9
	seekFrameHeader = 8
	checksumFlag    = 0x80
	reservedBits    = 0x7c
)

// AppendSeekTable writes the seek-table skippable frame (without
// checksums) describing frames to w.
func AppendSeekTable(w io.Writer, frames []Frame) error {
	if len(frames) > MaxFrames {
		return fmt.Errorf("image: %d frames exceed the seek table limit of %d", len(frames), MaxFrames)
	}
	var b [seekFrameHeader]byte
	binary.LittleEndian.PutUint32(b[0:], skippableMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(8*len(frames)+seekFooterSize))
	if _, err := w.Write(b[:]); err != nil {
		return err
	}
	for _, f := range frames {
		if f.Size < 0 || f.Size > 0xffffffff || f.TarSize < 0 || f.TarSize > MaxFrameSize {
			return fmt.Errorf("image: frame %d (size %d, tar size %d) cannot be described in a seek table", f.Index, f.Size, f.TarSize)
		}
		binary.LittleEndian.PutUint32(b[0:], uint32(f.Size))
		binary.LittleEndian.PutUint32(b[4:], uint32(f.TarSize))
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	var foot [seekFooterSize]byte
	binary.LittleEndian.PutUint32(foot[0:], uint32(len(frames)))
	foot[4] = 0 // no checksums
	binary.LittleEndian.PutUint32(foot[5:], seekableMagic)
	_, err := w.Write(foot[:])
	return err
}

// ReadSeekTable parses the seek table at the end of a zstd payload of size
// bytes (r must start at the payload, i.e. after the image header) and
// returns the frame list. It checks that the table describes exactly the
// bytes before it.
func ReadSeekTable(r io.ReaderAt, size int64) ([]Frame, error) {
	bad := func(format string, a ...any) ([]Frame, error) {
		return nil, fmt.Errorf("image seek table: "+format, a...)
	}
	if size < seekFrameHeader+seekFooterSize {
		return bad("payload of %d bytes is too small to end with a seek table (not a zstd seekable payload?)", size)
	}
	var foot [seekFooterSize]byte
	if err := readAt(r, foot[:], size-seekFooterSize); err != nil {
		return bad("reading the footer at payload offset %d: %v", size-seekFooterSize, err)
	}
	if m := binary.LittleEndian.Uint32(foot[5:]); m != seekableMagic {
		return bad("no seekable magic at the end of the payload (found %#08x, want %#08x): the payload has no seek table or is truncated; read it as a stream or use the catalog's frame list", m, uint32(seekableMagic))
	}
	desc := foot[4]
	if desc&reservedBits != 0 {
		return bad("descriptor %#02x has reserved bits set: written by a newer format version", desc)
	}
	entrySize := int64(8)
	if desc&checksumFlag != 0 {
		entrySize = 12
	}
	n := int64(binary.LittleEndian.Uint32(foot[0:]))
	if n > MaxFrames {
		return bad("%d frames exceed the format limit of %d: table is corrupt", n, MaxFrames)
	}
	tableLen := seekFrameHeader + n*entrySize + seekFooterSize
	if tableLen > size {
		return bad("table of %d frames needs %d bytes but the payload has only %d: table is corrupt or the payload truncated", n, tableLen, size)
	}
	start := size - tableLen
	var hdr [seekFrameHeader]byte
	if err := readAt(r, hdr[:], start); err != nil {
		return bad("reading the table header at payload offset %d: %v", start, err)
	}
	if m := binary.LittleEndian.Uint32(hdr[0:]); m != skippableMagic {
		return bad("table frame at payload offset %d has magic %#08x, want %#08x: table is corrupt", start, m, uint32(skippableMagic))
	}
	if fs := int64(binary.LittleEndian.Uint32(hdr[4:])); fs != tableLen-seekFrameHeader {
		return bad("table frame size %d does not match %d frames (want %d): table is corrupt", fs, n, tableLen-seekFrameHeader)
	}
	// Every frame takes at least one byte, so n <= start bounds memory by
	// the payload size.
	if n > start {
		return bad("%d frames cannot fit in %d payload bytes: table is corrupt", n, start)
	}
	frames := make([]Frame, 0, n)
	var off, tarOff int64
	buf := make([]byte, 0, 64<<10)
	pos := start + seekFrameHeader
	for i := int64(0); i < n; {
		k := min(n-i, int64(cap(buf))/entrySize)
		buf = buf[:k*entrySize]
		if err := readAt(r, buf, pos); err != nil {
			return bad("reading entries at payload offset %d: %v", pos, err)
		}
		pos += int64(len(buf))
		for e := int64(0); e < k; e++ {
			c := int64(binary.LittleEndian.Uint32(buf[e*entrySize:]))
			d := int64(binary.LittleEndian.Uint32(buf[e*entrySize+4:]))
			if c == 0 {
				return bad("frame %d has compressed size 0: table is corrupt", i)
			}
			frames = append(frames, Frame{Index: int(i), TarOffset: tarOff, TarSize: d, Offset: off, Size: c})
			off += c
			tarOff += d
			if off > start {
				return bad("frames up to %d cover %d bytes but only %d precede the table: table is corrupt", i, off, start)
			}
			i++
		}
	}
	if off != start {
		return bad("frames cover %d bytes but %d precede the table: table is corrupt or does not belong to this payload", off, start)
	}
	return frames, nil
}

func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
