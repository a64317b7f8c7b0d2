package taper

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/taper/fakest"
)

// slotSource hands out the slots of a disk changer in order, each freshly
// labelled, up to max volumes.
type slotSource struct {
	t     *testing.T
	ch    *DiskChanger
	next  int
	max   int
	bs    int
	given []string
}

func (s *slotSource) Next(ctx context.Context) (*Volume, error) {
	if s.next >= s.max {
		return nil, fmt.Errorf("runtapes %d reached", s.max)
	}
	s.next++
	dev, err := s.ch.Load(context.Background(), s.next)
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("T-%03d", s.next)
	if err := WriteLabel(dev, Label{Datestamp: "20260101010101", Label: label, Org: "t", Blocksize: int64(s.bs), Created: time.Unix(1767229261, 0)}); err != nil {
		return nil, err
	}
	s.given = append(s.given, label)
	return &Volume{Label: label, Slot: s.next, Dev: dev, Blocksize: s.bs}, nil
}

func randomPayload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func testHeader(payload []byte) image.Header {
	s := sha256.Sum256(payload)
	return image.Header{Datestamp: "20260101010101", Host: "h", Path: "/data", Level: 0, Part: 1, Parts: 1,
		Comp: image.CompNone, OriginalSize: int64(len(payload)), PayloadSize: int64(len(payload)),
		SHA256: hex.EncodeToString(s[:]), FrameSize: 1 << 20, Frames: 1, Files: 1}
}

// readPart reads a part back through the Device: seek to its file, check
// its header, return its payload records.
func readPart(t *testing.T, ch *DiskChanger, p PartInfo, bs int) (image.Header, []byte) {
	t.Helper()
	dev, err := ch.Load(context.Background(), p.Slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Seek(p.Pos); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, max(bs, image.HeaderSize))
	n, err := dev.ReadRecord(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, err := image.ParseHeader(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for {
		n, err := dev.ReadRecord(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Write(buf[:n])
	}
	return *h, out.Bytes()
}

// An image larger than what is left on a volume continues as the next part
// on the next volume; every part is a tape file with its own header, the
// payloads concatenate to the image, and the SHA-256 is the image's.
func TestScribeSpansVolumes(t *testing.T) {
	const bs = 64 << 10
	ch, err := NewDiskChanger(t.TempDir(), 5, 3<<20, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.SetEarlyWarning(256 << 10); err != nil {
		t.Fatal(err)
	}
	src := &slotSource{t: t, ch: ch, max: 5, bs: bs}
	s := NewScribe(src, nil)
	small := randomPayload(700<<10, 1)
	big := randomPayload(7<<20+12345, 2)
	var results []*ImageResult
	for i, p := range [][]byte{small, big, small} {
		r, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), fmt.Sprintf("h._data.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(p)
		if r.SHA256 != hex.EncodeToString(want[:]) || r.Bytes != int64(len(p)) {
			t.Fatalf("image %d: sha %s bytes %d", i, r.SHA256, r.Bytes)
		}
		results = append(results, r)
	}
	if len(results[0].Parts) != 1 || len(results[1].Parts) < 3 {
		t.Fatalf("parts: %d and %d; want 1 and at least 3 (7 MiB on 3 MiB volumes)", len(results[0].Parts), len(results[1].Parts))
	}
	var got []byte
	var off int64
	for i, p := range results[1].Parts {
		if p.Part != i+1 || p.Offset != off || p.Length <= 0 {
			t.Errorf("part %+v: want number %d at offset %d", p, i+1, off)
		}
		if i > 0 && p.Pos.File != 1 {
			t.Errorf("part %d is file %d of %s; a continuation starts a volume (file 1)", p.Part, p.Pos.File, p.Volume)
		}
		h, payload := readPart(t, ch, p, bs)
		if h.Part != p.Part || h.Parts != image.Unknown || h.Blocksize != bs {
			t.Errorf("header of part %d says part %d/%d blocksize %d", p.Part, h.Part, h.Parts, h.Blocksize)
		}
		if int64(len(payload)) != p.Length {
			t.Errorf("part %d holds %d bytes on the volume, the result says %d", p.Part, len(payload), p.Length)
		}
		got = append(got, payload...)
		off += p.Length
	}
	if !bytes.Equal(got, big) {
		t.Error("the parts' payloads do not concatenate to the image")
	}
	// The third image went on after the second, on the last volume used.
	last := results[1].Parts[len(results[1].Parts)-1]
	if p := results[2].Parts[0]; p.Volume != last.Volume || p.Pos.File != last.Pos.File+1 {
		t.Errorf("third image at %s file %d, want %s file %d", p.Volume, p.Pos.File, last.Volume, last.Pos.File+1)
	}
	// dd of each part, concatenated, is the image (the header says how).
	var dd bytes.Buffer
	for _, p := range results[1].Parts {
		names, _ := filepath.Glob(filepath.Join(ch.SlotDir(p.Slot), fmt.Sprintf("%05d.*", p.Pos.File)))
		b, err := os.ReadFile(names[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b[:4096]), "may continue as part") {
			t.Error("the header of a part does not tell how to join the parts")
		}
		dd.Write(b[image.HeaderSize:])
	}
	if !bytes.Equal(dd.Bytes(), big) {
		t.Error("tape files minus their headers do not concatenate to the image")
	}
}

// When the run may use no further volume, the image fails with an error
// matching ErrNoVolume; it is never reported written.
func TestScribeRunsOutOfVolumes(t *testing.T) {
	const bs = 64 << 10
	ch, _ := NewDiskChanger(t.TempDir(), 2, 2<<20, bs, nil)
	ch.SetEarlyWarning(128 << 10)
	s := NewScribe(&slotSource{t: t, ch: ch, max: 2, bs: bs}, nil)
	p := randomPayload(5<<20, 3)
	_, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._data.0")
	if !errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), "runtapes 2 reached") {
		t.Fatalf("err = %v, want ErrNoVolume naming why", err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client agent went away")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// A source that fails mid-image fails the image with the source's reason;
// the volume stays usable for the next image.
func TestScribeSourceFails(t *testing.T) {
	const bs = 64 << 10
	ch, _ := NewDiskChanger(t.TempDir(), 2, 20<<20, bs, nil)
	s := NewScribe(&slotSource{t: t, ch: ch, max: 2, bs: bs}, nil)
	h := testHeader(nil)
	h.PayloadSize, h.SHA256 = image.Unknown, ""
	_, err := s.WriteImage(context.Background(), h, &failingReader{n: 300 << 10}, "h._data.0")
	if err == nil || !strings.Contains(err.Error(), "client agent went away") {
		t.Fatalf("err = %v", err)
	}
	var we *WriteError
	if !errors.As(err, &we) || len(we.Files) != 1 || we.Files[0].FileNo != 1 || we.Files[0].Volume != "T-001" ||
		!strings.Contains(we.Files[0].Why, "ended with a filemark") {
		t.Errorf("the error does not name the truncated file 1 of T-001: %#v", we)
	}
	p := randomPayload(100<<10, 4)
	r, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._data.1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Parts[0].Volume != "T-001" || r.Parts[0].Pos.File != 2 {
		t.Errorf("next image at %+v, want T-001 file 2", r.Parts[0])
	}
}

// failAfterWrites makes the vtape in the scribe's drive fail its writes
// with err from the n-th write on (n = 1: the next one).
func failAfterWrites(t *testing.T, s *Scribe, n int, err error) {
	t.Helper()
	v, ok := s.Current().Dev.(*Vtape)
	if !ok {
		t.Fatalf("the drive holds %T, not a vtape", s.Current().Dev)
	}
	calls := 0
	v.write = func(f *os.File, p []byte) (int, error) {
		calls++
		if calls >= n {
			return 0, err
		}
		return f.Write(p)
	}
}

// The vtape's file system fills up just as a new tape file begins: no
// empty file stays on the volume (it ends at its last filemark), and the
// image goes whole to the next volume.
func TestScribeENOSPCOnNewFile(t *testing.T) {
	const bs = 64 << 10
	ch, _ := NewDiskChanger(t.TempDir(), 2, 20<<20, bs, nil)
	s := NewScribe(&slotSource{t: t, ch: ch, max: 2, bs: bs}, nil)
	first := randomPayload(200<<10, 5)
	if _, err := s.WriteImage(context.Background(), testHeader(first), bytes.NewReader(first), "h._a.0"); err != nil {
		t.Fatal(err)
	}
	failAfterWrites(t, s, 1, syscall.ENOSPC)
	p := randomPayload(300<<10, 6)
	r, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._b.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Parts) != 1 || r.Parts[0].Volume != "T-002" || r.Parts[0].Pos.File != 1 || len(r.Abandoned) != 0 {
		t.Fatalf("parts %+v abandoned %+v; want the whole image as T-002 file 1", r.Parts, r.Abandoned)
	}
	names, _ := filepath.Glob(filepath.Join(ch.SlotDir(1), "*"))
	if len(names) != 2 {
		t.Fatalf("slot 1 holds %v; want the label and file 1 only (no empty file 2)", names)
	}
}

// A drive that fails in the middle of an image: the error names the
// truncated tape file it left (volume, file number, payload bytes in it),
// so that the caller records it as failed.
func TestScribeFailedWriteNamesItsFile(t *testing.T) {
	const bs = 64 << 10
	ch, _ := NewDiskChanger(t.TempDir(), 2, 20<<20, bs, nil)
	s := NewScribe(&slotSource{t: t, ch: ch, max: 2, bs: bs}, nil)
	first := randomPayload(200<<10, 7)
	if _, err := s.WriteImage(context.Background(), testHeader(first), bytes.NewReader(first), "h._a.0"); err != nil {
		t.Fatal(err)
	}
	failAfterWrites(t, s, 4, syscall.EIO) // the header and two records go down
	p := randomPayload(1<<20, 8)
	_, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._b.0")
	var we *WriteError
	if !errors.As(err, &we) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v (%T), want a *WriteError around EIO", err, err)
	}
	if len(we.Files) != 1 {
		t.Fatalf("files %+v, want the truncated one", we.Files)
	}
	f := we.Files[0]
	if f.Volume != "T-001" || f.Slot != 1 || f.FileNo != 2 || f.Bytes != 2*bs || !strings.Contains(f.Why, "truncated") {
		t.Errorf("left file %+v, want T-001 file 2 with 2 records of payload, truncated", f)
	}
	if _, err := os.Stat(filepath.Join(ch.SlotDir(1), "00002.h._b.0")); err != nil {
		t.Errorf("the truncated file is not where the error says: %v", err)
	}
}

// A header that takes a volume past its early warning ends there, with no
// payload: the image continues on the next volume, and the result names
// the header-only file so that nobody takes it for an image.
func TestScribeHeaderAtEarlyWarningIsAbandoned(t *testing.T) {
	const bs = 64 << 10
	ch, _ := NewDiskChanger(t.TempDir(), 3, 3<<20, bs, nil)
	ch.SetEarlyWarning(256 << 10)
	s := NewScribe(&slotSource{t: t, ch: ch, max: 3, bs: bs}, nil)
	// Label and header (64 KiB) plus this leave 16 KiB before the warning.
	first := randomPayload(3<<20-256<<10-64<<10-16<<10, 9)
	if r, err := s.WriteImage(context.Background(), testHeader(first), bytes.NewReader(first), "h._a.0"); err != nil || len(r.Parts) != 1 {
		t.Fatalf("first image: %v", err)
	}
	p := randomPayload(100<<10, 10)
	r, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._b.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Parts) != 1 || r.Parts[0].Volume != "T-002" {
		t.Fatalf("parts %+v, want the image on T-002", r.Parts)
	}
	if len(r.Abandoned) != 1 || r.Abandoned[0].Volume != "T-001" || r.Abandoned[0].FileNo != 2 || !strings.Contains(r.Abandoned[0].Why, "header only") {
		t.Fatalf("abandoned %+v, want T-001 file 2, header only", r.Abandoned)
	}
}

// tapeSource hands out one labelled cartridge in an in-memory fakest
// drive, its write-protect tab set after labelling.
type tapeSource struct {
	t   *testing.T
	drv *fakest.Drive
}

func (s tapeSource) Next(ctx context.Context) (*Volume, error) {
	h, err := s.drv.Open(fakest.NST0, syscall.O_RDWR|syscall.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	tp, err := NewTape("mem/nst0", h)
	if err != nil {
		return nil, err
	}
	s.t.Cleanup(func() { tp.Close() })
	if err := WriteLabel(tp, testLabel("T-007")); err != nil {
		return nil, err
	}
	s.drv.Current().SetWriteProtected(true)
	return &Volume{Label: "T-007", Slot: 1, Dev: tp, Blocksize: testBS}, nil
}

// A cartridge write-protected before the image: refused before any write,
// and the error names the volume, the drive and what to do.
func TestScribeWriteProtectedBeforeWriting(t *testing.T) {
	drv := fakest.New(fakest.Options{})
	s := NewScribe(tapeSource{t: t, drv: drv}, nil)
	p := randomPayload(100<<10, 9)
	_, err := s.WriteImage(context.Background(), testHeader(p), bytes.NewReader(p), "h._c.0")
	if !errors.Is(err, ErrWriteProtected) {
		t.Fatalf("write-protected cartridge: %v, want ErrWriteProtected", err)
	}
	for _, want := range []string{"volume T-007", "mem/nst0", "slide the tab", "another cartridge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The label's record, and no write after the tab was set.
	if n := drv.WriteCount(); n != 1 {
		t.Errorf("%d write(2) calls, want 1 (the label only)", n)
	}
}
