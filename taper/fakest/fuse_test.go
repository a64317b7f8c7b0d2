package fakest_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/benmcclelland/mtio"
	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/taper/fakest"
)

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*7) ^ byte(i>>9)
	}
	return b
}

func doOp(t *testing.T, f *os.File, op int16, count int32) error {
	t.Helper()
	return mtio.DoOp(f, mtio.NewMtOp(mtio.WithOperation(op), mtio.WithCount(count)))
}

// TestIoctlPath drives the mount with plain system calls and the mtio
// ioctls, as a separate program would.
func TestIoctlPath(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	f, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	sizes := []int{32 << 10, 256 << 10, 512 << 10, 1000}
	for i, n := range sizes {
		if k, err := unix.Write(fd, pattern(byte(i), n)); err != nil || k != n {
			t.Fatalf("write %d bytes: %d %v", n, k, err)
		}
	}
	if err := doOp(t, f, mtio.MTWEOF, 1); err != nil {
		t.Fatal(err)
	}
	g, err := mtio.GetStatus(f)
	if err != nil {
		t.Fatal(err)
	}
	if g.FileNo != 1 || g.BlkNo != 0 || !mtio.IsEOF(g.GStat) || !mtio.IsOnline(g.GStat) || g.Type != mtio.MTISSCSI2 {
		t.Fatalf("MTIOCGET after MTWEOF: %v", g)
	}
	if p, err := mtio.GetPos(f); err != nil || p.BlkNo != 5 {
		t.Fatalf("MTIOCPOS = %v %v, want 5", p, err)
	}
	if err := doOp(t, f, mtio.MTREW, 1); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, fakest.MaxRecord)
	for i, n := range sizes {
		k, err := unix.Read(fd, buf)
		if err != nil || k != n || !bytes.Equal(buf[:k], pattern(byte(i), n)) {
			t.Fatalf("read record %d: %d bytes %v, want %d", i, k, err, n)
		}
	}
	if k, err := unix.Read(fd, buf); k != 0 || err != nil {
		t.Fatalf("read at the filemark: %d %v", k, err)
	}
	if k, err := unix.Read(fd, buf); k != 0 || err != nil {
		t.Fatalf("read of blank tape after the filemark: %d %v, want 0 (end of data)", k, err)
	}
	if _, err := unix.Read(fd, buf[:16<<10]); !errors.Is(err, unix.EIO) {
		t.Fatalf("read past the end of data: %v", err)
	}
	// Seek to a logical block and read the record there.
	if err := doOp(t, f, mtio.MTSEEK, 2); err != nil {
		t.Fatal(err)
	}
	if k, _ := unix.Read(fd, buf); k != sizes[2] {
		t.Fatalf("after MTSEEK 2 read %d bytes, want %d", k, sizes[2])
	}
	// ENOMEM for a short buffer, through the kernel.
	doOp(t, f, mtio.MTREW, 1)
	if _, err := unix.Read(fd, buf[:4096]); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("short buffer: %v", err)
	}
	// An ioctl the drive does not know.
	const unknown = 0x80086d09 // _IOR('m', 9, long)
	var out [8]byte
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unknown, uintptr(unsafe.Pointer(&out))); e != unix.ENOTTY {
		t.Fatalf("unknown ioctl: %v", e)
	}
	if n := d.OpCount(mtio.MTRESET); n != 0 {
		t.Fatalf("MTRESET reached the drive %d times", n)
	}
}

func TestCloseAndBusy(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	f, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.OpenFile(d.Path(fakest.ST0), os.O_RDONLY, 0); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: %v", err)
	}
	unix.Write(int(f.Fd()), pattern(1, 1000))
	// Other processes started meanwhile close their inherited copy of the
	// descriptor (close-on-exec): that must not end the file.
	for range 3 {
		if err := exec.Command("true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	if objs := d.Current().Objects(); len(objs) != 1 {
		t.Fatalf("a child's exec wrote a filemark: %d objects", len(objs))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	objs := d.Current().Objects()
	if len(objs) != 2 || !objs[1].Filemark {
		t.Fatalf("close after writing: %d objects", len(objs))
	}
	// The drive is free again right after close(2), and nst0 did not rewind.
	f, err = os.OpenFile(d.Path(fakest.ST0), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := mtio.GetStatus(f)
	if g.FileNo != 1 || g.BlkNo != 0 {
		t.Fatalf("position after closing nst0: %d/%d", g.FileNo, g.BlkNo)
	}
	unix.Write(int(f.Fd()), pattern(2, 10))
	f.Close()
	f, _ = os.OpenFile(d.Path(fakest.NST0), os.O_RDONLY, 0)
	defer f.Close()
	if g, _ := mtio.GetStatus(f); !mtio.IsBOT(g.GStat) {
		t.Fatalf("st0 did not rewind on close: %v", g)
	}
	if n := len(d.Current().Objects()); n != 4 {
		t.Fatalf("%d objects, want 4", n)
	}
}

func TestNoMediumAndWriteProtect(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	d.Current().SetWriteProtected(true)
	if _, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("open a protected cartridge for writing: %v", err)
	}
	f, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(int(f.Fd()), []byte("x")); !errors.Is(err, unix.EACCES) {
		t.Fatalf("write to a protected cartridge: %v", err)
	}
	f.Close()
	d.Eject()
	if _, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDONLY, 0); !errors.Is(err, syscall.ENOMEDIUM) {
		t.Fatalf("open without a cartridge: %v", err)
	}
	f, err = os.OpenFile(d.Path(fakest.NST0), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if g, _ := mtio.GetStatus(f); !mtio.IsDrOpen(g.GStat) || mtio.IsOnline(g.GStat) {
		t.Fatalf("status without a cartridge: %v", g)
	}
}

func TestCtlFile(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{Cartridges: []string{"A", "B"}})
	ctl := d.Path(fakest.CtlFile)
	state := func() string {
		b, err := os.ReadFile(ctl)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if s := state(); s != "A loaded" {
		t.Fatalf("state %q", s)
	}
	send := func(cmd string) error { return os.WriteFile(ctl, []byte(cmd+"\n"), 0o644) }
	if err := send("remove"); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("remove a loaded cartridge: %v", err)
	}
	// A shell script is the other user of ctl (the fake mtx).
	if out, err := exec.Command("sh", "-c", "echo eject > "+ctl).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if s := state(); s != "A ejected" {
		t.Fatalf("state after eject: %q", s)
	}
	if err := send("insert B"); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("insert into a full drive: %v", err)
	}
	if err := send("remove"); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != "empty" {
		t.Fatalf("state after remove: %q", s)
	}
	if err := send("insert C"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("insert an unknown cartridge: %v", err)
	}
	if err := send("frobnicate"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := send("insert B"); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != "B loaded" {
		t.Fatalf("state after insert: %q", s)
	}
}

func TestStallThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	f, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.Stall()
	done := make(chan error, 1)
	go func() {
		_, err := unix.Write(int(f.Fd()), pattern(1, 64<<10))
		done <- err
	}()
	if err := d.WaitStalled(t.Context()); err != nil {
		t.Fatal(err)
	}
	select { // blocked in the drive: it cannot return before Resume
	case err := <-done:
		t.Fatalf("write returned while stalled: %v", err)
	default:
	}
	d.Resume()
	if err := <-done; err != nil { // still blocked after Resume: caught by go test -timeout
		t.Fatal(err)
	}
}

// TestDupThenClose is what dd does with its input: open, dup2 the
// descriptor, close the original, keep using the copy. The drive stays
// open until the last descriptor is closed.
func TestDupThenClose(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	f, err := os.OpenFile(d.Path(fakest.ST0), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := unix.Write(dup, pattern(3, 100)); err != nil {
		t.Fatalf("write through the copy: %v", err)
	}
	if _, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDONLY, 0); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("open while a copy is in use: %v", err)
	}
	if err := unix.Close(dup); err != nil {
		t.Fatal(err)
	}
	g, err := os.OpenFile(d.Path(fakest.NST0), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if st, _ := mtio.GetStatus(g); !mtio.IsBOT(st.GStat) {
		t.Fatalf("st0 not rewound after the last close: %v", st)
	}
	if objs := d.Current().Objects(); len(objs) != 2 || !objs[1].Filemark {
		t.Fatalf("%d objects, want the record and its filemark", len(objs))
	}
}
