package holding

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
)

const gib = int64(1) << 30

// The reserve is what its words say: reserve R% keeps R% of the holding
// space for incrementals in degraded mode, so fulls get the other
// (100-R)%. Amanda computed total*(reserve/100) in integers, which
// reserved nothing for any reserve below 100.
func TestFullLimit(t *testing.T) {
	tests := []struct {
		total   int64
		reserve int
		want    int64
	}{
		{10 * gib, 40, 6 * gib},   // the example
		{10 * gib, 100, 0},        // Amanda's default: no fulls in degraded mode
		{10 * gib, 0, 10 * gib},   // nothing reserved
		{10 * gib, 99, 107374182}, // 1% of 10 GiB, rounded down
		{10 * gib, 1, 10630044057},
		{100, 33, 67},
		{1, 50, 0},
		{0, 40, 0},
		{-5, 40, 0},
		{10 * gib, -7, 10 * gib},                 // clamped
		{10 * gib, 250, 0},                       // clamped
		{math.MaxInt64, 40, 5534023222112865484}, // no overflow
	}
	for _, tt := range tests {
		if got := FullLimit(tt.total, tt.reserve); got != tt.want {
			t.Errorf("FullLimit(%d, %d) = %d, want %d", tt.total, tt.reserve, got, tt.want)
		}
	}
}

func fixedFree(n int64) func(string) (int64, error) {
	return func(string) (int64, error) { return n, nil }
}

// In degraded mode with reserve 40 on 10 GiB, fulls may take 6 GiB in all
// and incrementals may use the whole 10 GiB.
func TestDegradedReserve(t *testing.T) {
	p, err := NewPool([]Disk{{Path: t.TempDir(), Use: 10 * gib}}, PoolOptions{Reserve: 40, FreeSpace: fixedFree(1 << 50)})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Fits(8*gib, Full) {
		t.Error("outside degraded mode an 8 GiB full does not fit 10 GiB")
	}
	p.SetDegraded(true)
	if p.Fits(6*gib+1, Full) || !p.Fits(6*gib, Full) || !p.Fits(10*gib, Incremental) {
		t.Error("degraded Fits does not follow reserve 40 on 10 GiB")
	}
	f1, ok := p.TryReserve(4*gib, Full)
	if !ok {
		t.Fatal("first full of 4 GiB refused")
	}
	if _, ok := p.TryReserve(3*gib, Full); ok {
		t.Error("a second full took 7 GiB of fulls in all")
	}
	f2, ok := p.TryReserve(2*gib, Full)
	if !ok {
		t.Fatal("second full of 2 GiB (6 GiB in all) refused")
	}
	inc, ok := p.TryReserve(4*gib, Incremental)
	if !ok {
		t.Fatal("incrementals may use the rest")
	}
	if p.Free() != 0 {
		t.Errorf("free %d, want 0", p.Free())
	}
	// A finished full keeps counting against the fulls' share while it
	// sits on the holding disk.
	f1.fill(0, gib)
	f1.Shrink()
	inc.Free()
	f2.Free()
	if _, ok := p.TryReserve(5*gib+1, Full); ok {
		t.Error("a full got more than 6 GiB minus the 1 GiB kept")
	}
	if _, ok := p.TryReserve(5*gib, Full); !ok {
		t.Error("a full of 5 GiB beside the 1 GiB kept refused")
	}
	f1.Free()
	p.SetDegraded(false)
}

// Leftover images of earlier runs count as used until released.
func TestPoolCountsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir, Use: 10 << 20})
	w := create(t, p, 2<<20, header(make([]byte, 1<<20)))
	w.Write(make([]byte, 1<<20))
	path, err := w.Finish(header(make([]byte, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, Disk{Path: dir, Use: 10 << 20})
	want := int64(1<<20 + 32<<10)
	if p2.Used() != want {
		t.Fatalf("new pool counts %d used, want %d", p2.Used(), want)
	}
	p2.Release(path, want, Incremental)
	if p2.Used() != 0 {
		t.Errorf("after release %d used", p2.Used())
	}
}

// Two writers that each outgrow their reservation on a disk too small for
// both, with nothing draining: one is told to give up (ErrHoldingFull) and
// the other finishes. Nobody waits forever.
func TestGrowDeadlockPicksVictim(t *testing.T) {
	p := newPool(t, Disk{Path: t.TempDir(), Use: 100 << 20})
	a, _ := p.TryReserve(50<<20, Full)
	b, _ := p.TryReserve(50<<20, Full)
	a.fill(0, 50<<20)
	b.fill(0, 30<<20)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	ctx := t.Context() // a deadlock that is not broken is caught by go test -timeout
	for i, s := range []*Space{a, b} {
		wg.Go(func() {
			errs[i] = s.Grow(ctx, 20<<20)
			if errs[i] != nil {
				s.Free()
			}
		})
	}
	wg.Wait()
	if !errors.Is(errs[1], ErrHoldingFull) || !errors.Is(errs[1], ErrNoSpace) {
		t.Errorf("the writer with less written got %v, want ErrHoldingFull", errs[1])
	}
	if errs[0] != nil {
		t.Errorf("the other writer got %v, want nil", errs[0])
	}
}

// While the taper drains, a writer waits for space instead of giving up,
// and proceeds when space is released.
func TestGrowWaitsWhileDraining(t *testing.T) {
	var draining sync.Mutex
	busy := true
	p, err := NewPool([]Disk{{Path: t.TempDir(), Use: 100 << 20}}, PoolOptions{FreeSpace: bigFree, Draining: func() bool {
		draining.Lock()
		defer draining.Unlock()
		return busy
	}})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := p.TryReserve(60<<20, Incremental) // an image waiting for the taper
	done.fill(0, 60<<20)
	done.Shrink()
	w, _ := p.TryReserve(40<<20, Incremental)
	w.fill(0, 40<<20)
	waits := make(chan struct{}, 1)
	p.onWait = func(s *Space) {
		if s == w {
			select {
			case waits <- struct{}{}:
			default:
			}
		}
	}
	res := make(chan error, 1)
	go func() { res <- w.Grow(context.Background(), 30<<20) }()
	// Grow says when it has decided to wait rather than give up.
	select {
	case err := <-res:
		t.Fatalf("Grow returned %v while space was about to be released", err)
	case <-waits:
	}
	draining.Lock()
	busy = false
	draining.Unlock()
	done.Free() // taped
	// A Grow that does not proceed is caught by go test -timeout.
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if err := w.Grow(context.Background(), 200<<20); !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrHoldingFull) {
		t.Errorf("growing past the disk: %v", err)
	}
}

// DiskOf names the disk a path lies in, and only a path below one.
func TestDiskOf(t *testing.T) {
	disks := []string{"/srv/h1", "/srv/h2"}
	for path, want := range map[string]string{
		"/srv/h1/20260101/a.0": "/srv/h1",
		"/srv/h2/x":            "/srv/h2",
		"/srv/h2":              "/srv/h2",
		"/srv/h10/x":           "",
		"/srv/h1/../h3/x":      "",
		"/srv/h3/x":            "",
		"relative/x":           "",
		"":                     "",
	} {
		if got := DiskOf(path, disks); got != want {
			t.Errorf("DiskOf(%q) = %q, want %q", path, got, want)
		}
	}
}
