package indexd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/fakest"
	"github.com/tapir-backup/tapir/wire"
)

// stVolumes lends the cartridges of a fake st drive (taper/fakest, in
// memory: the same model and ioctl trace the FUSE drive has): it inserts
// the cartridge of the volume asked for, as a robot would, and keeps the
// drive's ioctl trace of each loan.
type stVolumes struct {
	drive *fakest.Drive
	carts map[string]string // label -> cartridge
	pool  indexd.DrivePool

	mu     sync.Mutex
	loans  []string   // the volumes lent, in order
	traces [][]string // the ioctls of each loan, after the label was checked
}

func (s *stVolumes) Properties() indexd.SourceProperties {
	return indexd.SourceProperties{Drives: 1, Where: "the fake st drive"}
}

func (s *stVolumes) Locate(ctx context.Context, label string) (string, error) {
	if _, ok := s.carts[label]; !ok {
		return "", fmt.Errorf("volume %s is on no cartridge: put it in (%w)", label, indexd.ErrVolumeMissing)
	}
	return "the fake st drive", nil
}

func (s *stVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	name, ok := s.carts[label]
	if !ok {
		return nil, nil, fmt.Errorf("volume %s is on no cartridge: put it in (%w)", label, indexd.ErrVolumeMissing)
	}
	give, err := s.pool.Take(ctx, label)
	if err != nil {
		return nil, nil, err
	}
	if cur, _ := s.drive.Loaded(); cur != name {
		s.drive.Eject()
		s.drive.Remove()
		if err := s.drive.Insert(name); err != nil {
			give()
			return nil, nil, err
		}
	}
	tp, err := openST(s.drive)
	if err == nil {
		var l *taper.Label
		if l, err = taper.ReadLabel(tp); err == nil && l.Label != label {
			err = fmt.Errorf("cartridge %s holds %s", name, l.Label)
		}
		if err == nil {
			err = tp.Rewind()
		}
		if err != nil {
			tp.Close()
		}
	}
	if err != nil {
		give()
		return nil, nil, err
	}
	s.drive.ResetTrace()
	var once sync.Once
	return tp, func() {
		once.Do(func() {
			s.mu.Lock()
			s.loans = append(s.loans, label)
			s.traces = append(s.traces, s.drive.Trace())
			s.mu.Unlock()
			tp.Close()
			give()
		})
	}, nil
}

// openST opens the in-memory fake drive as tapir opens /dev/nst0.
func openST(d *fakest.Drive) (*taper.Tape, error) {
	h, err := d.Open(fakest.NST0, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return taper.NewTape("fake-nst0", h, taper.WithReadOnly())
}

// copyToCartridge writes the vtape of a slot onto a cartridge of the
// fake drive, record for record and filemark for filemark.
func copyToCartridge(t *testing.T, ch taper.Changer, slot int, d *fakest.Drive, name string) {
	t.Helper()
	src, err := ch.Load(t.Context(), slot)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if cur, _ := d.Loaded(); cur != "" {
		d.Eject()
		d.Remove()
	}
	if err := d.Insert(name); err != nil {
		t.Fatal(err)
	}
	h, err := d.Open(fakest.NST0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := taper.NewTape("fake-nst0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	buf := make([]byte, 4<<20)
	for {
		n, err := src.ReadRecord(buf)
		switch {
		case errors.Is(err, taper.ErrEndOfData):
			return
		case errors.Is(err, io.EOF):
			err = dst.WriteFilemark()
		case err == nil:
			err = dst.WriteRecord(buf[:n])
		}
		if err != nil {
			t.Fatalf("copy slot %d onto %s: %v", slot, name, err)
		}
	}
}

// The same restore as TestRestoreReadsInTapeOrder, from cartridges in a
// fake st drive: the drive's own ioctl trace shows each volume loaded
// once and read in one forward pass (no MTREW once the label is checked,
// no MTBSF or MTBSR, MTSEEK targets that only grow).
func TestRestoreReadsInTapeOrderOnST(t *testing.T) {
	site, ch, data, paths := fiveImageSite(t)
	drive := fakest.New(fakest.Options{Capacity: 256 << 20, Cartridges: []string{"CART1", "CART2"}, Empty: true})
	src := &stVolumes{drive: drive, carts: map[string]string{}}
	inv, err := ch.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range inv {
		if s.Label == nil {
			continue
		}
		name := "CART" + strings.TrimPrefix(s.Label.Label, "TEST-00")
		copyToCartridge(t, ch, s.Slot, drive, name)
		src.carts[s.Label.Label] = name
	}
	if len(src.carts) != 2 {
		t.Fatalf("volumes copied onto cartridges: %v, want TEST-001 and TEST-002", src.carts)
	}
	addr := serve(t, site, src)
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	to := t.TempDir()
	res, err := cl.Restore(context.Background(), recover.Query{Host: "web1", DLE: "/srv"}, paths, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 50 {
		t.Fatalf("restore: %v; result %+v", err, res)
	}
	for _, p := range paths {
		a, _ := os.ReadFile(filepath.Join(data, p))
		if b, err := os.ReadFile(filepath.Join(to, p)); err != nil || string(a) != string(b) {
			t.Errorf("%s: restored %d bytes, want %d (%v)", p, len(b), len(a), err)
		}
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if !slices.Equal(src.loans, []string{"TEST-001", "TEST-002"}) {
		t.Errorf("volumes loaded %v, want TEST-001 then TEST-002, each once", src.loans)
	}
	for i, trace := range src.traces {
		last := int64(-1)
		seeks := 0
		for _, e := range trace {
			f := strings.Fields(e)
			switch f[0] {
			case "MTREW", "MTBSF", "MTBSR", "MTBSFM", "MTEOM":
				t.Errorf("volume %s: %q moves back (or to the end) within the pass: %q", src.loans[i], e, trace)
			case "MTSEEK":
				seeks++
				n, _ := strconv.ParseInt(f[1], 10, 64)
				if n < last {
					t.Errorf("volume %s: %q seeks back from block %d: %q", src.loans[i], e, last, trace)
				}
				last = n
			}
		}
		if seeks == 0 {
			t.Errorf("volume %s: no MTSEEK in the trace %q: the reads did not locate", src.loans[i], trace)
		}
		t.Logf("volume %s: %d ioctls, %d MTSEEK: %q", src.loans[i], len(trace), seeks, trace)
	}
}
