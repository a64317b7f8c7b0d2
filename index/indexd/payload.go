package indexd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// ImageReader reads the payload of one image from wherever it is: the
// holding disk (all chunks), or part by part from volumes lent by a
// VolumeSource, checking each header it finds against the image. It holds
// at most one volume at a time and releases it on Close. It implements
// io.ReaderAt over the payload (offset 0 is the first byte after the
// header). Not safe for concurrent use.
type ImageReader struct {
	// Ask, when set, lets a source that waits for a person ask for a
	// volume that is not there (VolumeSource.Open).
	Ask Ask
	// Header, when set, is told the image header of each part as the
	// reader comes to it on a volume, before checking it: raw is the
	// header record (on a random-access volume, the first
	// image.HeaderSize bytes of the tape file, fewer when the file is
	// shorter), or err says why it could not be reached or read (matching
	// taper.ErrEndOfData when the volume ends before the part's file, io.EOF
	// for an empty tape file). `tapir verify` takes the headers of the
	// parts it verifies from here, so that it reads each tape file once.
	Header func(pt catalog.Part, raw []byte, err error)
	// Peers, when set, reads a part on a volume another tapir server owns
	// (and that is not in this server's changer), or an image on another
	// server's holding disk, from that server (peers.go).
	Peers *Links

	expect []wire.Range // Expect

	ctx   context.Context
	vols  VolumeSource
	disks []string
	d     catalog.Dump
	parts []catalog.Part

	cur     int // index of the open part, -1 none
	pr      partReader
	release func()
	where   []string // what was read from, for messages
}

// partReader reads payload bytes of one part of an image.
type partReader interface {
	// readAt fills p from payload offset off (absolute in the payload),
	// which lies inside the part.
	readAt(p []byte, off int64) error
	close()
	name() string
}

// NewImageReader reads the image d, whose parts (in order) are given; with
// no parts it reads d.HoldingPath, which must be on one of holdingDisks.
// d.PayloadSize bounds the reads. Nothing is opened before the first read.
func NewImageReader(ctx context.Context, vols VolumeSource, holdingDisks []string, d catalog.Dump, parts []catalog.Part) *ImageReader {
	return &ImageReader{ctx: ctx, vols: vols, disks: holdingDisks, d: d, parts: parts, cur: -1}
}

func (s *Server) newImageSource(ctx context.Context, d catalog.Dump) (*ImageReader, error) {
	parts, err := partsToRead(ctx, s.Catalog, s.Volumes, d)
	if err != nil {
		return nil, err
	}
	return NewImageReader(ctx, s.Volumes, s.Holding, d, parts), nil
}

func (is *ImageReader) what() string {
	return fmt.Sprintf("level %d image %s of %s:%s", is.d.Level, is.d.Datestamp, is.d.Host, is.d.Path)
}

// Expect tells the reader the reads that will follow, in order (payload
// ranges): a part read from another server asks for them in one fetch, so
// that the other server loads its volume once for them all. Reads that
// differ still work, each asked for alone.
func (is *ImageReader) Expect(rs []wire.Range) { is.expect = rs }

// Where returns what was read so far: volumes and tape files, or the
// holding file.
func (is *ImageReader) Where() []string { return is.where }

// ReadAt reads payload bytes; it fails rather than return fewer than
// len(p) bytes.
func (is *ImageReader) ReadAt(p []byte, off int64) (int, error) {
	if err := is.readAt(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readAt fills p with payload bytes from off, crossing parts as needed.
func (is *ImageReader) readAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > is.d.PayloadSize {
		return fmt.Errorf("%s: payload bytes %d..%d are outside its %d bytes: the catalog's frame list is wrong (rebuild the catalog)", is.what(), off, off+int64(len(p)), is.d.PayloadSize)
	}
	if len(is.parts) == 0 {
		if is.pr == nil {
			pr, remote, err := is.Peers.remotePart(is.ctx, nil, is.d, nil, is.Ask, is.expect)
			if !remote {
				pr, err = openHolding(is.disks, is.d)
			}
			if err != nil {
				return err
			}
			is.pr = pr
			is.where = append(is.where, pr.name())
		}
		return is.pr.readAt(p, off)
	}
	for len(p) > 0 {
		i := -1
		for k, pt := range is.parts {
			if off >= pt.Offset && off < pt.Offset+pt.Length {
				i = k
				break
			}
		}
		if i < 0 {
			return fmt.Errorf("%s: no part holds payload offset %d: the catalog's parts are wrong (rebuild the catalog)", is.what(), off)
		}
		if i != is.cur {
			is.closePart()
			pr, remote, err := is.Peers.remotePart(is.ctx, is.vols, is.d, &is.parts[i], is.Ask, is.expect)
			release := func() {}
			if p, ok := is.vols.(*Pass); ok && remote {
				// Hold no drive here while waiting for one there: two
				// servers restoring from each other never wait for each
				// other's drives.
				p.Close()
			}
			if !remote {
				pr, release, err = openPart(is.ctx, is.vols, is.Ask, is.Header, is.d, is.parts[i])
			}
			if err != nil {
				return err
			}
			is.cur, is.pr, is.release = i, pr, release
			is.where = append(is.where, pr.name())
		}
		pt := is.parts[i]
		n := min(int64(len(p)), pt.Offset+pt.Length-off)
		if err := is.pr.readAt(p[:n], off); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

func (is *ImageReader) closePart() {
	if is.pr != nil {
		is.pr.close()
		is.pr = nil
	}
	if is.release != nil {
		is.release()
		is.release = nil
	}
	is.cur = -1
}

// Close releases the holding file or the volume.
func (is *ImageReader) Close() error {
	is.closePart()
	return nil
}

func (is *ImageReader) close() { is.closePart() }

// Stream returns the whole payload as a reader.
func (is *ImageReader) Stream() io.Reader {
	return &seqReader{is: is}
}

type seqReader struct {
	is  *ImageReader
	off int64
}

func (r *seqReader) Read(p []byte) (int, error) {
	left := r.is.d.PayloadSize - r.off
	if left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), left, 1<<20))
	if err := r.is.readAt(p[:n], r.off); err != nil {
		return 0, err
	}
	r.off += int64(n)
	return n, nil
}

// checkHeader checks that an image header found on a volume or the holding
// disk (its checksum already checked by image.ReadHeader/ParseHeader, so a
// damaged header never gets here) is the one the catalog expects there.
func checkHeader(h *image.Header, d catalog.Dump, part int, where string) error {
	if h.Datestamp != d.Datestamp || h.Host != d.Host || h.Path != d.Path || h.Level != d.Level || (part > 0 && h.Part != part) {
		return fmt.Errorf("%s holds image %s %s:%s level %d part %d, but the catalog expects %s %s:%s level %d part %d there: the volume was overwritten or the catalog is stale (run `tapir admin rebuild`)",
			where, h.Datestamp, h.Host, h.Path, h.Level, h.Part, d.Datestamp, d.Host, d.Path, d.Level, part)
	}
	// The catalog's comp and frame size decide how the payload is read.
	if (d.Comp != "" && h.Comp != image.Comp(d.Comp)) || (d.FrameSize > 0 && h.FrameSize != d.FrameSize) {
		return fmt.Errorf("%s: the image header says comp %s, frame-size %d, but the catalog says comp %s, frame-size %d: the catalog is wrong about this image (run `tapir verify` on the volume, then `tapir admin rebuild`)",
			where, h.Comp, h.FrameSize, d.Comp, d.FrameSize)
	}
	return nil
}

// fileReader reads a part (or a holding image) from a regular file whose
// payload starts after the header.
type fileReader struct {
	f     *os.File
	start int64 // payload offset of the file's first payload byte
	label string
}

func (r *fileReader) readAt(p []byte, off int64) error {
	n, err := r.f.ReadAt(p, image.HeaderSize+off-r.start)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: read %d bytes at payload offset %d: %w", r.label, len(p), off, err)
}

func (r *fileReader) close()       { r.f.Close() }
func (r *fileReader) name() string { return r.label }

// openHolding opens the holding file of an image that is not on a volume.
func openHolding(disks []string, d catalog.Dump) (partReader, error) {
	p := d.HoldingPath
	if p == "" {
		return nil, fmt.Errorf("level %d image %s of %s:%s is on no volume and has no holding file: it cannot be restored", d.Level, d.Datestamp, d.Host, d.Path)
	}
	if holding.DiskOf(p, disks) == "" {
		// The path is another machine's (or stale): it is not shown.
		who := "another machine's holding disk"
		if d.Server != "" {
			who = fmt.Sprintf("the holding disk of tapir server %s", d.Server)
		}
		return nil, fmt.Errorf("level %d image %s of %s:%s is on %s, not on one of this server's (%d holding disks): restore it from that server, or once it is flushed to a volume", d.Level, d.Datestamp, d.Host, d.Path, who, len(disks))
	}
	im, err := holding.OpenImage(p, disks)
	if err != nil {
		return nil, fmt.Errorf("level %d image %s of %s:%s is on the holding disk, but: %w (was it flushed meanwhile? ask again)", d.Level, d.Datestamp, d.Host, d.Path, err)
	}
	if err := checkHeader(im.Header, d, 0, "holding file "+p); err != nil {
		im.Close()
		return nil, err
	}
	return &holdingReader{im: im, label: "holding file " + p}, nil
}

// holdingReader reads a holding image, across its chunk files.
type holdingReader struct {
	im    *holding.Image
	label string
}

func (r *holdingReader) readAt(p []byte, off int64) error {
	n, err := r.im.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: read %d bytes at payload offset %d: %w", r.label, len(p), off, err)
}

func (r *holdingReader) close()       { r.im.Close() }
func (r *holdingReader) name() string { return r.label }

// openPart loads the volume of a part and returns a reader positioned for
// it; header (may be nil) is told the part's header record as read.
func openPart(ctx context.Context, vols VolumeSource, ask Ask, header func(catalog.Part, []byte, error), d catalog.Dump, pt catalog.Part) (partReader, func(), error) {
	if header == nil {
		header = func(catalog.Part, []byte, error) {}
	}
	if vols == nil {
		return nil, nil, fmt.Errorf("volume %s: no changer to read volumes from", pt.Volume)
	}
	dev, release, err := vols.Open(ctx, pt.Volume, ask)
	if err != nil {
		return nil, nil, err
	}
	where := fmt.Sprintf("volume %s file %d", pt.Volume, pt.FileNo)
	if dev.Properties().RandomAccess {
		f, err := dev.OpenFile(int(pt.FileNo))
		if err != nil {
			header(pt, nil, err)
			release()
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		hb := make([]byte, image.HeaderSize)
		n, rerr := io.ReadFull(f, hb)
		if n > 0 {
			header(pt, hb[:n], nil)
		} else {
			header(pt, nil, rerr)
		}
		h, err := image.ReadHeader(io.MultiReader(bytes.NewReader(hb[:n]), errReader{rerr}))
		if err == nil {
			err = checkHeader(h, d, pt.Part, where)
		}
		if err != nil {
			f.Close()
			release()
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		return &fileReader{f: f, start: pt.Offset, label: where}, release, nil
	}
	tr := &tapeReader{dev: dev, pt: pt, label: where, rec: -1, header: header}
	if err := tr.open(d); err != nil {
		release()
		return nil, nil, err
	}
	return tr, release, nil
}

// errReader returns err (io.EOF when nil): what followed the bytes read.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err == nil {
		return 0, io.EOF
	}
	return 0, r.err
}

// tapeReader reads a part from a drive by records: it positions with Seek
// (MTSEEK to the logical block; the fallback is rewind, forward space
// files, forward space records) and reads only the records that hold the
// bytes asked for.
type tapeReader struct {
	dev   taper.Device
	pt    catalog.Part
	label string
	bs    int64
	rec   int64 // payload record in buf (0 = the first after the header), -1 none
	buf   []byte
	n     int // bytes in buf
	next  int64
	// header is told the header record as read, or why it was not
	// (ImageReader.Header).
	header func(pt catalog.Part, raw []byte, err error)
}

func (t *tapeReader) name() string { return t.label }
func (t *tapeReader) close()       {}

// seek positions the drive at record r of the tape file (0 is the header).
func (t *tapeReader) seek(r int64) error {
	pos := taper.Position{File: t.pt.FileNo, Record: t.pt.Record + r}
	if t.pt.LogicalPos >= 0 {
		pos.Logical = t.pt.LogicalPos + r
	}
	// Seek re-establishes the position from the beginning of the volume
	// itself when locating fails; retrying here would only rewind again.
	if err := t.dev.Seek(pos); err != nil {
		if errors.Is(err, taper.ErrEndOfData) {
			return fmt.Errorf("%s: the volume ends before record %d of this file, where the catalog places the image: check that this is the right cartridge, then look at what it holds with `tapir verify %s` (the cartridge may have been erased or relabelled, or the catalog is stale): %w", t.label, pos.Record, t.pt.Volume, err)
		}
		return fmt.Errorf("%s: cannot position at record %d: %w", t.label, pos.Record, err)
	}
	return nil
}

func (t *tapeReader) open(d catalog.Dump) error {
	if err := t.seek(0); err != nil {
		t.header(t.pt, nil, err)
		return err
	}
	hb := make([]byte, image.HeaderSize)
	n, err := t.dev.ReadRecord(hb)
	if err != nil {
		t.header(t.pt, nil, err)
		return fmt.Errorf("%s: read the image header: %w", t.label, err)
	}
	t.header(t.pt, hb[:n], nil)
	h, err := image.ParseHeader(hb[:n])
	if err != nil {
		return fmt.Errorf("%s: %w", t.label, err)
	}
	if err := checkHeader(h, d, t.pt.Part, t.label); err != nil {
		return err
	}
	if h.Blocksize <= 0 {
		return fmt.Errorf("%s: the image header gives no blocksize; the payload cannot be read by records", t.label)
	}
	t.bs = h.Blocksize
	t.buf = make([]byte, t.bs)
	t.next = 1
	return nil
}

func (t *tapeReader) readAt(p []byte, off int64) error {
	rel := off - t.pt.Offset
	for len(p) > 0 {
		r := rel / t.bs
		if r != t.rec {
			if r+1 != t.next {
				if err := t.seek(r + 1); err != nil {
					return err
				}
			}
			n, err := t.dev.ReadRecord(t.buf)
			if err != nil {
				t.rec = -1
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("filemark before payload offset %d: the part is shorter than the catalog says", off)
				}
				return fmt.Errorf("%s: read record %d: %w", t.label, r+1, err)
			}
			t.rec, t.n, t.next = r, n, r+2
		}
		in := rel - r*t.bs
		if in >= int64(t.n) {
			return fmt.Errorf("%s: record %d holds %d bytes, payload offset %d is past them", t.label, r+1, t.n, off)
		}
		k := copy(p, t.buf[in:t.n])
		p, rel, off = p[k:], rel+int64(k), off+int64(k)
	}
	return nil
}
