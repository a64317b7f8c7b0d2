package gnutar

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Extent is a range of a file that holds data; what lies between extents
// is a hole (reads as zeros and occupies no disk blocks).
type Extent struct{ Offset, Length int64 }

// sparseDir is the directory component GNU tar puts in the ustar name of
// a format 1.0 sparse member ("%d/GNUSparseFile.%p/%f"; we use 0 for %p,
// GNU tar uses its process id). Only tools that do not know the format
// ever see this name.
const sparseDir = "GNUSparseFile.0"

// reservedKey reports whether SparseEntry derives pax key k from hdr's
// fields or from the sparse layout; the same keys in hdr.PAXRecords are
// ignored, as archive/tar ignores the keys it derives.
func reservedKey(k string) bool {
	switch k {
	case "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime":
		return true
	}
	return strings.HasPrefix(k, "GNU.sparse.")
}

// SparseEntry returns the raw blocks that precede the data of a sparse
// entry in GNU pax sparse format 1.0: a pax extended header (typeflag 'x')
// with the GNU.sparse.* records and every other record the entry needs, a
// ustar header (typeflag '0') named dir/GNUSparseFile.0/base whose size
// covers map and data, then the sparse map as decimal text padded with
// NULs to a 512 multiple. hdr.Name is the real name, hdr.Size the real
// (apparent) size; Mode, Uid, Gid, Uname, Gname, ModTime, AccessTime,
// ChangeTime, PAXRecords and the deprecated Xattrs are honoured.
//
// ext must be sorted, not overlapping, and inside [0, hdr.Size]; it is the
// same list the caller then reads with ExtentReader. dataSize is the sum
// of the extent lengths. After prefix, the caller writes exactly dataSize
// bytes (the extents in order) and Pad(dataSize) zero bytes. When the file
// ends with a hole the map gets a last extent (size, 0), as GNU tar
// writes it, so that the extractor truncates the file to its full size.
func SparseEntry(hdr *tar.Header, ext []Extent) (prefix []byte, dataSize int64, err error) {
	if hdr == nil {
		return nil, 0, fmt.Errorf("gnutar: sparse entry: nil header")
	}
	name := hdr.Name
	fail := func(format string, a ...any) ([]byte, int64, error) {
		return nil, 0, fmt.Errorf("gnutar: sparse entry %q: "+format, append([]any{name}, a...)...)
	}
	switch {
	case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA:
		return fail("typeflag %q is not a regular file; only regular files can be sparse", hdr.Typeflag)
	case name == "" || strings.Contains(name, "\x00"):
		return fail("name is empty or contains NUL")
	case hdr.Linkname != "":
		return fail("a regular file has no link name (got %q)", hdr.Linkname)
	case hdr.Size < 0:
		return fail("negative size %d", hdr.Size)
	case hdr.Mode < 0:
		return fail("negative mode %d", hdr.Mode)
	case hdr.Uid < 0 || hdr.Gid < 0:
		return fail("negative uid %d or gid %d", hdr.Uid, hdr.Gid)
	case strings.Contains(hdr.Uname, "\x00") || strings.Contains(hdr.Gname, "\x00"):
		return fail("user or group name contains NUL")
	}
	smap, dataSize, err := sparseMap(ext, hdr.Size)
	if err != nil {
		return fail("%v", err)
	}
	mapBlocks := encodeSparseMap(smap)
	memberSize := int64(len(mapBlocks)) + dataSize

	recs := []string{
		paxRecord("GNU.sparse.major", "1"),
		paxRecord("GNU.sparse.minor", "0"),
		paxRecord("GNU.sparse.name", name),
		paxRecord("GNU.sparse.realsize", strconv.FormatInt(hdr.Size, 10)),
	}
	u := ustarHeader{mode: hdr.Mode & 07777, typeflag: tar.TypeReg}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	u.name, u.prefix = fitName(dir, sparseDir, base)

	mtime := hdr.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	if s := mtime.Unix(); s >= 0 && s <= maxOctal11 {
		u.mtime = s
	}
	recs = append(recs, paxRecord("mtime", paxTime(mtime)))
	if !hdr.AccessTime.IsZero() {
		recs = append(recs, paxRecord("atime", paxTime(hdr.AccessTime)))
	}
	if !hdr.ChangeTime.IsZero() {
		recs = append(recs, paxRecord("ctime", paxTime(hdr.ChangeTime)))
	}
	if int64(hdr.Uid) <= maxOctal7 {
		u.uid = int64(hdr.Uid)
	} else {
		recs = append(recs, paxRecord("uid", strconv.Itoa(hdr.Uid)))
	}
	if int64(hdr.Gid) <= maxOctal7 {
		u.gid = int64(hdr.Gid)
	} else {
		recs = append(recs, paxRecord("gid", strconv.Itoa(hdr.Gid)))
	}
	if fitsUstarString(hdr.Uname) {
		u.uname = hdr.Uname
	} else {
		recs = append(recs, paxRecord("uname", hdr.Uname))
	}
	if fitsUstarString(hdr.Gname) {
		u.gname = hdr.Gname
	} else {
		recs = append(recs, paxRecord("gname", hdr.Gname))
	}
	if memberSize <= maxOctal11 {
		u.size = memberSize
	} else {
		recs = append(recs, paxRecord("size", strconv.FormatInt(memberSize, 10)))
	}

	extra := make(map[string]string, len(hdr.PAXRecords)+len(hdr.Xattrs))
	//lint:ignore SA1019 the deprecated Xattrs field is honoured like archive/tar does
	for k, v := range hdr.Xattrs {
		extra["SCHILY.xattr."+k] = v
	}
	for k, v := range hdr.PAXRecords {
		extra[k] = v
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if reservedKey(k) {
			continue
		}
		if !validPAXKey(k) {
			return fail("invalid pax record key %q (empty, or contains '=' or NUL)", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		recs = append(recs, paxRecord(k, extra[k]))
	}
	pax := strings.Join(recs, "")

	x := ustarHeader{mode: 0o644, size: int64(len(pax)), mtime: u.mtime, typeflag: tar.TypeXHeader}
	x.name, x.prefix = fitName(dir, "PaxHeaders", base)
	if x.size > maxOctal11 {
		return fail("pax header of %d bytes is too large", x.size)
	}

	out := make([]byte, 0, 2*blockSize+len(pax)+int(Pad(int64(len(pax))))+len(mapBlocks))
	out = append(out, x.block()...)
	out = append(out, pax...)
	out = append(out, make([]byte, Pad(int64(len(pax))))...)
	out = append(out, u.block()...)
	out = append(out, mapBlocks...)
	return out, dataSize, nil
}

// sparseMap validates ext against size and returns the map GNU tar would
// write: zero-length extents dropped, and a final (size, 0) extent when
// the file does not end with data.
func sparseMap(ext []Extent, size int64) ([]Extent, int64, error) {
	out := make([]Extent, 0, len(ext)+1)
	var end, data int64
	for i, e := range ext {
		switch {
		case e.Offset < 0 || e.Length < 0:
			return nil, 0, fmt.Errorf("extent %d {%d %d} is negative", i, e.Offset, e.Length)
		case e.Offset < end:
			return nil, 0, fmt.Errorf("extent %d {%d %d} overlaps or precedes the previous one (ending at %d); extents must be sorted and disjoint", i, e.Offset, e.Length, end)
		case e.Offset > size || e.Length > size-e.Offset:
			return nil, 0, fmt.Errorf("extent %d {%d %d} reaches past the file size %d", i, e.Offset, e.Length, size)
		}
		if e.Length == 0 {
			continue
		}
		out = append(out, e)
		end = e.Offset + e.Length
		data += e.Length
	}
	if len(out) == 0 || end < size {
		out = append(out, Extent{Offset: size})
	}
	return out, data, nil
}

// encodeSparseMap renders a format 1.0 sparse map: the count, then offset
// and length of each extent, each number on its own line, NUL-padded to a
// whole number of blocks.
func encodeSparseMap(m []Extent) []byte {
	b := strconv.AppendInt(nil, int64(len(m)), 10)
	b = append(b, '\n')
	for _, e := range m {
		b = strconv.AppendInt(b, e.Offset, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, e.Length, 10)
		b = append(b, '\n')
	}
	return append(b, make([]byte, Pad(int64(len(b))))...)
}

// paxTime formats t as a pax time value: seconds, and the nanoseconds as a
// fraction without trailing zeros when there are any. For times before
// 1970 the value is still the exact decimal number, e.g. -1.5.
func paxTime(t time.Time) string {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	if nsec == 0 {
		return strconv.FormatInt(sec, 10)
	}
	sign := ""
	if sec < 0 {
		sign = "-"
		sec = -(sec + 1)
		nsec = 1e9 - nsec
	}
	frac := strings.TrimRight(fmt.Sprintf("%09d", nsec), "0")
	return fmt.Sprintf("%s%d.%s", sign, sec, frac)
}

// ExtentReader reads the extents of r in order, concatenated: the data
// part of a sparse entry. A file that shrank under it gives an error
// wrapping io.ErrUnexpectedEOF that names the extent.
func ExtentReader(r io.ReaderAt, ext []Extent) io.Reader {
	return &extentReader{r: r, ext: ext}
}

type extentReader struct {
	r   io.ReaderAt
	ext []Extent
	i   int   // current extent
	off int64 // bytes of it already read
}

func (x *extentReader) Read(p []byte) (int, error) {
	for x.i < len(x.ext) && x.off >= x.ext[x.i].Length {
		x.i++
		x.off = 0
	}
	if x.i == len(x.ext) {
		return 0, io.EOF
	}
	e := x.ext[x.i]
	if e.Offset < 0 {
		return 0, fmt.Errorf("gnutar: extent %d {%d %d} has a negative offset", x.i, e.Offset, e.Length)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rest := e.Length - x.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := x.r.ReadAt(p, e.Offset+x.off)
	x.off += int64(n)
	if err == io.EOF {
		if n == len(p) {
			return n, nil
		}
		return n, fmt.Errorf("gnutar: extent %d {%d %d}: file ended at %d (it shrank while being read): %w", x.i, e.Offset, e.Length, e.Offset+x.off, io.ErrUnexpectedEOF)
	}
	return n, err
}
