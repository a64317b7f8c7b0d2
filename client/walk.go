package client

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// DumpOptions says how to dump a DLE.
type DumpOptions struct {
	Level         int
	Comp          image.Comp
	CompressLevel int
	FrameSize     int
	Exclude       []string // patterns matched against the base name and the relative path
	OneFilesystem bool
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
	Files   int64
}

// Dump writes the DLE rooted at root as a payload into sink. Problems with
// single files (unreadable, vanished, changed while read) are reported
// through sink.Warn and do not fail the dump; the image stays a valid tar
// stream whatever happens to the files under it.
func Dump(ctx context.Context, root string, opt DumpOptions, sink Sink) (Result, error) {
	if opt.Level != 0 {
		return Result{}, fmt.Errorf("level %d requested: this agent dumps level 0 only", opt.Level)
	}
	st, err := os.Lstat(root)
	if err != nil {
		return Result{}, fmt.Errorf("DLE %s: %w", root, err)
	}
	if !st.IsDir() {
		return Result{}, fmt.Errorf("DLE %s: not a directory", root)
	}
	pw, err := image.NewPayloadWriter(sink.Payload, image.WriterOptions{Comp: opt.Comp, Level: opt.CompressLevel, FrameSize: opt.FrameSize})
	if err != nil {
		return Result{}, err
	}
	w := &walker{
		ctx:   ctx,
		root:  root,
		opt:   opt,
		sink:  sink,
		pw:    pw,
		tw:    tar.NewWriter(pw),
		dev:   devOf(st),
		links: map[fileID]string{},
		buf:   make([]byte, 1<<20),
	}
	if err := w.entry("", st); err != nil {
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
	return Result{Summary: pw.Sum(), Files: w.files}, nil
}

type fileID struct{ dev, ino uint64 }

type walker struct {
	ctx   context.Context
	root  string
	opt   DumpOptions
	sink  Sink
	pw    *image.PayloadWriter
	tw    *tar.Writer
	dev   uint64
	links map[fileID]string
	files int64
	buf   []byte
}

func (w *walker) warn(format string, a ...any) {
	if w.sink.Warn != nil {
		w.sink.Warn(fmt.Sprintf(format, a...))
	}
}

func (w *walker) excluded(rel string) bool {
	base := path.Base(rel)
	for _, p := range w.opt.Exclude {
		if m, _ := path.Match(p, base); m {
			return true
		}
		if m, _ := path.Match(p, rel); m {
			return true
		}
	}
	return false
}

// entry writes rel (relative to the root, "" for the root itself) and, for
// directories, everything under it.
func (w *walker) entry(rel string, fi fs.FileInfo) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	var link string
	mode := fi.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		l, err := os.Readlink(full)
		if err != nil {
			w.warn("%s: cannot read symlink: %v (not dumped)", full, err)
			return nil
		}
		link = l
	case mode&fs.ModeSocket != 0:
		w.warn("%s: socket ignored", full)
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		w.warn("%s: %v (not dumped)", full, err)
		return nil
	}
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = fi.ModTime()
	switch {
	case rel == "":
		hdr.Name = "./"
	case fi.IsDir():
		hdr.Name = rel + "/"
	default:
		hdr.Name = rel
	}

	var file *os.File
	if mode.IsRegular() {
		if id, nlink, ok := inodeOf(fi); ok && nlink > 1 {
			if first, seen := w.links[id]; seen {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
			} else {
				w.links[id] = rel
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(full)
			if err != nil {
				w.warn("%s: cannot open: %v (not dumped)", full, unwrapPath(err))
				return nil
			}
			file = f
			defer f.Close()
		}
	}

	if rel != "" {
		if err := w.index(rel, hdr); err != nil {
			return err
		}
	} else if err := w.tw.Flush(); err != nil {
		return err
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: write tar header: %w", full, err)
	}
	if file != nil {
		if err := w.copyFile(full, file, hdr.Size, fi.ModTime()); err != nil {
			return err
		}
	}
	if fi.IsDir() {
		return w.dir(rel, full, fi)
	}
	return nil
}

func (w *walker) index(rel string, hdr *tar.Header) error {
	if err := w.tw.Flush(); err != nil {
		return err
	}
	w.files++
	if w.sink.Index == nil {
		return nil
	}
	return w.sink.Index(wire.IndexRecord{
		Path:      rel,
		Type:      hdr.Typeflag,
		Size:      hdr.Size,
		Mode:      uint32(hdr.Mode) & 0o7777,
		Mtime:     hdr.ModTime,
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		Link:      hdr.Linkname,
		TarOffset: w.pw.TarOffset(),
	})
}

// copyFile writes exactly size bytes of f into the tar stream, whatever
// the file does meanwhile: a file that shrank is padded with zeros, one
// that grew is cut, and both are reported.
func (w *walker) copyFile(full string, f *os.File, size int64, mtime time.Time) error {
	src := &readSide{r: f}
	n, err := io.CopyBuffer(w.tw, io.LimitReader(src, size), w.buf)
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
		if _, err := io.CopyBuffer(w.tw, io.LimitReader(zeroReader{}, size-n), w.buf); err != nil {
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

func (w *walker) dir(rel, full string, fi fs.FileInfo) error {
	if rel != "" && w.opt.OneFilesystem && devOf(fi) != w.dev {
		return nil // a mount point: the directory itself, not its contents
	}
	ents, err := os.ReadDir(full)
	if err != nil {
		w.warn("%s: cannot list directory: %v (its contents are not dumped)", full, unwrapPath(err))
		return nil
	}
	for _, de := range ents {
		crel := path.Join(rel, de.Name())
		if w.excluded(crel) {
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
		if err := w.entry(crel, cfi); err != nil {
			return err
		}
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
