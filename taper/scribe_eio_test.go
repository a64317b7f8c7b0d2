package taper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/benmcclelland/mtio"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// cartSource hands out the cartridges of an in-memory fakest drive in
// order, each inserted, opened and labelled, closing the one before.
type cartSource struct {
	drv   *fakest.Drive
	carts []string
	next  int
	cur   *Tape
}

func (s *cartSource) Next(ctx context.Context) (*Volume, error) {
	s.close()
	if s.next >= len(s.carts) {
		return nil, fmt.Errorf("runtapes %d reached", len(s.carts))
	}
	name := s.carts[s.next]
	s.next++
	if n, _ := s.drv.Loaded(); n != "" {
		s.drv.Eject()
		s.drv.Remove()
	}
	if err := s.drv.Insert(name); err != nil {
		return nil, err
	}
	h, err := s.drv.Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	tp, err := NewTape("mem/nst0", h)
	if err != nil {
		return nil, err
	}
	s.cur = tp
	label := fmt.Sprintf("T-%03d", s.next)
	if err := WriteLabel(tp, testLabel(label)); err != nil {
		return nil, err
	}
	return &Volume{Label: label, Slot: s.next, Dev: tp, Blocksize: testBS}, nil
}

// close closes the tape handed out last, as the run does at its end or
// when it changes cartridges.
func (s *cartSource) close() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}

// tapeFiles returns the tape files after the label that hold anything
// (records, or a filemark ending an empty file), as "T-00n file m".
func tapeFiles(d *fakest.Drive, carts []string, used int) []string {
	var out []string
	for i, name := range carts[:used] {
		file, n := 0, 0
		for _, o := range d.Cartridge(name).Objects() {
			if o.Filemark {
				if file > 0 {
					out = append(out, fmt.Sprintf("T-%03d file %d", i+1, file))
				}
				file, n = file+1, 0
				continue
			}
			n++
		}
		if n > 0 && file > 0 {
			out = append(out, fmt.Sprintf("T-%03d file %d", i+1, file))
		}
	}
	return out
}

// Every tape file a failing write leaves on a volume is named: a part of
// the result, or a file of the *WriteError (or Abandoned), whichever
// record or filemark the drive fails on.
func TestScribeEveryLeftFileIsNamed(t *testing.T) {
	carts := []string{"A", "B", "C"}
	payload := randomPayload(40*testBS+100, 3)
	type fault struct {
		name  string
		apply func(d *fakest.Drive)
	}
	var faults []fault
	for k := int64(2); k < 40; k++ {
		faults = append(faults, fault{fmt.Sprintf("EIO on object %d", k), func(d *fakest.Drive) { d.InjectError(k, syscall.EIO) }})
	}
	for n := 1; n <= 6; n++ {
		faults = append(faults, fault{fmt.Sprintf("EIO on MTWEOF %d", n), func(d *fakest.Drive) { d.FailOp(mtio.MTWEOF, n, syscall.EIO) }})
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			// 24 records per cartridge, early warning 4 records before.
			d := fakest.New(fakest.Options{Cartridges: carts, Empty: true, Capacity: int64(FirstRecordSize) + 24*testBS, EarlyWarning: 4 * testBS})
			src := &cartSource{drv: d, carts: carts}
			s := NewScribe(src, nil)
			f.apply(d)
			res, err := s.WriteImage(context.Background(), testHeader(payload), bytes.NewReader(payload), "h._a.0")
			src.close()
			named := map[string]string{}
			if res != nil {
				for _, p := range res.Parts {
					named[fmt.Sprintf("%s file %d", p.Volume, p.Pos.File)] = "part"
				}
				for _, a := range res.Abandoned {
					named[fmt.Sprintf("%s file %d", a.Volume, a.FileNo)] = a.Why
				}
			}
			var we *WriteError
			if errors.As(err, &we) {
				for _, a := range we.Files {
					named[fmt.Sprintf("%s file %d", a.Volume, a.FileNo)] = a.Why
				}
			}
			on := tapeFiles(d, carts, src.next)
			for _, f := range on {
				if _, ok := named[f]; !ok {
					t.Errorf("%s is on tape but not named; err %v; named %v", f, err, named)
				}
			}
			if err == nil && res.SHA256 != testHeader(payload).SHA256 {
				t.Errorf("no error but the image is not whole")
			}
			if err == nil && slices.ContainsFunc(d.Trace(), func(e string) bool { return strings.HasSuffix(e, " EIO") }) {
				t.Errorf("a filemark failed with EIO (%q) but the image is reported written: parts %+v", d.Trace(), res.Parts)
			}
			if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, ErrNoVolume) {
				t.Errorf("err %v matches neither EIO nor ErrNoVolume (a label that could not be written)", err)
			}
		})
	}
}

// An image whose source fails ends its tape file with a filemark, so that
// the volume takes the next image; when that filemark fails too, the
// volume is given up: the next image's header would otherwise continue
// the truncated file, and the catalog would hold a failed file and a part
// at the same file number.
func TestScribeCutWithoutFilemarkGivesUpTheVolume(t *testing.T) {
	carts := []string{"A", "B"}
	d := fakest.New(fakest.Options{Cartridges: carts, Empty: true})
	src := &cartSource{drv: d, carts: carts}
	defer src.close()
	s := NewScribe(src, nil)
	p := randomPayload(10*testBS, 4)
	d.FailOp(mtio.MTWEOF, 2, syscall.EIO) // 1 ends the label
	_, err := s.WriteImage(context.Background(), testHeader(p), &failingReader{n: 5 * testBS}, "h._a.0")
	var we *WriteError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "client agent went away") || len(we.Files) != 1 {
		t.Fatalf("err %v, want a *WriteError naming the cut file", err)
	}
	if f := we.Files[0]; f.Volume != "T-001" || f.FileNo != 1 || !strings.Contains(f.Why, "no filemark") || !strings.Contains(f.Why, "given up") || !strings.Contains(f.Why, "I/O error") {
		t.Errorf("left file %+v, want T-001 file 1, truncated, no filemark (EIO), volume given up", f)
	}
	if s.Current() != nil {
		t.Fatalf("the scribe still writes %s after a filemark failed on it", s.Current().Label)
	}
	res, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._b.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 1 || res.Parts[0].Volume != "T-002" || res.Parts[0].Pos.File != 1 {
		t.Errorf("the next image went to %+v, want T-002 file 1", res.Parts)
	}
}
