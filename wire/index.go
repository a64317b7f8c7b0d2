package wire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tapir-backup/tapir/image"
)

// IndexRecord describes one entry of an image's tar stream, as the client
// agent sends it while dumping: enough for the catalog to list and locate
// the entry without reading the image.
type IndexRecord struct {
	Path      string // relative to the DLE root, '/'-separated, no leading "./"
	Type      byte   // tar typeflag
	Size      int64
	Mode      uint32 // permission and special bits (07777)
	Mtime     time.Time
	UID, GID  int
	Link      string // symlink target or hardlink name
	TarOffset int64  // offset of the entry's first header in the tar stream
}

// MaxPathLen bounds names in index records.
const MaxPathLen = 64 << 10

// AppendIndex appends the binary encoding of r to b.
func AppendIndex(b []byte, r IndexRecord) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Path)))
	b = append(b, r.Path...)
	b = append(b, r.Type)
	b = binary.AppendVarint(b, r.Size)
	b = binary.AppendUvarint(b, uint64(r.Mode))
	b = binary.AppendVarint(b, r.Mtime.UnixNano())
	b = binary.AppendVarint(b, int64(r.UID))
	b = binary.AppendVarint(b, int64(r.GID))
	b = binary.AppendUvarint(b, uint64(len(r.Link)))
	b = append(b, r.Link...)
	b = binary.AppendVarint(b, r.TarOffset)
	return b
}

// DecodeIndex decodes a batch of records as written by AppendIndex.
func DecodeIndex(b []byte, fn func(IndexRecord) error) error {
	d := decoder{b: b}
	for len(d.b) > 0 {
		var r IndexRecord
		r.Path = d.str()
		r.Type = d.byte1()
		r.Size = d.varint()
		mode := d.uvarint()
		r.Mtime = time.Unix(0, d.varint())
		r.UID = int(d.varint())
		r.GID = int(d.varint())
		r.Link = d.str()
		r.TarOffset = d.varint()
		if d.err != nil {
			return fmt.Errorf("%w: index record %d: %v", ErrProtocol, d.n, d.err)
		}
		if mode > 0o7777 {
			return fmt.Errorf("%w: index record %q: mode %o out of range", ErrProtocol, r.Path, mode)
		}
		if r.Path == "" || r.Size < 0 || r.TarOffset < 0 {
			return fmt.Errorf("%w: index record %d: empty path or negative size/offset", ErrProtocol, d.n)
		}
		r.Mode = uint32(mode)
		d.n++
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
	n   int
	// all, when set, is the whole input as one string (b is always a
	// suffix of it): strings are taken from it instead of allocated one
	// by one (a listing of 100,000 names is 100,000 allocations less).
	all string
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string { return d.strMax(MaxPathLen) }

// strMax reads a length-prefixed string of at most max bytes.
func (d *decoder) strMax(max uint64) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > max || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("string of %d bytes does not fit", n)
		return ""
	}
	var s string
	if d.all != "" {
		at := len(d.all) - len(d.b)
		s = d.all[at : at+int(n)]
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

// AppendFrameInfo appends the binary encoding of frame f to b: its tar
// offset and size and its payload offset and size. f.Index is not sent;
// frames are numbered by the order they arrive in.
func AppendFrameInfo(b []byte, f image.Frame) []byte {
	b = binary.AppendUvarint(b, uint64(f.TarOffset))
	b = binary.AppendUvarint(b, uint64(f.TarSize))
	b = binary.AppendUvarint(b, uint64(f.Offset))
	return binary.AppendUvarint(b, uint64(f.Size))
}

// DecodeFrameInfo decodes a batch written by AppendFrameInfo. The frames
// passed to fn have Index 0: the receiver numbers them across batches.
func DecodeFrameInfo(b []byte, fn func(image.Frame) error) error {
	d := decoder{b: b}
	for len(d.b) > 0 {
		f := image.Frame{TarOffset: int64(d.uvarint()), TarSize: int64(d.uvarint()), Offset: int64(d.uvarint()), Size: int64(d.uvarint())}
		if d.err != nil {
			return fmt.Errorf("%w: frame record %d: %v", ErrProtocol, d.n, d.err)
		}
		if f.TarOffset < 0 || f.TarSize < 0 || f.Offset < 0 || f.Size < 0 {
			return fmt.Errorf("%w: frame record %d: negative value", ErrProtocol, d.n)
		}
		d.n++
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
