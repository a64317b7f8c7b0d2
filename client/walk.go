package client

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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
	// Allow, when not empty, is the boundary of what is read: the root and
	// every exclude list must lie below one of these directories, and are
	// opened without following a symlink out of it (see beneath.go).
	// Empty: they are opened as named, symlinks followed.
	Allow []string

	// journal, when set, keeps the resume state of this dump (resume.go);
	// resume, when set, continues a cut dump after its last frame the
	// server holds.
	journal *journal
	resume  *resumePoint

	// snap, when set, is a snapshot of the root the agent made: the walk
	// reads its directory (opened as it is, not beneath Allow) while the
	// names, the incremental state and its device stay the root's.
	snap *snapshot

	// beforeOpen, when set, is called with an entry's path relative to the
	// root after its directory was listed and before the entry is opened:
	// tests make races with the walk deterministic with it.
	beforeOpen func(rel string)
}

// Sink receives what a dump produces. Payload receives the compressed
// payload bytes in order; Index and Warn are called from the walking
// goroutine.
type Sink struct {
	Payload io.Writer
	Index   func(wire.IndexRecord) error
	Warn    func(msg string)
	// Listing, when set, gets every directory's listing as its tar entry
	// carries it: dir relative to the root ("" for the root) and the
	// GNU.dumpdir value. It is called from the walking goroutine; an error
	// stops the walk as one of Index does.
	Listing func(dir, dumpdir string) error
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
// The walk goes by directory descriptors, never by joined paths, and never
// follows a symlink: a symlink is stored as a symlink, and a directory or
// file swapped for one while the walk runs is reported and skipped, so
// nothing outside the root is read. Only the root itself, and the exclude
// lists, are resolved through symlinks (beneath opt.Allow when set).
//
// At level N > 0 the image holds every entry that changed since the state
// of the newest lower level, and every directory with its complete
// listing (GNU.dumpdir), so that a chain restores deletions and renames.
// When State is set, the new state is written aside; Promote makes it
// current once the server has the image safe.
func Dump(ctx context.Context, root string, opt DumpOptions, sink Sink) (Result, error) {
	var dir *os.File
	var st *unix.Stat_t
	var err error
	if opt.snap != nil {
		dir, st, err = openRoot(opt.snap.dir, []string{opt.snap.top})
	} else {
		dir, st, err = openRoot(root, opt.Allow)
	}
	if err != nil {
		return Result{}, err
	}
	defer dir.Close()
	w, err := newWalker(ctx, root, st, opt, sink)
	if err != nil {
		return Result{}, err
	}
	out := sink.Payload
	if opt.Bandwidth > 0 {
		out = wire.NewLimiter(opt.Bandwidth).Writer(ctx, out)
	}
	wo := image.WriterOptions{Comp: opt.Comp, Level: opt.CompressLevel, FrameSize: opt.FrameSize}
	w.frameSize = int64(opt.FrameSize)
	if w.frameSize == 0 {
		w.frameSize = image.DefaultFrameSize
	}
	if opt.journal != nil {
		w.j = opt.journal
		wo.Checkpoint = opt.journal.checkpoint
	}
	if rp := opt.resume; rp != nil {
		wo.Resume = &image.ResumePoint{Frames: rp.frames, Sum: rp.sum}
		w.ff, w.skipIndex, w.skipListings = rp.replay, rp.index, rp.listings
	}
	pw, err := image.NewPayloadWriter(out, wo)
	if err != nil {
		return Result{}, err
	}
	w.pw = pw
	if err := w.walkDir("", root, dir, nil, "", st); err != nil {
		pw.Close()
		return Result{}, err
	}
	if err := w.finishTar(); err != nil {
		pw.Close()
		return Result{}, fmt.Errorf("finish tar stream: %w", err)
	}
	w.j.flush()
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

// openRoot opens the DLE directory root (beneath allow when set) and
// stats it through the descriptor.
func openRoot(root string, allow []string) (*os.File, *unix.Stat_t, error) {
	dir, err := openDLE(root, allow)
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		dir.Close()
		return nil, nil, fmt.Errorf("DLE %s: %v", root, err)
	}
	if !isDir(&st) {
		dir.Close()
		return nil, nil, fmt.Errorf("DLE %s: not a directory", root)
	}
	return dir, &st, nil
}

// newWalker checks the options and loads the base state.
func newWalker(ctx context.Context, root string, st *unix.Stat_t, opt DumpOptions, sink Sink) (*walker, error) {
	if opt.Level < 0 || opt.Level > MaxLevel {
		return nil, fmt.Errorf("level %d out of range 0..%d", opt.Level, MaxLevel)
	}
	w := &walker{
		ctx:   ctx,
		root:  root,
		opt:   opt,
		sink:  sink,
		dev:   uint64(st.Dev),
		sdev:  uint64(st.Dev),
		links: map[fileID]string{},
		buf:   make([]byte, 1<<20),
		names: map[uint32]string{},
		grps:  map[uint32]string{},
	}
	if opt.snap != nil {
		w.sdev = opt.snap.dev
	}
	var err error
	w.ex, err = newExcluder(opt.Exclude, opt.ExcludeLists, opt.Allow, w.warn)
	if err != nil {
		return nil, err
	}
	if opt.Level > 0 && opt.State == nil {
		return nil, fmt.Errorf("level %d requested but this agent keeps no incremental state (start it with --state-dir)", opt.Level)
	}
	if opt.State != nil {
		if opt.Level > 0 {
			w.base, err = opt.State.Base(root, opt.Level)
			if err != nil {
				return nil, err
			}
			if w.base == nil {
				w.warn("%s: no state of a level below %d on this client (first dump, or state lost): this level-%d image holds every file", root, opt.Level, opt.Level)
			} else if w.base.Dev != w.sdev {
				w.moved = true
				w.warn("%s: the DLE moved to another device (device %d, was %d at level %d): inode numbers and ctimes are not compared in this dump; files are compared by mtime, size, mode and owner", root, w.sdev, w.base.Dev, w.base.Level)
			}
		}
		if opt.Datestamp == "" {
			return nil, fmt.Errorf("a dump that records incremental state needs a datestamp")
		}
		w.next = &State{DLE: root, Level: opt.Level, Datestamp: opt.Datestamp, Dev: w.sdev, Files: map[string]FileState{}}
	}
	return w, nil
}

type fileID struct{ dev, ino uint64 }

type walker struct {
	ctx   context.Context
	root  string
	opt   DumpOptions
	sink  Sink
	ex    *excluder
	pw    *image.PayloadWriter
	hbuf  bytes.Buffer      // a tar header being rendered
	dev   uint64            // the device walked (--one-file-system)
	sdev  uint64            // the device the incremental state records: the live root's
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
	// noProc is set once the walk warned that /proc is missing.
	noProc bool

	// Resume (resume.go): j journals the walk; ff, while set, is the walk
	// before the resume point, replayed without writing (off is the tar
	// offset it has reached) until the first byte to send. skipIndex and
	// skipListings are the records the server holds; nIndex and
	// nListings count those of the replay.
	j                       *journal
	frameSize               int64
	ff                      *replay
	off                     int64
	skipIndex, skipListings int64
	nIndex, nListings       int64
}

func (w *walker) warn(format string, a ...any) {
	if w.sink.Warn != nil {
		w.sink.Warn(fmt.Sprintf(format, a...))
	}
}

func (w *walker) hook(rel string) {
	if w.opt.beforeOpen != nil {
		w.opt.beforeOpen(rel)
	}
}

// child is one directory entry as the walk decided about it.
type child struct {
	name  string
	rel   string
	st    unix.Stat_t // lstat when the directory was listed
	store bool        // in this image ('Y' or 'D'); false: unchanged ('N')
}

// walkDir lists a directory, writes its entry with its complete listing,
// then the entries under it. dir is the directory open (nil when it could
// not be opened: its entry is written without a listing); parent and
// name locate it in its parent (nil and "" for the root); st is its stat.
func (w *walker) walkDir(rel, full string, dir, parent *os.File, name string, st *unix.Stat_t) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.ff != nil {
		if e := w.ff.entries[rel]; e != nil && e.kind == recEntry {
			return w.replayDir(rel, full, dir, parent, name, e)
		}
	}
	mount := rel != "" && w.opt.OneFilesystem && uint64(st.Dev) != w.dev
	var kids []child
	listed := !mount && dir != nil
	if listed {
		names, err := dir.Readdirnames(-1)
		if err != nil {
			w.warn("%s: cannot list directory: %v (its contents are not dumped)", full, unwrapPath(err))
			listed = false
		}
		sort.Strings(names)
		dfd := int(dir.Fd())
		for _, cname := range names {
			crel := path.Join(rel, cname)
			if w.ex.excluded(crel) || (rel == "" && strings.HasPrefix(cname, SnapshotPrefix)) {
				continue
			}
			var cst unix.Stat_t
			if err := fstatat(dfd, cname, &cst); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					w.warn("%s: vanished before it could be dumped", join(full, cname))
				} else {
					w.warn("%s: %v (not dumped)", join(full, cname), err)
				}
				continue
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFSOCK {
				w.warn("%s: socket ignored", join(full, cname))
				continue
			}
			kids = append(kids, w.decide(cname, crel, &cst))
		}
	}
	var dumpdir []gnutar.DirEntry
	if listed {
		dumpdir = dumpdirOf(kids)
	}
	if w.j != nil {
		w.j.add(func(b []byte) []byte { return listRecord(b, rel, listed, kids) })
	}
	if err := w.entry(rel, full, st, dir, parent, name, dumpdir, listed); err != nil {
		return err
	}
	return w.walkKids(full, dir, kids)
}

// dumpdirOf is the GNU.dumpdir of a directory with these children.
func dumpdirOf(kids []child) []gnutar.DirEntry {
	dumpdir := make([]gnutar.DirEntry, 0, len(kids))
	for _, k := range kids {
		kind := byte('N')
		switch {
		case isDir(&k.st):
			kind = 'D'
		case k.store:
			kind = 'Y'
		}
		dumpdir = append(dumpdir, gnutar.DirEntry{Kind: kind, Name: k.name})
	}
	return dumpdir
}

// walkKids dumps the children of the directory dir (full) in order.
func (w *walker) walkKids(full string, dir *os.File, kids []child) error {
	for i := range kids {
		k := &kids[i]
		cfull := join(full, k.name)
		if isDir(&k.st) {
			if err := w.subdir(k, cfull, dir); err != nil {
				return err
			}
		} else if k.store {
			if dir == nil && (w.ff == nil || w.ff.entries[k.rel] == nil) {
				// A resumed walk whose directory is gone.
				w.warn("%s: its directory could not be opened again when the dump resumed (not dumped)", cfull)
				w.skipped(k.rel)
				continue
			}
			if err := w.entry(k.rel, cfull, &k.st, nil, dir, k.name, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// subdir opens the directory k of parent without following a symlink and
// walks it. A directory replaced by something else since the listing is
// reported and skipped; one replaced by another directory is walked as it
// is now (it is below parent either way).
func (w *walker) subdir(k *child, full string, parent *os.File) error {
	// Replaying a resumed walk: a directory the image holds is replayed
	// even when it cannot be opened now (only what follows the resume
	// point needs it); one the walk skipped is skipped again.
	inImage := false
	if w.ff != nil {
		if e := w.ff.entries[k.rel]; e != nil {
			if e.kind == recSkip {
				return nil
			}
			inImage = true
		}
	}
	if parent == nil {
		if inImage {
			return w.walkDir(k.rel, full, nil, nil, k.name, &k.st)
		}
		w.warn("%s: its directory could not be opened again when the dump resumed (not dumped)", full)
		w.skipped(k.rel)
		return nil
	}
	w.hook(k.rel)
	fd, err := openat(int(parent.Fd()), k.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	st := k.st
	var dir *os.File
	if err != nil && inImage {
		w.warn("%s: vanished or replaced between the cut and the resume of the dump (%v): what the image holds of it is kept, the rest is not dumped", full, err)
		return w.walkDir(k.rel, full, nil, nil, k.name, &st)
	}
	switch {
	case err == nil:
		dir = os.NewFile(uintptr(fd), full)
		defer dir.Close()
		var now unix.Stat_t
		if err := unix.Fstat(fd, &now); err != nil {
			w.warn("%s: %v (not dumped)", full, err)
			w.skipped(k.rel)
			return nil
		}
		if now.Dev != st.Dev || now.Ino != st.Ino {
			w.warn("%s: replaced by another directory while being dumped (the new one is stored)", full)
		}
		st = now
	case errors.Is(err, unix.ENOENT):
		w.warn("%s: vanished before it could be dumped", full)
		w.skipped(k.rel)
		return nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		w.warn("%s: no longer a directory (replaced while being dumped; not dumped, and not followed)", full)
		w.skipped(k.rel)
		return nil
	default:
		w.warn("%s: cannot open directory: %v (its contents are not dumped)", full, err)
	}
	return w.walkDir(k.rel, full, dir, parent, k.name, &st)
}

// decide records a non-directory's state and says whether this image
// stores it.
func (w *walker) decide(name, rel string, st *unix.Stat_t) child {
	c := child{name: name, rel: rel, st: *st, store: true}
	if isDir(st) {
		return c
	}
	now := fileStateOfStat(st)
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

// skipped records that the walk skipped rel (forgotten, not stored): a
// resumed walk skips it again.
func (w *walker) skipped(rel string) {
	w.forget(rel)
	if w.j != nil {
		off := w.pw.TarOffset()
		w.j.add(func(b []byte) []byte { return skipRecord(b, rel, off) })
	}
}

// entry writes one tar entry: rel relative to the root ("" for the root
// itself), st its stat. self is the entry open when it is a directory
// that could be opened; parent and name locate it otherwise (the root
// always comes open). Directories carry their listing when listed is
// true. A regular file is opened here, relative to parent and without
// following a symlink.
func (w *walker) entry(rel, full string, st *unix.Stat_t, self, parent *os.File, name string, dumpdir []gnutar.DirEntry, listed bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.ff != nil {
		switch e := w.ff.entries[rel]; {
		case e == nil:
			if err := w.goLive(); err != nil {
				return err
			}
		case e.kind == recSkip:
			w.forget(rel)
			return nil
		default:
			return w.replayEntry(rel, full, parent, name, e, nil)
		}
	}
	var link string
	var file *os.File
	var linkTo string // hard link to an entry already stored
	linkSrc := false  // the first of a hard-link set
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		l, err := readlinkat(int(parent.Fd()), name)
		if err != nil {
			w.warn("%s: cannot read symlink: %v (not dumped)", full, err)
			w.skipped(rel)
			return nil
		}
		link = l
	case unix.S_IFREG:
		id := fileID{uint64(st.Dev), st.Ino}
		if first, seen := w.links[id]; seen && st.Nlink > 1 {
			linkTo = first
			break
		}
		f, now, ok := w.openFile(rel, full, parent, name, st)
		if !ok {
			return nil
		}
		file, st = f, now
		defer f.Close()
		if st.Nlink > 1 {
			w.links[fileID{uint64(st.Dev), st.Ino}] = rel
			linkSrc = true
		}
		self = f
	}
	hdr, ok := headerOf(st, link)
	if !ok {
		w.warn("%s: file type %#o not supported (not dumped)", full, st.Mode&unix.S_IFMT)
		w.skipped(rel)
		return nil
	}
	if linkTo != "" {
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = "./" + linkTo
		hdr.Size = 0
	}
	hdr.Uname, hdr.Gname = w.owner(hdr.Uid, hdr.Gid)
	switch {
	case rel == "":
		hdr.Name = "./"
	case isDir(st):
		hdr.Name = "./" + rel + "/"
	default:
		hdr.Name = "./" + rel
	}
	var attrs map[string]string
	var err error
	switch {
	case self != nil:
		attrs, err = gnutar.ReadAttrsFile(self)
	case parent != nil:
		attrs, err = gnutar.ReadAttrsAt(parent, name)
	}
	switch {
	case errors.Is(err, gnutar.ErrNoProc):
		if !w.noProc {
			w.noProc = true
			w.warn("%s: %v (not stored for any of them in this dump)", full, err)
		}
	case err != nil:
		w.warn("%s: extended attributes: %v (not stored)", full, unwrapPath(err))
	case len(attrs) > 0:
		hdr.PAXRecords = attrs
	}
	if listed {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[gnutar.PAXDumpdir] = gnutar.EncodeDumpdir(dumpdir)
		w.nListings++
		if w.sink.Listing != nil && w.indexErr == nil {
			w.indexErr = w.sink.Listing(rel, hdr.PAXRecords[gnutar.PAXDumpdir])
		}
	}

	start := w.pw.TarOffset()
	e := &jentry{kind: recEntry, off: start, dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: unix.TimespecToNsec(st.Mtim), ctime: unix.TimespecToNsec(st.Ctim), mode: st.Mode, uid: st.Uid, gid: st.Gid}
	if listed {
		e.flags |= entListed
	}
	if linkSrc {
		e.flags |= entLinkSrc
	}
	if rel != "" {
		r := w.indexRecord(rel, hdr, start)
		e.rec = &r
		w.index(r)
	}
	// Only a file with fewer blocks than its size needs can have holes
	// worth storing: GNU tar's test (ST_IS_SPARSE), which spares the
	// four lseeks of DataExtents for every other file.
	var ext []gnutar.Extent
	sparse := false
	if file != nil && hdr.Size > 0 && st.Blocks < (hdr.Size+511)/512 {
		if x, sp, err := gnutar.DataExtents(file, hdr.Size); err == nil && sp {
			ext, sparse = x, true
		}
	}
	var head []byte
	var data statFile
	switch {
	case sparse:
		prefix, size, err := gnutar.SparseEntry(hdr, ext)
		if err != nil {
			return fmt.Errorf("%s: sparse entry: %w", full, err)
		}
		head, e.dataLen, e.flags = prefix, size, e.flags|entFile|entSparse
		data = &readerFile{Reader: gnutar.ExtentReader(file, ext), f: file}
	default:
		w.hbuf.Reset()
		tw := tar.NewWriter(&w.hbuf)
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: write tar header: %w", full, err)
		}
		head = w.hbuf.Bytes()
		if file != nil {
			e.dataLen, e.flags, data = hdr.Size, e.flags|entFile, file
		}
	}
	e.hdrLen = int64(len(head))
	if w.j != nil {
		// The header is kept only when a frame boundary cuts it: a
		// resume there must send the rest of it as it was.
		if next := (start/w.frameSize + 1) * w.frameSize; next < start+e.hdrLen {
			e.hdr = head
		}
		w.j.add(func(b []byte) []byte { return entryRecord(b, rel, e) })
		e.hdr = nil
	}
	if _, err := w.pw.Write(head); err != nil {
		return fmt.Errorf("%s: write payload: %w", full, err)
	}
	if data != nil {
		if err := w.copyFile(full, w.pw, data, e.dataLen, hdr.ModTime); err != nil {
			return err
		}
	}
	if err := w.pad(); err != nil {
		return fmt.Errorf("%s: write payload: %w", full, err)
	}
	return w.indexErr
}

var zeroBlock [1024]byte

// pad writes zeros up to the next 512-byte block of the tar stream.
func (w *walker) pad() error {
	if n := roundBlock(w.pw.TarOffset()) - w.pw.TarOffset(); n > 0 {
		_, err := w.pw.Write(zeroBlock[:n])
		return err
	}
	return nil
}

// finishTar ends the tar stream with its two zero blocks; a replay that
// reached the end sends what is left of them after the resume point.
func (w *walker) finishTar() error {
	if w.ff != nil {
		end := w.off + int64(len(zeroBlock))
		if w.ff.R < w.off || w.ff.R > end {
			return fmt.Errorf("the saved walk of the resumed dump ends at tar offset %d, the resume point is %d", w.off, w.ff.R)
		}
		if err := w.goLiveAt(w.ff.R); err != nil {
			return err
		}
		_, err := w.pw.Write(zeroBlock[:end-w.pw.TarOffset()])
		return err
	}
	if err := w.pad(); err != nil {
		return err
	}
	_, err := w.pw.Write(zeroBlock[:])
	return err
}

// openFile opens the regular file name of parent for reading, without
// following a symlink and without blocking on a FIFO swapped in, and
// checks that it still is a regular file. It returns the file and its
// stat now; when the name leads to another file than the one listed, the
// new one is stored (it is as far below the root) and the next state
// records it. ok is false when the entry is not to be stored (warned).
func (w *walker) openFile(rel, full string, parent *os.File, name string, listed *unix.Stat_t) (*os.File, *unix.Stat_t, bool) {
	w.hook(rel)
	fd, err := openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			w.warn("%s: vanished before it could be dumped", full)
		case errors.Is(err, unix.ELOOP):
			w.warn("%s: replaced by a symlink while being dumped (not dumped, and not followed)", full)
		default:
			w.warn("%s: cannot open: %v (not dumped)", full, err)
		}
		w.skipped(rel)
		return nil, nil, false
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		unix.Close(fd)
		w.warn("%s: %v (not dumped)", full, err)
		w.skipped(rel)
		return nil, nil, false
	}
	if now.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		w.warn("%s: no longer a regular file (replaced while being dumped; not dumped)", full)
		w.skipped(rel)
		return nil, nil, false
	}
	if now.Dev != listed.Dev || now.Ino != listed.Ino {
		w.warn("%s: replaced by another file while being dumped (the new one is stored)", full)
	}
	if w.next != nil {
		w.next.Files[rel] = fileStateOfStat(&now)
	}
	unix.SetNonblock(fd, false)
	return os.NewFile(uintptr(fd), full), &now, true
}

// headerOf builds the tar header of an entry from its stat, as
// tar.FileInfoHeader would; ok is false for a type tar cannot store.
func headerOf(st *unix.Stat_t, link string) (*tar.Header, bool) {
	h := &tar.Header{
		Format:  tar.FormatPAX,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtimeOf(st),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = st.Size
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = link
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		h.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, false
	}
	return h, true
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

func (w *walker) indexRecord(rel string, hdr *tar.Header, off int64) wire.IndexRecord {
	return wire.IndexRecord{
		Path:      rel,
		Type:      hdr.Typeflag,
		Size:      hdr.Size,
		Mode:      uint32(hdr.Mode) & 0o7777,
		Mtime:     hdr.ModTime,
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		Link:      strings.TrimPrefix(hdr.Linkname, "./"),
		TarOffset: off,
	}
}

// index sends one index record, unless the server holds it already (a
// resumed dump's replay).
func (w *walker) index(r wire.IndexRecord) {
	w.files++
	w.nIndex++
	if w.sink.Index == nil || w.indexErr != nil || w.nIndex <= w.skipIndex {
		return
	}
	w.indexErr = w.sink.Index(r)
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

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

func mtimeOf(st *unix.Stat_t) time.Time {
	return time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
}

// join names an entry in messages: the DLE as requested, then the path
// below it.
func join(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// openat opens name relative to the directory dirfd (close-on-exec, no
// controlling terminal), retrying when a signal interrupts it.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fstatat is lstat of name relative to the directory dirfd.
func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// readlinkat reads the target of the symlink name in the directory dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= 1<<20 {
			return "", unix.ENAMETOOLONG
		}
	}
}
