package taper

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/benmcclelland/mtio"
)

// Tape is the SCSI tape driver: a Linux st device (use /dev/nstN, which
// does not rewind on close) in variable-block mode, one write(2) per
// record, driven through a TapeDrive. It implements Device.
//
// Tape keeps its own idea of the position (file, record) next to the
// drive's: st forgets the record number after MTBSF and both numbers after
// MTSEEK, and Tape fills them in. A failed operation makes it forget its
// position; it then asks the drive or starts again from the beginning of
// the tape, and never moves relative to a position it no longer trusts.
// It writes the filemark that ends a file itself before any motion and
// before closing, so it always knows whether one was written. Errors name the device, the operation and, in words,
// what st said.
//
// Tape is not safe for concurrent use, like a drive.
type Tape struct {
	path     string
	drv      TapeDrive
	log      *slog.Logger
	readOnly bool
	// driveOptions are set with MTSETDRVBUFFER when a cartridge is found.
	driveOptions []string

	closed    bool
	ejected   bool // ejected by Eject: no medium until Load
	needSetup bool // opened without a cartridge: MTSETBLK 0 not done yet

	writing bool  // records written since the last filemark
	atEOD   bool  // at the end of data, where appending is allowed
	pastEW  bool  // the volume is past its early-warning point
	file    int64 // tracked position; -1 when unknown
	record  int64
	starts  map[int64]int64 // logical block of the first record of each file seen
	eod     int64           // logical block of the end of data, -1 when unknown
	noSeek  bool            // the drive failed MTIOCPOS/MTSEEK: position by file and record
}

var _ Device = (*Tape)(nil)

// TapeOption configures OpenTape and NewTape.
type TapeOption func(*tapeConfig)

type tapeConfig struct {
	log      *slog.Logger
	readOnly bool
	// driveOptions are the st options set at each open (MTSETDRVBUFFER);
	// nil: DefaultDriveOptions.
	driveOptions []string
}

// DefaultDriveOptions are the st driver options tapir turns on when it
// opens a drive with a cartridge, unless configured otherwise
// ([changer] drive_options): scsi2logical, so that MTIOCPOS and MTSEEK use
// logical block numbers.
var DefaultDriveOptions = []string{"scsi2logical"}

// driveOptionBits are the st options tapir knows how to set, by the name
// `mt stsetoptions` gives them.
var driveOptionBits = map[string]int32{"scsi2logical": mtio.MTSTSCSI2LOGICAL}

// checkDriveOptions refuses an option tapir does not know.
func checkDriveOptions(opts []string) error {
	for _, o := range opts {
		if _, ok := driveOptionBits[o]; !ok {
			return fmt.Errorf("st driver option %q is not known; tapir sets only scsi2logical (or none: drive_options = [])", o)
		}
	}
	return nil
}

// WithDriveOptions names the st driver options set (MTSETDRVBUFFER with
// MT_ST_SETBOOLEANS) each time a cartridge is found in the drive; none
// sends no MTSETDRVBUFFER at all. Default DefaultDriveOptions.
func WithDriveOptions(opts ...string) TapeOption {
	return func(c *tapeConfig) { c.driveOptions = append([]string{}, opts...) }
}

// WithTapeLogger sets the logger (default: discard).
func WithTapeLogger(l *slog.Logger) TapeOption { return func(c *tapeConfig) { c.log = l } }

// WithReadOnly opens the device only for reading: every write fails as
// write-protected. For restores and verification.
func WithReadOnly() TapeOption { return func(c *tapeConfig) { c.readOnly = true } }

// OpenTape opens the tape drive at path (for example /dev/nst0). A drive
// without a cartridge opens too: Status then reports Online false and other
// operations fail with ErrNoMedium until Load. A path that is not a tape
// device fails with ErrNotTape, a drive another process holds with ErrBusy.
func OpenTape(path string, opts ...TapeOption) (*Tape, error) {
	var cfg tapeConfig
	for _, o := range opts {
		o(&cfg)
	}
	drv, err := OpenTapeDrive(path, cfg.readOnly)
	if err != nil {
		return nil, fmt.Errorf("tape %s: open: %w", path, tapeErrno(path, "open", err))
	}
	return newTape(path, drv, cfg)
}

// NewTape wraps an open TapeDrive (for example an in-memory fakest drive)
// as a Tape named "tape:"+name. It takes ownership of d: on error d is
// closed.
func NewTape(name string, d TapeDrive, opts ...TapeOption) (*Tape, error) {
	var cfg tapeConfig
	for _, o := range opts {
		o(&cfg)
	}
	return newTape(name, d, cfg)
}

func newTape(path string, d TapeDrive, cfg tapeConfig) (*Tape, error) {
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rewindsOnClose(path) {
		log.Warn("tape device rewinds on close; use the non-rewinding device (/dev/nstN) so that files are not overwritten", "device", path)
	}
	if cfg.driveOptions == nil {
		cfg.driveOptions = DefaultDriveOptions
	}
	if err := checkDriveOptions(cfg.driveOptions); err != nil {
		d.Close()
		return nil, fmt.Errorf("tape %s: open: %w", path, err)
	}
	t := &Tape{path: path, drv: d, log: log, readOnly: cfg.readOnly, driveOptions: cfg.driveOptions, file: -1, record: -1, eod: -1, starts: map[int64]int64{}}
	st, err := d.Status()
	if err != nil {
		d.Close()
		if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) {
			return nil, fmt.Errorf("tape %s: open: %w: MTIOCGET fails (%v); the device must be a tape drive, usually its non-rewinding device such as /dev/nst0", path, ErrNotTape, err)
		}
		return nil, t.errf("open", "status (MTIOCGET): %w", tapeErrno(path, "status", err))
	}
	if !mtio.IsOnline(st.GStat) {
		t.needSetup = true
		return t, nil
	}
	if err := t.setup(); err != nil {
		d.Close()
		return nil, err
	}
	t.file, t.record = int64(st.FileNo), int64(st.BlkNo)
	return t, nil
}

// setup puts a loaded drive in variable-block mode and turns on the
// configured st options (by default scsi2logical: logical block numbers in
// MTIOCPOS and MTSEEK). The options are driver-wide and outlive the
// process; with none configured no MTSETDRVBUFFER is sent.
func (t *Tape) setup() error {
	if err := t.drv.Op(mtio.MTSETBLK, 0); err != nil {
		return t.errf("open", "set variable-block mode (MTSETBLK 0): %w", tapeErrno(t.path, "setblk", err))
	}
	if len(t.driveOptions) > 0 {
		var bits int32
		for _, o := range t.driveOptions {
			bits |= driveOptionBits[o]
		}
		if err := t.drv.Op(mtio.MTSETDRVBUFFER, mtio.MTSTSETBOOLEANS|bits); err != nil {
			t.log.Debug("tape: cannot turn on st's driver options (needs root); positions are the drive's own block addresses",
				"device", t.path, "options", strings.Join(t.driveOptions, ","), "err", err,
				"fix", "mt -f "+t.path+" stsetoptions "+strings.Join(t.driveOptions, " "))
		}
	}
	t.needSetup = false
	t.starts = map[int64]int64{0: 0}
	return nil
}

// Name returns "tape:<path>".
func (t *Tape) Name() string { return "tape:" + t.path }

// Properties declares a tape: records and filemarks only.
func (t *Tape) Properties() DeviceProperties { return DeviceProperties{} }

// BeginFile does nothing: a tape's files have no names.
func (t *Tape) BeginFile(stem string) error { return nil }

// OpenFile fails: a tape file is read record by record.
func (t *Tape) OpenFile(fileno int) (*os.File, error) {
	return nil, t.errf(fmt.Sprintf("open file %d", fileno), "%w", ErrNoRandomAccess)
}

// Path returns the device path given to OpenTape.
func (t *Tape) Path() string { return t.path }

func (t *Tape) errf(op string, format string, args ...any) error {
	return fmt.Errorf("tape %s: %s: "+format, append([]any{t.path, op}, args...)...)
}

func (t *Tape) where() string {
	if t.file < 0 || t.record < 0 {
		if t.file >= 0 {
			return fmt.Sprintf("file %d", t.file)
		}
		return "an unknown position"
	}
	return fmt.Sprintf("file %d record %d", t.file, t.record)
}

func (t *Tape) forget() {
	t.file, t.record = -1, -1
	t.atEOD = false
}

func (t *Tape) usable(op string) error {
	if t.ejected { // also a device its changer unloaded, closed or not
		return t.errf(op, "%w", ErrNoMedium)
	}
	if t.closed {
		return t.errf(op, "device is closed")
	}
	if t.needSetup {
		st, err := t.drv.Status()
		if err != nil {
			return t.errf(op, "status (MTIOCGET): %w", tapeErrno(t.path, op, err))
		}
		if !mtio.IsOnline(st.GStat) {
			return t.errf(op, "%w", ErrNoMedium)
		}
		if err := t.setup(); err != nil {
			return err
		}
		t.file, t.record = int64(st.FileNo), int64(st.BlkNo)
	}
	return nil
}

// errnoError is a drive error in words. It matches the errno and, when
// there is one, the sentinel with errors.Is.
type errnoError struct {
	words    string
	errno    syscall.Errno
	sentinel error
}

func (e *errnoError) Error() string { return e.words }

func (e *errnoError) Unwrap() []error {
	if e.sentinel != nil {
		return []error{e.sentinel, e.errno}
	}
	return []error{e.errno}
}

// tapeErrno turns an errno from st into words a person can act on.
func tapeErrno(path, op string, err error) error {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return err
	}
	e := &errnoError{errno: en}
	switch en {
	case syscall.ENOMEDIUM:
		e.words, e.sentinel = ErrNoMedium.Error(), ErrNoMedium
	case syscall.EACCES, syscall.EROFS:
		if op == "write" {
			e.words, e.sentinel = ErrWriteProtected.Error()+" (the cartridge's write-protect tab is set, or the device could only be opened read-only)", ErrWriteProtected
		} else {
			e.words = "permission denied (the taper's user needs read and write access to " + path + ", usually through the tape group)"
		}
	case syscall.EPERM:
		e.words = "operation not permitted (the taper's user needs read and write access to " + path + ")"
	case syscall.EBUSY:
		e.words, e.sentinel = "busy (another process has the drive open; find it with fuser "+path+")", ErrBusy
	case syscall.EIO:
		e.words = "I/O error (check the drive, the cable and dmesg)"
	case syscall.ENXIO, syscall.ENODEV:
		e.words = "no such device (the drive is switched off, disconnected or gone; check dmesg)"
	case syscall.ENOENT:
		e.words = "no such device file (check the device path)"
	case syscall.ENOSPC:
		e.words, e.sentinel = ErrVolumeFull.Error(), ErrVolumeFull
	case syscall.ENOTTY:
		e.words, e.sentinel = ErrNotTape.Error(), ErrNotTape
	case syscall.EINVAL:
		e.words = "invalid argument (the drive refused the request)"
	default:
		e.words = en.Error()
	}
	return e
}

// Status reports the drive state from MTIOCGET; without a cartridge Online
// is false and DoorOpen true.
func (t *Tape) Status() (Status, error) {
	if t.closed {
		return Status{}, t.errf("status", "device is closed")
	}
	g, err := t.drv.Status()
	if err != nil {
		return Status{}, t.errf("status", "MTIOCGET: %w", tapeErrno(t.path, "status", err))
	}
	s := Status{
		Online:         mtio.IsOnline(g.GStat),
		DoorOpen:       mtio.IsDrOpen(g.GStat),
		BOT:            mtio.IsBOT(g.GStat),
		EOF:            mtio.IsEOF(g.GStat),
		EOT:            mtio.IsEOT(g.GStat),
		EOD:            mtio.IsEOD(g.GStat),
		WriteProtected: mtio.IsWrProt(g.GStat) || t.readOnly,
		File:           int64(g.FileNo),
		Record:         int64(g.BlkNo),
	}
	if !s.Online || t.ejected {
		return Status{DoorOpen: s.DoorOpen, File: -1, Record: -1}, nil
	}
	s.EOT = s.EOT || t.pastEW
	s.EOD = s.EOD || t.atEOD
	if s.File < 0 {
		s.File = t.file
	}
	if s.Record < 0 {
		s.Record = t.record
	}
	return s, nil
}

// atBOT reports whether the tape is at its beginning, asking the drive
// when the tracked position is unknown.
func (t *Tape) atBOT() bool {
	if t.file >= 0 && t.record >= 0 {
		return t.file == 0 && t.record == 0
	}
	return t.atStart()
}

// atStart asks the drive whether the tape is at its beginning: the BOT
// bit, or logical block 0 (st clears BOT when it does not know the file
// number, after MTSEEK).
func (t *Tape) atStart() bool {
	if g, err := t.drv.Status(); err == nil && mtio.IsBOT(g.GStat) {
		return true
	}
	return t.logical() == 0
}

// startWrite checks that writing may start here: at the end of data, or
// at the beginning (which erases the volume). It reads the status once per
// file (not per record): a cartridge whose write-protect tab is set is
// refused before anything is written, and a volume found past its early
// warning is known to be.
func (t *Tape) startWrite(at string) error {
	if t.writing {
		return nil
	}
	if t.readOnly {
		return t.errf(at, "%w (the drive was opened read-only, for restore or verify; nothing was written): write through a drive opened for writing (tapir run, tapir label)", ErrWriteProtected)
	}
	if g, err := t.drv.Status(); err == nil {
		if mtio.IsWrProt(g.GStat) {
			return t.errf(at, "%w (the cartridge's write-protect tab is set: MTIOCGET shows GMT_WR_PROT; nothing was written): slide the tab to allow writing, or insert another cartridge into %s", ErrWriteProtected, t.path)
		}
		if mtio.IsEOT(g.GStat) {
			t.pastEW = true
		}
	}
	if t.atBOT() {
		t.file, t.record = 0, 0
		t.pastEW = false
		t.starts = map[int64]int64{0: 0}
		t.eod = -1
		return nil
	}
	if !t.atEOD {
		return t.errf(at, "%w", ErrNotAtEnd)
	}
	return nil
}

// WriteRecord writes p as one record (one write(2)). On the first ENOSPC
// (st's early warning) it writes the record again once, as Amanda does: if
// that succeeds the record is on tape and the error wraps ErrEarlyWarning;
// if not, the physical end is reached and the error wraps ErrVolumeFull
// (record not written). Past the early-warning point every record written
// returns ErrEarlyWarning.
//
// It reads no status after a record written in full: st lets the write
// that crosses the early-warning point through and fails the next one with
// ENOSPC, so the warning is reported one record after the crossing (or,
// when the crossing record ends its file, by the status read at the
// filemark). A status read per record halved the taping speed.
func (t *Tape) WriteRecord(p []byte) error {
	const op = "write record"
	if err := t.usable(op); err != nil {
		return err
	}
	at := op + " at " + t.where()
	if len(p) == 0 {
		return t.errf(at, "empty record (a record holds at least one byte)")
	}
	if err := t.startWrite(at); err != nil {
		return err
	}
	n, err := t.drv.Write(p)
	retried := false
	if errors.Is(err, syscall.ENOSPC) {
		t.pastEW = true
		retried = true
		n, err = t.drv.Write(p)
		if errors.Is(err, syscall.ENOSPC) {
			t.notWriting()
			return t.errf(at, "%w: the drive reports the physical end of the tape (ENOSPC twice)", ErrVolumeFull)
		}
	}
	switch {
	case errors.Is(err, syscall.EINVAL):
		t.notWriting()
		return t.errf(at, "record of %d bytes refused (EINVAL): larger than the drive or st accepts; use a smaller blocksize (record not written)", len(p))
	case err != nil:
		t.notWriting()
		return t.errf(at, "%w (record not written)", tapeErrno(t.path, "write", err))
	case n != len(p):
		t.writing, t.atEOD = true, true
		if t.record >= 0 {
			t.record++
		}
		return t.errf(at, "short write: %d of %d bytes went to tape as one damaged record; this file cannot be trusted, write it again", n, len(p))
	}
	t.writing = true
	t.atEOD = true
	if t.record >= 0 {
		t.record++
	}
	if t.pastEW {
		how := "the drive reports early warning"
		if retried {
			how = "written again after ENOSPC"
		}
		return t.errf(at, "%w: %s", ErrEarlyWarning, how)
	}
	return nil
}

// notWriting undoes st's writing state after a failed first record of a
// file: st sets it before trying, and would later end the empty file with
// a filemark on rewind or close, leaving an empty file nobody wrote. A
// space of 0 records moves nothing and clears it.
func (t *Tape) notWriting() {
	if t.writing {
		return
	}
	if err := t.drv.Op(mtio.MTFSR, 0); err != nil {
		t.log.Debug("tape: clearing st's write state after a failed write", "device", t.path, "err", err)
	}
}

// WriteFilemark ends the file being written, or writes an empty file.
func (t *Tape) WriteFilemark() error {
	const op = "write filemark"
	if err := t.usable(op); err != nil {
		return err
	}
	at := op + " at " + t.where()
	if err := t.startWrite(at); err != nil {
		return err
	}
	return t.weof(at)
}

func (t *Tape) weof(at string) error {
	// The status at the filemark, read before it: the file's last record
	// may have crossed the early-warning point with no write after it to
	// fail with ENOSPC, and st clears GMT_EOT once the filemark is written.
	if t.writing && !t.pastEW {
		if g, err := t.drv.Status(); err == nil && mtio.IsEOT(g.GStat) {
			t.pastEW = true
		}
	}
	if err := t.drv.Op(mtio.MTWEOF, 1); err != nil {
		t.forget()
		return t.errf(at, "MTWEOF: %w", tapeErrno(t.path, "write", err))
	}
	t.writing = false
	t.atEOD = true
	if t.file >= 0 {
		t.file++
	}
	t.record = 0
	return nil
}

// finish ends a file being written before the tape moves, as st would,
// so that Tape knows the filemark is there.
func (t *Tape) finish(op string) error {
	if !t.writing {
		return nil
	}
	return t.weof(op + ": end file " + fmt.Sprint(t.file) + " with a filemark")
}

// ReadRecord reads one record into p; see Device. A buffer smaller than
// the record fails with io.ErrShortBuffer and, as st does, the tape has
// moved past that record.
func (t *Tape) ReadRecord(p []byte) (int, error) {
	const op = "read record"
	if err := t.usable(op); err != nil {
		return 0, err
	}
	at := op + " at " + t.where()
	if t.writing {
		return 0, t.errf(at, "file %d is being written; write a filemark and reposition before reading", t.file)
	}
	if t.atEOD {
		return 0, t.errf(at, "%w", ErrEndOfData)
	}
	if len(p) == 0 {
		return 0, t.errf(at, "empty buffer")
	}
	bot := t.file == 0 && t.record == 0
	n, err := t.drv.Read(p)
	switch {
	case err == nil && n > 0:
		if t.record >= 0 {
			t.record++
		}
		return n, nil
	case err == nil:
		// A filemark, or blank tape after one: MTIOCGET tells them apart.
		g, serr := t.drv.Status()
		if serr != nil {
			t.forget()
			return 0, t.errf(at, "status after a 0-byte read: %w", tapeErrno(t.path, "status", serr))
		}
		if mtio.IsEOD(g.GStat) {
			t.atEOD = true
			t.record = 0
			t.learnEOD()
			return 0, t.errf(at, "%w", ErrEndOfData)
		}
		if t.file >= 0 {
			t.file++
		} else if g.FileNo >= 0 {
			t.file = int64(g.FileNo)
		}
		t.record = 0
		return 0, t.errf(at, "filemark: %w", io.EOF)
	case errors.Is(err, syscall.ENOMEM):
		if t.record >= 0 {
			t.record++
		}
		return 0, t.errf(at, "buffer of %d bytes is smaller than the record (the drive has moved past it; read with a buffer of the volume's blocksize): %w", len(p), io.ErrShortBuffer)
	case errors.Is(err, syscall.EIO) && bot:
		// st answers a read of blank tape at the beginning with EIO.
		t.atEOD = true
		return 0, t.errf(at, "%w (blank tape: the first read failed with an I/O error, which is what st returns for a blank tape)", ErrEndOfData)
	case errors.Is(err, syscall.EIO):
		// After the end of data (reached before this Tape was opened,
		// or by MTEOM) st answers every read with EIO and says EOD.
		if g, serr := t.drv.Status(); serr == nil && mtio.IsEOD(g.GStat) {
			t.atEOD = true
			return 0, t.errf(at, "%w", ErrEndOfData)
		}
	}
	t.forget() // where a failed read leaves the tape is not known
	return 0, t.errf(at, "%w", tapeErrno(t.path, "read", err))
}

// SpaceFiles moves over n filemarks (MTFSF, MTBSF); see Device.
func (t *Tape) SpaceFiles(n int) error {
	const op = "space files"
	if err := t.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s %+d from %s", op, n, t.where())
	if err := t.finish(at); err != nil {
		return err
	}
	if err := t.known(at, false); err != nil {
		return err
	}
	switch {
	case n == 0:
		return nil
	case n > 0 && t.atEOD:
		return t.errf(at, "only 0 filemarks before the end of data: %w", ErrEndOfData)
	case n > 0:
		// st counts the filemarks it crossed before the end of data only
		// when it knows the file number (not after MTSEEK): then space one
		// file at a time and count here.
		step := int32(n)
		if g, err := t.drv.Status(); err == nil && g.FileNo < 0 {
			step = 1
		}
		for done := 0; done < n; done += int(step) {
			err := t.drv.Op(mtio.MTFSF, step)
			if err == nil {
				if t.file >= 0 {
					t.file += int64(step)
				}
				t.record, t.atEOD = 0, false
				continue
			}
			g, serr := t.drv.Status()
			if errors.Is(err, syscall.EIO) && serr == nil && mtio.IsEOD(g.GStat) {
				crossed := int64(done)
				if step != 1 {
					crossed = int64(g.FileNo) - (t.file - int64(done))
					t.file = int64(g.FileNo)
				}
				t.record, t.atEOD = 0, true
				t.learnEOD()
				return t.errf(at, "only %d filemarks before the end of data: %w", crossed, ErrEndOfData)
			}
			t.forget()
			return t.errf(at, "MTFSF: %w", tapeErrno(t.path, op, err))
		}
		return nil
	}
	err := t.drv.Op(mtio.MTBSF, int32(-n))
	t.atEOD = false
	if err == nil {
		if t.file >= 0 {
			t.file += int64(n)
		}
		t.record = -1 // st does not know; Tell finds it
		return nil
	}
	if errors.Is(err, syscall.EIO) && t.atStart() {
		t.file, t.record = 0, 0
		return t.errf(at, "hit the beginning of the volume")
	}
	t.forget()
	return t.errf(at, "MTBSF: %w", tapeErrno(t.path, op, err))
}

// known makes sure the position is known before a relative move: after a
// failed operation Tape has forgotten it, and it asks the drive (MTIOCGET,
// MTIOCPOS) rather than move from where it was before the failure.
// Spacing over files needs only the file number (record is false).
func (t *Tape) known(at string, record bool) error {
	if t.file >= 0 && (t.record >= 0 || !record) || t.atEOD {
		return nil
	}
	if _, err := t.Tell(); err != nil {
		return t.errf(at, "refusing to move relative to an unknown position (%v); rewind or seek to a known position first", err)
	}
	return nil
}

// SpaceRecords moves over n records within the file (MTFSR, MTBSR). When
// that would cross a filemark it fails and returns to where it started.
func (t *Tape) SpaceRecords(n int) error {
	const op = "space records"
	if err := t.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s %+d at %s", op, n, t.where())
	if err := t.finish(at); err != nil {
		return err
	}
	if err := t.known(at, true); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if t.atEOD {
		return t.errf(at, "%w", ErrEndOfData)
	}
	from, ferr := t.Tell()
	mt, count := int16(mtio.MTFSR), int32(n)
	if n < 0 {
		mt, count = mtio.MTBSR, int32(-n)
	}
	err := t.drv.Op(mt, count)
	if err == nil {
		if t.record >= 0 {
			t.record += int64(n)
		}
		return nil
	}
	t.forget()
	if !errors.Is(err, syscall.EIO) {
		return t.errf(at, "%w", tapeErrno(t.path, op, err))
	}
	if ferr != nil {
		return t.errf(at, "the file has fewer records (spacing crossed a filemark or the end of data) and the position before is unknown (%v); rewind", ferr)
	}
	if rerr := t.Seek(from); rerr != nil {
		return t.errf(at, "the file has fewer records (spacing crossed a filemark or the end of data), and returning to file %d record %d failed: %v", from.File, from.Record, rerr)
	}
	return t.errf(at, "the file has fewer records; spacing would cross a filemark (position kept)")
}

// Rewind goes to the beginning (MTREW); see Device.
func (t *Tape) Rewind() error {
	const op = "rewind"
	if err := t.usable(op); err != nil {
		return err
	}
	if err := t.finish(op); err != nil {
		return err
	}
	if err := t.drv.Op(mtio.MTREW, 1); err != nil {
		t.forget()
		return t.errf(op, "MTREW: %w", tapeErrno(t.path, op, err))
	}
	t.file, t.record, t.atEOD = 0, 0, false
	return nil
}

// SeekToEnd positions after the last file (MTEOM); see Device.
func (t *Tape) SeekToEnd() error {
	const op = "seek to end"
	if err := t.usable(op); err != nil {
		return err
	}
	if err := t.finish(op); err != nil {
		return err
	}
	if g, err := t.drv.Status(); err == nil && g.FileNo < 0 {
		// st counts files while spacing to the end only from a known file.
		if err := t.drv.Op(mtio.MTREW, 1); err != nil {
			t.forget()
			return t.errf(op, "MTREW: %w", tapeErrno(t.path, op, err))
		}
	}
	if err := t.drv.Op(mtio.MTEOM, 1); err != nil {
		t.forget()
		return t.errf(op, "MTEOM: %w", tapeErrno(t.path, op, err))
	}
	g, err := t.drv.Status()
	if err != nil {
		t.forget()
		return t.errf(op, "status after MTEOM: %w", tapeErrno(t.path, op, err))
	}
	if g.FileNo < 0 {
		t.forget()
		return t.errf(op, "the drive does not know the file number at the end of data (st's fast-mteom option is on?); turn it off with mt stclearoptions fast-mteom")
	}
	t.file, t.record, t.atEOD = int64(g.FileNo), 0, true
	t.learnEOD()
	return nil
}

// learnEOD records the logical block of the end of data, when the drive
// can tell.
func (t *Tape) learnEOD() {
	if t.noSeek {
		return
	}
	if l, err := t.drv.Pos(); err == nil {
		t.eod = l
		if t.file >= 0 {
			t.starts[t.file] = l
		}
	}
}

func (t *Tape) logical() int64 {
	if t.noSeek {
		return -1
	}
	l, err := t.drv.Pos()
	if err != nil {
		return -1
	}
	return l
}

// Tell returns the position: file and record from MTIOCGET (or, where st
// does not know them, from what Tape tracked), and the logical block from
// MTIOCPOS, -1 when the drive cannot tell.
func (t *Tape) Tell() (Position, error) {
	const op = "tell"
	if err := t.usable(op); err != nil {
		return Position{}, err
	}
	g, err := t.drv.Status()
	if err != nil {
		return Position{}, t.errf(op, "MTIOCGET: %w", tapeErrno(t.path, op, err))
	}
	file, rec := t.file, t.record
	if g.FileNo >= 0 {
		file = int64(g.FileNo)
	}
	if g.BlkNo >= 0 {
		rec = int64(g.BlkNo)
	}
	l := t.logical()
	if file < 0 && l >= 0 {
		if f, r, ok := t.fromLogical(l); ok {
			file, rec = f, r
		}
	}
	if rec < 0 && l >= 0 && file >= 0 {
		if s, ok := t.starts[file]; ok {
			rec = l - s
		} else if r, err := t.findRecord(file, l); err == nil {
			rec = r
		} else {
			return Position{}, t.errf(op, "%v", err)
		}
	}
	if file < 0 || rec < 0 {
		return Position{}, t.errf(op, "the position is unknown (the drive lost track of it); rewind or seek to a known position")
	}
	t.file, t.record = file, rec
	if l >= 0 {
		t.starts[file] = l - rec
	}
	return Position{File: file, Record: rec, Logical: l}, nil
}

// findRecord finds the record number at logical block l in file (after
// MTBSF st does not know it): it goes back to the start of the file to read
// its logical block, and forward again with MTFSR, which leaves st knowing
// the file and record numbers (MTSEEK would not).
func (t *Tape) findRecord(file, l int64) (int64, error) {
	if file == 0 {
		return l, nil
	}
	lost := func(what string, err error) (int64, error) {
		t.forget()
		return -1, fmt.Errorf("finding the record number (%s): %w", what, tapeErrno(t.path, "tell", err))
	}
	if err := t.drv.Op(mtio.MTBSF, 1); err != nil {
		return lost("MTBSF 1", err)
	}
	if err := t.drv.Op(mtio.MTFSF, 1); err != nil {
		return lost("MTFSF 1", err)
	}
	start, err := t.drv.Pos()
	if err != nil {
		return lost("MTIOCPOS", err)
	}
	if start > l {
		t.forget()
		return -1, fmt.Errorf("finding the record number: file %d starts at logical block %d, after %d", file, start, l)
	}
	if start < l {
		if err := t.drv.Op(mtio.MTFSR, int32(l-start)); err != nil {
			return lost(fmt.Sprintf("MTFSR %d back to logical block %d", l-start, l), err)
		}
	}
	t.starts[file] = start
	return l - start, nil
}

// Seek goes to a position from Tell: with MTSEEK to its logical block
// when the drive can, else rewind or MTBSF, then MTFSF and MTFSR. It checks
// where it arrived. When a positioning operation fails on the way it does
// not trust its tracked position: it rewinds once and spaces from the
// beginning (relocate), which also tells the end of data from an I/O
// error; see docs/format/tape.md. A Position with only Logical set is
// accepted when Tape has seen where the files around it start.
func (t *Tape) Seek(p Position) error {
	const op = "seek"
	if err := t.usable(op); err != nil {
		return err
	}
	at := fmt.Sprintf("%s to file %d record %d (logical %d)", op, p.File, p.Record, p.Logical)
	if err := t.finish(at); err != nil {
		return err
	}
	if p.File < 0 || p.Record < 0 {
		return t.errf(at, "negative position")
	}
	if p.File == 0 && p.Record == 0 && p.Logical > 0 {
		if t.eod >= 0 && p.Logical > t.eod {
			return t.errf(at, "logical block %d is past the end of data (%d): %w", p.Logical, t.eod, ErrEndOfData)
		}
		f, r, ok := t.fromLogical(p.Logical)
		if !ok {
			return t.errf(at, "the file at logical block %d is not known yet; give the file and record numbers too (the catalog keeps all three)", p.Logical)
		}
		p.File, p.Record = f, r
	}
	if s, ok := t.starts[p.File]; ok && p.Logical > 0 && s+p.Record != p.Logical {
		return t.errf(at, "file %d record %d is logical block %d on this volume, not %d: the position belongs to another volume or the volume changed", p.File, p.Record, s+p.Record, p.Logical)
	}
	if p.File == t.file && p.Record == t.record {
		return nil // already there
	}
	if p.File == 0 && p.Record == 0 {
		if err := t.drv.Op(mtio.MTREW, 1); err != nil {
			t.forget()
			return t.errf(at, "MTREW: %w", tapeErrno(t.path, op, err))
		}
		t.file, t.record, t.atEOD = 0, 0, false
		return nil
	}
	if p.Logical > 0 && !t.noSeek {
		err := t.drv.Op(mtio.MTSEEK, int32(p.Logical))
		if err == nil {
			// A drive that locates but cannot tell (MTIOCPOS fails) is
			// trusted: st said the locate succeeded.
			if got, perr := t.drv.Pos(); perr == nil && got != p.Logical {
				return t.relocate(at, p, fmt.Sprintf("after MTSEEK to logical block %d the drive is at logical block %d", p.Logical, got))
			}
			t.file, t.record = p.File, p.Record
			t.atEOD = t.eod >= 0 && p.Logical == t.eod
			return nil
		}
		// A failed locate leaves the tape anywhere: nothing tracked holds.
		t.forget()
		_, perr := t.drv.Pos()
		if !errors.Is(err, syscall.EIO) || perr != nil {
			t.log.Info("tape: the drive cannot locate a logical block; positioning by file and record from now on",
				"device", t.path, "mtseek", err, "mtiocpos", perr)
			t.noSeek = true
		}
		return t.relocate(at, p, fmt.Sprintf("the drive failed to locate logical block %d (MTSEEK: %v)", p.Logical, tapeErrno(t.path, op, err)))
	}
	fromBOT := t.file < 0 || t.record < 0 || p.File == 0 && (t.file > 0 || p.Record < t.record)
	if err := t.seekFileRecord(p.File, p.Record); err != nil {
		if errors.Is(err, ErrEndOfData) {
			return t.errf(at, "%w", err)
		}
		if fromBOT {
			return t.errf(at, "%w%s", err, unknownAdvice)
		}
		return t.relocate(at, p, err.Error())
	}
	if err := t.arrived(p); err != nil {
		if t.file >= 0 { // the drive is where it should be, on another volume
			return t.errf(at, "%w", err)
		}
		return t.relocate(at, p, err.Error())
	}
	return nil
}

// unknownAdvice ends the error of a positioning that left the tape
// somewhere unknown.
const unknownAdvice = "; the position is now unknown. Clean the drive and try again; if it fails again, restore from another copy of this volume"

// relocate re-establishes the position from the beginning of the tape
// after a positioning operation failed (what says how): MTREW, then MTFSF
// and MTFSR, which tell the end of data (MTIOCGET's GMT_EOD) from an I/O
// error, then a check with MTIOCGET and, when the drive answers it,
// MTIOCPOS. It never moves from a tracked position, which the failure made
// stale, and it never spaces to the end of data.
func (t *Tape) relocate(at string, p Position, what string) error {
	const op = "seek"
	t.forget()
	if err := t.drv.Op(mtio.MTREW, 1); err != nil {
		return t.errf(at, "%s, and rewinding to re-position from the beginning of the tape failed too (MTREW: %w)%s", what, tapeErrno(t.path, op, err), unknownAdvice)
	}
	t.file, t.record, t.atEOD = 0, 0, false
	if err := t.seekFileRecord(p.File, p.Record); err != nil {
		if errors.Is(err, ErrEndOfData) {
			return t.errf(at, "%s; re-positioning from the beginning of the tape found that %w", what, err)
		}
		return t.errf(at, "%s, and re-positioning from the beginning of the tape failed too (%w)%s", what, err, unknownAdvice)
	}
	if err := t.arrived(p); err != nil {
		return t.errf(at, "%s, and re-positioning from the beginning of the tape went wrong: %w", what, err)
	}
	t.log.Warn("tape: "+what+"; tapir re-positioned from the beginning of the tape", "device", t.path, "file", p.File, "record", p.Record)
	return nil
}

// arrived checks, after spacing by file and record, that the drive is at
// p: file and record from MTIOCGET, and the logical block from MTIOCPOS
// when both it and p have one. A logical block that differs means p
// belongs to another volume.
func (t *Tape) arrived(p Position) error {
	if g, err := t.drv.Status(); err == nil && g.FileNo >= 0 && g.BlkNo >= 0 && (int64(g.FileNo) != p.File || int64(g.BlkNo) != p.Record) {
		t.forget()
		return fmt.Errorf("position check failed: the drive reports file %d record %d", g.FileNo, g.BlkNo)
	}
	if p.Logical > 0 && !t.noSeek {
		if got, err := t.drv.Pos(); err == nil && got != p.Logical {
			return fmt.Errorf("file %d record %d is logical block %d on this volume, not %d: the position belongs to another volume or the volume changed", p.File, p.Record, got, p.Logical)
		}
	}
	return nil
}

func (t *Tape) fromLogical(l int64) (file, record int64, ok bool) {
	best := int64(-1)
	for f, s := range t.starts {
		if s <= l && (best < 0 || f > best) {
			best = f
		}
	}
	if best < 0 {
		return 0, 0, false
	}
	next, known := t.starts[best+1]
	switch {
	case t.eod >= 0 && l == t.eod:
		// The end of data starts a file of its own.
		for f, s := range t.starts {
			if s == l {
				return f, 0, true
			}
		}
		return 0, 0, false
	case known && l < next:
		return best, l - t.starts[best], true
	}
	return 0, 0, false
}

// seekFileRecord positions by counting from the tracked position, or from
// the beginning when it is unknown: back to the start of the file (by
// rewinding or MTBSF+MTFSF, whichever moves less), MTFSF, then MTFSR. Its
// errors do not name the device; a run into the end of data wraps
// ErrEndOfData.
func (t *Tape) seekFileRecord(file, record int64) error {
	curF, curR := t.file, t.record
	fail := func(what string, err error) error {
		t.forget()
		if errors.Is(err, syscall.EIO) {
			g, serr := t.drv.Status()
			if serr == nil && mtio.IsEOD(g.GStat) {
				return fmt.Errorf("the volume ends before file %d record %d (%s ran into the end of data): %w", file, record, what, ErrEndOfData)
			}
		}
		return fmt.Errorf("%s: %w", what, tapeErrno(t.path, "seek", err))
	}
	if curF < 0 || curR < 0 || file < curF || file == curF && record < curR {
		if file == 0 || curF < 0 {
			if err := t.drv.Op(mtio.MTREW, 1); err != nil {
				return fail("MTREW", err)
			}
			curF, curR = 0, 0
		} else {
			if err := t.drv.Op(mtio.MTBSF, int32(curF-file+1)); err != nil {
				return fail(fmt.Sprintf("MTBSF %d", curF-file+1), err)
			}
			if err := t.drv.Op(mtio.MTFSF, 1); err != nil {
				return fail("MTFSF 1", err)
			}
			curF, curR = file, 0
		}
	}
	if file > curF {
		if err := t.drv.Op(mtio.MTFSF, int32(file-curF)); err != nil {
			return fail(fmt.Sprintf("MTFSF %d to file %d", file-curF, file), err)
		}
		curF, curR = file, 0
	}
	if record > curR {
		if err := t.drv.Op(mtio.MTFSR, int32(record-curR)); err != nil {
			return fail(fmt.Sprintf("MTFSR %d to record %d (file %d has fewer records?)", record-curR, record, file), err)
		}
	}
	t.file, t.record, t.atEOD = file, record, false
	return nil
}

// Eject ends any file being written, rewinds and unloads (MTOFFL). Later
// calls fail with ErrNoMedium until Load.
func (t *Tape) Eject() error {
	const op = "eject"
	if t.closed {
		return t.errf(op, "device is closed")
	}
	if t.ejected {
		return nil
	}
	var ferr error
	if !t.needSetup {
		ferr = t.finish(op)
	}
	err := t.drv.Op(mtio.MTOFFL, 1)
	t.forget()
	t.ejected = true
	t.writing = false
	if err != nil && !errors.Is(err, syscall.ENOMEDIUM) {
		if g, serr := t.drv.Status(); serr != nil || mtio.IsOnline(g.GStat) {
			return t.errf(op, "MTOFFL: %w", tapeErrno(t.path, op, err))
		}
	}
	return ferr
}

// Load loads the cartridge in the drive (MTLOAD), for example after Eject
// or when the tape was opened without one, and sets variable-block mode.
func (t *Tape) Load() error {
	const op = "load"
	if t.closed {
		return t.errf(op, "device is closed")
	}
	if err := t.drv.Op(mtio.MTLOAD, 1); err != nil {
		if g, serr := t.drv.Status(); serr == nil && !mtio.IsOnline(g.GStat) {
			return t.errf(op, "MTLOAD: no cartridge in the drive (%v): %w", tapeErrno(t.path, op, err), ErrNoMedium)
		}
		return t.errf(op, "MTLOAD: %w", tapeErrno(t.path, op, err))
	}
	t.ejected = false
	t.writing, t.atEOD, t.pastEW, t.noSeek = false, false, false, false
	t.eod = -1
	if err := t.setup(); err != nil {
		return err
	}
	t.file, t.record = 0, 0
	return nil
}

// Close ends any file being written with a filemark (so st does not have
// to) and closes the device. It does not rewind (on /dev/nstN). Closing
// twice is not an error.
func (t *Tape) Close() error {
	if t.closed {
		return nil
	}
	var ferr error
	if !t.ejected && !t.needSetup {
		ferr = t.finish("close")
	}
	t.closed = true
	if err := t.drv.Close(); err != nil {
		return t.errf("close", "%w", tapeErrno(t.path, "close", err))
	}
	return ferr
}
