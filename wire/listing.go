package wire

import (
	"encoding/binary"
	"fmt"
)

// MaxDumpdirLen bounds the GNU.dumpdir value of one listing record: a
// record (with a path of at most MaxPathLen bytes) always fits in one
// frame. An agent does not send the listing of a larger directory.
const MaxDumpdirLen = MaxFrame - MaxPathLen - 64

// ListingRecord is one directory's listing, as the agent sends it
// (FrameListing): the directory relative to the DLE root ("" for the
// root, no "./", no trailing "/") and the GNU.dumpdir value its tar entry
// carries, byte for byte.
type ListingRecord struct {
	Dir     string
	Dumpdir string
}

// AppendListing appends the binary encoding of one listing to b:
// uvarint len, dir bytes, uvarint len, dumpdir bytes.
func AppendListing(b []byte, dir, dumpdir string) []byte {
	b = binary.AppendUvarint(b, uint64(len(dir)))
	b = append(b, dir...)
	b = binary.AppendUvarint(b, uint64(len(dumpdir)))
	return append(b, dumpdir...)
}

// DecodeListings decodes a batch written by AppendListing. A truncated
// record, a directory longer than MaxPathLen or a dumpdir longer than
// MaxDumpdirLen is a protocol error. Whether the directory is a clean
// relative path and the dumpdir decodes is for the receiver to check.
func DecodeListings(b []byte, fn func(ListingRecord) error) error {
	d := decoder{b: b}
	for len(d.b) > 0 {
		var r ListingRecord
		r.Dir = d.str()
		r.Dumpdir = d.strMax(MaxDumpdirLen)
		if d.err != nil {
			return fmt.Errorf("%w: listing record %d: %v", ErrProtocol, d.n, d.err)
		}
		d.n++
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
