package holding

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing bytes [off, off+n) of f
// to the disk and returns without waiting for them (sync_file_range
// SYNC_FILE_RANGE_WRITE). It promises nothing: durability still comes from
// the fsync in Prepare, which then finds little left to write instead of
// the whole image at once. An error is ignored for the same reason.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
