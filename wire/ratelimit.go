package wire

import (
	"context"
	"io"
	"sync"
	"time"
)

// Limiter holds the byte streams that share it to a rate in bytes per
// second: a token bucket that holds at most one second of traffic, so a
// stream that paused (a slow part of a walk, an idle moment of a run)
// gets no more than a one-second burst afterwards. The server holds all
// dump streams of a run together under netusage by waiting in each
// stream's data handler (TCP then slows the agents down; nothing is
// buffered); the client agent holds one dump to its dumptype's bandwidth
// by writing through Writer.
//
// A nil Limiter, or one of rate 0 or less, lets everything through. Its
// methods may be called from several goroutines at once.
type Limiter struct {
	rate float64 // bytes per second

	// Now and Sleep are the clock; nil means the real one. Sleep waits d
	// or until ctx is done (then it returns ctx.Err()).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewLimiter returns a Limiter of bytesPerSecond; 0 or less is no limit.
func NewLimiter(bytesPerSecond int64) *Limiter {
	return &Limiter{rate: float64(bytesPerSecond)}
}

// Wait counts n bytes against the rate and blocks until the stream is
// back within it (or ctx is done: ctx.Err()).
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := l.now()
	if l.last.IsZero() {
		l.last, l.tokens = now, l.rate
	}
	if now.After(l.last) {
		l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate)
		l.last = now
	}
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return l.sleep(ctx, d)
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) sleep(ctx context.Context, d time.Duration) error {
	if l.Sleep != nil {
		return l.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Writer returns a writer that passes writes on to w and holds them to the
// limiter's rate. It writes in slices of a tenth of a second's worth (at
// least 4 KiB), so that a slow stream keeps moving: the peer's progress
// timeout sees bytes every 100 ms, never one burst per frame. A nil or
// unlimited Limiter returns w itself.
func (l *Limiter) Writer(ctx context.Context, w io.Writer) io.Writer {
	if l == nil || l.rate <= 0 {
		return w
	}
	return &limitedWriter{ctx: ctx, w: w, l: l, step: max(int(l.rate/10), 4096)}
}

type limitedWriter struct {
	ctx  context.Context
	w    io.Writer
	l    *Limiter
	step int
}

func (t *limitedWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		k := min(len(p), t.step)
		n, err := t.w.Write(p[:k])
		total += n
		if err != nil {
			return total, err
		}
		if err := t.l.Wait(t.ctx, n); err != nil {
			return total, err
		}
		p = p[k:]
	}
	return total, nil
}
