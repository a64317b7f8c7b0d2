package recover

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// RestoreOptions say where and how a restore writes.
type RestoreOptions struct {
	To string // target directory: the DLE root lands here
	// Overwrite is asked when some entries already exist under To (not
	// counting directories); existing names the first few. Nil or false:
	// existing files are skipped and reported.
	Overwrite func(existing []string, total int) bool
	// Progress receives a line for a person: which image is read from
	// where. May be nil.
	Progress func(string)
	// Ask receives what a person must do for the restore to go on ("insert
	// volume T-002 into /dev/nst0"), from a server whose drive waits for a
	// person: the restore waits, without a deadline, until the volume is
	// there or ctx ends. Nil: it goes to Progress.
	Ask func(string)
	// Warn receives problems that do not fail an entry (an owner or an
	// attribute that could not be set). May be nil.
	Warn func(string)
	// SamePrivileges recreates device nodes, setuid and setgid bits and
	// trusted.* and security.* xattrs (Extractor); without it they are
	// left out and listed in RestoreResult.Dropped.
	SamePrivileges bool
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Images   []wire.ImageInfo
	Entries  int      // in the plan
	Needed   []string // the volumes the restore loads, in order
	Restored int      // written
	Bytes    int64    // file data written
	Skipped  []string // existing, not overwritten
	Failed   []string // "path: reason"
	Dropped  Dropped  // entries whose privileged parts were left out
}

// OK reports whether everything asked for was restored.
func (r *RestoreResult) OK() bool {
	return r.Restored > 0 && len(r.Failed) == 0 && len(r.Skipped) == 0
}

// Restore extracts paths (relative to the DLE root; "" the whole DLE) of the
// view q under opt.To: the server sends only the compressed frames that
// hold them, and this side decompresses them and writes the files with the
// Extractor (mode, owner when root, times, symlinks, hard links, xattrs,
// sparse files; names that would escape To are refused). Every frame goes
// through image's FrameDecoder: its sizes are checked against the catalog,
// and zstd's or gzip's checksums on the way.
// The error is non-nil when the session broke; entries that failed are in
// the result.
func (cl *Client) Restore(ctx context.Context, q Query, paths []string, opt RestoreOptions) (*RestoreResult, error) {
	if opt.To == "" {
		return nil, errors.New("no target directory (lcd DIR)")
	}
	if fi, err := os.Stat(opt.To); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("target %s is not a directory: choose another with lcd", opt.To)
	}
	req := q.req(wire.IdxRestore)
	req.Paths = paths
	r, err := cl.do(req)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{Images: r.Images, Entries: r.Count, Needed: r.Needed}
	byImage := make([][]wire.EntryInfo, len(r.Images))
	if err := cl.c.ReadEntries(r.Count, func(e wire.EntryInfo) error {
		if e.Image < 0 || e.Image >= len(byImage) {
			return fmt.Errorf("%w: entry %q names image %d of %d", wire.ErrProtocol, e.Path, e.Image, len(byImage))
		}
		byImage[e.Image] = append(byImage[e.Image], e)
		return nil
	}); err != nil {
		return res, cl.broken(err)
	}

	x := &Extractor{Dir: opt.To, Overwrite: true, Warn: opt.Warn, SamePrivileges: opt.SamePrivileges}
	defer func() { x.Close(); res.Dropped = x.Dropped }()

	// Ask once about what exists already.
	skip := map[string]bool{}
	var existing []string
	total := 0
	for _, es := range byImage {
		for _, e := range es {
			if e.IsDir() {
				continue
			}
			if x.exists(e.Path) {
				total++
				if len(existing) < 5 {
					existing = append(existing, e.Path)
				}
				skip[e.Path] = true
			}
		}
	}
	if total > 0 && opt.Overwrite != nil && opt.Overwrite(existing, total) {
		clear(skip)
	}

	st := &chunkStream{cl: cl, ctx: ctx, ask: opt.Ask}
	if st.ask == nil {
		st.ask = opt.Progress
	}
	// An interrupt while a read waits: the session cannot go on.
	stop := context.AfterFunc(ctx, func() { cl.nc.SetDeadline(time.Now()) })
	defer stop()
	for i, es := range byImage {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		st.start(i, r.Images[i], opt.Progress)
		err := cl.restoreImage(st, x, es, skip, res)
		if _, ok := asImageError(err); err != nil && !ok {
			return res, err
		}
	}
	x.finishDirs()
	if err := st.end(); err != nil {
		return res, err
	}
	return res, nil
}

// imageError fails the rest of one image; the stream goes on.
type imageError struct{ msg string }

func (e *imageError) Error() string { return e.msg }

func (cl *Client) restoreImage(st *chunkStream, x *Extractor, es []wire.EntryInfo, skip map[string]bool, res *RestoreResult) error {
	// failed records an entry's failure; when the stream itself failed
	// (the connection, or the whole image), it fails the rest too and
	// returns the error that stops the image.
	failed := func(k int, e wire.EntryInfo, what string, err error) error {
		switch {
		case st.err != nil:
			return st.err
		case st.bad != "":
			for _, e := range es[k:] {
				res.Failed = append(res.Failed, fmt.Sprintf("%s: %s", e.Path, st.bad))
			}
			return &imageError{st.bad}
		}
		res.Failed = append(res.Failed, fmt.Sprintf("%s: %s%v", e.Path, what, err))
		return nil
	}
	for k, e := range es {
		if err := st.ctx.Err(); err != nil {
			for _, e := range es[k:] {
				res.Failed = append(res.Failed, e.Path+": interrupted")
			}
			return err
		}
		if skip[e.Path] {
			res.Skipped = append(res.Skipped, e.Path)
			continue
		}
		if e.TarOffset == 0 && e.IsDir() {
			// A directory no image has an entry for: create it.
			if err := x.ensureDir(e.Path); err != nil {
				res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", e.Path, err))
				continue
			}
			res.Restored++
			continue
		}
		if err := st.skipTo(e.TarOffset); err != nil {
			if err := failed(k, e, "", err); err != nil {
				return err
			}
			continue
		}
		tr := tar.NewReader(st)
		hdr, err := tr.Next()
		if err != nil {
			if err := failed(k, e, fmt.Sprintf("reading its tar header at offset %d: ", e.TarOffset), err); err != nil {
				return err
			}
			continue
		}
		src := e.Path
		if e.Source != "" {
			src = e.Source
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if name != src {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: the image holds %q at tar offset %d where the catalog expects %q: the catalog does not match the image (rebuild it)", e.Path, hdr.Name, e.TarOffset, src))
			continue
		}
		hdr.Name = "./" + e.Path
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if _, err := x.Entry(hdr, tr); err != nil {
			if err := failed(k, e, "", err); err != nil {
				return err
			}
			continue
		}
		res.Restored++
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
			res.Bytes += hdr.Size
		}
	}
	return nil
}

// chunkStream reads the chunks of a restore stream as one image's tar
// bytes, from an offset on: the frames the server sent, decompressed;
// the gaps between them are frames nobody asked for.
type chunkStream struct {
	cl      *Client
	ctx     context.Context
	img     int
	info    wire.ImageInfo
	pending *wire.RestoreMsg // a message of a later image, read ahead
	ended   bool

	pos int64  // tar offset of buf[0]
	buf []byte // decompressed bytes not yet read
	err error  // the connection broke
	bad string // the image failed (server said so, or a frame was damaged)

	progress func(string)
	ask      func(string) // may be nil
	waiting  bool         // the server asked for a volume: no deadline until it answers
	in       []byte
	dec      *image.FrameDecoder // for comp
	comp     image.Comp
}

func (s *chunkStream) start(i int, info wire.ImageInfo, progress func(string)) {
	s.img, s.info, s.progress = i, info, progress
	s.pos, s.buf, s.bad = 0, nil, ""
}

func (s *chunkStream) what() string {
	return fmt.Sprintf("level %d image %s", s.info.Level, showDatestamp(s.info.Datestamp))
}

// next reads the next message for the current image: a chunk (returned),
// or the end of the image (io.EOF).
func (s *chunkStream) next() (*wire.Chunk, error) {
	for {
		if s.err != nil {
			return nil, s.err
		}
		if s.bad != "" {
			return nil, &imageError{s.bad}
		}
		var m wire.RestoreMsg
		if s.pending != nil {
			m, s.pending = *s.pending, nil
		} else if s.ended {
			return nil, io.EOF
		} else {
			if err := s.readDeadline(); err != nil {
				return nil, err
			}
			if err := s.cl.c.ReadMsg(&m); err != nil {
				s.err = s.cl.broken(err)
				return nil, s.err
			}
		}
		s.waiting = false
		switch {
		case m.Ask != nil:
			// A person must bring a volume: wait for the next message as
			// long as it takes (^C cancels: ctx ends the read at once).
			s.waiting = true
			if s.ask != nil {
				s.ask(m.Ask.Msg)
			}
		case m.End != nil:
			s.ended = true
			return nil, io.EOF
		case m.Chunk != nil && m.Chunk.Image < s.img:
			// The rest of an image whose entries are all done.
			if err := s.discard(m.Chunk); err != nil {
				return nil, err
			}
		case m.Image != nil && m.Image.Image < s.img:
		case m.Image != nil && m.Image.Image > s.img, m.Chunk != nil && m.Chunk.Image > s.img:
			s.pending = &m
			return nil, io.EOF
		case m.Image != nil && m.Image.Image == s.img:
			if m.Image.Error != "" {
				s.bad = m.Image.Error
				return nil, &imageError{s.bad}
			}
			if s.progress != nil {
				s.progress(fmt.Sprintf("Reading the %s from %s", s.what(), m.Image.Where))
			}
		case m.Chunk != nil && m.Chunk.Image == s.img:
			return m.Chunk, s.readChunk(m.Chunk)
		default:
			s.err = fmt.Errorf("%w: restore message for image out of order while reading image %d", wire.ErrProtocol, s.img)
			return nil, s.err
		}
	}
}

// readDeadline bounds the wait for the next message by the stall time,
// or not at all while the server waits for a person to bring a volume.
// An interrupt (ctx) ends either wait: it sets the deadline to now.
func (s *chunkStream) readDeadline() error {
	if !s.waiting {
		s.cl.nc.SetDeadline(time.Now().Add(s.cl.stall()))
		return nil
	}
	s.cl.nc.SetDeadline(time.Time{})
	if err := s.ctx.Err(); err != nil {
		// Cancelled before the deadline was cleared: the interrupt's own
		// deadline may have been overwritten.
		s.err = err
		return err
	}
	return nil
}

// discard reads and drops the data frames of a chunk.
func (s *chunkStream) discard(c *wire.Chunk) error {
	for left := c.Size; left > 0; {
		s.cl.nc.SetDeadline(time.Now().Add(s.cl.stall()))
		typ, b, err := s.cl.c.ReadFrame()
		if err != nil {
			s.err = s.cl.broken(err)
			return s.err
		}
		if typ != wire.FrameData || int64(len(b)) > left {
			s.err = fmt.Errorf("%w: frame %d of image %d: expected %d data bytes, got frame %q", wire.ErrProtocol, c.Frame, c.Image, left, typ)
			return s.err
		}
		left -= int64(len(b))
	}
	return nil
}

// readChunk reads the data frames of a chunk and decompresses them into
// buf, checking the size the catalog gives.
func (s *chunkStream) readChunk(c *wire.Chunk) error {
	if c.Size < 0 || c.Size > 1<<30 || c.TarSize < 0 || c.TarSize > image.MaxFrameSize {
		s.err = fmt.Errorf("%w: chunk of %d bytes (%d tar bytes)", wire.ErrProtocol, c.Size, c.TarSize)
		return s.err
	}
	s.in = s.in[:0]
	for int64(len(s.in)) < c.Size {
		s.cl.nc.SetDeadline(time.Now().Add(s.cl.stall()))
		typ, b, err := s.cl.c.ReadFrame()
		if err != nil {
			s.err = s.cl.broken(err)
			return s.err
		}
		if typ != wire.FrameData || int64(len(s.in)+len(b)) > c.Size {
			s.err = fmt.Errorf("%w: frame %d of image %d: expected %d data bytes, got frame %q", wire.ErrProtocol, c.Frame, c.Image, c.Size-int64(len(s.in)), typ)
			return s.err
		}
		s.in = append(s.in, b...)
	}
	out, err := s.decode(s.in, c)
	if err != nil {
		s.bad = fmt.Sprintf("frame %d of the %s is damaged (%v): checksum mismatch or corrupt data; restore these files from another image (setdate) or check the volume with `tapir verify`", c.Frame, s.what(), err)
		return &imageError{s.bad}
	}
	s.pos, s.buf = c.TarOffset, out
	return nil
}

// decode checks and decompresses the stored bytes of chunk c with the
// image's frame decoder, made anew when the compression changes.
func (s *chunkStream) decode(in []byte, c *wire.Chunk) ([]byte, error) {
	if comp := image.Comp(s.info.Comp); s.dec == nil || s.comp != comp {
		s.closeDecoder()
		d, err := image.NewFrameDecoder(comp, image.MaxFrameSize)
		if err != nil {
			return nil, err
		}
		s.dec, s.comp = d, comp
	}
	return s.dec.Decode(in, image.Frame{Index: c.Frame, TarOffset: c.TarOffset, TarSize: c.TarSize, Size: c.Size})
}

func (s *chunkStream) closeDecoder() {
	if s.dec != nil {
		s.dec.Close()
		s.dec = nil
	}
}

// skipTo moves to tar offset off, dropping what lies before it.
func (s *chunkStream) skipTo(off int64) error {
	for off >= s.pos+int64(len(s.buf)) {
		if _, err := s.next(); err != nil {
			if err == io.EOF {
				s.bad = fmt.Sprintf("the server sent no frame holding tar offset %d of the %s", off, s.what())
				return &imageError{s.bad}
			}
			return err
		}
	}
	if off < s.pos {
		s.bad = fmt.Sprintf("tar offset %d of the %s lies before the frames sent (entries out of order)", off, s.what())
		return &imageError{s.bad}
	}
	s.buf = s.buf[off-s.pos:]
	s.pos = off
	return nil
}

// Read gives the tar bytes from the current offset on; a gap (a frame not
// sent) in the middle of an entry is an error.
func (s *chunkStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		end := s.pos
		c, err := s.next()
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, err
		}
		if c.TarOffset != end {
			s.bad = fmt.Sprintf("frame %d of the %s does not follow the one before (tar offset %d, expected %d): frames are missing", c.Frame, s.what(), c.TarOffset, end)
			return 0, &imageError{s.bad}
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	s.pos += int64(n)
	return n, nil
}

// end reads the stream to its end.
func (s *chunkStream) end() error {
	s.img = 1 << 30 // every message left belongs to an image done with
	for !s.ended {
		if s.err != nil {
			return s.err
		}
		s.bad = ""
		if _, err := s.next(); err != nil && err != io.EOF {
			if _, ok := asImageError(err); !ok {
				return err
			}
		}
	}
	s.closeDecoder()
	return nil
}

func asImageError(err error) (*imageError, bool) {
	var ie *imageError
	ok := errors.As(err, &ie)
	return ie, ok
}

func showDatestamp(ds string) string {
	t, err := time.Parse("20060102150405", ds)
	if err != nil {
		return ds
	}
	return t.Format("2006-01-02 15:04:05")
}
