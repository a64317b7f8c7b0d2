package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSite builds n DLEs with 90 nights of history each: a full every
// dumpcycle nights (staggered over the cycle), incrementals bumped every
// few nights in between, and tonight's estimates for the levels
// EstimateLevels asks.
func benchSite(n int) (Config, []DLE) {
	rng := rand.New(rand.NewPCG(10000, 90))
	cfg := DefaultConfig()
	var total int64
	dles := make([]DLE, n)
	for i := range dles {
		size := int64(10*mib) + rng.Int64N(100*gib)
		total += size / 2
		d := DLE{Host: fmt.Sprintf("host%05d", i/5), Path: fmt.Sprintf("/fs%d", i%5)}
		level := 0
		for night := 90; night >= 1; night-- {
			switch {
			case (night+i)%7 == 0:
				level = 0
			case level == 0:
				level = 1
			case night%3 == 0 && level < 4:
				level++
			}
			orig := size
			if level > 0 {
				orig = size / int64(20+10*level)
			}
			d.History = append(d.History, Dump{Time: ago(night), Level: level, OrigBytes: orig, OutBytes: orig / 2})
		}
		d.Estimates = map[int]int64{}
		for _, l := range EstimateLevels(cfg, d, now) {
			if l == 0 {
				d.Estimates[l] = size
			} else {
				d.Estimates[l] = size / int64(20+10*l)
			}
		}
		dles[i] = d
	}
	cfg.TapeLength = total / 8 // a little short of a night: fit delays some fulls
	return cfg, dles
}

// BenchmarkPlan10000 plans a night of 10,000 DLEs with 90 days of history
// each; the goal is under 1 s per plan (bench/plan.sh prints the verdict).
func BenchmarkPlan10000(b *testing.B) {
	cfg, dles := benchSite(10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Plan(cfg, dles, now); err != nil {
			b.Fatal(err)
		}
	}
}
