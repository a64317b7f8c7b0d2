package tarscan

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
)

// Entry is one tar entry of the stream.
type Entry struct {
	catalog.FileRecord        // Path relative to the DLE root; "" for the root
	Dumpdir            string // the GNU.dumpdir value of a directory
	HasDumpdir         bool
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

// Scan reads the tar stream r to its end and calls fn for every entry, the
// DLE root included (Path ""), in stream order. Entry data is read and
// discarded. It returns the number of tar bytes read.
func Scan(r io.Reader, fn func(Entry) error) (int64, error) {
	cr := &counter{r: r}
	tr := tar.NewReader(cr)
	for n := 0; ; n++ {
		// The next header starts at the first block boundary after what
		// was read of the entry before: its data is read to its end.
		off := (cr.n + 511) &^ 511
		hdr, err := tr.Next()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, fmt.Errorf("tar entry %d at tar offset %d: %w", n, off, err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		name = strings.TrimSuffix(name, "/")
		if name == "." {
			name = ""
		}
		typ := hdr.Typeflag
		if typ == tar.TypeGNUSparse {
			typ = tar.TypeReg
		}
		e := Entry{FileRecord: catalog.FileRecord{
			Path: name, Type: typ, Size: hdr.Size, Mode: uint32(hdr.Mode) & 0o7777, Mtime: hdr.ModTime,
			UID: hdr.Uid, GID: hdr.Gid, Link: strings.TrimPrefix(hdr.Linkname, "./"), TarOffset: off,
		}}
		if v, ok := hdr.PAXRecords[gnutar.PAXDumpdir]; ok {
			e.Dumpdir, e.HasDumpdir = v, true
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return cr.n, fmt.Errorf("tar entry %q at tar offset %d: read data: %w", hdr.Name, off, err)
		}
		if err := fn(e); err != nil {
			return cr.n, err
		}
	}
}

// Listings reads a tar stream and returns the listing of every directory
// that carries one, keyed by its path relative to the DLE root.
func Listings(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	_, err := Scan(r, func(e Entry) error {
		if e.HasDumpdir {
			if _, err := gnutar.DecodeDumpdir(e.Dumpdir); err != nil {
				return fmt.Errorf("directory %q: %w", e.Path, err)
			}
			out[e.Path] = e.Dumpdir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordListings reads the holding image whose first chunk is path (disks:
// the holding disks where its other chunks may be) and records the
// directory listings of dump dumpID in the catalog
// (catalog.Catalog.SetListings). A run calls it once the image is safe on
// the holding disk, so that a view at a date never has to read the image
// from a volume (the index server does that, once, for images whose
// listings are missing). Fulls need no listings; recording them is
// harmless.
func RecordListings(ctx context.Context, cat *catalog.Catalog, dumpID int64, path string, disks []string) error {
	im, err := holding.OpenImage(path, disks)
	if err != nil {
		return fmt.Errorf("record listings of dump %d: %w", dumpID, err)
	}
	defer im.Close()
	r, err := image.NewStreamReader(io.NewSectionReader(im, 0, im.Size), im.Header.Comp)
	if err != nil {
		return fmt.Errorf("record listings of dump %d: %s: %w", dumpID, path, err)
	}
	defer r.Close()
	lst, err := Listings(r)
	if err != nil {
		return fmt.Errorf("record listings of dump %d: %s: %w", dumpID, path, err)
	}
	return cat.SetListings(ctx, dumpID, lst)
}
