package taper

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestStartNowExamples(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		name                         string
		written, estimate            int64
		dumpRate, driveRate, minRate float64
		want                         bool
	}{
		{"nothing written", 0, 100 * MiB, 50 * MiB, 300 * MiB, 0, false},
		{"no estimate", 10 * MiB, 0, 50 * MiB, 300 * MiB, 0, false},
		{"no dump rate yet", 10 * MiB, 100 * MiB, 0, 300 * MiB, 0, false},
		{"no drive rate", 10 * MiB, 100 * MiB, 50 * MiB, 0, 0, false},
		{"drive slower than the dumper", 1, 100 * MiB, 400 * MiB, 300 * MiB, 0, true},
		{"drive as fast as the dumper", 1, 100 * MiB, 300 * MiB, 300 * MiB, 0, true},
		{"past the estimate", 200 * MiB, 100 * MiB, 1 * MiB, 300 * MiB, 0, true},
		// 110 MiB with the margin; drive 5x the dumper: start at 4/5 of it, 88 MiB.
		{"just short", 87 * MiB, 100 * MiB, 60 * MiB, 300 * MiB, 0, false},
		{"just enough", 89 * MiB, 100 * MiB, 60 * MiB, 300 * MiB, 0, true},
		{"NaN rate", 10 * MiB, 100 * MiB, math.NaN(), 300 * MiB, 0, false},
		// A drive that matches its speed down to 112 MiB/s: a dumper that
		// fast is taped at once, a slower one buffered as before.
		{"speed matching, fed enough", 1, 100 * MiB, 120 * MiB, 300 * MiB, 112 * MiB, true},
		{"speed matching, fed too slowly", 1 * MiB, 100 * MiB, 100 * MiB, 300 * MiB, 112 * MiB, false},
		{"speed matching, too slowly but enough buffered", 89 * MiB, 100 * MiB, 60 * MiB, 300 * MiB, 112 * MiB, true},
		{"speed matching, nothing written", 0, 100 * MiB, 120 * MiB, 300 * MiB, 112 * MiB, false},
	} {
		if got := StartNow(tc.written, tc.estimate, tc.dumpRate, tc.driveRate, tc.minRate); got != tc.want {
			t.Errorf("%s: StartNow(%d, %d, %g, %g, %g) = %v, want %v", tc.name, tc.written, tc.estimate, tc.dumpRate, tc.driveRate, tc.minRate, got, tc.want)
		}
	}
}

// The properties of the rule over random inputs: once it says start, more
// bytes written, a faster dumper or a slower drive say start too; and
// when it says start, a drive started then at constant rates never runs
// out of bytes before the (estimated) image ends, while one step earlier
// it would have.
func TestStartNowProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	for i := range 100000 {
		est := 1 + rng.Int64N(1<<40)
		written := rng.Int64N(est*2) + 1
		dump := 1 + rng.Float64()*1e9
		drive := 1 + rng.Float64()*1e9
		minRate := 0.0 // half the drives match their speed, down to a random rate
		if rng.IntN(2) == 0 {
			minRate = drive * rng.Float64()
		}
		start := StartNow(written, est, dump, drive, minRate)
		matched := minRate > 0 && dump >= minRate
		if start {
			if !StartNow(written+1+rng.Int64N(est), est, dump, drive, minRate) {
				t.Fatalf("case %d: more bytes written turn start into wait", i)
			}
			if !StartNow(written, est, dump*(1+rng.Float64()), drive, minRate) {
				t.Fatalf("case %d: a faster dumper turns start into wait", i)
			}
			if !StartNow(written, est, dump, drive*rng.Float64()+1e-9, minRate*rng.Float64()) {
				t.Fatalf("case %d: a slower drive turns start into wait", i)
			}
			if !StartNow(written, max(1, est-rng.Int64N(est)), dump, drive, minRate) {
				t.Fatalf("case %d: a smaller image turns start into wait", i)
			}
			if matched {
				continue // the drive slows down to the dumper: it never stops
			}
			// The drive, started now, has not caught up when the dumper
			// ends: at t_end it has written at most what the dumper has.
			remaining := float64(est)*StartMargin - float64(written)
			if remaining > 0 {
				tEnd := remaining / dump
				if drive*tEnd > float64(written)+dump*tEnd+1e-6*float64(est) {
					t.Fatalf("case %d: started with %d of %d bytes (dump %g/s, drive %g/s) the drive catches up before the end", i, written, est, dump, drive)
				}
			}
		} else {
			if matched {
				t.Fatalf("case %d: waits although the dumper (%g/s) feeds the drive at least its min_rate (%g/s)", i, dump, minRate)
			}
			remaining := float64(est)*StartMargin - float64(written)
			tEnd := remaining / dump
			// Waiting is only right when the drive would catch up.
			if !(drive*tEnd > float64(written)+dump*tEnd-1e-6*float64(est)) {
				t.Fatalf("case %d: waits with %d of %d bytes (dump %g/s, drive %g/s) although the drive cannot catch up", i, written, est, dump, drive)
			}
		}
	}
}

func TestRate(t *testing.T) {
	if r := Rate(300, 2*time.Second); r != 150 {
		t.Errorf("Rate = %g", r)
	}
	if r := Rate(300, 0); r != 0 {
		t.Errorf("Rate over 0 s = %g", r)
	}
}
