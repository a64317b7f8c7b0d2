package planner

import "time"

// EstimateLevels returns the levels the server must ask the client to size
// tonight, lowest first, so that Plan has an estimate for every level it
// may pick (Amanda's rule):
//   - level 0, unless the strategy never schedules fulls (nofull,
//     incronly) and the DLE has a full on record, is not forced and its
//     newest chain is not at risk (DLE.ChainAtRisk);
//   - the current incremental level: 1 after a full, else the level of the
//     newest dump (nofull: always 1);
//   - the next level too, when the current one has run for bumpdays runs,
//     so that a bump can be weighed.
//
// A new DLE (no full on record) and a noinc one are sized at level 0 only;
// strategy skip and a DLE without host or path get none.
func EstimateLevels(cfg Config, d DLE, now time.Time) []int {
	var notes []string
	s := analyze(cfg, &d, now, dayNumber(now, now.Location()), &notes)
	if s.invalid != "" || s.strategy == Skip {
		return nil
	}
	var levels []int
	if s.d.Forced || s.atRisk() || !s.hasFull || s.strategy == NoInc || s.strategy == Standard {
		levels = append(levels, 0)
	}
	switch {
	case !s.hasFull || s.strategy == NoInc:
		return levels
	case s.strategy == NoFull:
		return append(levels, 1)
	}
	l := max(s.lastLevel, 1)
	levels = append(levels, l)
	if s.lastLevel >= 1 && l < MaxLevel && s.runsAtLvl >= cfg.Bumpdays {
		levels = append(levels, l+1)
	}
	return levels
}
