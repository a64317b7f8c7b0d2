package taper

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// The Device contract, checked the same way on every driver: the vtape,
// the tape driver over the in-memory fakest drive, and the tape driver
// through the FUSE fakest device (real system calls and ioctls).

// confKind makes a fresh blank device of one kind. reopen closes nothing:
// the caller closes the old device first; protect reopens the volume
// write-protected.
type confKind struct {
	name  string
	fresh func(t *testing.T, capacity, ew int64) (d Device, reopen func(protect bool) Device)
}

func confKinds() []confKind {
	return []confKind{
		{"vtape", func(t *testing.T, capacity, ew int64) (Device, func(bool) Device) {
			v, dir := newVtape(t, capacity, ew)
			return v, func(protect bool) Device {
				if protect {
					os.Chmod(dir, 0o550)
					t.Cleanup(func() { os.Chmod(dir, 0o750) })
				}
				v2, err := OpenVtape(dir, capacity, ew)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { v2.Close() })
				return v2
			}
		}},
		{"memtape", func(t *testing.T, capacity, ew int64) (Device, func(bool) Device) {
			drv := fakest.New(fakest.Options{Capacity: capacity, EarlyWarning: ew})
			open := func() Device {
				h, err := drv.Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
				if err != nil {
					t.Fatal(err)
				}
				tp, err := NewTape("mem/nst0", h)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tp.Close() })
				return tp
			}
			return open(), func(protect bool) Device {
				drv.Current().SetWriteProtected(protect)
				return open()
			}
		}},
		{"fusetape", func(t *testing.T, capacity, ew int64) (Device, func(bool) Device) {
			drv := fakest.Mount(t, fakest.Options{Capacity: capacity, EarlyWarning: ew})
			open := func() Device {
				tp, err := OpenTape(drv.Path(fakest.NST0))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tp.Close() })
				return tp
			}
			return open(), func(protect bool) Device {
				drv.Current().SetWriteProtected(protect)
				return open()
			}
		}},
	}
}

// writeFilesDev writes the label and files on any device.
func writeFilesDev(t *testing.T, d Device, files []testFile) {
	t.Helper()
	if err := WriteLabel(d, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if fn := d; fn.Properties().NamesFiles {
			if err := fn.BeginFile(f.stem); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range f.records {
			if err := d.WriteRecord(r); err != nil {
				t.Fatalf("write %s: %v", f.stem, err)
			}
		}
		if err := d.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeviceConformance(t *testing.T) {
	checks := []struct {
		name string
		run  func(t *testing.T, k confKind)
	}{
		{"write and read back", confWriteRead},
		{"positions", confPositions},
		{"status", confStatus},
		{"early warning then full", confEarlyWarning},
		{"append only at end", confAppendOnly},
		{"relabel erases", confRelabel},
		{"close ends the file", confCloseEndsFile},
		{"write protected", confWriteProtected},
		{"empty file", confEmptyFile},
		{"short buffer", confShortBuffer},
	}
	for _, k := range confKinds() {
		t.Run(k.name, func(t *testing.T) {
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) { c.run(t, k) })
			}
		})
	}
}

func confWriteRead(t *testing.T, k confKind) {
	d, reopen := k.fresh(t, 1<<30, 0)
	files := standardFiles()
	writeFilesDev(t, d, files)
	checkVolume(t, d, files)
	d.Close()
	d = reopen(false)
	checkVolume(t, d, files)
	if l, err := ReadLabel(d); err != nil || l.Label != "T-001" || l.Blocksize != testBS {
		t.Fatalf("ReadLabel = %+v, %v", l, err)
	}
}

func confPositions(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	writeFilesDev(t, d, standardFiles())
	// Logical blocks: file 0 = 1 record + filemark (0..1), file 1 = 4
	// records + filemark (2..6), file 2 = 1 + 1 (7..8), file 3 = 1 + 1
	// (9..10), end of data = 11. After an error the contract leaves the
	// position to Tell; keep says this step's position is the same on
	// every driver anyway.
	read := func(d Device) error { _, err := d.ReadRecord(make([]byte, 64<<10)); return err }
	steps := []struct {
		posStep
		keep bool
	}{
		{posStep{"rewind", func(d Device) error { return d.Rewind() }, Position{0, 0, 0}, nil}, false},
		{posStep{"read label", read, Position{0, 1, 1}, nil}, false},
		{posStep{"read filemark", read, Position{1, 0, 2}, io.EOF}, true},
		{posStep{"fsr 2", func(d Device) error { return d.SpaceRecords(2) }, Position{1, 2, 4}, nil}, false},
		{posStep{"bsr 1", func(d Device) error { return d.SpaceRecords(-1) }, Position{1, 1, 3}, nil}, false},
		{posStep{"fsr past filemark", func(d Device) error { return d.SpaceRecords(4) }, Position{1, 1, 3}, errAny}, true},
		{posStep{"bsr past start", func(d Device) error { return d.SpaceRecords(-2) }, Position{1, 1, 3}, errAny}, true},
		{posStep{"fsr to filemark", func(d Device) error { return d.SpaceRecords(3) }, Position{1, 4, 6}, nil}, false},
		{posStep{"read at filemark", read, Position{2, 0, 7}, io.EOF}, true},
		{posStep{"bsf 1", func(d Device) error { return d.SpaceFiles(-1) }, Position{1, 4, 6}, nil}, false},
		{posStep{"fsf 2", func(d Device) error { return d.SpaceFiles(2) }, Position{3, 0, 9}, nil}, false},
		{posStep{"fsf 0", func(d Device) error { return d.SpaceFiles(0) }, Position{3, 0, 9}, nil}, false},
		{posStep{"fsf past end", func(d Device) error { return d.SpaceFiles(2) }, Position{4, 0, 11}, ErrEndOfData}, true},
		{posStep{"read at end", read, Position{4, 0, 11}, ErrEndOfData}, true},
		{posStep{"fsr at end", func(d Device) error { return d.SpaceRecords(1) }, Position{4, 0, 11}, ErrEndOfData}, true},
		{posStep{"bsf 3 from end", func(d Device) error { return d.SpaceFiles(-3) }, Position{1, 4, 6}, nil}, false},
		{posStep{"bsf past BOT", func(d Device) error { return d.SpaceFiles(-2) }, Position{0, 0, 0}, errAny}, true},
		{posStep{"seek to end", func(d Device) error { return d.SeekToEnd() }, Position{4, 0, 11}, nil}, false},
		{posStep{"seek file 2", func(d Device) error { return d.Seek(Position{2, 0, 7}) }, Position{2, 0, 7}, nil}, false},
		{posStep{"seek file/record", func(d Device) error { return d.Seek(Position{1, 3, 0}) }, Position{1, 3, 5}, nil}, false},
		{posStep{"read last record of file 1", read, Position{1, 4, 6}, nil}, false},
		{posStep{"seek logical only", func(d Device) error { return d.Seek(Position{0, 0, 9}) }, Position{3, 0, 9}, nil}, false},
		{posStep{"seek logical before filemark", func(d Device) error { return d.Seek(Position{0, 0, 10}) }, Position{3, 1, 10}, nil}, false},
		{posStep{"seek logical end", func(d Device) error { return d.Seek(Position{0, 0, 11}) }, Position{4, 0, 11}, nil}, false},
		{posStep{"seek logical past end", func(d Device) error { return d.Seek(Position{0, 0, 12}) }, Position{4, 0, 11}, ErrEndOfData}, true},
		{posStep{"seek logical mismatch", func(d Device) error { return d.Seek(Position{1, 2, 99}) }, Position{4, 0, 11}, errAny}, true},
		{posStep{"seek past records", func(d Device) error { return d.Seek(Position{1, 5, 0}) }, Position{}, errAny}, false},
		{posStep{"seek past files", func(d Device) error { return d.Seek(Position{5, 0, 0}) }, Position{4, 0, 11}, ErrEndOfData}, true},
		{posStep{"seek record at EOD", func(d Device) error { return d.Seek(Position{4, 1, 0}) }, Position{}, ErrEndOfData}, false},
		{posStep{"seek negative", func(d Device) error { return d.Seek(Position{-1, 0, 0}) }, Position{}, errAny}, false},
		{posStep{"seek BOT", func(d Device) error { return d.Seek(Position{}) }, Position{0, 0, 0}, nil}, false},
		{posStep{"read label again", read, Position{0, 1, 1}, nil}, false},
	}
	for _, s := range steps {
		err := s.op(d)
		switch {
		case s.wantErr == nil && err != nil:
			t.Fatalf("%s: unexpected error %v", s.name, err)
		case s.wantErr == errAny && err == nil, s.wantErr != nil && s.wantErr != errAny && !errors.Is(err, s.wantErr):
			t.Fatalf("%s: error %v, want %v", s.name, err, s.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), strings.Replace(d.Name(), ":", " ", 1)+": ") {
			t.Errorf("%s: error %q does not name the device %s", s.name, err, d.Name())
		}
		got, terr := d.Tell()
		if terr != nil {
			t.Fatalf("%s: Tell: %v", s.name, terr)
		}
		if (err == nil || s.keep) && got != s.want {
			t.Fatalf("%s: Tell = %+v, want %+v", s.name, got, s.want)
		}
		// Seek(Tell()) must be the identity.
		if err := d.Seek(got); err != nil {
			t.Fatalf("%s: Seek(Tell()) = %v", s.name, err)
		}
		if again, _ := d.Tell(); again != got {
			t.Fatalf("%s: Seek(Tell()) moved to %+v", s.name, again)
		}
	}
}

func confStatus(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	st, err := d.Status()
	if err != nil || !st.Online || !st.BOT || st.EOF || st.DoorOpen {
		t.Fatalf("blank: %+v %v", st, err)
	}
	writeFilesDev(t, d, standardFiles())
	d.Rewind()
	d.SpaceFiles(1)
	st, _ = d.Status()
	if st.BOT || !st.EOF || st.EOD || st.File != 1 || st.Record != 0 {
		t.Fatalf("after fsf 1: %+v", st)
	}
	d.SeekToEnd()
	st, _ = d.Status()
	if !st.EOD || st.File != 4 {
		t.Fatalf("at end: %+v", st)
	}
	if err := d.Eject(); err != nil {
		t.Fatal(err)
	}
	if err := d.Eject(); err != nil {
		t.Fatalf("second eject: %v", err)
	}
	st, err = d.Status()
	if err != nil || st.Online {
		t.Fatalf("ejected: %+v %v", st, err)
	}
	for name, op := range map[string]func() error{
		"read":   func() error { _, err := d.ReadRecord(make([]byte, 10)); return err },
		"write":  func() error { return d.WriteRecord([]byte("x")) },
		"rewind": d.Rewind,
		"tell":   func() error { _, err := d.Tell(); return err },
		"seek":   func() error { return d.Seek(Position{}) },
	} {
		if err := op(); !errors.Is(err, ErrNoMedium) {
			t.Errorf("%s after eject: %v, want ErrNoMedium", name, err)
		}
	}
}

func confEarlyWarning(t *testing.T, k confKind) {
	capacity := int64(2*FirstRecordSize + 4*testBS)
	d, _ := k.fresh(t, capacity, 2*testBS)
	if err := WriteLabel(d, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	if fn := d; fn.Properties().NamesFiles {
		fn.BeginFile("big")
	}
	// The record that crosses the early-warning point: a vtape reports it
	// at once; st lets that write through and fails the next with ENOSPC,
	// and Tape, which reads no status per record, reports the warning on
	// that next record (written again after the ENOSPC).
	var crossing error = ErrEarlyWarning
	if k.name != "vtape" {
		crossing = nil
	}
	steps := []struct {
		n    int
		want error
	}{
		{FirstRecordSize, nil},
		{testBS, nil},
		{testBS, nil}, // exactly at the early-warning point: not past it
		{testBS, crossing},
		{testBS, ErrEarlyWarning}, // exactly full: still written
		{1, ErrVolumeFull},
		{1, ErrVolumeFull},
	}
	for i, s := range steps {
		err := d.WriteRecord(fill(byte(i), s.n))
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("record %d: %v, want %v", i, err, s.want)
		}
		if err != nil && !strings.Contains(err.Error(), "write record at file 1") {
			t.Errorf("error %q does not say where", err)
		}
	}
	if st, _ := d.Status(); !st.EOT {
		t.Errorf("status past early warning: %+v, want EOT", st)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteRecord([]byte("x")); !errors.Is(err, ErrVolumeFull) {
		t.Fatalf("write on a full volume: %v", err)
	}
	d.Rewind()
	got := readAll(t, d)
	if len(got) != 2 || len(got[1]) != 5 || len(got[1][4]) != testBS {
		t.Fatalf("read back %d files, file 1 has %d records", len(got), len(got[1]))
	}
}

func confAppendOnly(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	files := standardFiles()
	writeFilesDev(t, d, files)
	d.Rewind()
	d.SpaceFiles(2)
	if err := d.WriteRecord(fill(9, FirstRecordSize)); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("write in the middle: %v", err)
	}
	if err := d.WriteFilemark(); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("filemark in the middle: %v", err)
	}
	d.SpaceRecords(1)
	if err := d.WriteRecord(fill(9, testBS)); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("write inside a file: %v", err)
	}
	checkVolume(t, d, files)
	if err := d.SeekToEnd(); err != nil {
		t.Fatal(err)
	}
	extra := testFile{"host._d.0", [][]byte{fill(7, FirstRecordSize), fill(8, 10)}}
	if fn := d; fn.Properties().NamesFiles {
		fn.BeginFile(extra.stem)
	}
	for _, r := range extra.records {
		if err := d.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	// Rewind ends the file with a filemark, as st does.
	if err := d.Rewind(); err != nil {
		t.Fatal(err)
	}
	checkVolume(t, d, append(files, extra))
}

func confRelabel(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	writeFilesDev(t, d, standardFiles())
	if err := WriteLabel(d, testLabel("T-002")); err != nil {
		t.Fatal(err)
	}
	d.Rewind()
	if got := readAll(t, d); len(got) != 1 {
		t.Fatalf("after relabel %d files, want the label only", len(got))
	}
	if l, err := ReadLabel(d); err != nil || l.Label != "T-002" {
		t.Fatalf("label %+v %v", l, err)
	}
}

func confCloseEndsFile(t *testing.T, k confKind) {
	d, reopen := k.fresh(t, 1<<30, 0)
	WriteLabel(d, testLabel("T-001"))
	if fn := d; fn.Properties().NamesFiles {
		fn.BeginFile("partial")
	}
	d.WriteRecord(fill(1, FirstRecordSize))
	d.WriteRecord(fill(2, testBS))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Tell(); err == nil {
		t.Error("Tell after Close accepted")
	}
	checkVolume(t, reopen(false), []testFile{{"partial", [][]byte{fill(1, FirstRecordSize), fill(2, testBS)}}})
}

func confWriteProtected(t *testing.T, k confKind) {
	d, reopen := k.fresh(t, 1<<30, 0)
	files := standardFiles()
	writeFilesDev(t, d, files)
	d.Close()
	d = reopen(true)
	if st, _ := d.Status(); !st.WriteProtected {
		t.Errorf("status %+v, want WriteProtected", st)
	}
	err := WriteLabel(d, testLabel("T-009"))
	if !errors.Is(err, ErrWriteProtected) || !strings.Contains(err.Error(), "write-protected") {
		t.Fatalf("relabel of a protected volume: %v", err)
	}
	d.SeekToEnd()
	if err := d.WriteFilemark(); !errors.Is(err, ErrWriteProtected) {
		t.Fatalf("filemark on a protected volume: %v", err)
	}
	checkVolume(t, d, files)
}

func confEmptyFile(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	WriteLabel(d, testLabel("T-001"))
	if err := d.WriteFilemark(); err != nil { // an empty file 1
		t.Fatal(err)
	}
	if fn := d; fn.Properties().NamesFiles {
		fn.BeginFile("after")
	}
	d.WriteRecord(fill(3, FirstRecordSize))
	d.WriteFilemark()
	d.Rewind()
	got := readAll(t, d)
	if len(got) != 3 || len(got[1]) != 0 || len(got[2]) != 1 {
		t.Fatalf("read %d files (%v)", len(got), got)
	}
}

func confShortBuffer(t *testing.T, k confKind) {
	d, _ := k.fresh(t, 1<<30, 0)
	writeFilesDev(t, d, standardFiles())
	d.Seek(Position{File: 1})
	if _, err := d.ReadRecord(make([]byte, 100)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
}
