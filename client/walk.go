package client

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// DumpOptions says how to dump a DLE.
type DumpOptions struct {
	Level         int
	Comp          image.Comp
	CompressLevel int
	FrameSize     int
	Exclude       []string // GNU tar --exclude patterns (see excluder)
	ExcludeLists  []string // files on the client holding one pattern per line
	OneFilesystem bool
	Bandwidth     int64  // payload bytes per second; 0 = unlimited
	Datestamp     string // names the pending incremental state
	// State keeps the incremental state. Nil means no state: only level 0
	// is possible and nothing is recorded.
	State *StateStore
}

// Sink receives what a dump produces. Payload receives the compressed
// payload bytes in order; Index and Warn are called from the walking
// goroutine.
type Sink struct {
	Payload io.Writer
	Index   func(wire.IndexRecord) error
	Warn    func(msg string)
}

// Result sums up a finished dump.
type Result struct {
	Summary image.Summary
	Files   int64 // index records: directories and entries stored
	Base    int   // level of the state compared against; -1 for none
	Pending bool  // a new incremental state waits for Promote
}

// Dump writes the DLE rooted at root as a payload into sink. Problems with
// single files (unreadable, vanished, changed while read) are reported
// through sink.Warn and do not fail the dump; the image stays a valid tar
// stream whatever happens to the files under it.
//
// At level N > 0 the image holds every entry that changed since the state
// of the newest lower level, and every directory with its complete
// listing (GNU.dumpdir), so that a chain restores deletions and renames.
// When State is set, the new state is written aside; Promote makes it
// current once the server has the image safe.
func Dump(ctx context.Context, root string, opt DumpOptions, sink Sink) (Result, error) {
	w, st, err := newWalker(ctx, root, opt, sink)
	if err != nil {
		return Result{}, err
	}
	out := sink.Payload
	if opt.Bandwidth > 0 {
		out = &throttle{ctx: ctx, w: out, rate: opt.Bandwidth}
	}
	pw, err := image.NewPayloadWriter(out, image.WriterOptions{Comp: opt.Comp, Level: opt.CompressLevel, FrameSize: opt.FrameSize})
	if err != nil {
		return Result{}, err
	}
	w.pw = pw
	w.tw = tar.NewWriter(pw)
	if err := w.walkDir("", root, st); err != nil {
		pw.Close()
		return Result{}, err
	}
	if err := w.tw.Close(); err != nil {
		pw.Close()
		return Result{}, fmt.Errorf("finish tar stream: %w", err)
	}
	if err := pw.Close(); err != nil {
		return Result{}, fmt.Errorf("finish payload: %w", err)
	}
	res := Result{Summary: pw.Sum(), Files: w.files, Base: -1}
	if w.base != nil {
		res.Base = w.base.Level
	}
	if w.next != nil {
		if err := opt.State.WritePending(w.next); err != nil {
			return Result{}, err
		}
		res.Pending = true
	}
	return res, nil
}

// newWalker checks the root and loads the base state.
func newWalker(ctx context.Context, root string, opt DumpOptions, sink Sink) (*walker, fs.FileInfo, error) {
	if opt.Level < 0 || opt.Level > MaxLevel {
		return nil, nil, fmt.Errorf("level %d out of range 0..%d", opt.Level, MaxLevel)
	}
	st, err := os.Lstat(root)
	if err != nil {
		return nil, nil, fmt.Errorf("DLE %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("DLE %s: not a directory", root)
	}
	w := &walker{
		ctx:   ctx,
		root:  root,
		opt:   opt,
		sink:  sink,
		dev:   devOf(st),
		links: map[fileID]string{},
		buf:   make([]byte, 1<<20),
		names: map[uint32]string{},
		grps:  map[uint32]string{},
	}
	w.ex, err = newExcluder(opt.Exclude, opt.ExcludeLists, w.warn)
	if err != nil {
		return nil, nil, err
	}
	if opt.Level > 0 && opt.State == nil {
		return nil, nil, fmt.Errorf("level %d requested but this agent keeps no incremental state (start it with --state-dir)", opt.Level)
	}
	if opt.State != nil {
		if opt.Level > 0 {
			w.base, err = opt.State.Base(root, opt.Level)
			if err != nil {
				return nil, nil, err
			}
			if w.base == nil {
				w.warn("%s: no state of a level below %d on this client (first dump, or state lost): this level-%d image holds every file", root, opt.Level, opt.Level)
			} else if w.base.Dev != w.dev {
				w.moved = true
				w.warn("%s: the DLE moved to another device (device %d, was %d at level %d): inode numbers and ctimes are not compared in this dump; files are compared by mtime, size, mode and owner", root, w.dev, w.base.Dev, w.base.Level)
			}
		}
		if opt.Datestamp == "" {
			return nil, nil, fmt.Errorf("a dump that records incremental state needs a datestamp")
		}
		w.next = &State{DLE: root, Level: opt.Level, Datestamp: opt.Datestamp, Dev: w.dev, Files: map[string]FileState{}}
	}
	return w, st, nil
}

type fileID struct{ dev, ino uint64 }

type walker struct {
	ctx   context.Context
	root  string
	opt   DumpOptions
	sink  Sink
	ex    *excluder
	pw    *image.PayloadWriter
	tw    *tar.Writer
	dev   uint64
	links map[fileID]string // hardlinked inodes stored in this image, by first path
	files int64
	buf   []byte
	base  *State // compared against; nil: every file is stored
	moved bool   // the root's device differs from base's
	next  *State // recorded for the next incremental; nil: none
	names map[uint32]string
	grps  map[uint32]string
	// indexErr is the first error of sink.Index; the walk stops at it.
	indexErr error
}

func (w *walker) warn(format string, a ...any) {
	if w.sink.Warn != nil {
		w.sink.Warn(fmt.Sprintf(format, a...))
	}
}

// child is one directory entry as the walk decided about it.
type child struct {
	name  string
	rel   string
	fi    fs.FileInfo
	store bool // in this image ('Y' or 'D'); false: unchanged ('N')
}

// walkDir lists a directory, writes its entry with its complete listing,
// then the entries under it.
func (w *walker) walkDir(rel, full string, fi fs.FileInfo) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	mount := rel != "" && w.opt.OneFilesystem && devOf(fi) != w.dev
	var kids []child
	listed := !mount
	if !mount {
		ents, err := os.ReadDir(full)
		if err != nil {
			w.warn("%s: cannot list directory: %v (its contents are not dumped)", full, unwrapPath(err))
			listed = false
		}
		for _, de := range ents {
			crel := path.Join(rel, de.Name())
			if w.ex.excluded(crel) {
				continue
			}
			cfi, err := de.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					w.warn("%s: vanished before it could be dumped", filepath.Join(full, de.Name()))
				} else {
					w.warn("%s: %v (not dumped)", filepath.Join(full, de.Name()), unwrapPath(err))
				}
				continue
			}
			if cfi.Mode()&fs.ModeSocket != 0 {
				w.warn("%s: socket ignored", filepath.Join(full, de.Name()))
				continue
			}
			kids = append(kids, w.decide(de.Name(), crel, cfi))
		}
	}
	var dumpdir []gnutar.DirEntry
	if listed {
		dumpdir = make([]gnutar.DirEntry, 0, len(kids))
		for _, k := range kids {
			kind := byte('N')
			switch {
			case k.fi.IsDir():
				kind = 'D'
			case k.store:
				kind = 'Y'
			}
			dumpdir = append(dumpdir, gnutar.DirEntry{Kind: kind, Name: k.name})
		}
	}
	if err := w.entry(rel, full, fi, dumpdir, listed); err != nil {
		return err
	}
	for _, k := range kids {
		cfull := filepath.Join(full, k.name)
		if k.fi.IsDir() {
			if err := w.walkDir(k.rel, cfull, k.fi); err != nil {
				return err
			}
		} else if k.store {
			if err := w.entry(k.rel, cfull, k.fi, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// decide records a non-directory's state and says whether this image
// stores it.
func (w *walker) decide(name, rel string, fi fs.FileInfo) child {
	c := child{name: name, rel: rel, fi: fi, store: true}
	if fi.IsDir() {
		return c
	}
	now := fileStateOf(fi)
	if w.next != nil {
		w.next.Files[rel] = now
	}
	if w.base != nil {
		if was, ok := w.base.Files[rel]; ok && !changed(was, now, w.moved) {
			c.store = false
		}
	}
	return c
}

// forget drops rel from the next state, so that the next incremental
// stores it again (it could not be read this time).
func (w *walker) forget(rel string) {
	if w.next != nil {
		delete(w.next.Files, rel)
	}
}

// entry writes one tar entry: rel relative to the root ("" for the root
// itself). Directories carry their listing when listed is true.
func (w *walker) entry(rel, full string, fi fs.FileInfo, dumpdir []gnutar.DirEntry, listed bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	var link string
	mode := fi.Mode()
	if mode&fs.ModeSymlink != 0 {
		l, err := os.Readlink(full)
		if err != nil {
			w.warn("%s: cannot read symlink: %v (not dumped)", full, unwrapPath(err))
			w.forget(rel)
			return nil
		}
		link = l
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		w.warn("%s: %v (not dumped)", full, err)
		w.forget(rel)
		return nil
	}
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = fi.ModTime()
	hdr.Uname, hdr.Gname = w.owner(hdr.Uid, hdr.Gid)
	switch {
	case rel == "":
		hdr.Name = "./"
	case fi.IsDir():
		hdr.Name = "./" + rel + "/"
	default:
		hdr.Name = "./" + rel
	}
	if attrs, err := gnutar.ReadAttrs(full); err != nil {
		w.warn("%s: extended attributes: %v (not stored)", full, unwrapPath(err))
	} else if len(attrs) > 0 {
		hdr.PAXRecords = attrs
	}
	if listed {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[gnutar.PAXDumpdir] = gnutar.EncodeDumpdir(dumpdir)
	}

	var file *os.File
	if mode.IsRegular() {
		if id, nlink, ok := inodeOf(fi); ok && nlink > 1 {
			if first, seen := w.links[id]; seen {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = "./" + first
				hdr.Size = 0
			} else {
				w.links[id] = rel
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(full)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					w.warn("%s: vanished before it could be dumped", full)
				} else {
					w.warn("%s: cannot open: %v (not dumped)", full, unwrapPath(err))
				}
				w.forget(rel)
				return nil
			}
			file = f
			defer f.Close()
		}
	}

	if err := w.tw.Flush(); err != nil {
		return err
	}
	if rel != "" {
		w.index(rel, hdr)
	}
	if file != nil && hdr.Size > 0 {
		if ext, sparse, err := gnutar.DataExtents(file, hdr.Size); err == nil && sparse {
			return w.sparse(full, file, hdr, ext)
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: write tar header: %w", full, err)
	}
	if file != nil {
		if err := w.copyFile(full, w.tw, file, hdr.Size, fi.ModTime()); err != nil {
			return err
		}
	}
	return w.indexErr
}

// sparse writes a file with holes in GNU's pax sparse format 1.0: only the
// data extents are stored.
func (w *walker) sparse(full string, f *os.File, hdr *tar.Header, ext []gnutar.Extent) error {
	prefix, size, err := gnutar.SparseEntry(hdr, ext)
	if err != nil {
		return fmt.Errorf("%s: sparse entry: %w", full, err)
	}
	if _, err := w.pw.Write(prefix); err != nil {
		return fmt.Errorf("%s: write payload: %w", full, err)
	}
	if err := w.copyFile(full, w.pw, &readerFile{Reader: gnutar.ExtentReader(f, ext), f: f}, size, hdr.ModTime); err != nil {
		return err
	}
	if pad := gnutar.Pad(size); pad > 0 {
		if _, err := w.pw.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("%s: write payload: %w", full, err)
		}
	}
	return w.indexErr
}

// owner names a uid and gid as GNU tar does (uname/gname), cached.
func (w *walker) owner(uid, gid int) (string, string) {
	un, ok := w.names[uint32(uid)]
	if !ok {
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			un = u.Username
		}
		w.names[uint32(uid)] = un
	}
	gn, ok := w.grps[uint32(gid)]
	if !ok {
		if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
			gn = g.Name
		}
		w.grps[uint32(gid)] = gn
	}
	return un, gn
}

func (w *walker) index(rel string, hdr *tar.Header) {
	w.files++
	if w.sink.Index == nil || w.indexErr != nil {
		return
	}
	w.indexErr = w.sink.Index(wire.IndexRecord{
		Path:      rel,
		Type:      hdr.Typeflag,
		Size:      hdr.Size,
		Mode:      uint32(hdr.Mode) & 0o7777,
		Mtime:     hdr.ModTime,
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		Link:      strings.TrimPrefix(hdr.Linkname, "./"),
		TarOffset: w.pw.TarOffset(),
	})
}

// statFile is what copyFile needs of a file being read.
type statFile interface {
	io.Reader
	Stat() (fs.FileInfo, error)
}

// readerFile reads through r but stats f.
type readerFile struct {
	io.Reader
	f *os.File
}

func (r *readerFile) Stat() (fs.FileInfo, error) { return r.f.Stat() }

// copyFile writes exactly size bytes of f to dst, whatever the file does
// meanwhile: a file that shrank is padded with zeros, one that grew is
// cut, and both are reported.
func (w *walker) copyFile(full string, dst io.Writer, f statFile, size int64, mtime time.Time) error {
	src := &readSide{r: f}
	n, err := io.CopyBuffer(dst, io.LimitReader(src, size), w.buf)
	if err != nil {
		if src.err == nil {
			return fmt.Errorf("%s: write payload: %w", full, err)
		}
		w.warn("%s: read error after %d bytes: %v (rest stored as zeros)", full, n, unwrapPath(err))
	}
	if n < size {
		if err == nil {
			w.warn("%s: file shrank from %d to %d bytes while being read (stored padded with zeros)", full, size, n)
		}
		if _, err := io.CopyBuffer(dst, io.LimitReader(zeroReader{}, size-n), w.buf); err != nil {
			return fmt.Errorf("%s: write payload: %w", full, err)
		}
		return nil
	}
	var one [1]byte
	if k, _ := f.Read(one[:]); k > 0 {
		w.warn("%s: file grew while being read (stored its first %d bytes)", full, size)
		return nil
	}
	if st, err := f.Stat(); err == nil && !st.ModTime().Equal(mtime) {
		w.warn("%s: file changed while being read", full)
	}
	return nil
}

// readSide remembers the read error of a file so that it is told apart
// from a write error of the payload; it also hides WriterTo so that
// CopyBuffer uses our large buffer.
type readSide struct {
	r   io.Reader
	err error
}

func (s *readSide) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

func inodeOf(fi fs.FileInfo) (fileID, uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, 0, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, uint64(st.Nlink), true
}
