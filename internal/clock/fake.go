package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Fake is a clock that a test moves by hand. Its timers fire when Advance
// or Set moves time to or past them; a timer of zero or negative duration
// fires at once. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer  // pending, in the order they were armed
	armed   int           // timers armed so far
	changed chan struct{} // closed and replaced when timers are armed or stopped
}

// NewFake returns a fake clock that reads t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, changed: make(chan struct{})}
}

type fakeTimer struct {
	f  *Fake
	at time.Time
	ch chan time.Time
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns the channel of a new timer.
func (f *Fake) After(d time.Duration) <-chan time.Time { return f.NewTimer(d).C() }

// NewTimer arms a timer that fires when the clock reaches Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, at: f.now.Add(d), ch: make(chan time.Time, 1)}
	f.armed++
	if d <= 0 {
		t.ch <- f.now
	} else {
		f.timers = append(f.timers, t)
	}
	f.notifyLocked()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.timers {
		if p == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			f.notifyLocked()
			return true
		}
	}
	return false
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Advance moves the clock forward by d and fires the timers that are
// due, earliest first.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t (which may be earlier than Now) and fires the
// timers that are due, earliest first.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(t)
}

func (f *Fake) setLocked(t time.Time) {
	f.now = t
	var due, keep []*fakeTimer
	for _, p := range f.timers {
		if p.at.After(t) {
			keep = append(keep, p)
		} else {
			due = append(due, p)
		}
	}
	if len(due) == 0 {
		return
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, p := range due {
		p.ch <- t // buffered, and each timer fires once
	}
	f.timers = keep
	f.notifyLocked()
}

// Pending returns the number of timers armed and neither fired nor
// stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Armed returns the number of timers armed so far (After and NewTimer
// calls), fired, stopped and pending alike.
func (f *Fake) Armed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.armed
}

// BlockUntil waits until at least n timers are pending; it returns
// ctx's error if ctx ends first (pass a test's t.Context()).
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	return f.wait(ctx, func() bool { return len(f.timers) >= n })
}

// BlockUntilArmed waits until at least n timers have been armed in all
// since the clock was made (see Armed); it returns ctx's error if ctx
// ends first. After Advance fired a polling loop's timer, waiting for
// Armed()+1 waits for the loop to have done its round.
func (f *Fake) BlockUntilArmed(ctx context.Context, n int) error {
	return f.wait(ctx, func() bool { return f.armed >= n })
}

func (f *Fake) wait(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
