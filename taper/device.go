package taper

import (
	"errors"
	"os"
)

// Device is one drive holding one volume. It is the seam between the taper
// and a tape driver: the vtape driver (Vtape) and the SCSI tape driver
// (/dev/nst0 through mtio ioctls) both sit behind it. Each method maps to one
// st operation, named in its comment. A Device is not safe for concurrent use,
// like a drive.
//
// Errors name the device and the operation ("vtape /x/slot2: write record at
// file 3: volume full (record not written)") and wrap the sentinels below, so
// callers test them with errors.Is. After an error from a motion command the
// position is whatever Tell reports; callers that need a known position
// rewind or Seek.
type Device interface {
	// Name identifies the device in messages, e.g. "vtape:/srv/vtapes/slot3"
	// or "tape:/dev/nst0".
	Name() string

	// Status reports the drive state (MTIOCGET). With no medium it returns
	// Online false and a nil error.
	Status() (Status, error)

	// Rewind goes to the beginning of the volume (MTREW). A file being
	// written is ended with a filemark first, as the st driver does.
	Rewind() error

	// WriteRecord writes exactly one record (write(2)). ErrEarlyWarning
	// (errors.Is) means the record WAS written but the volume is past its
	// early-warning point: the caller should end the file soon. ErrVolumeFull
	// means the record was NOT written (physical end). Writing is allowed at
	// the beginning of the volume (which erases everything on it) or at the
	// end of data; anywhere else it fails with ErrNotAtEnd.
	WriteRecord(p []byte) error

	// WriteFilemark ends the current file (MTWEOF 1). Without a file being
	// written it writes an empty file, under the same position rules as
	// WriteRecord.
	WriteFilemark() error

	// ReadRecord reads one record into p and returns its length (read(2)).
	// At a filemark it returns 0 and an error wrapping io.EOF, once, and the
	// next call reads the next file. At the end of data it returns an error
	// wrapping ErrEndOfData. If p is shorter than the record it returns an
	// error wrapping io.ErrShortBuffer.
	ReadRecord(p []byte) (int, error)

	// SpaceFiles moves over n filemarks: forward (MTFSF, n > 0) to the start
	// of the file n files on, backward (MTBSF, n < 0) to just before the
	// |n|-th filemark behind, that is at the end of a file, before its
	// filemark. SpaceFiles(0) does nothing.
	SpaceFiles(n int) error

	// SpaceRecords moves over n records within the current file (MTFSR,
	// MTBSR). It fails instead of crossing a filemark.
	SpaceRecords(n int) error

	// SeekToEnd positions after the last file, ready to append (MTEOM).
	SeekToEnd() error

	// Tell returns the position: file number, record number within the file,
	// and the logical block number (MTIOCPOS) where every record and every
	// filemark counts one block.
	Tell() (Position, error)

	// Seek goes to a position taken from Tell (MTSEEK to the logical block
	// on a tape; file and record on a vtape). When positioning fails on the
	// way, Seek itself re-establishes the position from the beginning of
	// the volume; an error means that failed too (or the volume ends
	// before p, wrapping ErrEndOfData), and callers do not retry by other
	// means.
	Seek(p Position) error

	// Eject ends any file being written, rewinds and unloads (MTOFFL). Later
	// calls fail with ErrNoMedium.
	Eject() error

	// Close ends any file being written and releases the drive. It does not
	// rewind or eject.
	Close() error

	// Properties declares what the device can do beyond the st model.
	Properties() DeviceProperties

	// BeginFile names the tape file about to be written (NamesFiles); the
	// taper calls it before the first record of each file. Without
	// NamesFiles it does nothing.
	BeginFile(stem string) error

	// OpenFile opens tape file fileno as a regular file, read-only
	// (RandomAccess). Without RandomAccess it fails with an error matching
	// ErrNoRandomAccess.
	OpenFile(fileno int) (*os.File, error)
}

// Position is a place on a volume. File and Record count from 0; Logical is
// the drive's logical block number (every record and every filemark before
// the position counts one). A catalog stores all three.
type Position struct {
	File, Record, Logical int64
}

// Status is the drive state as MTIOCGET reports it.
type Status struct {
	Online         bool // a volume is loaded
	BOT            bool // at the beginning of the volume
	EOF            bool // just after a filemark
	EOT            bool // past the early-warning point (the end is near)
	EOD            bool // at the end of recorded data
	WriteProtected bool
	DoorOpen       bool // no cartridge loaded (GMT_DR_OPEN); a vtape never sets it
	File, Record   int64
}

// DeviceProperties is what a device declares about itself
// (Device.Properties). A wrapper returns what the device it wraps returns.
type DeviceProperties struct {
	// NamesFiles: BeginFile names the next tape file (the vtape driver
	// names file k "%05d.<stem>"); without it BeginFile does nothing (on
	// a real tape there is nothing to name).
	NamesFiles bool
	// RandomAccess: OpenFile opens a tape file as a regular file (vtapes),
	// so that a restore can seek with ReadAt instead of reading records
	// from the start of the file. Without it OpenFile fails with an error
	// matching ErrNoRandomAccess.
	RandomAccess bool
}

// Sentinel errors. Device errors wrap them with the device and operation.
var (
	ErrEarlyWarning   = errors.New("past the early-warning point (record written; end this file and continue on the next volume)")
	ErrVolumeFull     = errors.New("volume full (record not written)")
	ErrNoMedium       = errors.New("no medium (load a volume first)")
	ErrWriteProtected = errors.New("volume is write-protected")
	ErrNotAtEnd       = errors.New("not at end of data: writing is only allowed after the last file or at the beginning of the volume (seek to end, or rewind to relabel)")
	ErrEndOfData      = errors.New("end of data (no more files on this volume)")
	ErrBusy           = errors.New("busy (another process has the drive open)")
	ErrNotTape        = errors.New("not a tape device")
	ErrNoRandomAccess = errors.New("no random access to tape files (read the records from the start of the file)")
)
