package client

import (
	"fmt"
	"io"
	"os"

	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// The replay of a resumed dump (resume.go): the walk goes again over what
// the image already holds, from the saved walk and without reading a
// file, to rebuild its state (the next incremental state, the hard links
// stored, the index and listing records the server lacks), then sends
// the rest of the entry the resume point cuts and goes on live.

// replayDir replays a directory whose entry the image holds, with the
// listing the image holds. dir may be nil when it cannot be opened now:
// only what follows the resume point needs it.
func (w *walker) replayDir(rel, full string, dir, parent *os.File, name string, e *jentry) error {
	kids, ok := w.ff.listings[rel]
	if !ok {
		return fmt.Errorf("the saved walk of the resumed dump has the entry of directory %s but not its listing", full)
	}
	if w.next != nil {
		for i := range kids {
			if !isDir(&kids[i].st) {
				w.next.Files[kids[i].rel] = fileStateOfStat(&kids[i].st)
			}
		}
	}
	if err := w.replayEntry(rel, full, parent, name, e, kids); err != nil {
		return err
	}
	return w.walkKids(full, dir, kids)
}

// replayEntry replays one entry the image holds (at least its first
// byte): its effects on the walk's state, then, when the resume point
// cuts it, the rest of it.
func (w *walker) replayEntry(rel, full string, parent *os.File, name string, e *jentry, kids []child) error {
	if e.off != w.off {
		return fmt.Errorf("the saved walk of the resumed dump puts %s at tar offset %d, but its replay reached %d", full, e.off, w.off)
	}
	if e.flags&entFile != 0 && w.next != nil {
		w.next.Files[rel] = FileState{Dev: e.dev, Ino: e.ino, Mtime: e.mtime, Ctime: e.ctime, Size: e.size, Mode: e.mode, UID: e.uid, GID: e.gid}
	}
	if w.ff.forgot[rel] {
		w.forget(rel)
	}
	if e.flags&entLinkSrc != 0 {
		w.links[fileID{e.dev, e.ino}] = rel
	}
	if e.flags&entListed != 0 {
		w.nListings++
		if w.sink.Listing != nil && w.indexErr == nil && w.nListings > w.skipListings {
			w.indexErr = w.sink.Listing(rel, gnutar.EncodeDumpdir(dumpdirOf(kids)))
		}
	}
	if rel != "" {
		if e.rec == nil || e.rec.Path != rel || e.rec.TarOffset != e.off {
			return fmt.Errorf("the saved walk of the resumed dump has no index record for %s", full)
		}
		w.index(*e.rec)
	}
	if end := e.end(); end <= w.ff.R {
		w.off = end
		return w.indexErr
	}
	return w.straddle(rel, full, parent, name, e)
}

// goLive ends the replay at an entry that starts at the resume point.
func (w *walker) goLive() error {
	if w.off != w.ff.R {
		return fmt.Errorf("the saved walk of the resumed dump reaches tar offset %d, not the resume point %d", w.off, w.ff.R)
	}
	return w.goLiveAt(w.off)
}

// goLiveAt ends the replay: what follows is written.
func (w *walker) goLiveAt(at int64) error {
	if at > w.ff.R || w.pw.TarOffset() != w.ff.R {
		return fmt.Errorf("the resumed dump is at tar offset %d, its replay at %d, the resume point %d", w.pw.TarOffset(), at, w.ff.R)
	}
	if w.nIndex < w.skipIndex {
		return fmt.Errorf("the server holds %d index records of the dump, but the image has %d entries before the resume point", w.skipIndex, w.nIndex)
	}
	w.ff = nil
	return nil
}

// straddle sends the rest of entry e, cut by the resume point: the rest
// of its header as it was sent, the rest of its data from the file as it
// is now (a file that changed since is named, as one that changes while
// it is read), its padding.
func (w *walker) straddle(rel, full string, parent *os.File, name string, e *jentry) error {
	R := w.ff.R
	if err := w.goLiveAt(e.off); err != nil {
		return err
	}
	pos := R - e.off
	if pos < e.hdrLen {
		if int64(len(e.hdr)) != e.hdrLen {
			return fmt.Errorf("the saved walk of the resumed dump lacks the header of %s, which the resume point cuts", full)
		}
		if _, err := w.pw.Write(e.hdr[pos:]); err != nil {
			return fmt.Errorf("%s: write payload: %w", full, err)
		}
		pos = e.hdrLen
	}
	if from := pos - e.hdrLen; from < e.dataLen && e.flags&entFile != 0 {
		if err := w.resumeData(rel, full, parent, name, e, from); err != nil {
			return err
		}
	}
	if err := w.pad(); err != nil {
		return fmt.Errorf("%s: write payload: %w", full, err)
	}
	return w.indexErr
}

// resumeData sends the data of file entry e from byte from of its data.
func (w *walker) resumeData(rel, full string, parent *os.File, name string, e *jentry, from int64) error {
	n := e.dataLen - from
	zeros := func(why string) error {
		w.warn("%s: %s when the dump resumed: its last %d bytes are stored as zeros", full, why, n)
		w.changedSinceCut(rel)
		_, err := io.CopyBuffer(w.pw, io.LimitReader(zeroReader{}, n), w.buf)
		return err
	}
	if parent == nil {
		return zeros("its directory could not be opened again")
	}
	fd, err := openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return zeros("it could not be opened again (" + unwrapPath(err).Error() + ")")
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil || now.Mode&unix.S_IFMT != unix.S_IFREG {
		return zeros("it is no longer a regular file")
	}
	unix.SetNonblock(fd, false)
	same := uint64(now.Dev) == e.dev && now.Ino == e.ino && now.Size == e.size &&
		unix.TimespecToNsec(now.Mtim) == e.mtime && unix.TimespecToNsec(now.Ctim) == e.ctime
	var src statFile = f
	if e.flags&entSparse != 0 {
		if !same {
			return zeros("it changed between the cut and the resume")
		}
		ext, sparse, err := gnutar.DataExtents(f, e.size)
		if err != nil || !sparse {
			return zeros("its holes could not be read again")
		}
		r := gnutar.ExtentReader(f, ext)
		if _, err := io.CopyN(io.Discard, r, from); err != nil {
			return zeros("it could not be read again (" + err.Error() + ")")
		}
		src = &readerFile{Reader: r, f: f}
	} else {
		if !same {
			w.warn("%s: changed between the cut and the resume of the dump (its first %d bytes are stored as they were, the rest as it is now)", full, from)
			w.changedSinceCut(rel)
		}
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return zeros("it could not be read again (" + err.Error() + ")")
		}
	}
	return w.copyFile(full, w.pw, src, n, time.Unix(0, e.mtime))
}

// changedSinceCut drops rel from the next incremental state, here and in
// any later resume of this dump: the next incremental stores it again.
func (w *walker) changedSinceCut(rel string) {
	w.forget(rel)
	if w.j != nil {
		off := w.pw.TarOffset()
		w.j.add(func(b []byte) []byte { return offRecord(b, recForget, rel, off) })
	}
}
