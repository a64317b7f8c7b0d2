package server

import (
	"context"
	"sync"
	"time"
)

// rateLimiter holds all dump streams of a run together under netusage
// (bytes per second): a token bucket holding at most one second of
// traffic. Waiting in the stream's data handler stops reading from the
// agent, so TCP slows the agent down; nothing is buffered.
type rateLimiter struct {
	rate float64 // bytes per second; 0 = unlimited

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newRateLimiter(bytesPerSecond int64) *rateLimiter {
	return &rateLimiter{rate: float64(bytesPerSecond)}
}

// wait blocks until n bytes may pass.
func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.last.IsZero() {
		l.last, l.tokens = now, l.rate
	}
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d == 0 {
		return nil
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
