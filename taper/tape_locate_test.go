package taper

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// These tests inject positioning failures into the FUSE fake st drive
// (fakest.Drive.FailOp, SetPosition) and check that Tape re-establishes the
// position from the beginning of the tape, never moves from a stale
// tracked position and never spaces to the end of data (MTEOM) to read.

// locateVolume is a volume of files whose every record names itself, so
// that a read from the wrong place shows.
type locateVolume struct {
	files  [][][]byte // files[f][r]; file 0 stands for the label
	starts []Position // where each file starts, from Tell while writing
}

func locateRecord(f, r int) []byte {
	b := []byte(fmt.Sprintf("file %d record %d|", f, r))
	return append(b, fill(byte(f*16+r), 512+(f*131+r*17)%1500)...)
}

// writeLocateVolume writes nfiles files (plus file 0) of a few records
// each and closes the tape, so that a later open starts afresh.
func writeLocateVolume(t *testing.T, d *fakest.Drive, nfiles int, rnd *rand.Rand) locateVolume {
	t.Helper()
	tp := openFUSETape(t, d)
	var v locateVolume
	for f := 0; f <= nfiles; f++ {
		p, err := tp.Tell()
		if err != nil {
			t.Fatal(err)
		}
		v.starts = append(v.starts, p)
		n := 1
		if f > 0 {
			n = 2 + rnd.IntN(6)
		}
		var recs [][]byte
		for r := range n {
			rec := locateRecord(f, r)
			if err := tp.WriteRecord(rec); err != nil {
				t.Fatalf("write file %d record %d: %v", f, r, err)
			}
			recs = append(recs, rec)
		}
		if err := tp.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
		v.files = append(v.files, recs)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	return v
}

// pos is the catalog's position of record r of file f.
func (v locateVolume) pos(f, r int) Position {
	if f < len(v.starts) {
		s := v.starts[f]
		return Position{File: s.File, Record: int64(r), Logical: s.Logical + int64(r)}
	}
	// Past the end of data, as a stale catalog would have it.
	last := v.starts[len(v.starts)-1]
	l := last.Logical + int64(len(v.files[len(v.files)-1])) + 1 + int64(f-len(v.starts))*5
	return Position{File: int64(f), Record: int64(r), Logical: l + int64(r)}
}

func noMTEOM(t *testing.T, trace []string) {
	t.Helper()
	for _, e := range trace {
		if strings.HasPrefix(e, "MTEOM") {
			t.Fatalf("positioning for a read spaced to the end of data: %q", trace)
		}
	}
}

func countOps(trace []string, name string) int {
	n := 0
	for _, e := range trace {
		if strings.HasPrefix(e, name+" ") {
			n++
		}
	}
	return n
}

func TestTapeSeekRelocatesAfterLocateErrorThroughFUSE(t *testing.T) {
	for _, posFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("MTIOCPOS fails %v", posFails), func(t *testing.T) {
			d := fakest.Mount(t, fakest.Options{})
			v := writeLocateVolume(t, d, 5, rand.New(rand.NewPCG(1, 2)))
			var logs bytes.Buffer
			tp, err := OpenTape(d.Path(fakest.NST0), WithReadOnly(), WithTapeLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer tp.Close()
			buf := make([]byte, 64<<10)
			readAt := func(f, r int) {
				t.Helper()
				for ; r < len(v.files[f]); r++ {
					n, err := tp.ReadRecord(buf)
					if err != nil {
						t.Fatalf("file %d record %d: %v", f, r, err)
					}
					if !bytes.Equal(buf[:n], v.files[f][r]) {
						t.Fatalf("file %d record %d: read %.20q", f, r, buf[:n])
					}
				}
			}
			// A first image, located normally.
			if err := tp.Seek(v.pos(1, 0)); err != nil {
				t.Fatal(err)
			}
			readAt(1, 0)

			// The locate to an image in the middle of the volume fails.
			d.FailOp(mtio.MTSEEK, 1, syscall.EIO)
			if posFails {
				d.SetPosition(false)
			}
			d.ResetTrace()
			target := v.pos(3, 1)
			if err := tp.Seek(target); err != nil {
				t.Fatalf("seek after a failed MTSEEK: %v", err)
			}
			want := []string{fmt.Sprintf("MTSEEK %d EIO", target.Logical), "MTREW 1", "MTFSF 3", "MTFSR 1"}
			if got := d.Trace(); !slices.Equal(got, want) {
				t.Fatalf("trace %q, want %q (re-positioned from the beginning, not from the stale position)", got, want)
			}
			readAt(3, 1)
			if !strings.Contains(logs.String(), fmt.Sprintf("the drive failed to locate logical block %d", target.Logical)) ||
				!strings.Contains(logs.String(), "re-positioned from the beginning of the tape") {
				t.Errorf("log does not say what happened:\n%s", logs.String())
			}

			// Further images, backwards and forwards, still read right,
			// with one rewind in all and no spacing to the end of data.
			for _, f := range []int{2, 5, 4} {
				if err := tp.Seek(v.pos(f, 0)); err != nil {
					t.Fatalf("seek to file %d: %v", f, err)
				}
				readAt(f, 0)
			}
			trace := d.Trace()
			noMTEOM(t, trace)
			if n := countOps(trace, "MTREW"); n != 1 {
				t.Errorf("%d rewinds, want 1: %q", n, trace)
			}
			if posFails && countOps(trace, "MTSEEK") != 1 {
				t.Errorf("MTSEEK tried again though MTIOCPOS fails: %q", trace)
			}
		})
	}
}

func TestTapeSeekFailureSaysWhatHappenedThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	v := writeLocateVolume(t, d, 4, rand.New(rand.NewPCG(3, 4)))
	tp, err := OpenTape(d.Path(fakest.NST0), WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()

	// The locate fails, and so does the way from the beginning.
	d.FailOp(mtio.MTSEEK, 1, syscall.EIO)
	d.FailOp(mtio.MTFSF, 1, syscall.EIO)
	d.ResetTrace()
	target := v.pos(3, 0)
	err = tp.Seek(target)
	if err == nil {
		t.Fatal("seek succeeded though MTSEEK and MTFSF failed")
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("the drive failed to locate logical block %d", target.Logical),
		"re-positioning from the beginning of the tape failed too",
		"MTFSF 3",
		"Clean the drive and try again",
		"restore from another copy",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if errors.Is(err, ErrEndOfData) || strings.Contains(msg, "overwritten") {
		t.Errorf("an I/O error reported as the end of data or an overwritten volume: %v", err)
	}
	// The tracked position is forgotten: relative moves ask the drive
	// first, and the next seek works.
	if err := tp.Seek(target); err != nil {
		t.Fatalf("seek again: %v", err)
	}
	buf := make([]byte, 64<<10)
	if n, err := tp.ReadRecord(buf); err != nil || !bytes.Equal(buf[:n], v.files[3][0]) {
		t.Fatalf("read after the second seek: %.20q %v", buf[:n], err)
	}

	// Past the end of data (a stale catalog): end of data, found from
	// the beginning of the tape, without MTEOM.
	err = tp.Seek(v.pos(7, 0))
	if !errors.Is(err, ErrEndOfData) || !strings.Contains(err.Error(), "the volume ends before file 7") {
		t.Fatalf("seek past the end of data: %v", err)
	}
	noMTEOM(t, d.Trace())
}

// TestTapeSeekPropertyThroughFUSE seeks to random places on a volume while
// random positioning operations fail: every seek that succeeds is followed
// by the right record, every one that fails says so, and no seek spaces to
// the end of data.
func TestTapeSeekPropertyThroughFUSE(t *testing.T) {
	d := fakest.Mount(t, fakest.Options{})
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 14))
	v := writeLocateVolume(t, d, 8, rnd)
	open := func() *Tape {
		tp, err := OpenTape(d.Path(fakest.NST0), WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	tp := open()
	defer func() { tp.Close() }()
	d.ResetTrace()
	buf := make([]byte, 64<<10)
	faultOps := []int16{mtio.MTSEEK, mtio.MTSEEK, mtio.MTSEEK, mtio.MTFSF, mtio.MTFSR, mtio.MTBSF, mtio.MTREW}
	var ok, failed int
	for step := range 150 {
		if rnd.IntN(20) == 0 { // a new restore: open afresh
			tp.Close()
			d.SetPosition(true)
			tp = open()
		}
		for range rnd.IntN(3) {
			d.FailOp(faultOps[rnd.IntN(len(faultOps))], 1+rnd.IntN(3), syscall.EIO)
		}
		if rnd.IntN(10) == 0 {
			d.SetPosition(rnd.IntN(2) == 0)
		}
		// Sometimes the end of data (file len(v.files) record 0, where
		// appending would start), sometimes past it.
		f := 1 + rnd.IntN(len(v.files)+1)
		if rnd.IntN(8) == 0 {
			f = len(v.files) + 1
		}
		r := 0
		if f < len(v.files) {
			r = rnd.IntN(len(v.files[f]))
		}
		err := tp.Seek(v.pos(f, r))
		what := fmt.Sprintf("step %d: seek to file %d record %d", step, f, r)
		switch {
		case f > len(v.files) && err == nil:
			t.Fatalf("%s past the end of data succeeded", what)
		case f == len(v.files) && err == nil:
			ok++
			if n, err := tp.ReadRecord(buf); err == nil {
				t.Fatalf("%s (the end of data): read %.20q", what, buf[:n])
			}
			continue
		case f < len(v.files) && errors.Is(err, ErrEndOfData):
			t.Fatalf("%s: an injected I/O error reported as the end of data: %v", what, err)
		case err != nil:
			failed++
			if !strings.HasPrefix(err.Error(), "tape "+d.Path(fakest.NST0)+": seek to file") {
				t.Fatalf("%s: error does not say where: %v", what, err)
			}
			if !errors.Is(err, ErrEndOfData) && !strings.Contains(err.Error(), "Clean the drive and try again") {
				t.Fatalf("%s: error does not say what to do: %v", what, err)
			}
			continue
		}
		ok++
		n, err := tp.ReadRecord(buf)
		if err != nil {
			t.Fatalf("%s: read: %v", what, err)
		}
		if !bytes.Equal(buf[:n], v.files[f][r]) {
			t.Fatalf("%s: read %.20q, another place's record", what, buf[:n])
		}
	}
	noMTEOM(t, d.Trace())
	t.Logf("%d seeks read the right record, %d failed with an error", ok, failed)
	if ok == 0 {
		t.Fatal("no seek succeeded")
	}
}
