package taper

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"
	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// memTape opens a Tape over the in-memory fakest drive d.
func memTape(t *testing.T, d *fakest.Drive, opts ...TapeOption) *Tape {
	t.Helper()
	h, err := d.Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewTape("mem/nst0", h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func TestTapeErrnoWords(t *testing.T) {
	cases := []struct {
		errno    syscall.Errno
		op       string
		words    string
		sentinel error
	}{
		{syscall.ENOMEDIUM, "read", "no medium (load a volume first)", ErrNoMedium},
		{syscall.EACCES, "write", "volume is write-protected", ErrWriteProtected},
		{syscall.EROFS, "write", "write-protect tab", ErrWriteProtected},
		{syscall.EACCES, "open", "needs read and write access to /dev/nst0", nil},
		{syscall.EBUSY, "open", "busy (another process has the drive open; find it with fuser /dev/nst0)", ErrBusy},
		{syscall.EIO, "read", "I/O error (check the drive, the cable and dmesg)", nil},
		{syscall.ENXIO, "open", "switched off, disconnected or gone", nil},
		{syscall.ENOENT, "open", "check the device path", nil},
		{syscall.ENOTTY, "status", "not a tape device", ErrNotTape},
		{syscall.ENOSPC, "write", "volume full", ErrVolumeFull},
		{syscall.EXDEV, "read", syscall.EXDEV.Error(), nil},
	}
	for _, c := range cases {
		err := tapeErrno("/dev/nst0", c.op, c.errno)
		if !strings.Contains(err.Error(), c.words) || !errors.Is(err, c.errno) || c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%v on %s: %q (is errno %v)", c.errno, c.op, err, errors.Is(err, c.errno))
		}
	}
	other := errors.New("not an errno")
	if tapeErrno("/dev/nst0", "read", other) != other {
		t.Error("a non-errno error was changed")
	}
}

func TestMtOpNeverReset(t *testing.T) {
	if _, err := mtOp(mtio.MTRESET, 1); err == nil {
		t.Fatal("mtOp built an MTRESET")
	}
	if _, err := mtOp(mtio.MTFSF, -1); err == nil {
		t.Fatal("mtOp accepted a negative count")
	}
	if m, err := mtOp(mtio.MTREW, 1); err != nil || m == nil {
		t.Fatalf("mtOp(MTREW) = %v %v", m, err)
	}
}

func TestOpenTapeNotATape(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nst0")
	os.WriteFile(file, []byte("not a tape"), 0o644)
	_, err := OpenTape(file)
	if !errors.Is(err, ErrNotTape) || !strings.Contains(err.Error(), "/dev/nst0") || !strings.Contains(err.Error(), file) {
		t.Fatalf("regular file: %v", err)
	}
	_, err = OpenTape(filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.Contains(err.Error(), "check the device path") || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing device: %v", err)
	}
}

func TestTapeNoCartridgeThenLoad(t *testing.T) {
	d := fakest.New(fakest.Options{Empty: true})
	tp := memTape(t, d)
	st, err := tp.Status()
	if err != nil || st.Online || !st.DoorOpen {
		t.Fatalf("empty drive: %+v %v", st, err)
	}
	if err := tp.WriteRecord([]byte("x")); !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "tape mem/nst0: write record") {
		t.Fatalf("write without a cartridge: %v", err)
	}
	if err := tp.Load(); !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "no cartridge in the drive") {
		t.Fatalf("load without a cartridge: %v", err)
	}
	if err := d.Insert("TAPE01"); err != nil {
		t.Fatal(err)
	}
	if err := tp.Load(); err != nil {
		t.Fatal(err)
	}
	if err := WriteLabel(tp, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	// Eject, then the volume is gone until Load.
	if err := tp.Eject(); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.ReadRecord(make([]byte, 10)); !errors.Is(err, ErrNoMedium) {
		t.Fatalf("read after eject: %v", err)
	}
	if d.OpCount(mtio.MTOFFL) != 1 {
		t.Errorf("MTOFFL sent %d times", d.OpCount(mtio.MTOFFL))
	}
	if err := tp.Load(); err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLabel(tp); err != nil || l.Label != "T-001" {
		t.Fatalf("label after reload: %+v %v", l, err)
	}
	if d.OpCount(mtio.MTRESET) != 0 {
		t.Fatal("MTRESET reached the drive")
	}
}

func TestTapeCloseWritesOneFilemarkAndKeepsPosition(t *testing.T) {
	d := fakest.New(fakest.Options{})
	tp := memTape(t, d)
	WriteLabel(tp, testLabel("T-001"))
	tp.WriteRecord(fill(1, FirstRecordSize))
	tp.WriteRecord(fill(2, 100))
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	objs := d.Current().Objects()
	if len(objs) != 5 || !objs[4].Filemark || !objs[1].Filemark || objs[3].Filemark {
		t.Fatalf("after close: %d objects (label, FM, 2 records, FM expected)", len(objs))
	}
	tp = memTape(t, d)
	if p, err := tp.Tell(); err != nil || p != (Position{2, 0, 5}) {
		t.Fatalf("after reopening: %+v %v (close must not rewind)", p, err)
	}
}

func TestTapeST0RewindsOnClose(t *testing.T) {
	d := fakest.New(fakest.Options{})
	h, _ := d.Open(fakest.ST0, syscall.O_RDWR)
	tp, err := NewTape("mem/st0", h)
	if err != nil {
		t.Fatal(err)
	}
	WriteLabel(tp, testLabel("T-001"))
	tp.Close()
	tp = memTape(t, d)
	if st, _ := tp.Status(); !st.BOT {
		t.Fatalf("st0 did not rewind: %+v", st)
	}
}

func TestTapeReadOnly(t *testing.T) {
	d := fakest.New(fakest.Options{})
	h, _ := d.Open(fakest.NST0, syscall.O_RDONLY|syscall.O_NONBLOCK)
	tp, err := NewTape("mem/nst0", h, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	err = WriteLabel(tp, testLabel("T-001"))
	if !errors.Is(err, ErrWriteProtected) || !strings.Contains(err.Error(), "opened read-only") {
		t.Fatalf("write on a read-only tape: %v", err)
	}
	if st, _ := tp.Status(); !st.WriteProtected {
		t.Errorf("read-only status %+v", st)
	}
	if err := tp.WriteRecord(nil); err == nil {
		t.Error("empty record accepted")
	}
}

func TestTapeSeekWithoutLocate(t *testing.T) {
	d := fakest.New(fakest.Options{})
	tp := memTape(t, d)
	files := standardFiles()
	writeFilesDev(t, tp, files)
	tp.Rewind()
	tp.SpaceFiles(2)
	withLogical, _ := tp.Tell()
	d.SetLocate(false)
	seeks := d.OpCount(mtio.MTSEEK)
	// A position with a logical block: MTSEEK fails, Tape falls back to
	// rewind/MTBSF + MTFSF + MTFSR from then on.
	if err := tp.Seek(Position{1, 2, 4}); err != nil {
		t.Fatal(err)
	}
	if n, err := tp.ReadRecord(make([]byte, 64<<10)); err != nil || n != testBS {
		t.Fatalf("read after fallback seek: %d %v", n, err)
	}
	p, err := tp.Tell()
	if err != nil || p != (Position{1, 3, -1}) {
		t.Fatalf("Tell without MTIOCPOS: %+v %v", p, err)
	}
	for _, target := range []Position{{3, 1, -1}, {0, 1, -1}, withLogical, {1, 4, -1}} {
		if err := tp.Seek(target); err != nil {
			t.Fatalf("seek %+v: %v", target, err)
		}
		if got, _ := tp.Tell(); got.File != target.File || got.Record != target.Record {
			t.Fatalf("seek %+v arrived at %+v", target, got)
		}
	}
	if d.OpCount(mtio.MTSEEK) != seeks+1 {
		t.Errorf("%d MTSEEKs after the drive said it cannot, want 1", d.OpCount(mtio.MTSEEK)-seeks)
	}
	if err := tp.Seek(Position{9, 0, -1}); !errors.Is(err, ErrEndOfData) {
		t.Fatalf("seek past the files: %v", err)
	}
}

func TestTapeRecordAfterBSF(t *testing.T) {
	d := fakest.New(fakest.Options{})
	tp := memTape(t, d)
	writeFilesDev(t, tp, standardFiles())
	tp.Close()
	// A fresh Tape has not seen file 1 start: after MTBSF st does not know
	// the record number and Tell has to find it.
	tp = memTape(t, d)
	tp.Rewind()
	tp.SpaceFiles(2)
	if err := tp.SpaceFiles(-1); err != nil {
		t.Fatal(err)
	}
	p, err := tp.Tell()
	if err != nil || p != (Position{1, 4, 6}) {
		t.Fatalf("Tell after MTBSF: %+v %v", p, err)
	}
	if _, err := tp.ReadRecord(make([]byte, 10)); !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end of file 1: %v, want the filemark", err)
	}
}

func TestTapeIOErrors(t *testing.T) {
	d := fakest.New(fakest.Options{})
	tp := memTape(t, d)
	writeFilesDev(t, tp, standardFiles())
	d.InjectError(3, syscall.EIO)
	tp.Seek(Position{1, 1, 3})
	_, err := tp.ReadRecord(make([]byte, 64<<10))
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "tape mem/nst0: read record at file 1 record 1: I/O error (check the drive, the cable and dmesg)") {
		t.Fatalf("read at a bad spot: %v", err)
	}
	d.ClearErrors()
	tp.SeekToEnd()
	d.InjectError(11, syscall.EIO)
	err = tp.WriteRecord(fill(1, 10))
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "(record not written)") {
		t.Fatalf("write at a bad spot: %v", err)
	}
	d.ClearErrors()
	if err := tp.WriteRecord(make([]byte, 17<<20)); err == nil || !strings.Contains(err.Error(), "use a smaller blocksize") {
		t.Fatalf("oversized record: %v", err)
	}
	// A failed first record leaves no empty file behind.
	tp.Rewind()
	if got := readAll(t, tp); len(got) != 4 {
		t.Fatalf("%d files after failed writes, want 4", len(got))
	}
}

func TestTapeBusyAndSwap(t *testing.T) {
	d := fakest.New(fakest.Options{Cartridges: []string{"A", "B"}})
	tp := memTape(t, d)
	_, err := d.Open(fakest.NST0, syscall.O_RDWR)
	if werr := tapeErrno("/dev/nst0", "open", err); !errors.Is(werr, ErrBusy) || !strings.Contains(werr.Error(), "fuser /dev/nst0") {
		t.Fatalf("second open: %v", werr)
	}
	WriteLabel(tp, testLabel("T-001"))
	// An operator swaps the cartridge behind the open tape: st loses the
	// position and says so with EIO until the tape is rewound or reloaded.
	d.Eject()
	d.Remove()
	d.Insert("B")
	if _, err := tp.ReadRecord(make([]byte, 64<<10)); err == nil {
		t.Fatal("read after a swap succeeded")
	}
	if err := tp.Rewind(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLabel(tp); !errors.Is(err, ErrBlank) {
		t.Fatalf("label of the new (blank) cartridge: %v", err)
	}
}

// shortDrive writes one byte less than asked, once.
type shortDrive struct {
	TapeDrive
	done bool
}

func (s *shortDrive) Write(p []byte) (int, error) {
	if !s.done && len(p) > 1 {
		s.done = true
		n, err := s.TapeDrive.Write(p[:len(p)-1])
		return n, err
	}
	return s.TapeDrive.Write(p)
}

func TestTapeShortWrite(t *testing.T) {
	d := fakest.New(fakest.Options{})
	h, _ := d.Open(fakest.NST0, syscall.O_RDWR)
	tp, err := NewTape("mem/nst0", &shortDrive{TapeDrive: h})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	err = tp.WriteRecord(fill(1, 100))
	if err == nil || !strings.Contains(err.Error(), "short write: 99 of 100 bytes") {
		t.Fatalf("short write: %v", err)
	}
}

func TestTapeReadAfterEndOfDataFromBefore(t *testing.T) {
	d := fakest.New(fakest.Options{})
	tp := memTape(t, d)
	writeFilesDev(t, tp, standardFiles())
	tp.Rewind()
	readAll(t, tp) // to the end of data: st is in its EOD state
	tp.Close()
	// A new Tape does not know; st answers EIO and MTIOCGET says EOD.
	tp = memTape(t, d)
	if _, err := tp.ReadRecord(make([]byte, 64<<10)); !errors.Is(err, ErrEndOfData) {
		t.Fatalf("read after the end of data: %v", err)
	}
	if err := tp.WriteRecord(fill(1, 10)); err != nil {
		t.Fatalf("append at the end of data: %v", err)
	}
}

// Every tape, however it is opened (the changers open theirs through
// newTape), warns when its device is a rewinding st device (/dev/stN,
// major 9 without the 128 bit of nstN).
func TestRewindingDeviceWarns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make the device nodes")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		minor uint32
		warn  bool
	}{{"st0", 0, true}, {"nst0", 128, false}} {
		node := filepath.Join(dir, c.name)
		if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(9, c.minor))); err != nil {
			t.Skipf("cannot make a device node here: %v", err)
		}
		h, err := fakest.New(fakest.Options{}).Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		tp, err := NewTape(node, h, WithTapeLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if err != nil {
			t.Fatal(err)
		}
		tp.Close()
		if got := strings.Contains(logs.String(), "rewinds on close"); got != c.warn {
			t.Errorf("%s (9,%d): warned %v, want %v; log:\n%s", c.name, c.minor, got, c.warn, logs.String())
		}
	}
}
