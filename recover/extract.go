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

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
)

// Extractor writes tar entries under Dir, never outside it: every kind of
// entry GNU tar writes (files, sparse files with their holes, directories,
// symlinks, hard links, fifos, device nodes), with owner (as root), mode,
// mtime, extended attributes and ACLs. With Incremental set, directory
// listings (GNU.dumpdir) remove what an earlier image left that the
// directory no longer holds.
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
// releases it.
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
	return nil
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
	if err := x.clear(hdr, rel); err != nil {
		return "", err
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
		if os.Geteuid() == 0 {
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
	err = x.metaFd(f, hdr, ".")
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
	if dir == "." {
		return nil
	}
	cur := ""
	for _, p := range strings.Split(dir, "/") {
		cur = path.Join(cur, p)
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
	}
	return nil
}

// symlinkOnPath returns the first directory above rel that is a symlink
// under Dir, or "".
func (x *Extractor) symlinkOnPath(rel string) string {
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
		err = x.root.RemoveAll(rel)
	case hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse:
		return nil // the new file is renamed over it
	default:
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
		err = x.metaFd(f, hdr, rel)
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("restore %q into %s: %w", hdr.Name, x.Dir, err)
	}
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
	if x.SamePrivileges {
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
func (x *Extractor) metaFd(f *os.File, hdr *tar.Header, rel string) error {
	if os.Geteuid() == 0 {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			x.warn(fmt.Sprintf("%s: set owner %d:%d: %v", x.show(rel), hdr.Uid, hdr.Gid, err))
		}
	}
	if err := f.Chmod(x.mode(hdr)); err != nil {
		return err
	}
	recs := x.attrs(hdr)
	if !hasAttrs(recs) {
		return nil
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var aerr error
	if err := sc.Control(func(fd uintptr) {
		aerr = gnutar.SetAttrs(x.show(rel), recs, func(name string, val []byte) error {
			return unix.Fsetxattr(int(fd), name, val, 0)
		})
	}); err != nil {
		return err
	}
	return x.soft(aerr)
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
	if os.Geteuid() == 0 {
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
// the root, and rel's last component.
func (x *Extractor) inParent(rel string, fn func(dirfd int, base string) error) error {
	d, err := x.root.OpenFile(path.Dir(rel), os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	sc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = fn(int(fd), path.Base(rel)) }); err != nil {
		return err
	}
	return ferr
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

// writeFile writes exactly hdr.Size bytes of r through a temporary file
// beside rel, leaving holes where the data is zero (so sparse files stay
// sparse), sets its owner, mode and attributes through the open file,
// renames it into place (over whatever was there: a symlink there is
// replaced, never followed), then sets its mtime.
func (x *Extractor) writeFile(hdr *tar.Header, rel string, r io.Reader) error {
	var f *os.File
	var tmp string
	for i := 0; ; i++ {
		tmp = path.Join(path.Dir(rel), fmt.Sprintf(".tapir-recover-%016x", rand.Uint64()))
		var err error
		f, err = x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == 10 {
			return err
		}
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			x.root.Remove(tmp)
		}
	}()
	n, err := copySparse(f, r)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("the image ended after %d of its %d bytes", n, hdr.Size)
	}
	if err := f.Truncate(n); err != nil {
		return err
	}
	if err := x.metaFd(f, hdr, rel); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := x.root.Rename(tmp, rel); err != nil {
		x.root.Remove(tmp)
		done = true
		return err
	}
	done = true
	return x.setTimes(rel, hdr.ModTime)
}

// copySparse copies r to f, seeking over 4 KiB blocks of zeros instead of
// writing them.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	const blk = 4096
	buf := make([]byte, 1<<20)
	zero := make([]byte, blk)
	var n int64
	for {
		k, err := io.ReadFull(r, buf)
		for off := 0; off < k; off += blk {
			end := min(off+blk, k)
			chunk := buf[off:end]
			if len(chunk) == blk && bytes.Equal(chunk, zero) {
				if _, err := f.Seek(blk, io.SeekCurrent); err != nil {
					return n, err
				}
			} else if _, err := f.Write(chunk); err != nil {
				return n, err
			}
			n += int64(len(chunk))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
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
