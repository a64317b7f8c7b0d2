package planner

import (
	"io"
	"testing"
	"time"
)

// bytesIn hands out the fuzzer's bytes, zeros when they run out.
type bytesIn struct {
	b []byte
	i int
}

func (r *bytesIn) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

func (r *bytesIn) done() bool { return r.i >= len(r.b) }

// fuzzSite decodes a configuration and a list of DLEs from data: any bytes
// give some site, with odd histories (future dates, bad levels, negative
// sizes), missing and bogus estimates, duplicates, bad strategies and
// chains at risk.
func fuzzSite(data []byte) (Config, []DLE) {
	r := &bytesIn{b: data}
	cfg := DefaultConfig()
	cfg.Dumpcycle = 1 + r.next()%14
	cfg.Runspercycle = 1 + r.next()%14
	cfg.Runtapes = 1 + r.next()%3
	cfg.TapeLength = int64(1+r.next()) * gib
	cfg.Bumpdays = 1 + r.next()%4
	cfg.Bumppercent = float64(r.next() % 30)
	cfg.Maxpromoteday = r.next() % 10
	cfg.ImageOverhead = int64(r.next()) * mib
	strategies := []Strategy{Standard, Standard, NoFull, NoInc, Skip, IncrOnly, "", "bogus"}
	priorities := []Priority{Low, Medium, High, "", "odd"}
	var dles []DLE
	for !r.done() && len(dles) < 64 {
		flags := r.next()
		d := DLE{
			Host:     []string{"a", "b", "c", ""}[r.next()%4],
			Path:     []string{"/x", "/y", "/z", ""}[r.next()%4],
			Strategy: strategies[flags%len(strategies)],
			Priority: priorities[(flags/8)%len(priorities)],
			Forced:   flags&0x80 != 0,
		}
		if flags&0x40 != 0 {
			d.ChainAtRisk = "its last full is on T-001, which the next run must reuse"
		}
		for n := r.next() % 12; n > 0; n-- {
			daysAgo := r.next()%40 - 2 // some in the future
			size := int64(r.next()-8) * gib / 4
			d.History = append(d.History, Dump{
				Time:      now.Add(time.Duration(r.next()%48-24)*time.Hour).AddDate(0, 0, -daysAgo),
				Level:     r.next()%12 - 1,
				OrigBytes: size,
				OutBytes:  size * int64(r.next()%4) / 3,
			})
		}
		mask := r.next()<<8 | r.next()
		d.Estimates = map[int]int64{}
		for l := -1; l <= 10; l++ {
			if mask&(1<<(l+1)) != 0 {
				d.Estimates[l] = int64(r.next()-4) * gib / 2
			}
		}
		dles = append(dles, d)
	}
	return cfg, dles
}

// FuzzPlan: whatever the input, no panic, and every schedule keeps the
// planner's promises (checkInvariants): each DLE dumped or skipped with a
// reason, only estimated levels, the night fits.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{7, 7, 1, 100, 2, 0, 10, 0, 0, 0, 0, 3, 7, 40, 0, 1, 0, 255, 255, 80, 60, 40})
	f.Add([]byte{3, 5, 2, 3, 1, 10, 3, 1, 0x80, 1, 1, 5, 9, 200, 3, 2, 2, 0, 15, 9, 9, 9, 9, 0x81, 1, 1, 0, 0, 3, 12, 12, 12})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, dles := fuzzSite(data)
		sc, err := Plan(cfg, dles, now)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, cfg, dles, sc)
		if err := sc.Explain(io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, d := range dles {
			for _, l := range EstimateLevels(cfg, d, now) {
				if l < 0 || l > MaxLevel {
					t.Fatalf("EstimateLevels gave level %d", l)
				}
			}
		}
		due, err := Due(cfg, dles, now)
		if err != nil || due.Write(io.Discard) != nil || len(due.Entries) != len(dles) {
			t.Fatalf("Due: %v, %d entries for %d DLEs", err, len(due.Entries), len(dles))
		}
		bal, err := Balance(cfg, dles, now)
		if err != nil || bal.Write(io.Discard) != nil {
			t.Fatalf("Balance: %v", err)
		}
	})
}
