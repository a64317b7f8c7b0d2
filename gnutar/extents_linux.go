package gnutar

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// DataExtents returns the data extents of f, a regular file of size bytes,
// found with lseek SEEK_DATA/SEEK_HOLE, clipped to size. sparse is false
// when the file has no hole, or is empty, or its filesystem cannot tell
// (such filesystems report the whole file as data, or refuse the whence
// values); the caller then writes a normal entry. A file that is all hole
// gives sparse=true and no extents. The extents are as fine as the
// filesystem's block size, which is also what GNU tar 1.34 records.
// f's file offset is restored before returning.
func DataExtents(f *os.File, size int64) (ext []Extent, sparse bool, err error) {
	if size <= 0 {
		return nil, false, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, false, fmt.Errorf("gnutar: data extents of %s: %w", f.Name(), err)
	}
	var scanErr error
	unsupported := false
	ctlErr := rc.Control(func(fd uintptr) {
		ifd := int(fd)
		saved, err := unix.Seek(ifd, 0, io.SeekCurrent)
		if err != nil {
			scanErr = err
			return
		}
		defer func() {
			if _, err := unix.Seek(ifd, saved, io.SeekStart); err != nil && scanErr == nil {
				scanErr = err
			}
		}()
		for off := int64(0); off < size; {
			data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) {
				return // only hole from off to the end
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				unsupported = true
				return
			}
			if err != nil {
				scanErr = fmt.Errorf("lseek SEEK_DATA at %d: %w", off, err)
				return
			}
			if data >= size {
				return
			}
			hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
			if errors.Is(err, unix.ENXIO) {
				hole = size // truncated under us: the rest is data up to size
			} else if err != nil {
				scanErr = fmt.Errorf("lseek SEEK_HOLE at %d: %w", data, err)
				return
			}
			if hole > size {
				hole = size
			}
			if hole <= data {
				scanErr = fmt.Errorf("lseek SEEK_HOLE at %d returned %d", data, hole)
				return
			}
			ext = append(ext, Extent{Offset: data, Length: hole - data})
			off = hole
		}
	})
	if ctlErr != nil {
		return nil, false, fmt.Errorf("gnutar: data extents of %s: %w", f.Name(), ctlErr)
	}
	if scanErr != nil {
		return nil, false, fmt.Errorf("gnutar: data extents of %s: %w", f.Name(), scanErr)
	}
	if unsupported || (len(ext) == 1 && ext[0] == Extent{Offset: 0, Length: size}) {
		return nil, false, nil
	}
	return ext, true, nil
}
