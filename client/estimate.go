package client

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

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
	st, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("DLE %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("DLE %s: not a directory", root)
	}
	type sized struct {
		level int
		base  *State
		moved bool
		est   wire.Estimate
	}
	out := make([]sized, len(levels))
	dev := devOf(st)
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
	ex, err := newExcluder(opt.Exclude, opt.ExcludeLists, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	var walk func(rel, full string) error
	walk = func(rel, full string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(full)
		if err != nil {
			return nil // the dump reports it
		}
		for _, de := range ents {
			crel := path.Join(rel, de.Name())
			if ex.excluded(crel) {
				continue
			}
			fi, err := de.Info()
			if err != nil || fi.Mode()&fs.ModeSocket != 0 {
				continue
			}
			size := tarEntrySize(crel, fi)
			var now FileState
			if !fi.IsDir() {
				now = fileStateOf(fi)
			}
			for i := range out {
				s := &out[i]
				if !fi.IsDir() && s.base != nil {
					if was, ok := s.base.Files[crel]; ok && !changed(was, now, s.moved) {
						continue
					}
				}
				s.est.Files++
				s.est.Bytes += size
			}
			if fi.IsDir() && (!opt.OneFilesystem || devOf(fi) == dev) {
				if err := walk(crel, filepath.Join(full, de.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", root); err != nil {
		return nil, err
	}
	res := make([]wire.Estimate, len(out))
	for i, s := range out {
		res[i] = s.est
	}
	return res, nil
}

// tarEntrySize is the size of an entry in a pax tar stream: a header, a
// pax header when the name is long, and the data padded to 512 bytes.
func tarEntrySize(rel string, fi fs.FileInfo) int64 {
	n := int64(512)
	if len(rel) > 99 {
		n += 1024
	}
	if fi.Mode().IsRegular() {
		n += (fi.Size() + 511) &^ 511
	}
	return n
}
