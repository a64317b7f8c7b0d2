package holding

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tapir-backup/tapir/image"
)

// Found is one image found on the holding disks by Scan.
type Found struct {
	Path   string        // first chunk
	Header *image.Header // nil when Err is set and the header did not parse
	Bytes  int64         // bytes on disk, all chunks and the header
	Err    error         // the image cannot be opened (damaged header, missing chunk)
}

// Leftover is a file of an image that was never committed: a dump cut
// short, or one whose catalog record a crash separated from its rename.
type Leftover struct {
	Path  string // with its .tmp suffix
	Bytes int64
}

// Scan lists the images on the holding disks: the first chunks that carry
// their final names (complete images, or damaged ones with Err set), later
// chunks whose first chunk is gone (Err matching ErrOrphanChunk), and the
// .tmp files (Leftover). A disk that does not exist is skipped (CheckDisk
// tells). It reads headers only; Verify checks payloads.
// Files outside run directories (<disk>/<14-digit datestamp>/) are not
// tapir's and are left alone.
func Scan(disks []string) ([]Found, []Leftover, error) {
	var found []Found
	var left []Leftover
	var later []Found
	for _, d := range disks {
		runs, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("holding disk %s: %w", d, err)
		}
		for _, r := range runs {
			if !r.IsDir() || len(r.Name()) != 14 || strings.Trim(r.Name(), "0123456789") != "" {
				continue
			}
			dir := filepath.Join(d, r.Name())
			ents, err := os.ReadDir(dir)
			if err != nil {
				return nil, nil, fmt.Errorf("holding disk %s: %w", d, err)
			}
			for _, e := range ents {
				if !e.Type().IsRegular() {
					continue
				}
				p := filepath.Join(dir, e.Name())
				fi, err := e.Info()
				if err != nil {
					continue
				}
				if strings.HasSuffix(e.Name(), TmpSuffix) {
					left = append(left, Leftover{Path: p, Bytes: fi.Size()})
					continue
				}
				if !looksLikeImage(p) {
					// A later chunk, counted with its image, unless its
					// first chunk is gone (checked below).
					later = append(later, Found{Path: p, Bytes: fi.Size()})
					continue
				}
				f := Found{Path: p}
				im, err := OpenImage(p, disks)
				if err != nil {
					f.Err = err
					f.Bytes = fi.Size()
					f.Header = headerOf(p)
				} else {
					f.Header = im.Header
					f.Bytes = im.Size + image.HeaderSize
					im.Close()
				}
				found = append(found, f)
			}
		}
	}
	for _, f := range later {
		if first, ok := firstChunk(f.Path, disks); !ok {
			f.Err = fmt.Errorf("holding %s: %w: it has no image header and %s, the first chunk it would belong to, is on no holding disk (or it is a first chunk whose header was destroyed)", f.Path, ErrOrphanChunk, first)
			found = append(found, f)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Path < found[j].Path })
	sort.Slice(left, func(i, j int) bool { return left[i].Path < left[j].Path })
	return found, left, nil
}

// ErrOrphanChunk is matched by the Err of a Found that is a later chunk
// (<stem>.<k>, no header of its own) whose first chunk is missing: what is
// left of an image nobody can read any more.
var ErrOrphanChunk = errors.New("a later chunk of a holding image whose first chunk is gone")

// firstChunk finds the first chunk of the image that the later chunk at p
// belongs to, in the same run directory of any disk (committed or .tmp).
// It returns the name looked for and whether it is there.
func firstChunk(p string, disks []string) (string, bool) {
	name := filepath.Base(p)
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || strings.Trim(name[i+1:], "0123456789") != "" {
		return name, true // not a chunk name: not ours to judge
	}
	stem := name[:i]
	run := filepath.Base(filepath.Dir(p))
	dirs := []string{filepath.Dir(p)}
	for _, d := range disks {
		dirs = append(dirs, filepath.Join(d, run))
	}
	for _, d := range dirs {
		for _, suf := range []string{"", TmpSuffix} {
			if fi, err := os.Stat(filepath.Join(d, stem+suf)); err == nil && fi.Mode().IsRegular() {
				return stem, true
			}
		}
	}
	return stem, false
}

func headerOf(p string) *image.Header {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	h, err := image.ReadHeader(f)
	if err != nil {
		return nil
	}
	return h
}

// RemoveLeftover deletes a .tmp file and its run directory when empty.
func RemoveLeftover(path string) error {
	if !strings.HasSuffix(path, TmpSuffix) {
		return fmt.Errorf("holding: %s is not a partial file (no %s suffix); refusing to remove it", path, TmpSuffix)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("holding: remove partial file %s: %w", path, err)
	}
	os.Remove(filepath.Dir(path))
	return nil
}
