package client

import (
	"context"
	"io"
	"time"
)

// throttle limits the bytes per second written through it (a dumptype's
// bandwidth). due is when the bytes sent so far would have been sent at
// the rate; a writer ahead of it sleeps. Credit from a pause (a slow part
// of the walk) is capped at one second, so no long burst follows it.
type throttle struct {
	ctx  context.Context
	w    io.Writer
	rate int64 // bytes per second
	due  time.Time
}

// Write passes p on in slices of a tenth of a second's worth, so that a
// slow stream keeps moving (the server's progress timeout sees bytes
// every 100 ms, never one burst per frame).
func (t *throttle) Write(p []byte) (int, error) {
	step := max(int(t.rate/10), 4096)
	total := 0
	for len(p) > 0 {
		k := min(len(p), step)
		n, err := t.write(p[:k])
		total += n
		if err != nil {
			return total, err
		}
		p = p[k:]
	}
	return total, nil
}

func (t *throttle) write(p []byte) (int, error) {
	now := time.Now()
	if floor := now.Add(-time.Second); t.due.Before(floor) {
		t.due = floor
	}
	n, err := t.w.Write(p)
	t.due = t.due.Add(time.Duration(float64(n) / float64(t.rate) * float64(time.Second)))
	if d := t.due.Sub(now); d > 0 && err == nil {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-t.ctx.Done():
			tm.Stop()
			err = t.ctx.Err()
		}
	}
	return n, err
}
