package taper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/benmcclelland/mtio"
	"golang.org/x/sys/unix"
)

// TapeDrive is the seam under Tape at the level of system calls: one open
// descriptor of a Linux st device in variable-block mode. Errors are the
// errnos st returns (syscall.Errno, possibly wrapped).
//
// OpenTapeDrive gives the real one (read(2), write(2) and the mtio ioctls
// on the descriptor); package fakest gives one over the same tape model
// that its FUSE device uses (fakest.Drive.Open).
type TapeDrive interface {
	// Op performs one MTIOCTOP operation (MTFSF, MTREW, ...).
	Op(op int16, count int32) error
	// Status is MTIOCGET.
	Status() (mtio.MtGet, error)
	// Pos is MTIOCPOS: the logical block number.
	Pos() (int64, error)
	// Read is one read(2): one record, 0 bytes at a filemark.
	Read(p []byte) (int, error)
	// Write is one write(2): one record.
	Write(p []byte) (int, error)
	// Close is close(2): st writes a filemark after writing, and /dev/stN
	// rewinds.
	Close() error
}

// DriveOpener opens the tape device at path; read-only opens never write.
// OpenTapeDrive is the real one; tests pass one that opens a fakest drive.
type DriveOpener func(path string, readOnly bool) (TapeDrive, error)

// stDrive is a TapeDrive on a real device file.
type stDrive struct {
	f  *os.File
	fd int
}

var _ TapeDrive = (*stDrive)(nil)

// OpenTapeDrive opens a st device (use the non-rewinding /dev/nstN) for
// reading and writing, or only reading. It opens with O_NONBLOCK, so that a
// drive without a cartridge opens too (its status then says so), and then
// clears O_NONBLOCK for the reads and writes. A device that cannot be
// opened for writing (permissions) is opened read-only: writes then fail
// as write-protected. The error is an *os.PathError wrapping the errno.
func OpenTapeDrive(path string, readOnly bool) (TapeDrive, error) {
	mode := unix.O_RDWR
	if readOnly {
		mode = unix.O_RDONLY
	}
	fd, err := openRetryEINTR(path, mode)
	if !readOnly && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EPERM)) {
		fd, err = openRetryEINTR(path, unix.O_RDONLY)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return &stDrive{f: os.NewFile(uintptr(fd), path), fd: fd}, nil
}

func openRetryEINTR(path string, mode int) (int, error) {
	for {
		fd, err := unix.Open(path, mode|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// mtOp builds an mtio operation. It is the only place this package calls
// mtio.NewMtOp, and it always sets the operation: NewMtOp without
// WithOperation is MTRESET, which tapir never issues.
func mtOp(op int16, count int32) (*mtio.MtOp, error) {
	if op == mtio.MTRESET {
		return nil, errors.New("MTRESET is never issued by tapir")
	}
	if count < 0 {
		return nil, fmt.Errorf("negative count %d for tape operation %d", count, op)
	}
	return mtio.NewMtOp(mtio.WithOperation(op), mtio.WithCount(count)), nil
}

func (d *stDrive) Op(op int16, count int32) error {
	m, err := mtOp(op, count)
	if err != nil {
		return err
	}
	return mtio.DoOp(d.f, m)
}

func (d *stDrive) Status() (mtio.MtGet, error) {
	g, err := mtio.GetStatus(d.f)
	if err != nil {
		return mtio.MtGet{}, err
	}
	return *g, nil
}

func (d *stDrive) Pos() (int64, error) {
	p, err := mtio.GetPos(d.f)
	if err != nil {
		return 0, err
	}
	return p.BlkNo, nil
}

// Read is one read(2) on the descriptor: never a buffered reader, and a
// 0-byte read (a filemark) is returned as such, not as io.EOF.
func (d *stDrive) Read(p []byte) (int, error) {
	defer runtime.KeepAlive(d.f)
	for {
		n, err := unix.Read(d.fd, p)
		if err == unix.EINTR {
			continue // nothing was transferred
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// Write is one write(2): a short write is returned as is, never completed
// by a second write (which would be a second record).
func (d *stDrive) Write(p []byte) (int, error) {
	defer runtime.KeepAlive(d.f)
	for {
		n, err := unix.Write(d.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

func (d *stDrive) Close() error {
	err := d.f.Close()
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// rewindsOnClose reports whether path is a rewinding st device (/dev/stN:
// SCSI tape major 9, minor without the 128 bit).
func rewindsOnClose(path string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR {
		return false
	}
	return unix.Major(st.Rdev) == 9 && unix.Minor(st.Rdev)&0x80 == 0
}
