package planner

import (
	"fmt"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// Limits of promotion, as fractions of the balanced size. A promotion
// fills a light night up to promoteOvershoot above the balanced size; one
// that takes a full from a hill (a day more than hillAbove above its share
// of the cycle) may carry tonight up to hillOvershoot above it.
const (
	promoteOvershoot = 0.10
	hillAbove        = 0.25
	hillOvershoot    = 0.25
)

// cycleLoads projects the fulls of the DLEs with scheduled fulls: tonight's
// (f0), and for each of the next dumpcycle-1 days the fulls that fall due
// that day if nothing changes. It also returns the sum of all their fulls.
func (p *planner) cycleLoads() (f0 float64, loads []float64, cycle float64) {
	loads = make([]float64, p.cfg.Dumpcycle)
	for _, s := range p.st {
		if !s.balanced(p.cfg) {
			continue
		}
		size := float64(s.fullOut())
		cycle += size
		switch {
		case s.level == 0:
			f0 += float64(s.outOf(0))
		case !s.hasFull || s.dueIn(p.cfg) < 1:
			loads[min(1, len(loads)-1)] += size // due, not dumped tonight: tomorrow
		case s.dueIn(p.cfg) < len(loads):
			loads[s.dueIn(p.cfg)] += size
		}
	}
	return f0, loads, cycle
}

// promote moves fulls forward into tonight when tonight carries less than
// the balanced size (sum of all fulls / runspercycle) or a day within reach
// is a hill. A candidate:
//   - has strategy standard, a full on record and a level 0 estimate, and
//     is scheduled at an incremental tonight (not a delayed full);
//   - is due in 1..MaxPromoteDays days (maxpromoteday, and never less than
//     half a cycle after its previous full);
//   - was not itself early last time (its last two fulls are a dumpcycle or
//     more apart): a DLE is never promoted twice in a row;
//   - fits on the tapes and keeps tonight within promoteOvershoot above
//     the balanced size while tonight is below it, or within hillOvershoot
//     when the full comes from a hill.
//
// Of the candidates, the one that most reduces the imbalance of the cycle
// (the sum of squared differences to the balanced size of tonight and of
// the day it comes from) goes first; so fulls come from the heaviest days,
// which flattens them, and fill the light night. Fulls are never delayed
// to balance: only moved forward.
func (p *planner) promote() {
	cfg := p.cfg
	maxd := cfg.MaxPromoteDays()
	if maxd < 1 {
		return
	}
	f0, loads, cycle := p.cycleLoads()
	if cycle <= 0 {
		return
	}
	tRun := cycle / float64(cfg.Runspercycle)
	tDay := cycle / float64(cfg.Dumpcycle)
	var cands []*state
	for _, s := range p.st {
		if !s.balanced(cfg) || !s.hasFull || s.d.Forced ||
			s.kind != KindIncremental || s.level <= 0 || !s.hasEst(0) || s.outOf(0) <= 0 {
			continue
		}
		if k := s.dueIn(cfg); k < 1 || k > maxd || s.lastEarly(cfg) {
			continue
		}
		cands = append(cands, s)
	}
	for {
		var best *state
		var bestGain float64
		for _, s := range cands {
			if s.level == 0 {
				continue
			}
			size := float64(s.outOf(0))
			k := s.dueIn(cfg)
			fill := f0 < tRun && f0+size <= tRun*(1+promoteOvershoot)
			flatten := loads[k] > tDay*(1+hillAbove) && f0+size <= tRun*(1+hillOvershoot)
			if !fill && !flatten {
				continue
			}
			if p.total-p.cost(s, s.level)+p.cost(s, 0) > p.cap {
				continue
			}
			// Moving size from day k to tonight changes the sum of
			// squares by -2*size*((loads[k]-tDay) - (f0-tRun) - size).
			if gain := size * ((loads[k] - tDay) - (f0 - tRun) - size); gain > bestGain {
				best, bestGain = s, gain
			}
		}
		if best == nil {
			return
		}
		s, k := best, best.dueIn(cfg)
		size := float64(s.outOf(0))
		p.total += p.cost(s, 0) - p.cost(s, s.level)
		s.why = fmt.Sprintf("promoted from %s (%s early) to balance the cycle: %s of fulls tonight before it, %s per run balanced",
			dateOf(p.today+k), daysWord(k), bytesize.Format(int64(f0)), bytesize.Format(int64(tRun)))
		s.level, s.fallback, s.kind = 0, s.inc, KindPromoted
		f0 += size
		loads[k] -= size
	}
}
