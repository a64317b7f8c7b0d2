package taper

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVtape runs a random sequence of device operations against a vtape
// and checks it against a model of the content (the records of each file):
// every record read is the one written at that position, a filemark comes
// exactly after a file's last record, Seek(Tell()) does not move, and a
// reopened vtape reads back the same volume.
func FuzzVtape(f *testing.F) {
	f.Add([]byte{1, 0, 1, 1, 1, 1, 2, 0, 3, 3, 3, 3, 3, 3})
	f.Add([]byte{1, 0, 1, 2, 2, 6, 1, 0, 1, 1, 1, 200, 2, 8, 4, 255, 5, 1, 3, 3, 7, 9, 3})
	f.Add([]byte{0, 2, 2, 2, 4, 2, 4, 254, 5, 3, 5, 253, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{1, 100, 1, 1, 1, 0, 1, 0, 2, 7, 5, 3, 8, 3, 3, 3, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		dir := filepath.Join(t.TempDir(), "slot")
		os.Mkdir(dir, 0o750)
		const capacity, ew = 3*FirstRecordSize + 8*testBS, 2 * testBS
		v, err := OpenVtape(dir, capacity, ew)
		if err != nil {
			t.Fatal(err)
		}
		v.noSync = true
		defer func() { v.Close() }()
		if err := WriteLabel(v, testLabel("F-1")); err != nil {
			t.Fatal(err)
		}
		label, _ := testLabel("F-1").Marshal()
		model := [][][]byte{{label}}
		buf := make([]byte, 64<<10)
		next := func(i *int) byte {
			*i++
			if *i < len(ops) {
				return ops[*i]
			}
			return 0
		}
		for i := 0; i < len(ops); i++ {
			before, err := v.Tell()
			if err != nil {
				t.Fatal(err)
			}
			stBefore, _ := v.Status()
			writing := stBefore.EOD && before.File < int64(len(model))
			switch ops[i] % 10 {
			case 0:
				err = v.Rewind()
			case 1:
				var p []byte
				switch n := next(&i); n % 4 {
				case 0:
					p = fill(n, FirstRecordSize)
				case 1:
					p = fill(n, testBS)
				case 2:
					p = fill(n, 1+int(n)%testBS)
				case 3:
					p = fill(n, testBS+int(n))
				}
				err = v.WriteRecord(p)
				if err == nil || errors.Is(err, ErrEarlyWarning) {
					switch {
					case before.File == 0 && before.Record == 0:
						model = [][][]byte{{p}}
					case before.File == int64(len(model)):
						model = append(model, [][]byte{p})
					default:
						model[before.File] = append(model[before.File], p)
					}
					err = nil
				}
			case 2:
				err = v.WriteFilemark()
				if err == nil {
					switch {
					case before.File == 0 && before.Record == 0:
						model = [][][]byte{{}}
					case before.File == int64(len(model)):
						model = append(model, [][]byte{})
					}
				}
			case 3:
				var n int
				n, err = v.ReadRecord(buf)
				switch {
				case writing:
					if err == nil || !bytes.Contains([]byte(err.Error()), []byte("being written")) {
						t.Fatalf("op %d: read while writing at %+v: %v", i, before, err)
					}
				case before.File >= int64(len(model)):
					if !errors.Is(err, ErrEndOfData) {
						t.Fatalf("op %d: read at %+v past the last file: %v", i, before, err)
					}
				case before.Record >= int64(len(model[before.File])):
					if !errors.Is(err, io.EOF) {
						t.Fatalf("op %d: read at %+v, the end of a file: %v, want EOF", i, before, err)
					}
				case err != nil:
					t.Fatalf("op %d: read at %+v: %v", i, before, err)
				case !bytes.Equal(buf[:n], model[before.File][before.Record]):
					t.Fatalf("op %d: record at %+v differs from the one written", i, before)
				}
			case 4:
				err = v.SpaceFiles(int(int8(next(&i))) % 5)
			case 5:
				err = v.SpaceRecords(int(int8(next(&i))) % 5)
			case 6:
				err = v.SeekToEnd()
			case 7:
				n := next(&i)
				err = v.Seek(Position{File: int64(n % 5), Record: int64(n / 5 % 6)})
			case 8:
				err = v.Close()
				if err == nil {
					v, err = OpenVtape(dir, capacity, ew)
					if err != nil {
						t.Fatal(err)
					}
					v.noSync = true
				}
			case 9:
				err = v.BeginFile("f")
			}
			_ = err
			p, err := v.Tell()
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := v.Status(); st.File != p.File || st.Record != p.Record {
				t.Fatalf("op %d: Status %+v and Tell %+v disagree", i, st, p)
			}
			if st, _ := v.Status(); !st.EOD { // Seek ends a file being written
				if err := v.Seek(p); err != nil {
					t.Fatalf("op %d: Seek(Tell() = %+v): %v", i, p, err)
				}
				if q, _ := v.Tell(); q != p {
					t.Fatalf("op %d: Seek(%+v) went to %+v", i, p, q)
				}
			}
		}
		v.Close()
		v, err = OpenVtape(dir, capacity, ew)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, v)
		if len(got) != len(model) {
			t.Fatalf("reopened volume has %d files, the model %d", len(got), len(model))
		}
		for i := range got {
			if len(got[i]) != len(model[i]) {
				t.Fatalf("file %d: %d records, want %d", i, len(got[i]), len(model[i]))
			}
			for j := range got[i] {
				if !bytes.Equal(got[i][j], model[i][j]) {
					t.Fatalf("file %d record %d differs", i, j)
				}
			}
		}
	})
}
