package gnutar

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Purge removes from directory dir every entry (file, symlink, or whole
// subtree) that the dumpdir entries say was not there when the archive was
// made, as `tar --listed-incremental=/dev/null -x` does when it extracts
// the directory's member. It returns the removed paths (dir joined with
// the name), sorted.
//
// The rules are GNU tar 1.34's, checked against the real program (see
// TestPurgeMatchesGNUTar); the type test uses lstat, so symlinks are never
// followed:
//
//   - a name not listed as Y, N or D is removed;
//   - N keeps the entry whatever its type;
//   - D keeps it only if it is a directory (a file, or a symlink even to a
//     directory, is removed: the archive has a directory there);
//   - Y keeps it only if it is not a directory (a directory is removed
//     with its subtree: the archive has a file there, extracted next).
//
// Purge refuses entries whose name is empty, ".", "..", or contains '/' or
// NUL, and dumpdirs with rename entries (R, T, X): tapir never writes
// them and applying only the purge half of a rename would lose the
// renamed files. It refuses a dir that is a symlink; removal happens
// through an os.Root on dir, so nothing outside dir is touched even if
// entries are replaced by symlinks meanwhile. Components of dir above it
// are the caller's to trust.
func Purge(dir string, entries []DirEntry) ([]string, error) {
	if _, err := checkDumpdir(dir, entries); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("gnutar: purge: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("gnutar: purge %s: is a symlink; refusing to purge through it", dir)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("gnutar: purge %s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("gnutar: purge: %w", err)
	}
	defer root.Close()
	names, err := PurgeRoot(root, entries)
	removed := make([]string, len(names))
	for i, name := range names {
		removed[i] = filepath.Join(dir, name)
	}
	return removed, err
}

// PurgeRoot is Purge on a directory already opened as an os.Root (the
// restore code opens it through the root of its target, never by a path
// string): the same rules and refusals, and it returns the names removed
// (plain names in dir, not joined), sorted. Errors name the directory by
// dir.Name().
func PurgeRoot(dir *os.Root, entries []DirEntry) ([]string, error) {
	keep, err := checkDumpdir(dir.Name(), entries)
	if err != nil {
		return nil, err
	}
	d, err := dir.Open(".")
	if err != nil {
		return nil, fmt.Errorf("gnutar: purge: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("gnutar: purge: list %s: %w", dir.Name(), err)
	}
	sort.Strings(names)
	var removed []string
	for _, name := range names {
		if kind, ok := keep[name]; ok {
			if kind == KindUnchanged {
				continue
			}
			st, err := dir.Lstat(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return removed, fmt.Errorf("gnutar: purge: %w", err)
			}
			if st.IsDir() == (kind == KindDirectory) {
				continue
			}
		}
		if err := dir.RemoveAll(name); err != nil {
			return removed, fmt.Errorf("gnutar: purge %s: remove %q: %w", dir.Name(), name, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// checkDumpdir refuses the entries Purge does not apply and returns the
// kind of each name.
func checkDumpdir(dir string, entries []DirEntry) (map[string]byte, error) {
	keep := make(map[string]byte, len(entries))
	for i, e := range entries {
		switch e.Kind {
		case KindInArchive, KindUnchanged, KindDirectory:
		case KindRename, KindTarget, KindTempDir:
			return nil, fmt.Errorf("gnutar: purge %s: dumpdir entry %d (%c %q) is a rename, which tapir does not apply; extract this archive with GNU tar", dir, i, e.Kind, e.Name)
		default:
			return nil, fmt.Errorf("gnutar: purge %s: dumpdir entry %d has unknown kind %q", dir, i, e.Kind)
		}
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
			return nil, fmt.Errorf("gnutar: purge %s: dumpdir entry %d has unsafe name %q (want a plain file name); the archive is damaged or hostile", dir, i, e.Name)
		}
		keep[e.Name] = e.Kind
	}
	return keep, nil
}
