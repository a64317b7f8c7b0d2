package wire

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when someone sleeps on it.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps int
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps++
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func fakeLimiter(rate int64) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)}
	l := NewLimiter(rate)
	l.Now, l.Sleep = c.now, c.sleep
	return l, c
}

// The property: whatever the pattern of writes and pauses, the bytes that
// passed by time t are at most rate*(t-start) plus one second's burst
// after the last pause; and what passed all passed, unchanged.
func TestLimiterHoldsTheRate(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	src := make([]byte, 1<<20)
	rng.Read(src)
	for trial := 0; trial < 100; trial++ {
		rate := int64(1 + rng.Intn(8<<20))
		l, c := fakeLimiter(rate)
		out, sent := sha256.New(), sha256.New()
		w := l.Writer(context.Background(), out)
		start := c.now()
		// The window since the last pause: what it may carry is its
		// length at the rate plus the one-second burst.
		winStart, winBytes := start, int64(0)
		for op := 0; op < 30; op++ {
			if rng.Intn(5) == 0 {
				c.advance(time.Duration(rng.Int63n(int64(3 * time.Second))))
				winStart, winBytes = c.now(), 0
				continue
			}
			off := rng.Intn(len(src))
			p := src[off : off+rng.Intn(min(int(rate*2), len(src)-off))+1]
			n, err := w.Write(p)
			if err != nil || n != len(p) {
				t.Fatalf("rate %d: Write = %d, %v", rate, n, err)
			}
			sent.Write(p)
			winBytes += int64(n)
			elapsed := c.now().Sub(winStart).Seconds()
			if allowed := float64(rate)*(elapsed+1) + 1; float64(winBytes) > allowed {
				t.Fatalf("rate %d: %d bytes passed in %.3f s after a pause, more than the rate and a one-second burst allow (%.0f)", rate, winBytes, elapsed, allowed)
			}
		}
		if !bytes.Equal(out.Sum(nil), sent.Sum(nil)) {
			t.Fatalf("rate %d: the bytes written are not the bytes sent", rate)
		}
	}
}

// Several streams on one limiter share its rate: in all they get no more
// than it (plus the one burst).
func TestLimiterSharedByStreams(t *testing.T) {
	const rate = 1 << 20
	l, c := fakeLimiter(rate)
	start := c.now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 64 {
				if err := l.Wait(context.Background(), 64<<10); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 4 * 64 * (64 << 10)
	if got, least := c.now().Sub(start), time.Duration(float64(total-rate)/rate*float64(time.Second)); got < least {
		t.Errorf("%d bytes at %d B/s took %v of the clock, want at least %v", total, rate, got, least)
	}
}

// Writes go out in slices of a tenth of a second's worth at most (at least
// 4 KiB), so a slow stream is seen to move.
func TestLimiterWriterSlices(t *testing.T) {
	l, _ := fakeLimiter(100 << 10)
	var sizes []int
	w := l.Writer(context.Background(), writerFunc(func(p []byte) (int, error) { sizes = append(sizes, len(p)); return len(p), nil }))
	if n, err := w.Write(make([]byte, 100<<10+1)); n != 100<<10+1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for _, s := range sizes {
		if s > 10<<10 {
			t.Fatalf("slices %v: one is larger than a tenth of a second's worth (10 KiB)", sizes)
		}
	}
	l2, _ := fakeLimiter(1000)
	sizes = nil
	l2.Writer(context.Background(), writerFunc(func(p []byte) (int, error) { sizes = append(sizes, len(p)); return len(p), nil })).Write(make([]byte, 10000))
	if len(sizes) != 3 || sizes[0] != 4096 {
		t.Errorf("at 1000 B/s, 10000 bytes went in slices %v, want 4096, 4096, 1808", sizes)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestLimiterStopsAndUnlimited(t *testing.T) {
	l, c := fakeLimiter(1000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 500); err != nil {
		t.Errorf("within the burst: %v", err)
	}
	if err := l.Wait(ctx, 5000); !errors.Is(err, context.Canceled) {
		t.Errorf("over the rate with a cancelled context: %v, want context.Canceled", err)
	}
	var out bytes.Buffer
	if n, err := l.Writer(ctx, &out).Write(make([]byte, 10000)); !errors.Is(err, context.Canceled) || n != 4096 {
		t.Errorf("Writer with a cancelled context: %d, %v; want the first slice written, then context.Canceled", n, err)
	}
	var nilL *Limiter
	for _, u := range []*Limiter{nilL, NewLimiter(0), NewLimiter(-5)} {
		if err := u.Wait(ctx, 1<<30); err != nil {
			t.Errorf("unlimited: %v", err)
		}
		if w := u.Writer(ctx, &out); w != &out {
			t.Errorf("unlimited Writer wraps its writer")
		}
	}
	if c.sleeps != 0 {
		t.Errorf("%d sleeps with a cancelled context", c.sleeps)
	}
}
