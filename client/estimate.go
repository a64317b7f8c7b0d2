package client

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/wire"
)

// Estimate sizes the tar streams that dumps of root at the given levels
// would produce, from one walk of stat calls; no file data is read. Level
// N counts what differs from the state of the highest level below N, as
// the dump would.
func Estimate(ctx context.Context, root string, opt DumpOptions, levels []int) ([]wire.Estimate, error) {
	if len(levels) == 0 {
		return nil, fmt.Errorf("estimate of %s: no levels asked", root)
	}
	rootDir, st, err := openRoot(root, opt.Allow)
	if err != nil {
		return nil, err
	}
	defer rootDir.Close()
	type sized struct {
		level int
		base  *State
		moved bool
		est   wire.Estimate
	}
	out := make([]sized, len(levels))
	dev := uint64(st.Dev)
	for i, l := range levels {
		if l < 0 || l > MaxLevel {
			return nil, fmt.Errorf("level %d out of range 0..%d", l, MaxLevel)
		}
		out[i].level = l
		out[i].est = wire.Estimate{Level: l, Bytes: 512 + 1024} // root entry, end of archive
		if l > 0 {
			if opt.State == nil {
				return nil, fmt.Errorf("level %d requested but this agent keeps no incremental state (start it with --state-dir)", l)
			}
			if out[i].base, err = opt.State.Base(root, l); err != nil {
				return nil, err
			}
			out[i].moved = out[i].base != nil && out[i].base.Dev != dev
		}
	}
	ex, err := newExcluder(opt.Exclude, opt.ExcludeLists, opt.Allow, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	// The walk stats each name relative to its directory's descriptor
	// (fstatat), as find does, and does not sort: a path lookup per entry
	// would cost a third more on a tree of small files. Like the dump, it
	// opens each directory relative to its parent without following a
	// symlink, so it never leaves the root.
	var walk func(rel string, d *os.File) error
	walk = func(rel string, d *os.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		if err != nil && len(names) == 0 {
			return nil // the dump reports it
		}
		dfd := int(d.Fd())
		var sb unix.Stat_t
		for _, name := range names {
			crel := path.Join(rel, name)
			if ex.excluded(crel) || (rel == "" && strings.HasPrefix(name, SnapshotPrefix)) {
				continue
			}
			if err := fstatat(dfd, name, &sb); err != nil {
				continue
			}
			typ := sb.Mode & unix.S_IFMT
			if typ == unix.S_IFSOCK {
				continue
			}
			isDir := typ == unix.S_IFDIR
			size := tarEntrySize(typ == unix.S_IFREG, sb.Size)
			var now FileState
			if !isDir {
				now = fileStateOfStat(&sb)
			}
			for i := range out {
				s := &out[i]
				if !isDir && s.base != nil {
					if was, ok := s.base.Files[crel]; ok && !changed(was, now, s.moved) {
						continue
					}
				}
				s.est.Files++
				s.est.Bytes += size
			}
			if isDir && (!opt.OneFilesystem || uint64(sb.Dev) == dev) {
				fd, err := openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
				if err != nil {
					continue // the dump reports it
				}
				sub := os.NewFile(uintptr(fd), name)
				err = walk(crel, sub)
				sub.Close()
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", rootDir); err != nil {
		return nil, err
	}
	res := make([]wire.Estimate, len(out))
	for i, s := range out {
		res[i] = s.est
	}
	return res, nil
}

// tarEntrySize is the size of an entry in a pax tar stream: a header,
// a pax header (mtime with nanoseconds, long names), and the data padded
// to 512 bytes.
func tarEntrySize(regular bool, size int64) int64 {
	n := int64(512 + 1024)
	if regular {
		n += (size + 511) &^ 511
	}
	return n
}
