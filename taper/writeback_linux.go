package taper

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackEvery is how many bytes of a vtape's tape file are written
// before their writeback to the disk is started.
const writebackEvery = 8 << 20

// startWriteback asks the kernel to start writing bytes [off, off+n) of f
// to the disk and returns without waiting for them (sync_file_range
// SYNC_FILE_RANGE_WRITE). It promises nothing: durability still comes from
// the fsync of the filemark, which then finds little left to write. An
// error is ignored for the same reason.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
