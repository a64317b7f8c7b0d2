package clock

import (
	"context"
	"testing"
	"time"
)

var epoch = time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestFakeAdvanceFiresDueTimers(t *testing.T) {
	f := NewFake(epoch)
	a := f.After(time.Second)
	b := f.NewTimer(time.Minute)
	if n := f.Pending(); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
	f.Advance(999 * time.Millisecond)
	if _, ok := fired(a); ok {
		t.Fatal("fired before its time")
	}
	f.Advance(time.Millisecond)
	if got, ok := fired(a); !ok || !got.Equal(epoch.Add(time.Second)) {
		t.Fatalf("a: %v %v, want it fired at %v", got, ok, epoch.Add(time.Second))
	}
	if _, ok := fired(b.C()); ok || f.Pending() != 1 {
		t.Fatalf("b fired early, or %d pending", f.Pending())
	}
	f.Set(epoch.Add(time.Hour))
	if got, ok := fired(b.C()); !ok || !got.Equal(epoch.Add(time.Hour)) {
		t.Fatalf("b: %v %v", got, ok)
	}
	if b.Stop() {
		t.Error("Stop of a fired timer reported true")
	}
	if !f.Now().Equal(epoch.Add(time.Hour)) || f.Pending() != 0 || f.Armed() != 2 {
		t.Errorf("now %v, %d pending, %d armed", f.Now(), f.Pending(), f.Armed())
	}
}

func TestFakeZeroDurationFiresAtOnce(t *testing.T) {
	f := NewFake(epoch)
	if got, ok := fired(f.After(0)); !ok || !got.Equal(epoch) {
		t.Fatalf("%v %v", got, ok)
	}
	if _, ok := fired(f.After(-time.Second)); !ok {
		t.Fatal("a negative duration did not fire")
	}
	if f.Pending() != 0 {
		t.Errorf("%d pending", f.Pending())
	}
}

func TestFakeStop(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	f.Advance(time.Hour)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("a stopped timer fired")
	}
	if tm.Stop() {
		t.Error("second Stop reported true")
	}
}

// BlockUntil returns when another goroutine arms the timers; the waiting
// loop then takes turns with the test through BlockUntilArmed.
func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(epoch)
	rounds := make(chan int)
	go func() {
		for i := 1; i <= 3; i++ {
			<-f.After(10 * time.Second)
			rounds <- i
		}
	}()
	for i := 1; i <= 3; i++ {
		if err := f.BlockUntil(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		armed := f.Armed()
		f.Advance(10 * time.Second)
		if got := <-rounds; got != i {
			t.Fatalf("round %d, want %d", got, i)
		}
		if i < 3 {
			if err := f.BlockUntilArmed(t.Context(), armed+1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !f.Now().Equal(epoch.Add(30 * time.Second)) {
		t.Errorf("now %v", f.Now())
	}
}

func TestFakeBlockUntilEndsWithContext(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.BlockUntil(ctx, 1); err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestReal(t *testing.T) {
	var c Clock = Or(nil)
	if c != Real {
		t.Fatal("Or(nil) is not Real")
	}
	tm := c.NewTimer(time.Hour)
	if !tm.Stop() {
		t.Error("Stop of a pending wall-clock timer reported false")
	}
	<-c.After(0) // fires at once
	if c.Now().IsZero() {
		t.Error("zero Now")
	}
}
