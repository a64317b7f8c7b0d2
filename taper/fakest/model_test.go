package fakest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"
)

const rw = syscall.O_RDWR

func open(t *testing.T, d *Drive, dev string, flags int) *Handle {
	t.Helper()
	h, err := d.Open(dev, flags)
	if err != nil {
		t.Fatalf("open %s: %v", dev, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func rec(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13)
	}
	return b
}

// result renders one system call's outcome for table comparison.
func result(n int, err error) string {
	if err != nil {
		return err.(syscall.Errno).Error()
	}
	return fmt.Sprint(n)
}

func status(t *testing.T, h *Handle) mtio.MtGet {
	t.Helper()
	g, err := h.Status()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// bits names the status bits that matter, in a fixed order.
func bits(g mtio.MtGet) string {
	var s []string
	for _, b := range []struct {
		on   bool
		name string
	}{
		{mtio.IsBOT(g.GStat), "BOT"}, {mtio.IsEOF(g.GStat), "EOF"}, {mtio.IsEOT(g.GStat), "EOT"},
		{mtio.IsEOD(g.GStat), "EOD"}, {mtio.IsWrProt(g.GStat), "WR_PROT"}, {mtio.IsOnline(g.GStat), "ONLINE"},
		{mtio.IsDrOpen(g.GStat), "DR_OPEN"},
	} {
		if b.on {
			s = append(s, b.name)
		}
	}
	return strings.Join(s, " ")
}

func where(t *testing.T, h *Handle) string {
	t.Helper()
	g := status(t, h)
	p, err := h.Pos()
	ps := fmt.Sprint(p)
	if err != nil {
		ps = "?"
	}
	return fmt.Sprintf("%d/%d@%s", g.FileNo, g.BlkNo, ps)
}

// writeFiles writes files of records (sizes), each ended by MTWEOF.
func writeFiles(t *testing.T, h *Handle, files ...[]int) {
	t.Helper()
	for i, f := range files {
		for j, n := range f {
			if k, err := h.Write(rec(byte(i*16+j), n)); err != nil || k != n {
				t.Fatalf("file %d record %d: %d %v", i, j, k, err)
			}
		}
		if err := h.Op(mtio.MTWEOF, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadSequence(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	writeFiles(t, h, []int{100, 200}, []int{}, []int{300})
	h.Op(mtio.MTREW, 1)
	buf := make([]byte, 1000)
	var got []string
	for range 9 {
		n, err := h.Read(buf)
		got = append(got, result(n, err)+" "+where(t, h))
	}
	// Objects: r r FM | FM | r FM, then blank. An empty file reads as two
	// filemarks; blank after a filemark as one more 0, then EIO.
	want := []string{
		"100 0/1@1", "200 0/2@2", "0 1/0@3",
		"0 2/0@4",
		"300 2/1@5", "0 3/0@6",
		"0 3/-1@6", "input/output error 3/-1@6", "input/output error 3/-1@6",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reads:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if g := status(t, h); bits(g) != "EOD ONLINE" {
		t.Errorf("status at end of data: %s", bits(g))
	}
	// A buffer smaller than the record: ENOMEM, and the record is skipped.
	h.Op(mtio.MTREW, 1)
	if n, err := h.Read(make([]byte, 50)); !errors.Is(err, syscall.ENOMEM) || n != 0 {
		t.Fatalf("short buffer: %d %v", n, err)
	}
	if n, _ := h.Read(buf); n != 200 {
		t.Fatalf("after ENOMEM read %d bytes, want the second record (200)", n)
	}
	// Blank tape at the beginning: EIO at once.
	d2 := New(Options{})
	h2 := open(t, d2, NST0, rw)
	if _, err := h2.Read(buf); !errors.Is(err, syscall.EIO) {
		t.Fatalf("blank tape: %v", err)
	}
}

func TestSpacing(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	writeFiles(t, h, []int{10, 11, 12}, []int{20}, []int{30, 31})
	// logical: f0 r0..2 @0-2 FM@3 | f1 r0 @4 FM@5 | f2 r0,1 @6,7 FM@8 | EOD@9
	steps := []struct {
		op    int16
		count int32
		err   string
		at    string
	}{
		{mtio.MTREW, 1, "", "0/0@0"},
		{mtio.MTFSF, 2, "", "2/0@6"},
		{mtio.MTBSF, 1, "", "1/-1@5"}, // before the filemark ending file 1
		{mtio.MTBSR, 1, "", "1/-1@4"},
		{mtio.MTBSR, 1, "input/output error", "0/-1@3"}, // crosses backward over a filemark
		{mtio.MTFSR, 2, "input/output error", "1/0@4"},  // runs into the filemark, stops after it
		{mtio.MTFSR, 1, "", "1/1@5"},
		{mtio.MTFSF, 5, "input/output error", "3/-1@9"}, // runs into blank tape
		{mtio.MTBSF, 9, "input/output error", "0/0@0"},  // hits the beginning
		{mtio.MTSEEK, 7, "", "-1/-1@7"},
		{mtio.MTSEEK, 10, "input/output error", "-1/-1@9"},
		{mtio.MTSEEK, 0, "", "0/0@0"},
		{mtio.MTEOM, 1, "", "3/-1@9"},
		{mtio.MTFSF, 1, "input/output error", "3/-1@9"},
		{mtio.MTREW, 1, "", "0/0@0"},
		{mtio.MTFSFM, 1, "", "0/-1@3"},
		{mtio.MTFSF, 2, "", "2/0@6"},
		{mtio.MTBSFM, 1, "", "2/0@6"},
		{mtio.MTREW, 1, "", "0/0@0"},
		{mtio.MTBSR, 1, "input/output error", "0/0@0"}, // at the beginning
	}
	for i, s := range steps {
		err := h.Op(s.op, s.count)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != s.err || where(t, h) != s.at {
			t.Fatalf("step %d (op %d count %d): %q at %s, want %q at %s", i, s.op, s.count, got, where(t, h), s.err, s.at)
		}
	}
	h.Op(mtio.MTEOM, 1)
	if g := status(t, h); bits(g) != "EOD ONLINE" {
		t.Errorf("after MTEOM: %s", bits(g))
	}
	if _, err := h.Read(make([]byte, 10)); !errors.Is(err, syscall.EIO) {
		t.Errorf("read after MTEOM: %v, want EIO (blank not after a filemark)", err)
	}
	if n := d.OpCount(mtio.MTRESET); n != 0 {
		t.Errorf("MTRESET counted %d times", n)
	}
	if err := h.Op(mtio.MTRESET, 1); !errors.Is(err, syscall.ENOSYS) || d.OpCount(mtio.MTRESET) != 1 {
		t.Errorf("MTRESET: %v, counted %d", err, d.OpCount(mtio.MTRESET))
	}
}

func TestEarlyWarningAlternates(t *testing.T) {
	d := New(Options{Capacity: 10 << 10, EarlyWarning: 3 << 10})
	h := open(t, d, NST0, rw)
	var got []string
	for range 12 {
		n, err := h.Write(rec(1, 1<<10))
		s := result(n, err)
		if mtio.IsEOT(status(t, h).GStat) {
			s += "+EOT"
		}
		got = append(got, s)
	}
	// 7 KiB fit before the early warning; the 8th KiB crosses it and is
	// written; then ENOSPC and success alternate to the physical end (10
	// KiB), where every write gets ENOSPC. Right after an ENOSPC st's
	// state is EOD_1, which MTIOCGET shows as EOD, not EOT.
	want := "1024 1024 1024 1024 1024 1024 1024 1024+EOT ENOSPC 1024+EOT ENOSPC 1024+EOT"
	got[8] = strings.Replace(got[8], "no space left on device", "ENOSPC", 1)
	got[10] = strings.Replace(got[10], "no space left on device", "ENOSPC", 1)
	if strings.Join(got, " ") != want {
		t.Fatalf("writes:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	for i := range 4 {
		if _, err := h.Write(rec(1, 1<<10)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d at the physical end: %v", i, err)
		}
	}
	// A filemark is still written in the early-warning zone.
	if err := h.Op(mtio.MTWEOF, 1); err != nil {
		t.Fatal(err)
	}
	if c := d.Current(); c.Used() != 10<<10 || len(c.Objects()) != 11 {
		t.Fatalf("cartridge holds %d bytes in %d objects", c.Used(), len(c.Objects()))
	}
}

func TestOpenRules(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	if _, err := d.Open(ST0, syscall.O_RDONLY); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: %v", err)
	}
	h.Close()
	if err := h.Close(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("second close: %v", err)
	}
	if _, err := h.Write([]byte("x")); !errors.Is(err, syscall.EBADF) {
		t.Errorf("write after close: %v", err)
	}
	if _, err := d.Open("nst1", rw); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("unknown device: %v", err)
	}

	d.Current().SetWriteProtected(true)
	if _, err := d.Open(NST0, rw); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("open a protected cartridge for writing: %v", err)
	}
	h = open(t, d, NST0, rw|syscall.O_NONBLOCK)
	if g := status(t, h); bits(g) != "BOT WR_PROT ONLINE" {
		t.Errorf("protected: %s", bits(g))
	}
	if _, err := h.Write([]byte("x")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write to a protected cartridge: %v", err)
	}
	if err := h.Op(mtio.MTWEOF, 1); !errors.Is(err, syscall.EACCES) {
		t.Errorf("filemark on a protected cartridge: %v", err)
	}
	h.Close()
	d.Current().SetWriteProtected(false)
	h = open(t, d, NST0, syscall.O_RDONLY)
	if _, err := h.Write([]byte("x")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write on a read-only open: %v", err)
	}
	h.Close()

	// No cartridge: open fails unless O_NONBLOCK; status says DR_OPEN.
	if err := d.Eject(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(NST0, rw); !errors.Is(err, syscall.ENOMEDIUM) {
		t.Fatalf("open without a cartridge: %v", err)
	}
	h = open(t, d, NST0, rw|syscall.O_NONBLOCK)
	if g := status(t, h); bits(g) != "DR_OPEN" || g.FileNo != -1 {
		t.Errorf("no cartridge: %s file %d", bits(g), g.FileNo)
	}
	for name, call := range map[string]func() error{
		"read":  func() error { _, err := h.Read(make([]byte, 10)); return err },
		"write": func() error { _, err := h.Write([]byte("x")); return err },
		"rew":   func() error { return h.Op(mtio.MTREW, 1) },
	} {
		if err := call(); !errors.Is(err, syscall.ENOMEDIUM) {
			t.Errorf("%s without a cartridge: %v", name, err)
		}
	}
	if _, err := h.Pos(); !errors.Is(err, syscall.EIO) {
		t.Errorf("MTIOCPOS without a cartridge: %v", err)
	}
	// MTLOAD takes the ejected cartridge back from the drive's mouth.
	if err := h.Op(mtio.MTLOAD, 1); err != nil {
		t.Fatal(err)
	}
	if g := status(t, h); bits(g) != "BOT ONLINE" {
		t.Errorf("after MTLOAD: %s", bits(g))
	}
	h.Op(mtio.MTOFFL, 1)
	if name, err := d.Remove(); err != nil || name != "TAPE01" {
		t.Fatalf("remove: %q %v", name, err)
	}
	if err := h.Op(mtio.MTLOAD, 1); !errors.Is(err, syscall.EIO) {
		t.Errorf("MTLOAD with an empty drive: %v", err)
	}
}

func TestCloseWritesFilemarkAndST0Rewinds(t *testing.T) {
	d := New(Options{})
	h, _ := d.Open(NST0, rw)
	h.Write(rec(1, 100))
	h.Status() // MTIOCGET does not end the writing
	h.Close()
	objs := d.Current().Objects()
	if len(objs) != 2 || !objs[1].Filemark {
		t.Fatalf("after close of nst0: %d objects", len(objs))
	}
	h = open(t, d, NST0, rw)
	if where(t, h) != "1/0@2" {
		t.Fatalf("nst0 moved on close: %s", where(t, h))
	}
	h.Close()

	// Reading and closing does not write anything.
	h, _ = d.Open(NST0, rw)
	h.Op(mtio.MTREW, 1)
	h.Read(make([]byte, 200))
	h.Close()
	if n := len(d.Current().Objects()); n != 2 {
		t.Fatalf("close after reading changed the tape: %d objects", n)
	}

	// st0: filemark, then rewind.
	h, _ = d.Open(ST0, rw)
	h.Op(mtio.MTEOM, 1)
	h.Write(rec(2, 50))
	h.Close()
	h = open(t, d, NST0, rw)
	if where(t, h) != "0/0@0" || len(d.Current().Objects()) != 4 {
		t.Fatalf("st0 close: %s, %d objects", where(t, h), len(d.Current().Objects()))
	}
	if got := d.Current().Records(1); len(got) != 1 || !bytes.Equal(got[0], rec(2, 50)) {
		t.Fatalf("file 1: %d records", len(got))
	}
	if d.Current().Records(2) != nil {
		t.Error("Records of a missing file is not nil")
	}
}

func TestMotionAfterWriteWritesFilemark(t *testing.T) {
	for _, c := range []struct {
		op      int16
		fm      bool
		closeFM bool // close still writes one (st keeps writing state)
	}{
		{mtio.MTREW, true, false},
		{mtio.MTBSF, true, false},
		{mtio.MTSEEK, true, false},
		{mtio.MTOFFL, true, false},
		{mtio.MTFSF, false, false}, // st does not: the file stays open-ended
		{mtio.MTNOP, false, true},
	} {
		d := New(Options{})
		h, _ := d.Open(NST0, rw)
		h.Write(rec(1, 10))
		h.Op(c.op, 0)
		if c.op == mtio.MTBSF || c.op == mtio.MTREW || c.op == mtio.MTOFFL {
			h.Op(c.op, 1)
		}
		h.Close()
		fms := 0
		for _, o := range d.Current().Objects() {
			if o.Filemark {
				fms++
			}
		}
		want := 0
		if c.fm || c.closeFM {
			want = 1
		}
		if fms != want {
			t.Errorf("op %d after a write: %d filemarks, want %d", c.op, fms, want)
		}
	}
}

func TestSwapWhileOpen(t *testing.T) {
	d := New(Options{Cartridges: []string{"A", "B"}})
	h := open(t, d, NST0, rw)
	writeFiles(t, h, []int{10})
	if err := d.Insert("B"); err == nil || !strings.Contains(err.Error(), "holds A") {
		t.Fatalf("insert into a full drive: %v", err)
	}
	if _, err := d.Remove(); err == nil || !strings.Contains(err.Error(), "eject it first") {
		t.Fatalf("remove a loaded cartridge: %v", err)
	}
	d.Eject()
	d.Remove()
	if err := d.Insert("B"); err != nil {
		t.Fatal(err)
	}
	// The open handle lost its position, as st after a medium change.
	if _, err := h.Read(make([]byte, 10)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read after a swap: %v", err)
	}
	if err := h.Op(mtio.MTFSF, 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsf after a swap: %v", err)
	}
	if err := h.Op(mtio.MTREW, 1); err != nil {
		t.Fatalf("rewind after a swap: %v", err)
	}
	if _, err := h.Read(make([]byte, 10)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("B is blank: %v", err)
	}
	if n := len(d.Cartridge("A").Objects()); n != 2 {
		t.Errorf("A holds %d objects", n)
	}
	if err := d.Insert("C"); err == nil {
		t.Error("inserted an unknown cartridge")
	}
	if _, err := d.AddCartridge("A", 10, 1); err == nil {
		t.Error("added a duplicate cartridge")
	}
	if _, err := d.AddCartridge("D", 10, 10); err == nil {
		t.Error("early warning equal to the capacity accepted")
	}
}

func TestInjectedErrors(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	d.InjectError(2, 0)
	h.Write(rec(1, 10))
	h.Write(rec(2, 10))
	if _, err := h.Write(rec(3, 10)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write at the bad spot: %v", err)
	}
	d.ClearErrors()
	h.Write(rec(3, 10))
	d.InjectError(1, syscall.EIO)
	h.Op(mtio.MTREW, 1)
	h.Read(make([]byte, 10))
	if _, err := h.Read(make([]byte, 10)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read at the bad spot: %v", err)
	}
	d.SetLocate(false)
	if _, err := h.Pos(); !errors.Is(err, syscall.EIO) {
		t.Errorf("MTIOCPOS on a drive that cannot: %v", err)
	}
	if err := h.Op(mtio.MTSEEK, 1); !errors.Is(err, syscall.EIO) {
		t.Errorf("MTSEEK on a drive that cannot: %v", err)
	}
}

func TestFailOpAndTrace(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	for i := range 10 {
		h.Write(rec(byte(i), 10))
	}
	h.Op(mtio.MTWEOF, 1)
	d.ResetTrace()
	d.FailOp(mtio.MTSEEK, 2, 0) // the second MTSEEK from now
	if err := h.Op(mtio.MTSEEK, 2); err != nil {
		t.Fatalf("first MTSEEK: %v", err)
	}
	if err := h.Op(mtio.MTSEEK, 8); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second MTSEEK: %v", err)
	}
	// The locate stopped halfway, st not knowing where.
	if p, err := h.Pos(); err != nil || p != 5 {
		t.Errorf("after the failed MTSEEK the drive is at %d (%v), want 5 (halfway)", p, err)
	}
	if g, _ := h.Status(); g.FileNo != -1 || g.BlkNo != -1 {
		t.Errorf("after the failed MTSEEK st reports file %d block %d, want -1 -1", g.FileNo, g.BlkNo)
	}
	if err := h.Op(mtio.MTSEEK, 8); err != nil {
		t.Fatalf("third MTSEEK (the fault fires once): %v", err)
	}
	d.SetPosition(false)
	if _, err := h.Pos(); !errors.Is(err, syscall.EIO) {
		t.Errorf("MTIOCPOS turned off: %v", err)
	}
	if err := h.Op(mtio.MTSEEK, 3); err != nil {
		t.Errorf("MTSEEK with only MTIOCPOS turned off: %v", err)
	}
	d.SetPosition(true)
	want := []string{"MTSEEK 2", "MTSEEK 8 EIO", "MTSEEK 8", "MTSEEK 3"}
	if got := d.Trace(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("trace %q, want %q", got, want)
	}
}

// Opens lists the access mode of every open, refused ones included, and
// ResetTrace empties it; ioctls that change no data work on a read-only
// handle, as st allows them.
func TestOpens(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	if _, err := d.Open(NST0, syscall.O_RDONLY); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: %v", err)
	}
	h.Close()
	if got, want := d.Opens(), []int{rw, syscall.O_RDONLY}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Opens = %v, want %v", got, want)
	}
	d.ResetTrace()
	h = open(t, d, NST0, syscall.O_RDONLY|syscall.O_NONBLOCK)
	if err := h.Op(mtio.MTWEOF, 1); !errors.Is(err, syscall.EACCES) {
		t.Errorf("MTWEOF on a read-only handle: %v, want EACCES", err)
	}
	for _, op := range []int16{mtio.MTSETBLK, mtio.MTSETDRVBUFFER, mtio.MTREW, mtio.MTOFFL} {
		if err := h.Op(op, 0); err != nil {
			t.Errorf("%s on a read-only handle: %v", OpName(op), err)
		}
	}
	h.Close()
	if got, want := d.Opens(), []int{syscall.O_RDONLY}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Opens after ResetTrace = %v, want %v", got, want)
	}
}

func TestStall(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	d.Stall()
	done := make(chan error, 1)
	go func() {
		_, err := h.Write(rec(1, 10))
		done <- err
	}()
	if err := d.WaitStalled(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The drive answers other requests while a write is stalled.
	if g := status(t, h); !mtio.IsOnline(g.GStat) {
		t.Fatal("status while stalled")
	}
	select { // blocked in the drive: it cannot return before Resume
	case err := <-done:
		t.Fatalf("write finished while stalled: %v", err)
	default:
	}
	d.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d.StalledWriters() != 0 || len(d.Current().Objects()) != 1 {
		t.Fatal("write not completed after Resume")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.WaitStalled(ctx); err == nil {
		t.Error("WaitStalled without a stalled write succeeded")
	}
}

func TestFixedBlockModeRefused(t *testing.T) {
	d := New(Options{})
	h := open(t, d, NST0, rw)
	if err := h.Op(mtio.MTSETBLK, 512); err != nil {
		t.Fatal(err)
	}
	if g := status(t, h); g.DsReg&mtio.MTSTBLKSIZEMASK != 512 {
		t.Errorf("block size in DsReg: %#x", g.DsReg)
	}
	if _, err := h.Write(make([]byte, 512)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write in fixed mode: %v", err)
	}
	h.Op(mtio.MTSETBLK, 0)
	if _, err := h.Write(make([]byte, maxBlock+1)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("record above the block limit: %v", err)
	}
	if err := h.Op(mtio.MTFSF, -1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("negative count: %v", err)
	}
}

// TestDiscard: Discard keeps the label file and small records (headers),
// and only the size of a large record elsewhere (read back as zeros).
func TestDiscard(t *testing.T) {
	big := discardKeeps + 1
	d := New(Options{Discard: true})
	h := open(t, d, NST0, rw)
	writeFiles(t, h, []int{100, big}, []int{200, big})
	h.Op(mtio.MTREW, 1)
	buf := make([]byte, big)
	for i, want := range []struct {
		n    int
		kept bool
	}{{100, true}, {big, true}} {
		if n, err := h.Read(buf); n != want.n || err != nil || !bytes.Equal(buf[:n], rec(byte(i), n)) {
			t.Fatalf("file 0 record %d: %d %v, kept %v", i, n, err, bytes.Equal(buf[:n], rec(byte(i), n)))
		}
	}
	h.Op(mtio.MTFSF, 1)
	if n, err := h.Read(buf); n != 200 || err != nil || !bytes.Equal(buf[:n], rec(16, 200)) {
		t.Fatalf("a header-sized record of file 1: %d %v", n, err)
	}
	if n, err := h.Read(buf); n != big || err != nil || !bytes.Equal(buf[:n], make([]byte, big)) {
		t.Fatalf("a large record of file 1 was kept or not read as zeros: %d %v", n, err)
	}
	objs := d.Current().Objects()
	if len(objs) != 6 || objs[4].Size != big || objs[4].Data != nil || d.Current().Used() != int64(300+2*big) {
		t.Fatalf("objects %d, used %d", len(objs), d.Current().Used())
	}
}

// TestDrivesShareShelf: the drives of NewDrives share their cartridges:
// what one drive wrote reads the same in another, and a cartridge is never
// in two drives.
func TestDrivesShareShelf(t *testing.T) {
	ds := NewDrives(2, Options{Cartridges: []string{"A", "B"}})
	if name, loaded := ds[0].Loaded(); name != "A" || !loaded {
		t.Fatalf("drive 0 holds %q (loaded %v), want A", name, loaded)
	}
	if name, _ := ds[1].Loaded(); name != "" {
		t.Fatalf("drive 1 holds %q, want nothing", name)
	}
	if err := ds[1].Insert("A"); err == nil || !strings.Contains(err.Error(), "it is in drive 0 of the library") {
		t.Fatalf("insert A into drive 1 while it is in drive 0: %v", err)
	}
	h := open(t, ds[0], NST0, rw)
	if _, err := h.Write(rec(5, 100)); err != nil {
		t.Fatal(err)
	}
	if err := h.Op(mtio.MTWEOF, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.Op(mtio.MTOFFL, 1); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if name, err := ds[0].Remove(); err != nil || name != "A" {
		t.Fatalf("remove from drive 0: %q %v", name, err)
	}
	if err := ds[1].Insert("B"); err != nil {
		t.Fatal(err)
	}
	if err := ds[0].Insert("B"); err == nil || !strings.Contains(err.Error(), "in drive 1") {
		t.Errorf("insert B into drive 0 while it is in drive 1: %v", err)
	}
	if err := ds[0].Insert("A"); err != nil {
		t.Fatal(err)
	}
	// Both drives open and write at once; A keeps what drive 0 wrote.
	h1 := open(t, ds[1], NST0, rw)
	if _, err := h1.Write(rec(9, 50)); err != nil {
		t.Fatal(err)
	}
	h0 := open(t, ds[0], NST0, rw)
	buf := make([]byte, 200)
	if n, err := h0.Read(buf); err != nil || !bytes.Equal(buf[:n], rec(5, 100)) {
		t.Errorf("A read back in drive 0: %d bytes %v", n, err)
	}
	if got := ds[1].Cartridge("B").Records(0); len(got) != 1 || !bytes.Equal(got[0], rec(9, 50)) {
		t.Errorf("B holds %d records, want drive 1's one", len(got))
	}
	if ds[0].Cartridge("B") != ds[1].Cartridge("B") {
		t.Error("the drives have different cartridges called B")
	}
}
