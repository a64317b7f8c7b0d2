package taper

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testBS = 4096

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func testLabel(name string) Label {
	return Label{Datestamp: NeverWritten, Label: name, Org: "Daily Set", Blocksize: testBS, Created: testTime}
}

// fill returns n bytes of a pattern depending on seed, so that records
// differ from each other.
func fill(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func newVtape(t *testing.T, capacity, ew int64) (*Vtape, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "slot1")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	v, err := OpenVtape(dir, capacity, ew)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir
}

// testFile is one tape file: its stem and its records.
type testFile struct {
	stem    string
	records [][]byte
}

// standardVolume is: label; file 1 = header + 3 records (last short);
// file 2 = header only; file 3 = a short first record only.
func standardFiles() []testFile {
	return []testFile{
		{"host._a.0", [][]byte{fill(1, FirstRecordSize), fill(2, testBS), fill(3, testBS), fill(4, 1000)}},
		{"host._b.1", [][]byte{fill(5, FirstRecordSize)}},
		{"host._c.2", [][]byte{fill(6, 100)}},
	}
}

func writeVolume(t *testing.T, v *Vtape, files []testFile) {
	t.Helper()
	if err := WriteLabel(v, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := v.BeginFile(f.stem); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.records {
			if err := v.WriteRecord(r); err != nil {
				t.Fatalf("write %s: %v", f.stem, err)
			}
		}
		if err := v.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads the whole volume from the current position: records per
// file until end of data.
func readAll(t *testing.T, d Device) [][][]byte {
	t.Helper()
	var out [][][]byte
	var cur [][]byte
	buf := make([]byte, 64<<10)
	for i := 0; i < 1000; i++ {
		n, err := d.ReadRecord(buf)
		switch {
		case errors.Is(err, io.EOF):
			out = append(out, cur)
			cur = nil
		case errors.Is(err, ErrEndOfData):
			if cur != nil {
				t.Fatalf("end of data inside a file")
			}
			return out
		case err != nil:
			t.Fatal(err)
		default:
			cur = append(cur, append([]byte(nil), buf[:n]...))
		}
	}
	t.Fatal("no end of data")
	return nil
}

func checkVolume(t *testing.T, d Device, files []testFile) {
	t.Helper()
	if err := d.Rewind(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, d)
	if len(got) != len(files)+1 {
		t.Fatalf("read %d files, want %d", len(got), len(files)+1)
	}
	if len(got[0]) != 1 || len(got[0][0]) != LabelSize {
		t.Fatalf("file 0: %d records, want one label record", len(got[0]))
	}
	for i, f := range files {
		g := got[i+1]
		if len(g) != len(f.records) {
			t.Fatalf("file %d: %d records, want %d", i+1, len(g), len(f.records))
		}
		for j := range g {
			if !bytes.Equal(g[j], f.records[j]) {
				t.Fatalf("file %d record %d: %d bytes differ from the %d written", i+1, j, len(g[j]), len(f.records[j]))
			}
		}
	}
}

func TestVtapeWriteRead(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	files := standardFiles()
	writeVolume(t, v, files)
	checkVolume(t, v, files)

	want := []string{"00000.LABEL", "00001.host._a.0", "00002.host._b.1", "00003.host._c.2"}
	if got := v.FileNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("file names %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(want) {
		t.Fatalf("directory holds %d entries, want %d (no sidecars)", len(ents), len(want))
	}

	// A fresh open recovers the record boundaries from the label alone.
	v.Close()
	v2, err := OpenVtape(dir, 1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	checkVolume(t, v2, files)
	l, err := ReadLabel(v2)
	if err != nil || l.Label != "T-001" || l.Blocksize != testBS {
		t.Fatalf("ReadLabel = %+v, %v", l, err)
	}
}

type posStep struct {
	name    string
	op      func(d Device) error
	want    Position
	wantErr error // nil: no error; errAny: some error
}

var errAny = errors.New("any error")

func TestVtapePositions(t *testing.T) {
	v, _ := newVtape(t, 1<<30, 0)
	writeVolume(t, v, standardFiles())
	// Logical blocks: file 0 = 1 record + filemark (0..1), file 1 = 4
	// records + filemark (2..6), file 2 = 1 + 1 (7..8), file 3 = 1 + 1
	// (9..10), end of data = 11.
	read := func(d Device) error { _, err := d.ReadRecord(make([]byte, 64<<10)); return err }
	steps := []posStep{
		{"rewind", func(d Device) error { return d.Rewind() }, Position{0, 0, 0}, nil},
		{"read label", read, Position{0, 1, 1}, nil},
		{"read filemark", read, Position{1, 0, 2}, io.EOF},
		{"fsr 2", func(d Device) error { return d.SpaceRecords(2) }, Position{1, 2, 4}, nil},
		{"bsr 1", func(d Device) error { return d.SpaceRecords(-1) }, Position{1, 1, 3}, nil},
		{"fsr past filemark", func(d Device) error { return d.SpaceRecords(4) }, Position{1, 1, 3}, errAny},
		{"bsr past start", func(d Device) error { return d.SpaceRecords(-2) }, Position{1, 1, 3}, errAny},
		{"fsr to filemark", func(d Device) error { return d.SpaceRecords(3) }, Position{1, 4, 6}, nil},
		{"read at filemark", read, Position{2, 0, 7}, io.EOF},
		{"bsf 1", func(d Device) error { return d.SpaceFiles(-1) }, Position{1, 4, 6}, nil},
		{"fsf 2", func(d Device) error { return d.SpaceFiles(2) }, Position{3, 0, 9}, nil},
		{"fsf 0", func(d Device) error { return d.SpaceFiles(0) }, Position{3, 0, 9}, nil},
		{"fsf past end", func(d Device) error { return d.SpaceFiles(2) }, Position{4, 0, 11}, ErrEndOfData},
		{"read at end", read, Position{4, 0, 11}, ErrEndOfData},
		{"fsr at end", func(d Device) error { return d.SpaceRecords(1) }, Position{4, 0, 11}, ErrEndOfData},
		{"bsf 3 from end", func(d Device) error { return d.SpaceFiles(-3) }, Position{1, 4, 6}, nil},
		{"bsf past BOT", func(d Device) error { return d.SpaceFiles(-2) }, Position{0, 0, 0}, errAny},
		{"seek to end", func(d Device) error { return d.SeekToEnd() }, Position{4, 0, 11}, nil},
		{"seek file 2", func(d Device) error { return d.Seek(Position{2, 0, 7}) }, Position{2, 0, 7}, nil},
		{"seek file/record", func(d Device) error { return d.Seek(Position{1, 3, 0}) }, Position{1, 3, 5}, nil},
		{"read last record of file 1", read, Position{1, 4, 6}, nil},
		{"seek logical only", func(d Device) error { return d.Seek(Position{0, 0, 9}) }, Position{3, 0, 9}, nil},
		{"seek logical before filemark", func(d Device) error { return d.Seek(Position{0, 0, 10}) }, Position{3, 1, 10}, nil},
		{"seek logical end", func(d Device) error { return d.Seek(Position{0, 0, 11}) }, Position{4, 0, 11}, nil},
		{"seek logical past end", func(d Device) error { return d.Seek(Position{0, 0, 12}) }, Position{4, 0, 11}, ErrEndOfData},
		{"seek logical mismatch", func(d Device) error { return d.Seek(Position{1, 2, 99}) }, Position{4, 0, 11}, errAny},
		{"seek past records", func(d Device) error { return d.Seek(Position{1, 5, 0}) }, Position{4, 0, 11}, errAny},
		{"seek past files", func(d Device) error { return d.Seek(Position{5, 0, 0}) }, Position{4, 0, 11}, ErrEndOfData},
		{"seek record at EOD", func(d Device) error { return d.Seek(Position{4, 1, 0}) }, Position{4, 0, 11}, ErrEndOfData},
		{"seek negative", func(d Device) error { return d.Seek(Position{-1, 0, 0}) }, Position{4, 0, 11}, errAny},
		{"seek BOT", func(d Device) error { return d.Seek(Position{}) }, Position{0, 0, 0}, nil},
	}
	for _, s := range steps {
		err := s.op(v)
		switch {
		case s.wantErr == nil && err != nil:
			t.Fatalf("%s: unexpected error %v", s.name, err)
		case s.wantErr == errAny && err == nil, s.wantErr != nil && s.wantErr != errAny && !errors.Is(err, s.wantErr):
			t.Fatalf("%s: error %v, want %v", s.name, err, s.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "vtape "+v.dir+": ") {
			t.Errorf("%s: error %q does not name the device", s.name, err)
		}
		got, err := v.Tell()
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want {
			t.Fatalf("%s: Tell = %+v, want %+v", s.name, got, s.want)
		}
		// Seek(Tell()) must be the identity.
		if err := v.Seek(got); err != nil {
			t.Fatalf("%s: Seek(Tell()) = %v", s.name, err)
		}
		if again, _ := v.Tell(); again != got {
			t.Fatalf("%s: Seek(Tell()) moved to %+v", s.name, again)
		}
	}
}

func TestVtapeStatus(t *testing.T) {
	v, _ := newVtape(t, 1<<30, 0)
	st, err := v.Status()
	if err != nil || !st.Online || !st.BOT || !st.EOD || st.EOF {
		t.Fatalf("blank: %+v %v", st, err)
	}
	writeVolume(t, v, standardFiles())
	v.Rewind()
	v.SpaceFiles(1)
	st, _ = v.Status()
	if st.BOT || !st.EOF || st.EOD || st.File != 1 || st.Record != 0 {
		t.Fatalf("after fsf 1: %+v", st)
	}
	v.SeekToEnd()
	st, _ = v.Status()
	if !st.EOD || st.File != 4 {
		t.Fatalf("at end: %+v", st)
	}
	if err := v.Eject(); err != nil {
		t.Fatal(err)
	}
	st, err = v.Status()
	if err != nil || st.Online {
		t.Fatalf("ejected: %+v %v", st, err)
	}
	for name, op := range map[string]func() error{
		"read":   func() error { _, err := v.ReadRecord(make([]byte, 10)); return err },
		"write":  func() error { return v.WriteRecord([]byte("x")) },
		"rewind": v.Rewind,
		"tell":   func() error { _, err := v.Tell(); return err },
		"open":   func() error { _, err := v.OpenFile(0); return err },
	} {
		if err := op(); !errors.Is(err, ErrNoMedium) {
			t.Errorf("%s after eject: %v, want ErrNoMedium", name, err)
		}
	}
}

func TestVtapeEarlyWarningThenFull(t *testing.T) {
	capacity := int64(2*FirstRecordSize + 4*testBS)
	v, _ := newVtape(t, capacity, 2*testBS)
	if err := WriteLabel(v, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	v.BeginFile("big")
	steps := []struct {
		n    int
		want error
	}{
		{FirstRecordSize, nil},
		{testBS, nil},
		{testBS, nil}, // exactly at the early-warning point: not past it
		{testBS, ErrEarlyWarning},
		{testBS, ErrEarlyWarning}, // exactly full: still written
		{1, ErrVolumeFull},
	}
	for i, s := range steps {
		err := v.WriteRecord(fill(byte(i), s.n))
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("record %d: %v, want %v", i, err, s.want)
		}
		if err != nil && !strings.Contains(err.Error(), "write record at file 1") {
			t.Errorf("error %q does not say where", err)
		}
	}
	if st, _ := v.Status(); !st.EOT {
		t.Errorf("status past early warning: %+v, want EOT", st)
	}
	if err := v.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	// A new file on a full volume is refused before anything is created.
	v.BeginFile("more")
	if err := v.WriteRecord([]byte("x")); !errors.Is(err, ErrVolumeFull) {
		t.Fatalf("write on a full volume: %v", err)
	}
	if n := len(v.FileNames()); n != 2 {
		t.Fatalf("%d files after a refused write, want 2", n)
	}
	v.Rewind()
	got := readAll(t, v)
	if len(got) != 2 || len(got[1]) != 5 || len(got[1][4]) != testBS {
		t.Fatalf("read back %d files, file 1 has %d records", len(got), len(got[1]))
	}
}

func TestVtapeAppendOnlyAtEnd(t *testing.T) {
	v, _ := newVtape(t, 1<<30, 0)
	files := standardFiles()
	writeVolume(t, v, files)
	v.Rewind()
	v.SpaceFiles(2) // start of file 2 of 4
	if err := v.WriteRecord(fill(9, FirstRecordSize)); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("write in the middle: %v", err)
	}
	if err := v.WriteFilemark(); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("filemark in the middle: %v", err)
	}
	v.SpaceRecords(1)
	if err := v.WriteRecord(fill(9, testBS)); !errors.Is(err, ErrNotAtEnd) {
		t.Fatalf("write inside a file: %v", err)
	}
	checkVolume(t, v, files) // nothing changed

	if err := v.SeekToEnd(); err != nil {
		t.Fatal(err)
	}
	extra := testFile{"host._d.0", [][]byte{fill(7, FirstRecordSize), fill(8, 10)}}
	v.BeginFile(extra.stem)
	for _, r := range extra.records {
		if err := v.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	// Rewind ends the file with a filemark, as st does.
	if err := v.Rewind(); err != nil {
		t.Fatal(err)
	}
	checkVolume(t, v, append(files, extra))
}

func TestVtapeRewriteAtBOTErases(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	writeVolume(t, v, standardFiles())
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a tape file"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := testLabel("T-002")
	l.Blocksize = 2 * testBS
	if err := WriteLabel(v, l); err != nil {
		t.Fatal(err)
	}
	if got := v.FileNames(); !reflect.DeepEqual(got, []string{"00000.LABEL"}) {
		t.Fatalf("after relabel: %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Errorf("a file that is not a tape file was removed: %v", err)
	}
	// The new label's blocksize is the geometry now.
	v.BeginFile("x")
	v.WriteRecord(fill(1, FirstRecordSize))
	if err := v.WriteRecord(fill(2, 2*testBS)); err != nil {
		t.Fatalf("record of the new blocksize: %v", err)
	}
	v.WriteFilemark()
	v.Rewind()
	got := readAll(t, v)
	if len(got) != 2 || len(got[1]) != 2 || len(got[1][1]) != 2*testBS {
		t.Fatalf("after relabel read %d files", len(got))
	}
	if l, err := ReadLabel(v); err != nil || l.Label != "T-002" {
		t.Fatalf("label %+v %v", l, err)
	}
}

func TestVtapeGeometryErrors(t *testing.T) {
	v, _ := newVtape(t, 1<<30, 0)
	if err := WriteLabel(v, testLabel("T-001")); err != nil {
		t.Fatal(err)
	}
	v.BeginFile("f")
	if err := v.WriteRecord(nil); err == nil {
		t.Error("empty record accepted")
	}
	if err := v.WriteRecord(fill(1, FirstRecordSize+1)); err == nil || !strings.Contains(err.Error(), "first record") {
		t.Errorf("oversized first record: %v", err)
	}
	if err := v.WriteRecord(fill(1, FirstRecordSize)); err != nil {
		t.Fatal(err)
	}
	if err := v.BeginFile("g"); err == nil {
		t.Error("BeginFile while writing accepted")
	}
	if err := v.WriteRecord(fill(2, testBS+1)); err == nil || !strings.Contains(err.Error(), "blocksize") {
		t.Errorf("record larger than the blocksize: %v", err)
	}
	if err := v.WriteRecord(fill(2, 10)); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteRecord(fill(3, 10)); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("record after a short one: %v", err)
	}
	if _, err := v.ReadRecord(make([]byte, LabelSize)); err == nil {
		t.Error("read while writing accepted")
	}
	if err := v.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	// Reading with a buffer smaller than the record fails and does not move.
	v.Seek(Position{File: 1})
	if _, err := v.ReadRecord(make([]byte, 100)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	if p, _ := v.Tell(); p.File != 1 || p.Record != 0 {
		t.Errorf("short-buffer read moved to %+v", p)
	}
	for _, stem := range []string{"", ".", "..", "a/b", "nul\x00", strings.Repeat("x", 300)} {
		if err := v.BeginFile(stem); err == nil {
			t.Errorf("BeginFile(%q) accepted", stem)
		}
	}
}

func TestVtapeWriteProtected(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	writeVolume(t, v, standardFiles())
	if err := os.Chmod(dir, 0o550); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o750)
	if st, _ := v.Status(); !st.WriteProtected {
		t.Errorf("status %+v, want WriteProtected", st)
	}
	if err := WriteLabel(v, testLabel("T-009")); !errors.Is(err, ErrWriteProtected) {
		t.Fatalf("relabel of a protected volume: %v", err)
	}
	v.SeekToEnd()
	if err := v.WriteFilemark(); !errors.Is(err, ErrWriteProtected) {
		t.Fatalf("filemark on a protected volume: %v", err)
	}
	if n := len(v.FileNames()); n != 4 {
		t.Fatalf("%d files, want 4", n)
	}
	if l, err := ReadLabel(v); err != nil || l.Label != "T-001" {
		t.Fatalf("label %+v %v", l, err)
	}
}

func TestVtapeOpenFile(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	files := standardFiles()
	writeVolume(t, v, files)
	f, err := v.OpenFile(1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := bytes.Join(files[0].records, nil)
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, want) {
		t.Fatalf("OpenFile(1) gave %d bytes, want %d", len(got), len(want))
	}
	mid := make([]byte, 50)
	if _, err := f.ReadAt(mid, FirstRecordSize+testBS+7); err != nil || !bytes.Equal(mid, want[FirstRecordSize+testBS+7:][:50]) {
		t.Fatalf("ReadAt: %v", err)
	}
	if _, err := v.OpenFile(4); !errors.Is(err, ErrEndOfData) {
		t.Errorf("OpenFile past the end: %v", err)
	}
	if _, err := v.OpenFile(-1); err == nil {
		t.Error("OpenFile(-1) accepted")
	}
	// The documented restore: dd skips the 32 KiB header record.
	dd, err := exec.LookPath("dd")
	if err != nil {
		t.Skip("no dd")
	}
	out, err := exec.Command(dd, "if="+filepath.Join(dir, "00001.host._a.0"), "bs=32k", "skip=1", "status=none").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want[FirstRecordSize:]) {
		t.Fatalf("dd bs=32k skip=1 gave %d bytes, want the %d after the header", len(out), len(want)-FirstRecordSize)
	}
}

func TestOpenVtapeErrors(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, files ...string) string {
		dir := filepath.Join(base, name)
		os.Mkdir(dir, 0o750)
		for _, f := range files {
			os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o640)
		}
		return dir
	}
	cases := []struct {
		name     string
		dir      string
		capacity int64
		ew       int64
		want     error
		text     string
	}{
		{"missing", filepath.Join(base, "nope"), 1 << 20, 0, ErrNoMedium, "does not exist"},
		{"not a dir", mk("f") + "/00000.LABEL", 1 << 20, 0, nil, "not a directory"},
		{"gap", mk("gap", "00000.LABEL", "00001.a", "00003.c"), 1 << 20, 0, nil, "00002 is missing"},
		{"duplicate", mk("dup", "00000.LABEL", "00001.a", "00001.b"), 1 << 20, 0, nil, "two tape files numbered 1"},
		{"non-canonical", mk("nc", "00000.LABEL", "000001.a"), 1 << 20, 0, nil, "not written as"},
		{"zero capacity", mk("z"), 0, 0, nil, "capacity"},
		{"early warning too big", mk("ew"), 1 << 20, 1 << 20, nil, "early warning"},
		{"negative early warning", mk("ew2"), 1 << 20, -1, nil, "early warning"},
	}
	os.WriteFile(filepath.Join(base, "f", "00000.LABEL"), nil, 0o640)
	for _, c := range cases {
		_, err := OpenVtape(c.dir, c.capacity, c.ew)
		if err == nil || c.want != nil && !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %v containing %q", c.name, err, c.want, c.text)
		}
	}
	// Names that are not tape files are ignored.
	v, err := OpenVtape(mk("ok", "00000.LABEL", "00001.a", "README", "1234.x", "00002"), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.FileNames()); n != 2 {
		t.Errorf("%d tape files, want 2", n)
	}
}

func TestVtapeCloseEndsFile(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	WriteLabel(v, testLabel("T-001"))
	v.BeginFile("partial")
	v.WriteRecord(fill(1, FirstRecordSize))
	v.WriteRecord(fill(2, testBS))
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := v.Tell(); err == nil {
		t.Error("Tell after Close accepted")
	}
	v2, err := OpenVtape(dir, 1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	checkVolume(t, v2, []testFile{{"partial", [][]byte{fill(1, FirstRecordSize), fill(2, testBS)}}})
}

func TestDefaultEarlyWarning(t *testing.T) {
	for _, c := range []struct{ capacity, want int64 }{
		{100 << 30, 1 << 30},
		{50 << 20, 1 << 20},
		{1 << 20, 512 << 10},
		{1, 0},
	} {
		if got := DefaultEarlyWarning(c.capacity); got != c.want {
			t.Errorf("DefaultEarlyWarning(%d) = %d, want %d", c.capacity, got, c.want)
		}
	}
}

// failingWrite makes every write to a tape file put half of the record
// down and then fail with err, like a file system that fills up (ENOSPC)
// or a disk that fails (EIO) in the middle of a write.
func failingWrite(err error) func(f *os.File, p []byte) (int, error) {
	return func(f *os.File, p []byte) (int, error) {
		n, _ := f.Write(p[:len(p)/2])
		return n, err
	}
}

// When the first record of a new tape file fails (the file system of the
// vtape is full), no empty file stays: the volume ends at the previous
// filemark, as a drive that wrote nothing would leave it, and a later
// write starts the same file again under the name it was given.
func TestVtapeFailedFirstRecordLeavesNoFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"ENOSPC", syscall.ENOSPC, ErrVolumeFull},
		{"EIO", syscall.EIO, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, dir := newVtape(t, 1<<30, 0)
			files := standardFiles()[:1]
			writeVolume(t, v, files)
			if err := v.BeginFile("host._new.0"); err != nil {
				t.Fatal(err)
			}
			v.write = failingWrite(tc.err)
			err := v.WriteRecord(fill(9, FirstRecordSize))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := v.FileNames(); !reflect.DeepEqual(got, []string{"00000.LABEL", "00001.host._a.0"}) {
				t.Fatalf("files after the failed write: %v", got)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Fatalf("the slot directory holds %d files, want the label and file 1", len(ents))
			}
			if pos, err := v.Tell(); err != nil || pos.File != 2 || pos.Record != 0 {
				t.Fatalf("position after the failed write: %+v %v, want file 2 record 0", pos, err)
			}
			// The volume reads back as it was, and takes the file again.
			checkVolume(t, v, files)
			if err := v.SeekToEnd(); err != nil {
				t.Fatal(err)
			}
			v.write = nil
			if err := v.WriteRecord(fill(9, FirstRecordSize)); err != nil {
				t.Fatal(err)
			}
			if err := v.WriteFilemark(); err != nil {
				t.Fatal(err)
			}
			if got := v.FileNames(); len(got) != 3 || got[2] != "00002.host._new.0" {
				t.Fatalf("files after writing again: %v", got)
			}
		})
	}
}

// A failure after some records keeps the records written: the file is
// truncated at a record boundary (the caller records it as failed), and a
// failed label write leaves a blank volume, not an empty label file.
func TestVtapeFailedLaterRecordAndLabel(t *testing.T) {
	v, dir := newVtape(t, 1<<30, 0)
	writeVolume(t, v, nil)
	if err := v.BeginFile("host._a.0"); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]byte{fill(1, FirstRecordSize), fill(2, testBS)} {
		if err := v.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	v.write = failingWrite(syscall.ENOSPC)
	if err := v.WriteRecord(fill(3, testBS)); !errors.Is(err, ErrVolumeFull) {
		t.Fatalf("err = %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "00001.host._a.0"))
	if err != nil || fi.Size() != FirstRecordSize+testBS {
		t.Fatalf("truncated file: %v %v, want the two records written", fi, err)
	}

	v.write = nil
	if err := v.Rewind(); err != nil {
		t.Fatal(err)
	}
	v.write = failingWrite(syscall.ENOSPC)
	if err := WriteLabel(v, testLabel("T-002")); !errors.Is(err, ErrVolumeFull) {
		t.Fatalf("label: err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a failed label left %d files; want a blank volume", len(ents))
	}
	v.write = nil
	if _, err := ReadLabel(v); !errors.Is(err, ErrBlank) {
		t.Fatalf("ReadLabel after a failed label: %v, want ErrBlank", err)
	}
}
