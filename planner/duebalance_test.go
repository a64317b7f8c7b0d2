package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// randomSite is a site of up to 12 DLEs with generated histories: any
// strategy, fulls from 20 days ago to today (at any hour, so that calendar
// days and not 24-hour periods count), incrementals after them, forced
// DLEs, chains at risk, estimates present or missing.
func randomSite(rng *rand.Rand) (Config, []DLE, time.Time) {
	cfg := DefaultConfig()
	cfg.Dumpcycle = 1 + rng.IntN(14)
	cfg.Runspercycle = 1 + rng.IntN(cfg.Dumpcycle)
	cfg.Runtapes = 1 + rng.IntN(3)
	when := now.Add(time.Duration(rng.IntN(23*60)) * time.Minute)
	strategies := []Strategy{"", Standard, NoFull, NoInc, Skip, IncrOnly}
	var dles []DLE
	for i := range rng.IntN(12) {
		d := DLE{Host: fmt.Sprintf("h%d", rng.IntN(3)), Path: fmt.Sprintf("/p%d", i),
			Strategy: strategies[rng.IntN(len(strategies))], Forced: rng.IntN(8) == 0}
		if rng.IntN(6) == 0 {
			d.ChainAtRisk = "volume T-001 is reused next"
		}
		size := int64(1+rng.IntN(50)) * gib
		if rng.IntN(5) > 0 { // a full on record
			at := when.AddDate(0, 0, -rng.IntN(21)).Add(-time.Duration(rng.IntN(20*60)) * time.Minute)
			d.History = append(d.History, Dump{Time: at, Level: 0, OrigBytes: size, OutBytes: size / 2})
			for k := range rng.IntN(4) {
				inc := at.Add(time.Duration(k+1) * 20 * time.Hour)
				if inc.Before(when) {
					d.History = append(d.History, Dump{Time: inc, Level: 1, OrigBytes: size / 10, OutBytes: size / 20})
				}
			}
		}
		if rng.IntN(4) > 0 {
			d.Estimates = map[int]int64{0: size, 1: size / 10}
		}
		dles = append(dles, d)
	}
	return cfg, dles, when
}

// `tapir admin balance` and `tapir admin due` agree on the day of every
// DLE's next full: the day balance charts it on is the day due says
// (tonight when overdue); a DLE due never is on no day; every DLE balance
// charts has an entry in due.
func TestBalanceAgreesWithDue(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 19))
		cfg, dles, when := randomSite(rng)
		due, err := Due(cfg, dles, when)
		if err != nil {
			t.Fatalf("seed %d: due: %v", seed, err)
		}
		bal, err := Balance(cfg, dles, when)
		if err != nil {
			t.Fatalf("seed %d: balance: %v", seed, err)
		}
		charted := map[string]int{}
		for _, d := range bal.Days {
			if d.DLEs != len(d.Names) {
				t.Fatalf("seed %d: day %d counts %d DLEs but names %v", seed, d.Day, d.DLEs, d.Names)
			}
			for _, n := range d.Names {
				if _, dup := charted[n]; dup {
					t.Fatalf("seed %d: %s charted twice", seed, n)
				}
				charted[n] = d.Day
			}
		}
		if len(bal.Days) < cfg.Dumpcycle {
			t.Fatalf("seed %d: %d days charted, want at least the cycle (%d)", seed, len(bal.Days), cfg.Dumpcycle)
		}
		unknown := map[string]bool{}
		for _, n := range bal.Unknown {
			unknown[n] = true
		}
		strategy := map[string]Strategy{}
		for _, d := range dles {
			strategy[d.Name()] = d.Strategy
		}
		for _, e := range due.Entries {
			name := e.Host + ":" + e.Path
			day, ok := charted[name]
			switch {
			case strategy[name] == NoInc:
				if ok {
					t.Errorf("seed %d: %s (noinc, a full every run) charted on day %d", seed, name, day)
				}
			case e.Never:
				if ok {
					t.Errorf("seed %d: %s: due says never (%s), balance charts it on day %d", seed, name, e.Note, day)
				}
			case unknown[name]:
				if ok {
					t.Errorf("seed %d: %s is of unknown size and charted on day %d", seed, name, day)
				}
			case !ok:
				t.Errorf("seed %d: %s: due says in %d days (%s), balance does not chart it", seed, name, e.DueIn, e.Note)
			case day != max(e.DueIn, 0):
				t.Errorf("seed %d: %s: due says in %d days (%s), balance charts it on day %d", seed, name, e.DueIn, e.Note, day)
			}
			delete(charted, name)
		}
		for n := range charted {
			t.Errorf("seed %d: balance charts %s, which due does not list", seed, n)
		}
	}
}
