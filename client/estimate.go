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

// Estimate sizes the tar stream a level-0 dump of root would produce, from
// one walk of stat calls; no file data is read.
func Estimate(ctx context.Context, root string, opt DumpOptions, levels []int) ([]wire.Estimate, error) {
	for _, l := range levels {
		if l != 0 {
			return nil, fmt.Errorf("level %d requested: this agent estimates level 0 only", l)
		}
	}
	st, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("DLE %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("DLE %s: not a directory", root)
	}
	w := &walker{opt: opt}
	var bytes, files int64
	dev := devOf(st)
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
			if w.excluded(crel) {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				continue
			}
			files++
			bytes += tarEntrySize(crel, fi)
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
	bytes += 512 + 1024 // root entry and end-of-archive
	out := make([]wire.Estimate, 0, len(levels))
	for _, l := range levels {
		out = append(out, wire.Estimate{Level: l, Bytes: bytes, Files: files})
	}
	return out, nil
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
