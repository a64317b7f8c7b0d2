package recover

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/indexd"
)

// TreeRequest names a DLE to restore whole, as it was at a date.
type TreeRequest struct {
	Host, Path string // the DLE
	To         string // target directory: becomes the DLE's root
	AsOf       string // datestamp limit, "" for the newest
	// Volumes reaches the volumes; nil reads the vtapes of a disk changer.
	Volumes indexd.VolumeSource
}

// TreeResult lists the images applied, oldest first.
type TreeResult struct {
	Chain   []index.Dump
	Entries int64
	Removed []string // paths deleted because a later image's listing lacks them
}

// Chain returns the images that restore a DLE as of a datestamp: the
// newest good image at or before it, then, walking back, the newest image
// of a lower level before each, down to a full. Oldest first.
func Chain(cat *index.Catalog, host, dle, asOf string) ([]index.Dump, error) {
	return cat.Chain(host, dle, asOf)
}

// Tree restores a whole DLE by applying its chain of images in order, the
// way `tar --listed-incremental=/dev/null -x` does: each directory's
// listing removes what was deleted or renamed since the previous image.
func Tree(ctx context.Context, cfg *config.Config, req TreeRequest, log *slog.Logger) (*TreeResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if req.To == "" {
		return nil, errors.New("recover: no target directory given (--to DIR)")
	}
	cat, err := index.Open(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	chain, err := Chain(cat, req.Host, req.Path, req.AsOf)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if err := os.MkdirAll(req.To, 0o700); err != nil {
		return nil, fmt.Errorf("recover: target %s: %w", req.To, err)
	}
	res := &TreeResult{Chain: chain}
	for _, d := range chain {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		parts, err := cat.Parts(d.ID)
		if err != nil {
			return res, fmt.Errorf("recover: %w", err)
		}
		src, closeSrc, where, err := openImage(cfg, req.Volumes, &index.Location{Dump: d, Parts: parts}, log)
		if err != nil {
			return res, err
		}
		n, removed, err := applyImage(src, d, req.To)
		closeSrc()
		res.Entries += n
		res.Removed = append(res.Removed, removed...)
		if err != nil {
			return res, fmt.Errorf("recover: level %d image %s from %s: %w", d.Level, d.Datestamp, where.where(), err)
		}
		log.Info("applied image", "level", d.Level, "datestamp", d.Datestamp, "entries", n, "removed", len(removed))
	}
	return res, nil
}

func applyImage(src io.ReaderAt, d index.Dump, dir string) (int64, []string, error) {
	payload := io.NewSectionReader(src, 0, d.PayloadSize)
	r, err := image.NewStreamReader(payload, image.Comp(d.Comp))
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	x := &Extractor{Dir: dir, Incremental: true, Overwrite: true}
	n, err := x.All(tar.NewReader(r))
	return n, x.Removed, err
}

// Extractor writes tar entries under Dir, never outside it: every kind of
// entry GNU tar writes (files, sparse files with their holes, directories,
// symlinks, hard links, fifos, device nodes), with owner (as root), mode,
// mtime, extended attributes and ACLs. With Incremental set, directory
// listings (GNU.dumpdir) remove what an earlier image left that the
// directory no longer holds.
type Extractor struct {
	Dir         string
	Incremental bool
	Overwrite   bool
	Removed     []string
	Warn        func(string)

	dirs []dirTime
}

type dirTime struct {
	path  string
	mtime time.Time
}

// All extracts every entry of tr. Directory mtimes are set at the end,
// after their contents are written.
func (x *Extractor) All(tr *tar.Reader) (int64, error) {
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
	x.finishDirs()
	return n, nil
}

// finishDirs sets the mtimes of the directories written so far, deepest
// last written first, now that nothing more is written into them.
func (x *Extractor) finishDirs() {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		os.Chtimes(x.dirs[i].path, time.Time{}, x.dirs[i].mtime)
	}
	x.dirs = nil
}

// Entry writes one entry and returns where.
func (x *Extractor) Entry(hdr *tar.Header, r io.Reader) (string, error) {
	name := strings.TrimPrefix(hdr.Name, "./")
	if name == "" || name == "." || name == "./" {
		name = "."
	}
	var target string
	if name == "." {
		target = x.Dir
	} else {
		t, err := SafeJoin(x.Dir, strings.TrimSuffix(name, "/"))
		if err != nil {
			return "", err
		}
		target = t
	}
	if target != x.Dir {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		if fi, err := os.Lstat(target); err == nil {
			if !x.Overwrite {
				return "", fmt.Errorf("%s already exists; remove it or restore elsewhere", target)
			}
			if fi.IsDir() {
				if err := os.RemoveAll(target); err != nil {
					return "", err
				}
			} else if hdr.Typeflag != tar.TypeReg {
				os.Remove(target)
			}
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := writeFile(target, r, hdr.Size); err != nil {
			return "", err
		}
	case tar.TypeDir:
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			os.Remove(target)
		}
		if err := os.MkdirAll(target, 0o700); err != nil {
			return "", err
		}
		if v, ok := hdr.PAXRecords[gnutar.PAXDumpdir]; ok && x.Incremental {
			ents, err := gnutar.DecodeDumpdir(v)
			if err != nil {
				return "", fmt.Errorf("%s: directory listing: %w", hdr.Name, err)
			}
			removed, err := gnutar.Purge(target, ents)
			if err != nil {
				return "", err
			}
			x.Removed = append(x.Removed, removed...)
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return "", err
		}
	case tar.TypeLink:
		old, err := SafeJoin(x.Dir, strings.TrimPrefix(hdr.Linkname, "./"))
		if err != nil {
			return "", err
		}
		os.Remove(target)
		if err := os.Link(old, target); err != nil {
			return "", fmt.Errorf("hard link %s to %s: %w", target, old, err)
		}
		return target, nil // the first name carries the metadata
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeFifo:
			mode |= syscall.S_IFIFO
		case tar.TypeChar:
			mode |= syscall.S_IFCHR
		default:
			mode |= syscall.S_IFBLK
		}
		dev := int((hdr.Devmajor&0xfff)<<8 | hdr.Devminor&0xff | (hdr.Devminor&^0xff)<<12)
		if err := syscall.Mknod(target, mode, dev); err != nil {
			return "", fmt.Errorf("create %s %s: %w (device nodes need root)", typeName(hdr.Typeflag), target, err)
		}
	default:
		return "", fmt.Errorf("%s: unknown tar entry type %q", hdr.Name, hdr.Typeflag)
	}
	return target, x.meta(target, hdr)
}

// meta sets owner, mode, attributes and mtime, in the order that keeps
// setuid bits (chown clears them) and ACL masks (chmod rewrites them).
func (x *Extractor) meta(target string, hdr *tar.Header) error {
	if os.Geteuid() == 0 {
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil && x.Warn != nil {
			x.Warn(fmt.Sprintf("%s: set owner %d:%d: %v", target, hdr.Uid, hdr.Gid, err))
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && x.Warn != nil {
			x.Warn(fmt.Sprintf("%s: set symlink mtime: %v", target, err))
		}
		return nil
	}
	if err := os.Chmod(target, os.FileMode(hdr.Mode&0o777)|specialBits(hdr.Mode)); err != nil {
		return err
	}
	if err := gnutar.ApplyAttrs(target, hdr.PAXRecords); err != nil {
		if x.Warn == nil {
			return err
		}
		x.Warn(err.Error())
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirs = append(x.dirs, dirTime{target, hdr.ModTime})
		return nil
	}
	return os.Chtimes(target, time.Time{}, hdr.ModTime)
}

// writeFile writes exactly size bytes of r to path through a temporary
// file, leaving holes where the data is zero (so sparse files stay
// sparse), then renames it into place.
func writeFile(target string, r io.Reader, size int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(target), ".tapir-recover-*")
	if err != nil {
		return err
	}
	n, err := copySparse(tmp, r)
	if err == nil && n != size {
		err = fmt.Errorf("image ended after %d of %d bytes of %s", n, size, target)
	}
	if err == nil {
		err = tmp.Truncate(n)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
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
