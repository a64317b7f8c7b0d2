package planner

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// simDLE is one simulated filesystem: its size, how much of it changes
// every day, how well it compresses, and the day of its newest dump at
// each level.
type simDLE struct {
	dle    DLE
	size   float64 // tar bytes of a full
	rate   float64 // fraction of the bytes changed per day
	growth float64 // fraction the DLE grows per day
	comp   float64 // compressed / tar bytes
	lastAt [MaxLevel + 1]int
	fulls  []simFull
	dumped []bool // by night: dumped that night (at any level)
}

type simFull struct {
	night int
	kind  Kind
}

// sizeAt is the tar size of a dump at level tonight (night t): a full is
// the whole DLE; level N holds what changed since the newest dump of a
// lower level, which grows with the days since that dump.
func (d *simDLE) sizeAt(level, t int) int64 {
	if level == 0 {
		return int64(d.size)
	}
	base := -1
	for l := 0; l < level; l++ {
		base = max(base, d.lastAt[l])
	}
	if base < 0 {
		return int64(d.size)
	}
	days := float64(t - base)
	return int64(d.size * (1 - math.Pow(1-d.rate, days)))
}

// simOpts change the simulated site.
type simOpts struct {
	// tapecycle, when not 0, models the volumes: tapecycle+1 of them in
	// rotation, one per night, so that the next run always reuses the
	// volume written tapecycle nights before tonight. Every night, a DLE
	// whose newest chain has an image on that volume gets ChainAtRisk.
	tapecycle int
	capScale  float64 // the tape holds this many balanced nights; 0 = 1.3
}

type simResult struct {
	nights     int
	capacity   int64
	fullTotals []int64 // per night, actual bytes written by fulls
	totals     []int64 // per night, actual bytes written
	dles       []*simDLE
	plans      []*Schedule
	// overwritten lists, with tapecycle, the DLEs whose newest chain had an
	// image on the volume a night reused, by night.
	overwritten map[int][]string
}

// simulate runs the planner for nights nights on n DLEs, applying each
// night's plan to the simulated histories.
func simulate(t testing.TB, seed uint64, n, nights int, forced map[int][]int, o simOpts) simResult {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	logUniform := func(lo, hi float64) float64 {
		return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
	}
	dles := make([]*simDLE, n)
	var balanced float64
	for i := range dles {
		d := &simDLE{
			size:   logUniform(10*float64(mib), 500*float64(gib)),
			rate:   logUniform(0.001, 0.20),
			growth: rng.Float64() * 0.002,
			comp:   0.3 + rng.Float64()*0.6,
		}
		for l := range d.lastAt {
			d.lastAt[l] = -1
		}
		prio := []Priority{Low, Medium, Medium, High}[rng.IntN(4)]
		d.dle = DLE{Host: fmt.Sprintf("host%03d", i/4), Path: fmt.Sprintf("/fs%d", i%4), Priority: prio}
		dles[i] = d
		// A balanced night: a seventh of the fulls, plus the level 1 of
		// the others half-way through their cycle.
		balanced += d.size*d.comp/7 + d.size*d.comp*(1-math.Pow(1-d.rate, 3.5))
	}
	cfg := DefaultConfig()
	if o.capScale == 0 {
		o.capScale = 1.3
	}
	cfg.TapeLength = int64(o.capScale * balanced)
	res := simResult{nights: nights, capacity: cfg.Capacity(), dles: dles, overwritten: map[int][]string{}}
	// chainOn reports whether d's newest chain has an image written on
	// night x, and the night of its newest full.
	chainOn := func(d *simDLE, x int) (bool, int) {
		if len(d.fulls) == 0 || x < 0 {
			return false, -1
		}
		f := d.fulls[len(d.fulls)-1].night
		return x >= f && x < len(d.dumped) && d.dumped[x], f
	}
	start := time.Date(2026, 3, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	for night := range nights {
		// Runs start between 00:55 and 01:05.
		now := start.AddDate(0, 0, night).Add(time.Duration(rng.IntN(11)-5) * time.Minute)
		in := make([]DLE, n)
		for _, d := range dles {
			if o.tapecycle > 0 {
				// Tonight reuses the volume of night-tapecycle-1; the
				// next run that of night-tapecycle.
				if on, _ := chainOn(d, night-o.tapecycle-1); on {
					res.overwritten[night] = append(res.overwritten[night], d.dle.Name())
				}
				d.dle.ChainAtRisk = ""
				if on, f := chainOn(d, night-o.tapecycle); on {
					d.dle.ChainAtRisk = fmt.Sprintf("its chain from the full of night %d has an image on the volume of night %d, which the next run must reuse", f+1, night-o.tapecycle+1)
				}
			}
			d.dumped = append(d.dumped, false)
		}
		for i, d := range dles {
			d.size *= 1 + d.growth
			d.dle.Forced = slices.Contains(forced[night], i)
			d.dle.Estimates = map[int]int64{}
			for _, l := range EstimateLevels(cfg, d.dle, now) {
				d.dle.Estimates[l] = d.sizeAt(l, night)
			}
			in[i] = d.dle
		}
		p, err := Plan(cfg, in, now)
		if err != nil {
			t.Fatal(err)
		}
		res.plans = append(res.plans, p)
		byName := map[string]*simDLE{}
		for _, d := range dles {
			byName[d.dle.Name()] = d
		}
		var full, total int64
		for _, e := range p.Entries {
			d := byName[e.Host+":"+e.Path]
			if e.EstOrig != d.sizeAt(e.Level, night) {
				t.Fatalf("night %d: %s planned at level %d with %d bytes, estimate was %d", night, d.dle.Name(), e.Level, e.EstOrig, d.sizeAt(e.Level, night))
			}
			orig := d.sizeAt(e.Level, night)
			out := int64(float64(orig) * d.comp)
			d.dle.History = append(d.dle.History, Dump{Time: now, Level: e.Level, OrigBytes: orig, OutBytes: out})
			d.lastAt[e.Level] = night
			d.dumped[night] = true
			total += out + cfg.ImageOverhead
			if e.Level == 0 {
				full += out
				kind := e.Kind
				if d.dle.Forced {
					kind = KindForced
					d.dle.Forced = false
				}
				d.fulls = append(d.fulls, simFull{night, kind})
			}
		}
		for _, d := range dles {
			d.dle.Forced = false
			if len(d.dle.History) > 60 { // the planner needs a few cycles of history, no more
				d.dle.History = slices.Delete(d.dle.History, 0, len(d.dle.History)-60)
			}
		}
		res.fullTotals = append(res.fullTotals, full)
		res.totals = append(res.totals, total)
	}
	return res
}

// TestSimulation90Nights is the proof of the planner: 200 DLEs from 10 MiB
// to 500 GiB changing 0.1 % to 20 % a day, 90 nightly runs, dumpcycle =
// runspercycle = 7, a tape that holds about 1.3 balanced nights.
//
// Three seeds make three different sites; each run prints the per-night
// totals and the statistics with go test -v.
func TestSimulation90Nights(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { checkSimulation(t, seed) })
	}
}

func checkSimulation(t *testing.T, seed uint64) {
	const n, nights, cycle = 200, 90, 7
	forced := map[int][]int{30: {5}, 61: {100, 150}}
	r := simulate(t, seed, n, nights, forced, simOpts{})

	var lines []string
	for night, p := range r.plans {
		lines = append(lines, fmt.Sprintf("night %2d: fulls %3d %9s  incrementals %3d %9s  total %9s of %s (%s)  delayed %d skipped %d",
			night+1, p.Fulls, bytesize.Format(r.fullTotals[night]), p.Incrs, bytesize.Format(p.IncrOut), bytesize.Format(r.totals[night]), bytesize.Format(r.capacity),
			percent(r.totals[night], r.capacity), len(p.Delayed), len(p.Skipped)))
	}
	t.Log("\n" + strings.Join(lines, "\n"))

	// Every night fits the tapes: as planned, and as written once the
	// compression ratio of every DLE dumped is known from its history.
	var guessed []string
	for night, p := range r.plans {
		if p.Total > r.capacity {
			t.Errorf("night %d: planned %s on %s of tape", night+1, bytesize.Format(p.Total), bytesize.Format(r.capacity))
		}
		switch {
		case !allKnown(r, night):
			guessed = append(guessed, fmt.Sprintf("%d (%s)", night+1, percent(r.totals[night], r.capacity)))
		case r.totals[night] > r.capacity:
			t.Errorf("night %d: wrote %s on %s of tape", night+1, bytesize.Format(r.totals[night]), bytesize.Format(r.capacity))
		}
	}
	t.Logf("nights with first fulls, whose compression ratio the planner guesses (0.5; the simulated DLEs compress to 0.3..0.9), written vs tape: %s",
		strings.Join(guessed, ", "))

	// No DLE goes more than dumpcycle days without a full, unless the
	// night's schedule names it (delayed or not dumped, with the reason).
	late := 0
	for _, d := range r.dles {
		fullOn := map[int]bool{}
		for _, f := range d.fulls {
			fullOn[f.night] = true
		}
		last := -1
		for night := range nights {
			if fullOn[night] {
				last = night
				continue
			}
			if last >= 0 && night-last >= cycle || last < 0 {
				if !named(r.plans[night], d.dle) {
					t.Errorf("night %d: %s has had no full for %d nights and the plan does not say why", night+1, d.dle.Name(), night-last)
				}
				if last >= 0 {
					late++
				}
			}
		}
	}
	t.Logf("DLE-nights past dumpcycle without a full (each named in the plan): %d", late)

	// No DLE gets two fulls within one cycle unless forced: a full comes at
	// least half a cycle after the previous one, and never two early
	// (promoted) fulls in a row.
	var fullsPerCycle []float64
	for _, d := range r.dles {
		prevGap := cycle
		for i := 1; i < len(d.fulls); i++ {
			a, b := d.fulls[i-1], d.fulls[i]
			if a.kind == KindForced || b.kind == KindForced || b.kind == KindFutile {
				prevGap = cycle
				continue
			}
			gap := b.night - a.night
			if gap < (cycle+1)/2 {
				t.Errorf("%s: fulls on nights %d and %d (%s), %d nights apart", d.dle.Name(), a.night+1, b.night+1, b.kind, gap)
			}
			if gap < cycle && prevGap < cycle {
				t.Errorf("%s: two early fulls in a row, on nights %d and %d", d.dle.Name(), d.fulls[i-1].night+1, b.night+1)
			}
			prevGap = gap
		}
		if len(d.fulls) > 0 {
			span := float64(nights - d.fulls[0].night)
			fullsPerCycle = append(fullsPerCycle, float64(len(d.fulls))/(span/cycle))
		}
	}
	sort.Float64s(fullsPerCycle)
	var mean float64
	for _, f := range fullsPerCycle {
		mean += f
	}
	mean /= float64(len(fullsPerCycle))
	t.Logf("fulls per DLE per cycle: mean %.3f, median %.3f, max %.3f", mean, fullsPerCycle[len(fullsPerCycle)/2], fullsPerCycle[len(fullsPerCycle)-1])
	if mean > 1.15 {
		t.Errorf("%.3f fulls per DLE per cycle on average: promotion is too eager", mean)
	}

	// After the first cycle, the nightly total of fulls stays within
	// +/- 25 % of the mean on at least 90 % of the nights.
	after := r.fullTotals[cycle:]
	var sum float64
	for _, f := range after {
		sum += float64(f)
	}
	avg := sum / float64(len(after))
	within := 0
	var dev []float64
	for _, f := range after {
		d := (float64(f) - avg) / avg
		dev = append(dev, d)
		if math.Abs(d) <= 0.25 {
			within++
		}
	}
	sort.Float64s(dev)
	t.Logf("fulls per night after the first cycle: mean %s, min %+.0f %%, max %+.0f %%, within +/-25 %%: %d of %d nights",
		bytesize.Format(int64(avg)), 100*dev[0], 100*dev[len(dev)-1], within, len(after))
	if float64(within) < 0.9*float64(len(after)) {
		t.Errorf("only %d of %d nights within +/-25 %% of the mean of fulls", within, len(after))
	}
}

// named reports whether the plan lists d as delayed or skipped.
func named(p *Schedule, d DLE) bool {
	for _, x := range p.Delayed {
		if x.Host == d.Host && x.Path == d.Path && x.Reason != "" {
			return true
		}
	}
	for _, x := range p.Skipped {
		if x.Host == d.Host && x.Path == d.Path && x.Reason != "" {
			return true
		}
	}
	return false
}

// allKnown reports whether every DLE dumped on night had a dump before,
// so that the planner knew its compression ratio.
func allKnown(r simResult, night int) bool {
	for _, d := range r.dles {
		if len(d.fulls) > 0 && d.fulls[0].night == night {
			return false
		}
	}
	return true
}

// TestSimulationChainsAtRisk: the same site with a tapecycle of 5 volumes,
// one a night, and dumpcycle 7: a chain of one dumpcycle does not fit in
// the rotation (tapir config check warns), so the server marks every night
// the DLEs whose newest chain is on the volume the next run reuses, and
// the planner must give them a full first. No night may reuse a volume
// that holds a newest chain, unless the plan of the night before said that
// chain stays at risk (its full did not fit).
func TestSimulationChainsAtRisk(t *testing.T) {
	const n, nights, tapecycle = 200, 90, 5
	r := simulate(t, 1, n, nights, nil, simOpts{tapecycle: tapecycle, capScale: 1.8})
	saved, stays := 0, map[int]map[string]bool{}
	for night, p := range r.plans {
		stays[night] = map[string]bool{}
		for _, c := range p.Chains {
			if c.Full {
				saved++
			} else {
				stays[night][c.Host+":"+c.Path] = true
			}
		}
		if p.Total > r.capacity {
			t.Errorf("night %d: planned %s on %s of tape", night+1, bytesize.Format(p.Total), bytesize.Format(r.capacity))
		}
	}
	lost := 0
	for night := 1; night < nights; night++ {
		for _, name := range r.overwritten[night] {
			lost++
			if !stays[night-1][name] {
				t.Errorf("night %d reuses a volume holding the newest chain of %s, and the plan of night %d did not say it stays at risk", night+1, name, night)
			}
		}
	}
	var perCycle float64
	for _, d := range r.dles {
		if len(d.fulls) > 0 {
			perCycle += float64(len(d.fulls)) / (float64(nights-d.fulls[0].night) / 7)
		}
	}
	perCycle /= float64(len(r.dles))
	t.Logf("fulls for chains at risk: %d; newest chains overwritten: %d; fulls per DLE per dumpcycle: %.2f (7/tapecycle = %.2f)",
		saved, lost, perCycle, 7.0/tapecycle)
	if saved == 0 {
		t.Error("no chain was ever at risk: the simulation does not model the rotation")
	}
	if lost > nights/10 {
		t.Errorf("%d newest chains overwritten in %d nights: the planner does not save them", lost, nights)
	}
	if perCycle > 7.0/tapecycle*1.15 {
		t.Errorf("%.2f fulls per DLE per dumpcycle: more than the rotation needs (%.2f)", perCycle, 7.0/tapecycle)
	}
}
