package recover

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// Extractor writes tar entries under Dir, never outside it: every kind of
// entry GNU tar writes (files, sparse files with their holes, directories,
// symlinks, hard links, fifos, device nodes), with owner (as root), mode,
// mtime, extended attributes and ACLs. With Incremental set, directory
// listings (GNU.dumpdir) remove what an earlier image left that the
// directory no longer holds, and a directory entry with a listing removes
// the ACLs and user.* xattrs (trusted.* too with SamePrivileges) an
// earlier image left that it does not carry (pruneAttrs).
//
// Every write goes through an os.Root opened on Dir (and, for what
// os.Root lacks — mknod, xattrs, times of a symlink —, *at system calls
// relative to a directory opened through that root), so no name in an
// image, no symlink an image planted and no dumpdir can make it create,
// change or remove anything outside Dir. Names are refused, with the entry
// and the target named, when they are absolute, lead up with "..", or go
// through a symlink that exists under Dir. Dir itself is never removed,
// replaced or re-moded by an entry: an entry "." (or "./") that is not a
// directory is refused, and a directory entry "." leaves Dir's owner,
// mode, attributes and mtime alone unless TargetMeta is set.
//
// An Extractor holds Dir open between entries; Close (All calls it)
// releases it. It also remembers, until it removes anything itself, the
// directories it has checked, and holds the last one written into open:
// names and symlinks in images are checked as above, but another process
// renaming a directory out of Dir in the middle of a restore takes the
// entries still to come in that directory with it (as it would a tar -x).
type Extractor struct {
	Dir         string
	Incremental bool
	// Overwrite replaces what exists under Dir; without it an entry whose
	// name exists (a directory excepted) fails.
	Overwrite bool
	// SamePrivileges recreates what an image may hold that gives
	// privilege on the host restored to: device nodes, setuid and setgid
	// bits of files (setgid on a directory only makes files inherit its
	// group, and is kept), and trusted.* and security.* extended
	// attributes (file capabilities, SELinux labels). Without it they are
	// left out, and each entry concerned is recorded in Dropped. A host
	// restoring its own files sets it; a backup server restoring a
	// client's image does not, unless asked.
	SamePrivileges bool
	// TargetMeta lets a directory entry "." (the DLE's root) set Dir's
	// owner, mode, attributes and mtime (a bare-metal restore of a whole
	// filesystem wants them); without it Dir keeps its own.
	TargetMeta bool
	// Removed lists the paths (under Dir) that dumpdir listings removed.
	Removed []string
	// Warn receives problems that do not fail an entry (an owner, an
	// attribute or a symlink's time that could not be set). Nil: an
	// attribute that cannot be set fails the entry.
	Warn func(string)
	// Dropped records the entries whose privileged parts were left out
	// (see SamePrivileges).
	Dropped Dropped

	root    *os.Root
	dirs    []dirTime
	skipped map[string]bool // device nodes left out: hard links to them are too
	notes   []string        // what the current entry left out
	asRoot  bool            // running as root: owners are restored

	// Known directories: paths under Dir that are directories (not
	// symlinks), down from Dir, checked or made by this Extractor since
	// it last removed anything (forget). parents skips them.
	known map[string]bool
	// The directory the last entry went into, held open (opened through
	// root): the *at system calls of the next entries in it start there
	// instead of walking from Dir again. Dropped by forget.
	cwd    *os.File
	cwdRel string
	buf    []byte // copy buffer of writeFile
}

// MaxDroppedLines is how many lines Dropped keeps: a hostile image may
// hold millions of device nodes, the count says how many there were.
const MaxDroppedLines = 20

// Dropped counts the entries whose privileged parts an Extractor left out
// and keeps one line for each of the first MaxDroppedLines, for a person:
// "usr/bin/sudo: setuid bit left out (mode 4755 restored as 0755)".
type Dropped struct {
	Lines []string
	Count int
}

func (d *Dropped) add(line string) {
	d.Count++
	if len(d.Lines) < MaxDroppedLines {
		d.Lines = append(d.Lines, line)
	}
}

// merge adds the entries of o.
func (d *Dropped) merge(o Dropped) {
	for _, l := range o.Lines {
		if len(d.Lines) < MaxDroppedLines {
			d.Lines = append(d.Lines, l)
		}
	}
	d.Count += o.Count
}

type dirTime struct {
	rel   string
	mtime time.Time
}

// All extracts every entry of tr, stopping at the first that fails.
// Directory mtimes are set at the end, after their contents are written.
func (x *Extractor) All(tr *tar.Reader) (int64, error) {
	defer x.Close()
	var n int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("read tar entry after %d entries: %w", n, err)
		}
		if _, err := x.Entry(hdr, tr); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Close sets the mtimes of the directories written so far, deepest last
// written first, now that nothing more is written into them, and releases
// Dir. The Extractor may be used again.
func (x *Extractor) Close() error {
	if x.root == nil {
		return nil
	}
	var first error
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.setTimes(d.rel, d.mtime); err != nil && first == nil {
			first = fmt.Errorf("set the mtime of %s: %w", x.show(d.rel), err)
		}
	}
	x.dirs = nil
	x.forget()
	x.root.Close()
	x.root = nil
	return first
}

// finishDirs is Close for callers that have nothing to do with a late
// mtime failure (the mtimes are what GNU tar would set too; a failure
// there changes nothing that was restored).
func (x *Extractor) finishDirs() { x.Close() }

// open opens Dir (creating it) as the root every write goes through.
func (x *Extractor) open() error {
	if x.root != nil {
		return nil
	}
	if x.Dir == "" {
		return errors.New("no target directory to restore into")
	}
	if err := os.MkdirAll(x.Dir, 0o700); err != nil {
		return fmt.Errorf("target directory %s: %w", x.Dir, err)
	}
	r, err := os.OpenRoot(x.Dir)
	if err != nil {
		return fmt.Errorf("target directory %s: %w", x.Dir, err)
	}
	x.root = r
	if x.skipped == nil {
		x.skipped = map[string]bool{}
	}
	x.known = map[string]bool{}
	x.asRoot = os.Geteuid() == 0
	return nil
}

// forget drops what the Extractor remembers of the tree under Dir (known
// directories, the open directory): called whenever something there is
// removed, since a directory it knew may be gone or replaced.
func (x *Extractor) forget() {
	clear(x.known)
	if x.cwd != nil {
		x.cwd.Close()
		x.cwd, x.cwdRel = nil, ""
	}
}

// dirFd returns a descriptor of the directory rel, opened through the
// root and held until the next call for another directory or forget.
func (x *Extractor) dirFd(rel string) (int, error) {
	if x.cwd != nil && x.cwdRel == rel {
		return int(x.cwd.Fd()), nil
	}
	if x.cwd != nil {
		x.cwd.Close()
		x.cwd, x.cwdRel = nil, ""
	}
	d, err := x.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	x.cwd, x.cwdRel = d, rel
	return int(d.Fd()), nil
}

// show is where rel lands, for messages.
func (x *Extractor) show(rel string) string {
	if rel == "." {
		return x.Dir
	}
	return filepath.Join(x.Dir, filepath.FromSlash(rel))
}

// relName turns a name from an image into a clean slash-separated path
// relative to the target ("." for the target itself), or refuses it.
func (x *Extractor) relName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("refusing to restore %q into %s: the name holds a NUL byte", name, x.Dir)
	}
	n := name
	for strings.HasPrefix(n, "./") {
		n = n[2:]
	}
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("refusing to restore %q into %s: an absolute name, not relative to the DLE", name, x.Dir)
	}
	n = strings.TrimRight(n, "/")
	if n == "" || n == "." {
		return ".", nil
	}
	clean := path.Clean(n)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("refusing to restore %q into %s: it would escape the target directory", name, x.Dir)
	}
	if clean != n {
		return "", fmt.Errorf("refusing to restore %q into %s: not a plain relative name (it has empty, . or .. components)", name, x.Dir)
	}
	return clean, nil
}

// describe says what an entry is, for messages.
func describe(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return "a file"
	case tar.TypeDir:
		return "a directory"
	case tar.TypeSymlink:
		return fmt.Sprintf("a symlink to %q", hdr.Linkname)
	case tar.TypeLink:
		return fmt.Sprintf("a hard link to %q", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Sprintf("a %s %d,%d", typeName(hdr.Typeflag), hdr.Devmajor, hdr.Devminor)
	case tar.TypeFifo:
		return "a fifo"
	}
	return fmt.Sprintf("an entry of type %q", hdr.Typeflag)
}

// Entry writes one entry and returns where.
func (x *Extractor) Entry(hdr *tar.Header, r io.Reader) (string, error) {
	rel, err := x.relName(hdr.Name)
	if err != nil {
		return "", err
	}
	if err := x.open(); err != nil {
		return "", err
	}
	x.notes = x.notes[:0]
	defer func() {
		if len(x.notes) > 0 {
			x.Dropped.add(rel + ": " + strings.Join(x.notes, "; "))
		}
	}()
	if rel == "." {
		return x.Dir, x.rootEntry(hdr)
	}
	shown := x.show(rel)
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	var linkRel string
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		if !x.SamePrivileges {
			x.notes = append(x.notes, fmt.Sprintf("%s %d,%d not created", typeName(hdr.Typeflag), hdr.Devmajor, hdr.Devminor))
			x.skipped[rel] = true
			return shown, nil
		}
	case tar.TypeLink:
		linkRel, err = x.relName(hdr.Linkname)
		if err != nil {
			return "", fmt.Errorf("refusing to restore %q into %s: it is a hard link to %q, which is not a name inside the target directory", hdr.Name, x.Dir, hdr.Linkname)
		}
		if linkRel == "." {
			return "", fmt.Errorf("refusing to restore %q into %s: it is a hard link to the target directory itself", hdr.Name, x.Dir)
		}
		if via := x.symlinkOnPath(linkRel); via != "" {
			return "", fmt.Errorf("refusing to restore %q into %s: it is a hard link to %q, and %s is a symlink that could lead outside the target directory", hdr.Name, x.Dir, hdr.Linkname, x.show(via))
		}
		if x.skipped[linkRel] {
			x.notes = append(x.notes, fmt.Sprintf("hard link to %s, which was left out, not created", linkRel))
			x.skipped[rel] = true
			return shown, nil
		}
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo:
	default:
		return "", fmt.Errorf("cannot restore %q into %s: unknown tar entry type %q", hdr.Name, x.Dir, hdr.Typeflag)
	}
	if err := x.parents(hdr.Name, rel); err != nil {
		return "", err
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
		// A file is created with O_EXCL; writeFile clears the name
		// only when something is there.
		if err := x.clear(hdr, rel); err != nil {
			return "", err
		}
	}
	delete(x.skipped, rel)

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := x.writeFile(hdr, rel, r); err != nil {
			return fail(err)
		}
		return shown, nil
	case tar.TypeDir:
		return shown, x.dirEntry(hdr, rel)
	case tar.TypeSymlink:
		if err := x.root.Symlink(hdr.Linkname, rel); err != nil {
			return fail(err)
		}
		if x.asRoot {
			if err := x.root.Lchown(rel, hdr.Uid, hdr.Gid); err != nil {
				x.warn(fmt.Sprintf("%s: set owner %d:%d: %v", shown, hdr.Uid, hdr.Gid, err))
			}
		}
		if err := x.setTimes(rel, hdr.ModTime); err != nil {
			x.warn(fmt.Sprintf("%s: set symlink mtime: %v", shown, err))
		}
		return shown, nil
	case tar.TypeLink:
		if err := x.root.Link(linkRel, rel); err != nil {
			return "", fmt.Errorf("restore %q into %s: hard link to %q: %w", hdr.Name, x.Dir, hdr.Linkname, err)
		}
		return shown, nil // the first name carries the metadata
	default: // fifo, character or block device
		if err := x.node(hdr, rel); err != nil {
			return fail(err)
		}
		return shown, nil
	}
}

// rootEntry handles an entry naming the target itself.
func (x *Extractor) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("refusing to restore %q (%s) into %s: that name is the target directory itself, which only a directory entry may stand for; the image is damaged or hostile", hdr.Name, describe(hdr), x.Dir)
	}
	if x.Incremental {
		if err := x.purge(hdr, "."); err != nil {
			return err
		}
	}
	if !x.TargetMeta {
		return nil
	}
	f, err := x.root.OpenFile(".", os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	if err = x.pruneAttrs(int(f.Fd()), hdr, "."); err == nil {
		err = x.metaFd(int(f.Fd()), hdr, ".")
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	x.dirs = append(x.dirs, dirTime{".", hdr.ModTime})
	return nil
}

// parents makes sure the directories above rel exist, creating them, and
// refuses a path through a symlink or a file.
func (x *Extractor) parents(name, rel string) error {
	dir := path.Dir(rel)
	if dir == "." || x.known[dir] {
		return nil
	}
	cur := ""
	for _, p := range strings.Split(dir, "/") {
		cur = path.Join(cur, p)
		if x.known[cur] {
			continue
		}
		fi, err := x.root.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("restore %q into %s: create directory %s: %w", name, x.Dir, x.show(cur), err)
			}
		case err != nil:
			return fmt.Errorf("restore %q into %s: %w", name, x.Dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("refusing to restore %q into %s: %s is a symlink and could lead outside the target directory", name, x.Dir, x.show(cur))
		case !fi.IsDir():
			return fmt.Errorf("cannot restore %q into %s: %s is not a directory", name, x.Dir, x.show(cur))
		}
		x.known[cur] = true // checked or made, and every directory above it
	}
	return nil
}

// symlinkOnPath returns the first directory above rel that is a symlink
// under Dir, or "".
func (x *Extractor) symlinkOnPath(rel string) string {
	if x.known[path.Dir(rel)] {
		return ""
	}
	cur := ""
	for _, p := range strings.Split(path.Dir(rel), "/") {
		if p == "." {
			break
		}
		cur = path.Join(cur, p)
		fi, err := x.root.Lstat(cur)
		if err != nil {
			return ""
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return cur
		}
		if !fi.IsDir() {
			return ""
		}
	}
	return ""
}

// ensureDir creates the directory name (relative to Dir) and those above
// it, as plain directories (mode 0755 less the umask).
func (x *Extractor) ensureDir(name string) error {
	rel, err := x.relName(name)
	if err != nil {
		return err
	}
	if err := x.open(); err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	if err := x.parents(name, rel); err != nil {
		return err
	}
	fi, err := x.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(rel, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory %s: %w", x.show(rel), err)
		}
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("cannot create directory %s: something else is there", x.show(rel))
	}
	return nil
}

// exists says whether name (relative to Dir) exists there, not following
// symlinks.
func (x *Extractor) exists(name string) bool {
	rel, err := x.relName(name)
	if err != nil || x.open() != nil {
		return false
	}
	_, err = x.root.Lstat(rel)
	return err == nil
}

// clear makes room for the entry: what exists at rel is left (a
// directory for a directory, a file a new file is renamed over) or
// removed when Overwrite allows.
func (x *Extractor) clear(hdr *tar.Header, rel string) error {
	fi, err := x.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	if hdr.Typeflag == tar.TypeDir && fi.IsDir() {
		return nil
	}
	if !x.Overwrite {
		return fmt.Errorf("%s already exists; restore elsewhere, or add --overwrite to replace it", x.show(rel))
	}
	switch {
	case fi.IsDir():
		x.forget()
		err = x.root.RemoveAll(rel)
	case hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse:
		return nil // the new file is renamed over it
	default:
		x.forget()
		err = x.root.Remove(rel)
	}
	if err != nil {
		return fmt.Errorf("restore %q into %s: replace what is there: %w", hdr.Name, x.Dir, err)
	}
	return nil
}

// dirEntry creates (or keeps) a directory, applies its listing, then its
// metadata.
func (x *Extractor) dirEntry(hdr *tar.Header, rel string) error {
	if err := x.root.Mkdir(rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	if x.Incremental {
		if err := x.purge(hdr, rel); err != nil {
			return err
		}
	}
	// Open the directory itself, never a symlink put in its place.
	var f *os.File
	err := x.inParent(rel, func(dirfd int, base string) error {
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), x.show(rel))
		return nil
	})
	if err == nil {
		if err = x.pruneAttrs(int(f.Fd()), hdr, rel); err == nil {
			err = x.metaFd(int(f.Fd()), hdr, rel)
		}
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	x.known[rel] = true // opened with O_NOFOLLOW|O_DIRECTORY just now
	x.dirs = append(x.dirs, dirTime{rel, hdr.ModTime})
	return nil
}

// purge applies a directory's listing (GNU.dumpdir), through a root
// opened on the directory inside the target.
func (x *Extractor) purge(hdr *tar.Header, rel string) error {
	v, ok := hdr.PAXRecords[gnutar.PAXDumpdir]
	if !ok {
		return nil
	}
	ents, err := gnutar.DecodeDumpdir(v)
	if err != nil {
		return fmt.Errorf("restore %q into %s: its directory listing: %w", hdr.Name, x.Dir, err)
	}
	d := x.root
	if rel != "." {
		if d, err = x.root.OpenRoot(rel); err != nil {
			return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
		}
		defer d.Close()
	}
	names, err := gnutar.PurgeRoot(d, ents)
	if len(names) > 0 || err != nil {
		x.forget()
	}
	for _, n := range names {
		x.Removed = append(x.Removed, x.show(path.Join(rel, n)))
	}
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
	return nil
}

// mode is the mode to give the entry: its permissions and special bits,
// less setuid and setgid on a non-directory unless SamePrivileges.
func (x *Extractor) mode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode&0o777) | specialBits(hdr.Mode)
	if x.SamePrivileges || hdr.Typeflag == tar.TypeDir || hdr.Mode&0o6000 == 0 {
		return m
	}
	var bits []string
	if hdr.Mode&0o4000 != 0 {
		bits = append(bits, "setuid")
	}
	if hdr.Mode&0o2000 != 0 {
		bits = append(bits, "setgid")
	}
	x.notes = append(x.notes, fmt.Sprintf("%s bit%s left out (mode %04o restored as %04o)",
		strings.Join(bits, " and "), plural(len(bits)), hdr.Mode&0o7777, hdr.Mode&0o1777))
	return m &^ (os.ModeSetuid | os.ModeSetgid)
}

// attrs returns the entry's pax records less the privileged xattrs
// (trusted.*, security.*) unless SamePrivileges.
func (x *Extractor) attrs(hdr *tar.Header) map[string]string {
	if x.SamePrivileges || !hasPrivilegedAttrs(hdr.PAXRecords) {
		return hdr.PAXRecords
	}
	var out map[string]string
	var left []string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, gnutar.PAXXattrPrefix)
		if ok && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
			left = append(left, name)
			continue
		}
		if out == nil {
			out = make(map[string]string, len(hdr.PAXRecords))
		}
		out[k] = v
	}
	if len(left) > 0 {
		sort.Strings(left)
		x.notes = append(x.notes, fmt.Sprintf("xattr%s %s left out", plural(len(left)), strings.Join(left, ", ")))
	}
	return out
}

func hasPrivilegedAttrs(recs map[string]string) bool {
	for k := range recs {
		name, ok := strings.CutPrefix(k, gnutar.PAXXattrPrefix)
		if ok && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
			return true
		}
	}
	return false
}

func hasAttrs(recs map[string]string) bool {
	for k := range recs {
		if strings.HasPrefix(k, gnutar.PAXXattrPrefix) || k == gnutar.PAXACLAccess || k == gnutar.PAXACLDefault {
			return true
		}
	}
	return false
}

// metaFd sets owner, mode and attributes through an open file or
// directory, in the order that keeps setuid bits (chown clears them) and
// ACL masks (chmod rewrites them).
func (x *Extractor) metaFd(fd int, hdr *tar.Header, rel string) error {
	if x.asRoot {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			x.warn(fmt.Sprintf("%s: set owner %d:%d: %v", x.show(rel), hdr.Uid, hdr.Gid, err))
		}
	}
	if err := unix.Fchmod(fd, unixMode(x.mode(hdr))); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	recs := x.attrs(hdr)
	if !hasAttrs(recs) {
		return nil
	}
	return x.soft(gnutar.SetAttrs(x.show(rel), recs, func(name string, val []byte) error {
		return unix.Fsetxattr(fd, name, val, 0)
	}))
}

// unixMode is m as chmod(2) takes it.
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// node creates a fifo or a device node with its metadata.
func (x *Extractor) node(hdr *tar.Header, rel string) error {
	mode := x.mode(hdr)
	typ := uint32(syscall.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = syscall.S_IFCHR
	case tar.TypeBlock:
		typ = syscall.S_IFBLK
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := x.inParent(rel, func(dirfd int, base string) error {
		return unix.Mknodat(dirfd, base, typ|uint32(mode.Perm()), dev)
	})
	if err != nil {
		if hdr.Typeflag != tar.TypeFifo && errors.Is(err, unix.EPERM) {
			return fmt.Errorf("create %s: %w (device nodes need root)", typeName(hdr.Typeflag), err)
		}
		return fmt.Errorf("create %s: %w", typeName(hdr.Typeflag), err)
	}
	if x.asRoot {
		if err := x.root.Lchown(rel, hdr.Uid, hdr.Gid); err != nil {
			x.warn(fmt.Sprintf("%s: set owner %d:%d: %v", x.show(rel), hdr.Uid, hdr.Gid, err))
		}
	}
	if err := x.root.Chmod(rel, mode); err != nil {
		return err
	}
	if recs := x.attrs(hdr); hasAttrs(recs) {
		// Opening a device or a fifo for writing its attributes could
		// have effects (a tape drive rewinds): go through an O_PATH
		// descriptor of the node, which /proc resolves to it.
		err := x.inParent(rel, func(dirfd int, base string) error {
			fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != typ {
				return fmt.Errorf("%s changed while being restored", x.show(rel))
			}
			p := fmt.Sprintf("/proc/self/fd/%d", fd)
			return gnutar.SetAttrs(x.show(rel), recs, func(name string, val []byte) error {
				return unix.Setxattr(p, name, val, 0)
			})
		})
		if err := x.soft(err); err != nil {
			return err
		}
	}
	return x.setTimes(rel, hdr.ModTime)
}

// inParent calls fn with a descriptor of rel's directory, opened through
// the root (dirFd), and rel's last component.
func (x *Extractor) inParent(rel string, fn func(dirfd int, base string) error) error {
	fd, err := x.dirFd(path.Dir(rel))
	if err != nil {
		return err
	}
	return fn(fd, path.Base(rel))
}

// setTimes sets rel's mtime (atime is left alone), not following a
// symlink.
func (x *Extractor) setTimes(rel string, mtime time.Time) error {
	ts := []unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, {Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}}
	return x.inParent(rel, func(dirfd int, base string) error {
		return unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func (x *Extractor) warn(s string) {
	if x.Warn != nil {
		x.Warn(s)
	}
}

// soft turns an error into a warning when there is someone to warn.
func (x *Extractor) soft(err error) error {
	if err == nil || x.Warn == nil {
		return err
	}
	x.Warn(err.Error())
	return nil
}

// writeFile writes exactly hdr.Size bytes of r into a new file rel,
// leaving holes where the data is zero when the image stores the file as
// sparse (so sparse files stay sparse and dense ones dense), and
// sets its owner, mode, attributes and mtime through the open file. The
// file is created with O_EXCL|O_NOFOLLOW in its directory (held open,
// dirFd): nothing that exists is followed or written into. When the name
// exists, clear decides (an error without Overwrite) and the file is
// written beside it and renamed over it (a symlink there is replaced,
// never followed).
func (x *Extractor) writeFile(hdr *tar.Header, rel string, r io.Reader) error {
	dirfd, err := x.dirFd(path.Dir(rel))
	if err != nil {
		return err
	}
	base := path.Base(rel)
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		if err := x.clear(hdr, rel); err != nil {
			return err
		}
		return x.replaceFile(hdr, rel, r)
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := x.fill(fd, hdr, rel, r); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dirfd, base, 0)
		return err
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dirfd, base, 0)
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// replaceFile writes the file through a temporary file beside rel and
// renames it into place, over whatever is there.
func (x *Extractor) replaceFile(hdr *tar.Header, rel string, r io.Reader) error {
	dirfd, err := x.dirFd(path.Dir(rel))
	if err != nil {
		return err
	}
	var fd int
	var tmp string
	for i := 0; ; i++ {
		tmp = fmt.Sprintf(".tapir-recover-%016x", rand.Uint64())
		fd, err = unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || i == 10 {
			return fmt.Errorf("create a temporary file beside it: %w", err)
		}
	}
	if err := x.fill(fd, hdr, rel, r); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dirfd, tmp, 0)
		return err
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("close: %w", err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, path.Base(rel)); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("rename over what is there: %w", err)
	}
	return nil
}

// fill writes the file's data, owner, mode, attributes and mtime through
// fd (the mtime last: closing and renaming leave it alone).
func (x *Extractor) fill(fd int, hdr *tar.Header, rel string, r io.Reader) error {
	if x.buf == nil {
		x.buf = make([]byte, copyBufSize)
	}
	n, end, err := copyData(fd, r, x.buf, isSparse(hdr))
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("the image ended after %d of its %d bytes", n, hdr.Size)
	}
	if end != n {
		// The file ends in a hole.
		if err := unix.Ftruncate(fd, n); err != nil {
			return fmt.Errorf("set the size to %d: %w", n, err)
		}
	}
	if err := x.metaFd(fd, hdr, rel); err != nil {
		return err
	}
	if err := futimes(fd, hdr.ModTime); err != nil {
		return fmt.Errorf("set the mtime: %w", err)
	}
	return nil
}

// futimes sets the mtime of the open file fd (atime left alone):
// utimensat(fd, NULL, ...), which x/sys/unix does not offer.
func futimes(fd int, mtime time.Time) error {
	ts := [2]unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, {Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// copyBufSize is the copy buffer of writeFile: reads from the tar stream
// and writes to the file of up to this many bytes.
const copyBufSize = 256 << 10

// isSparse says whether the image stores the entry as a sparse file: an
// old GNU sparse entry (type 'S') or one with GNU.sparse.* pax records
// (formats 0.0, 0.1 and 1.0; tapir's client writes 1.0). archive/tar
// hands over the data of either with its holes as zeros.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// copyData copies r to fd from offset 0 with buf. With holes (the image
// says the file is sparse) it writes each run of data in one pwrite and
// skips 4 KiB blocks of zeros, leaving holes; without, every byte is
// written, zeros included, so that a file whose blocks were allocated
// comes back allocated (a database's preallocated file, a swap file). It
// returns the bytes copied and the end of the last data written.
func copyData(fd int, r io.Reader, buf []byte, holes bool) (n, end int64, err error) {
	const blk = 4096
	for {
		k, rerr := io.ReadFull(r, buf)
		off := 0
		if !holes && k > 0 {
			if err := pwriteAll(fd, buf[:k], n); err != nil {
				return n, end, err
			}
			end, off = n+int64(k), k
		}
		for off < k {
			// A run of data: blocks not all zero (a short last block
			// is always data).
			d := off
			for d < k && !zeroBlock(buf[d:min(d+blk, k)], blk) {
				d = min(d+blk, k)
			}
			if d > off {
				if err := pwriteAll(fd, buf[off:d], n+int64(off)); err != nil {
					return n, end, err
				}
				end = n + int64(d)
			}
			// A run of zero blocks: a hole.
			z := d
			for z < k && zeroBlock(buf[z:min(z+blk, k)], blk) {
				z += blk
			}
			off = z
		}
		n += int64(k)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return n, end, nil
		}
		if rerr != nil {
			return n, end, rerr
		}
	}
}

// zeroBlock says whether b is a whole block of zeros.
func zeroBlock(b []byte, blk int) bool {
	// All bytes equal their neighbour and the first is 0.
	return len(b) == blk && b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write at offset %d: %w", off, err)
		}
		if n == 0 {
			return fmt.Errorf("write at offset %d: %w", off, io.ErrShortWrite)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func specialBits(mode int64) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func typeName(t byte) string {
	switch t {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}
