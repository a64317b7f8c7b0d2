package gnutar

import (
	"fmt"
	"sort"
	"strings"
)

// PAXDumpdir is the pax record that GNU tar --listed-incremental puts on
// every directory entry (typeflag '5') of a posix-format archive.
const PAXDumpdir = "GNU.dumpdir"

// Dumpdir entry kinds. Tapir writes only Y, N and D; R, T and X (renames)
// are decoded so that archives made by GNU tar can be read.
const (
	KindInArchive = 'Y' // the file is in this archive
	KindUnchanged = 'N' // the file existed but was not dumped (unchanged)
	KindDirectory = 'D' // the file is a subdirectory
	KindRename    = 'R' // rename this file (path from the archive root)...
	KindTarget    = 'T' // ...to this one (empty: to the X directory)
	KindTempDir   = 'X' // temporary directory for a cyclic rename
)

// DirEntry is one entry of a dumpdir.
type DirEntry struct {
	Kind byte
	Name string
}

// SortDumpdir sorts entries by name in byte order, the order GNU tar
// writes and the only order it reads correctly: GNU tar looks names up by
// binary search, so with an unsorted dumpdir it deletes files on an
// incremental restore that the archive said to keep.
func SortDumpdir(entries []DirEntry) {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
}

// EncodeDumpdir returns the GNU.dumpdir value for entries, in the order
// given: the caller sorts them with SortDumpdir. An empty directory encodes
// as "\x00".
func EncodeDumpdir(entries []DirEntry) string {
	n := 1
	for _, e := range entries {
		n += len(e.Name) + 2
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range entries {
		b.WriteByte(e.Kind)
		b.WriteString(e.Name)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return b.String()
}

// DecodeDumpdir parses a GNU.dumpdir value. It checks the structure only:
// every entry has a known kind and ends with a NUL, the value ends with
// the extra NUL and nothing follows it, and names are not empty (except
// a T entry's, which GNU tar uses for "rename into the temporary
// directory"). Which names are safe to act upon is Purge's business.
func DecodeDumpdir(v string) ([]DirEntry, error) { return AppendDumpdir(nil, v) }

// AppendDumpdir is DecodeDumpdir appending the entries to out: a caller
// that knows the value (a listing of its own catalog) sizes out once for a
// large directory instead of growing it.
func AppendDumpdir(out []DirEntry, v string) ([]DirEntry, error) {
	for i := 0; ; {
		if i >= len(v) {
			if len(v) == 0 {
				return nil, fmt.Errorf("gnutar: empty %s value (even an empty directory has the terminating NUL)", PAXDumpdir)
			}
			return nil, fmt.Errorf("gnutar: %s value of %d bytes lacks its terminating NUL (truncated record?)", PAXDumpdir, len(v))
		}
		kind := v[i]
		if kind == 0 {
			if i+1 != len(v) {
				return nil, fmt.Errorf("gnutar: %s value has %d stray bytes after its terminating NUL at offset %d", PAXDumpdir, len(v)-i-1, i)
			}
			return out, nil
		}
		switch kind {
		case KindInArchive, KindUnchanged, KindDirectory, KindRename, KindTarget, KindTempDir:
		default:
			return nil, fmt.Errorf("gnutar: %s entry %d at offset %d has unknown kind %q (want one of YNDRTX)", PAXDumpdir, len(out), i, kind)
		}
		end := strings.IndexByte(v[i+1:], 0)
		if end < 0 {
			return nil, fmt.Errorf("gnutar: %s entry %d at offset %d is not NUL-terminated (truncated record?)", PAXDumpdir, len(out), i)
		}
		name := v[i+1 : i+1+end]
		if name == "" && kind != KindTarget {
			return nil, fmt.Errorf("gnutar: %s entry %d at offset %d (kind %c) has an empty name", PAXDumpdir, len(out), i, kind)
		}
		out = append(out, DirEntry{Kind: kind, Name: name})
		i += end + 2
	}
}
