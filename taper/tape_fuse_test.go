package taper

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// These tests drive the tape driver through the FUSE fake st device: the
// real open, read, write, ioctl (MTIOCTOP, MTIOCGET, MTIOCPOS) and close
// system calls.

const nightBS = 256 << 10

// nightFile is one image on tape: a 32 KiB header record, then payload
// records of nightBS, the last one short.
func nightFile(seed byte, payload int) [][]byte {
	recs := [][]byte{fill(seed, FirstRecordSize)}
	for off := 0; off < payload; off += nightBS {
		recs = append(recs, fill(seed+byte(off/nightBS)+1, min(nightBS, payload-off)))
	}
	return recs
}

func openFUSETape(t *testing.T, d *fakest.Drive) *Tape {
	t.Helper()
	tp, err := OpenTape(d.Path(fakest.NST0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func TestTapeNightThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{Capacity: 256 << 20})
	tp := openFUSETape(t, d)
	if tp.Name() != "tape:"+d.Path(fakest.NST0) {
		t.Errorf("Name = %q", tp.Name())
	}
	label := testLabel("DailySet1-007")
	label.Blocksize = nightBS
	if err := WriteLabel(tp, label); err != nil {
		t.Fatal(err)
	}
	night := [][][]byte{nightFile(10, 5*nightBS+1234), nightFile(40, 2*nightBS), nightFile(70, 100)}
	starts := make([]Position, len(night))
	for i, f := range night {
		p, err := tp.Tell()
		if err != nil {
			t.Fatal(err)
		}
		starts[i] = p
		for _, r := range f {
			if err := tp.WriteRecord(r); err != nil {
				t.Fatalf("file %d: %v", i+1, err)
			}
		}
		if err := tp.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
	}
	if want := (Position{1, 0, 2}); starts[0] != want {
		t.Fatalf("file 1 starts at %+v, want %+v", starts[0], want)
	}
	// A second open while the taper holds the drive.
	if _, err := OpenTape(d.Path(fakest.NST0)); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "fuser "+d.Path(fakest.NST0)) {
		t.Fatalf("second open: %v", err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}

	tp = openFUSETape(t, d)
	l, err := ReadLabel(tp)
	if err != nil || l.Label != "DailySet1-007" || l.Blocksize != nightBS {
		t.Fatalf("label: %+v %v", l, err)
	}
	buf := make([]byte, nightBS)
	readFile := func(what string) [][]byte {
		t.Helper()
		var recs [][]byte
		for {
			n, err := tp.ReadRecord(buf)
			if errors.Is(err, io.EOF) {
				return recs
			}
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			recs = append(recs, bytes.Clone(buf[:n]))
		}
	}
	tp.Rewind()
	readFile("label")
	for i, f := range night {
		got := readFile(fmt.Sprintf("file %d", i+1))
		if len(got) != len(f) {
			t.Fatalf("file %d: %d records, want %d", i+1, len(got), len(f))
		}
		for j := range f {
			if !bytes.Equal(got[j], f[j]) {
				t.Fatalf("file %d record %d differs", i+1, j)
			}
		}
	}
	if _, err := tp.ReadRecord(buf); !errors.Is(err, ErrEndOfData) {
		t.Fatalf("after the last file: %v", err)
	}

	// MTSEEK to each file's logical block, in any order.
	for _, i := range []int{2, 1, 0} {
		if err := tp.Seek(starts[i]); err != nil {
			t.Fatal(err)
		}
		if n, err := tp.ReadRecord(buf); err != nil || !bytes.Equal(buf[:n], night[i][0]) {
			t.Fatalf("header of file %d after MTSEEK: %v", i+1, err)
		}
	}
	seeks := d.OpCount(mtio.MTSEEK)
	if seeks == 0 {
		t.Fatal("no MTSEEK reached the drive")
	}
	// MTFSR within a file, MTBSR back.
	if err := tp.SpaceRecords(2); err != nil {
		t.Fatal(err)
	}
	if n, _ := tp.ReadRecord(buf); !bytes.Equal(buf[:n], night[0][3]) {
		t.Fatal("record 3 of file 1 after MTFSR 2")
	}
	if err := tp.SpaceRecords(-2); err != nil {
		t.Fatal(err)
	}
	if n, _ := tp.ReadRecord(buf); !bytes.Equal(buf[:n], night[0][2]) {
		t.Fatal("record 2 of file 1 after MTBSR 2")
	}
	// MTFSF to file 2, MTBSF back to the end of file 1, before its filemark.
	if err := tp.SpaceFiles(1); err != nil {
		t.Fatal(err)
	}
	if err := tp.SpaceFiles(-1); err != nil {
		t.Fatal(err)
	}
	if p, err := tp.Tell(); err != nil || p.File != 1 || p.Record != int64(len(night[0])) {
		t.Fatalf("after MTBSF: %+v %v", p, err)
	}
	// Without MTSEEK (a drive that cannot locate): rewind + MTFSF + MTFSR.
	d.SetLocate(false)
	for _, i := range []int{1, 2, 0} {
		target := Position{File: starts[i].File, Record: 1, Logical: -1}
		if err := tp.Seek(target); err != nil {
			t.Fatal(err)
		}
		if n, err := tp.ReadRecord(buf); err != nil || !bytes.Equal(buf[:n], night[i][1]) {
			t.Fatalf("record 1 of file %d after the fallback seek: %v", i+1, err)
		}
	}
	if d.OpCount(mtio.MTSEEK) != seeks {
		t.Errorf("MTSEEK used while the drive cannot locate")
	}
	d.SetLocate(true)
	if err := tp.SeekToEnd(); err != nil {
		t.Fatal(err)
	}
	if st, _ := tp.Status(); !st.EOD || st.File != 4 {
		t.Fatalf("status at the end: %+v", st)
	}

	// Eject: no medium from then on, in words.
	if err := tp.Eject(); err != nil {
		t.Fatal(err)
	}
	if st, err := tp.Status(); err != nil || st.Online || !st.DoorOpen {
		t.Fatalf("status after eject: %+v %v", st, err)
	}
	if _, err := tp.ReadRecord(buf); !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "no medium (load a volume first)") {
		t.Fatalf("read after eject: %v", err)
	}
	if d.OpCount(mtio.MTRESET) != 0 {
		t.Fatal("MTRESET reached the drive")
	}
}

func TestTapeEarlyWarningThroughFUSE(t *testing.T) {
	const capacity = 4 << 20
	d := fakest.Mount(t, fakest.Options{Capacity: capacity, EarlyWarning: 1 << 20})
	tp := openFUSETape(t, d)
	if err := WriteLabel(tp, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	var written [][]byte
	first := -1
	for i := 0; ; i++ {
		r := fill(byte(i), nightBS)
		err := tp.WriteRecord(r)
		if errors.Is(err, ErrVolumeFull) {
			break
		}
		if err != nil && !errors.Is(err, ErrEarlyWarning) {
			t.Fatalf("record %d: %v", i, err)
		}
		if err != nil && first < 0 {
			first = i
		}
		if first >= 0 && err == nil {
			t.Fatalf("record %d written without early warning after record %d had it", i, first)
		}
		written = append(written, r)
	}
	// After the 32 KiB label, record 11 takes the volume past 3 MiB; st
	// fails the next write with ENOSPC, so record 12 (written again) is the
	// first with the warning (no status is read per record); 15 records fit
	// in 4 MiB.
	if first != 12 || len(written) != 15 {
		t.Fatalf("early warning at record %d, %d records written; want 12 and 15", first, len(written))
	}
	if err := tp.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	got := d.Current().Records(1)
	if len(got) != len(written) {
		t.Fatalf("tape holds %d records, %d were reported written", len(got), len(written))
	}
	for i := range got {
		if !bytes.Equal(got[i], written[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

func TestTapeProtectedAndEmptyThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	d.Current().SetWriteProtected(true)
	tp := openFUSETape(t, d)
	err := WriteLabel(tp, testLabel("T-001"))
	if !errors.Is(err, ErrWriteProtected) || !strings.Contains(err.Error(), "volume is write-protected (the cartridge's write-protect tab is set") {
		t.Fatalf("write-protected: %v", err)
	}
	// Refused from MTIOCGET's GMT_WR_PROT, before any write(2).
	if n := d.WriteCount(); n != 0 {
		t.Errorf("%d write(2) calls reached a write-protected cartridge, want none", n)
	}
	for _, want := range []string{d.Path(fakest.NST0), "slide the tab", "insert another cartridge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("write-protected error %q does not say %q", err, want)
		}
	}
	if err := tp.WriteFilemark(); !errors.Is(err, ErrWriteProtected) || len(d.Current().Objects()) != 0 {
		t.Errorf("filemark on a write-protected cartridge: %v", err)
	}
	tp.Close()
	d.Eject()
	d.Remove()
	tp = openFUSETape(t, d)
	if st, err := tp.Status(); err != nil || st.Online || !st.DoorOpen {
		t.Fatalf("empty drive: %+v %v", st, err)
	}
	err = tp.WriteRecord([]byte("x"))
	if !errors.Is(err, ErrNoMedium) || !strings.Contains(err.Error(), "tape "+d.Path(fakest.NST0)+": write record: no medium (load a volume first)") {
		t.Fatalf("write with no cartridge: %v", err)
	}
}

// TestDDReadsTapeFile checks the promise that a tape file restores with
// standard tools only: dd skips the 32 KiB header record and reads the
// payload records, zstd and tar do the rest.
func TestDDReadsTapeFile(t *testing.T) {
	for _, tool := range []string{"dd", "zstd", "tar", "sh", "diff"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	d := fakest.Mount(t, fakest.Options{Capacity: 64 << 20})
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "etc", "app"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "app", "conf"), []byte("key = value\n"), 0o644)
	big := make([]byte, 900<<10)
	rand.NewChaCha8([32]byte{7}).Read(big) // incompressible: the payload spans records
	os.WriteFile(filepath.Join(src, "data.bin"), big, 0o600)
	payload, err := exec.Command("sh", "-c", "tar -cf - -C "+src+" . | zstd -q -c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(payload) < nightBS {
		t.Fatalf("payload of %d bytes does not span records", len(payload))
	}
	header := make([]byte, FirstRecordSize)
	copy(header, "TAPIR FILE 20240506020000 host /srv lev 0 part 1/1 comp zst\n"+
		"restore: dd if=/dev/nst0 bs=256k skip=1 | zstd -dc | tar -xpf -\n")

	tp := openFUSETape(t, d)
	if err := WriteLabel(tp, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	var start Position
	for i := range 2 { // another image first, so the file is not the first one
		start, _ = tp.Tell()
		tp.WriteRecord(header)
		data := payload
		if i == 0 {
			data = fill(1, 3*nightBS)
		}
		for off := 0; off < len(data); off += nightBS {
			if err := tp.WriteRecord(data[off:min(off+nightBS, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		tp.WriteFilemark()
	}
	// Position at the file, then close: nst0 does not rewind.
	if err := tp.Seek(start); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	os.Mkdir(out, 0o755)
	script := fmt.Sprintf("dd if=%s bs=256k skip=1 status=none | zstd -dc | tar -xpf - -C %s", d.Path(fakest.NST0), out)
	if b, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	if b, err := exec.Command("diff", "-r", src, out).CombinedOutput(); err != nil {
		t.Fatalf("restored tree differs: %v\n%s", err, b)
	}
	// dd stopped after the filemark: at the start of the next file. (st
	// forgot the file number at the MTSEEK, so look at the logical block.)
	tp = openFUSETape(t, d)
	records := 1 + (len(payload)+nightBS-1)/nightBS
	if l := tp.logical(); l != start.Logical+int64(records)+1 {
		t.Fatalf("after dd the tape is at logical block %d, want %d", l, start.Logical+int64(records)+1)
	}
}

// A file whose last record crosses the early-warning point: no write after
// it says so, the status read at the filemark does, and the next file's
// first record reports the warning.
func TestTapeEarlyWarningAtFilemarkThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{Capacity: 4 << 20, EarlyWarning: 1 << 20})
	tp := openFUSETape(t, d)
	defer tp.Close()
	if err := WriteLabel(tp, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	// Records 0..10 stay below 3 MiB with the label; record 11 crosses it.
	for i := range 12 {
		if err := tp.WriteRecord(fill(byte(i), nightBS)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := tp.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if st, err := tp.Status(); err != nil || !st.EOT {
		t.Fatalf("status after the filemark: %+v, %v; want EOT", st, err)
	}
	if err := tp.WriteRecord(fill(1, nightBS)); !errors.Is(err, ErrEarlyWarning) {
		t.Fatalf("first record of the next file: %v, want early warning", err)
	}
}
