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

	"github.com/tapir-backup/tapir/image/crypt"
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
	// Identities open the encrypted images of the restore (nil: none
	// given; a restore that needs one fails before it writes anything).
	Identities *crypt.Identities
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
// sparse files; names that would escape To are refused). The frames are
// received and decompressed on other goroutines, several at once, ahead
// of the writing (receiver), as `tapir recover --all` does; the plan
// came once, so no file costs a round trip. Every frame goes through
// image's FrameDecoder: its sizes are checked against the catalog, and
// zstd's or gzip's checksums on the way.
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
	keys, err := ImageKeys(q, r.Images, opt.Identities)
	if err != nil {
		// The plan, its entries and the stream follow: nothing of them is
		// wanted, and the session cannot skip them.
		cl.Close()
		return res, fmt.Errorf("%v (the session with the index server is closed: reconnect)", err)
	}
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

	// Ask once about what exists already. Nothing is under a directory of
	// the plan that is not there (its entry comes before what it holds):
	// an extract into an empty directory looks up only the top entries,
	// not every file.
	skip := map[string]bool{}
	var existing []string
	total := 0
	absent := map[string]bool{}
	inAbsent := func(p string) bool {
		for i := len(p) - 1; i > 0 && len(absent) > 0; i-- {
			if p[i] == '/' && absent[p[:i]] {
				return true
			}
		}
		return false
	}
	for _, es := range byImage {
		for _, e := range es {
			if inAbsent(e.Path) {
				continue
			}
			if e.IsDir() {
				if !x.exists(e.Path) {
					absent[e.Path] = true
				}
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

	// An interrupt while a read waits: the session cannot go on.
	stop := context.AfterFunc(ctx, func() { cl.nc.SetDeadline(time.Now()) })
	defer stop()
	rc := cl.startReceiver(ctx, r.Images, keys)
	defer rc.stop()
	st := &chunkStream{rc: rc, ctx: ctx, ask: opt.Ask}
	if st.ask == nil {
		st.ask = opt.Progress
	}
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
// bytes, from an offset on: the frames the server sent, decompressed
// ahead by the receiver; the gaps between them are frames nobody asked
// for.
type chunkStream struct {
	rc      *receiver
	ctx     context.Context
	img     int
	info    wire.ImageInfo
	pending *recvItem // a message of a later image, read ahead
	cur     *recvItem // the chunk whose tar bytes buf holds
	ended   bool

	pos int64  // tar offset of buf[0]
	buf []byte // decompressed bytes not yet read
	err error  // the stream broke (connection, protocol, interrupt)
	bad string // the image failed (server said so, or a frame was damaged)

	progress func(string)
	ask      func(string) // may be nil
}

func (s *chunkStream) start(i int, info wire.ImageInfo, progress func(string)) {
	s.img, s.info, s.progress = i, info, progress
	s.pos, s.buf, s.bad = 0, nil, ""
	s.rc.skipBelow.Store(int64(i))
}

// fail gives up on the rest of the current image: the receiver stops
// decompressing its chunks, and the stream goes on with the next image.
func (s *chunkStream) fail(msg string) error {
	s.bad = msg
	s.rc.skipBelow.Store(int64(s.img) + 1)
	return &imageError{msg}
}

func (s *chunkStream) what() string {
	return fmt.Sprintf("level %d image %s", s.info.Level, showDatestamp(s.info.Datestamp))
}

// next reads the next message for the current image: a chunk (returned,
// its tar bytes in buf), or the end of the image (io.EOF).
func (s *chunkStream) next() (*wire.Chunk, error) {
	s.rc.release(s.cur)
	s.cur, s.buf = nil, nil
	for {
		if s.err != nil {
			return nil, s.err
		}
		if s.bad != "" {
			return nil, &imageError{s.bad}
		}
		var it *recvItem
		switch {
		case s.pending != nil:
			it, s.pending = s.pending, nil
		case s.ended:
			return nil, io.EOF
		default:
			it = s.rc.next()
		}
		if it.err != nil {
			s.err = it.err
			return nil, s.err
		}
		m := it.m
		switch {
		case m.Ask != nil:
			// A person must bring a volume; the receiver waits for the
			// next message as long as it takes (^C cancels).
			s.rc.release(it)
			if s.ask != nil {
				s.ask(m.Ask.Msg)
			}
		case m.End != nil:
			s.rc.release(it)
			s.ended = true
			return nil, io.EOF
		case m.Chunk != nil && m.Chunk.Image < s.img, m.Image != nil && m.Image.Image < s.img:
			// The rest of an image whose entries are all done.
			s.rc.release(it)
		case m.Image != nil && m.Image.Image > s.img, m.Chunk != nil && m.Chunk.Image > s.img:
			s.pending = it
			return nil, io.EOF
		case m.Image != nil:
			s.rc.release(it)
			if m.Image.Error != "" {
				return nil, s.fail(m.Image.Error)
			}
			if s.progress != nil {
				s.progress(fmt.Sprintf("Reading the %s from %s", s.what(), m.Image.Where))
			}
		default: // a chunk of the current image
			c := m.Chunk
			if it.bad != nil || it.skipped {
				why := "it was not decompressed"
				if it.bad != nil {
					why = it.bad.Error()
				}
				s.rc.release(it)
				return nil, s.fail(fmt.Sprintf("frame %d of the %s is damaged (%s): checksum mismatch or corrupt data; restore these files from another image (setdate) or check the volume with `tapir verify`", c.Frame, s.what(), why))
			}
			s.cur, s.pos, s.buf = it, c.TarOffset, it.out
			return c, nil
		}
	}
}

// skipTo moves to tar offset off, dropping what lies before it.
func (s *chunkStream) skipTo(off int64) error {
	for off >= s.pos+int64(len(s.buf)) {
		if _, err := s.next(); err != nil {
			if err == io.EOF {
				return s.fail(fmt.Sprintf("the server sent no frame holding tar offset %d of the %s", off, s.what()))
			}
			return err
		}
	}
	if off < s.pos {
		return s.fail(fmt.Sprintf("tar offset %d of the %s lies before the frames sent (entries out of order)", off, s.what()))
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
			return 0, s.fail(fmt.Sprintf("frame %d of the %s does not follow the one before (tar offset %d, expected %d): frames are missing", c.Frame, s.what(), c.TarOffset, end))
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
	s.rc.skipBelow.Store(int64(s.img))
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
