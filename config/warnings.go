package config

import "fmt"

// lookahead is taper.Lookahead: the runs after tonight whose volumes the
// planner keeps free of newest chains (config does not import taper).
const lookahead = 2

// ChainWarnings reports the settings that cannot keep one restorable chain
// per DLE (its newest full and the incrementals after it) in the rotation
// of volumes, one sentence each, with the smallest value that would work.
// They are warnings, not errors: tapir still runs, but it never overwrites
// a volume that holds a newest chain, so such a site either runs out of
// volumes or needs fulls more often than dumpcycle says. With the number
// of slots S known (the disk changer's slots, a robot's when written), T =
// tapecycle, R = runtapes, C = runspercycle:
//
//   - S < T + R: the newest T volumes may not be overwritten and a run
//     needs R more, so no volume ever leaves tapecycle to be reused.
//   - S < T + 2R: no spare night's worth of volumes. A night in which a
//     client misses the full the planner promoted for it leaves that
//     client's chain on a volume the next run needs: the run is refused it
//     (the randomised property test in taper proves T + 2R enough).
//   - S < (C + 2) × R: the rotation is shorter than one dumpcycle's chain
//     plus the planner's look-ahead of 2 runs, so fulls are promoted every
//     S/R - 2 runs instead of every C.
//
// With S unknown (a single drive, a robot whose slots are not written)
// the rotation is what tapecycle keeps: T < C × R promotes fulls every T/R
// runs (Amanda's advice is T at least C × R + 1).
//
// `tapir config check` prints them all; `tapir check` reports the first
// two as problems (ChainProblems: the rotation can stop) and the others as
// information (fulls come more often, but every chain is kept); c must be
// a loaded configuration.
func ChainWarnings(c *Config) []string {
	p, a := chainRules(c)
	return append(p, a...)
}

// ChainProblems are the warnings of ChainWarnings with which the rotation
// can stop: too few slots for tapecycle, a run's volumes and a spare run's.
func ChainProblems(c *Config) []string {
	p, _ := chainRules(c)
	return p
}

func chainRules(c *Config) (w, advice []string) {
	t, r, cyc := c.Tapecycle, c.Runtapes, c.Runspercycle
	if t < 1 || r < 1 || cyc < 1 {
		return nil, nil // Load refuses these
	}
	s := c.Changer.Slots
	if s <= 0 || (c.Changer.Type != "disk" && c.Changer.Type != "robot") {
		if t < cyc*r {
			advice = append(advice, fmt.Sprintf("tapecycle %d is less than runspercycle × runtapes (%d × %d = %d): the chain of one dumpcycle (%s, %s) does not fit in the rotation, "+
				"so tapir must promote fulls to keep each DLE restorable: %s; set tapecycle to at least %d",
				t, cyc, r, cyc*r, plural(c.Dumpcycle, "day"), plural(cyc, "run"), every(t/r, cyc), cyc*r+1))
		}
		return w, advice
	}
	switch {
	case s < t+r:
		w = append(w, fmt.Sprintf("with tapecycle %d and runtapes %d, the changer needs at least %d slots (it has %d): "+
			"the newest %d volumes are never overwritten and a run needs %d more, so no volume ever leaves tapecycle to be reused; add slots or lower tapecycle",
			t, r, t+2*r, s, t, r))
	case s < t+2*r:
		w = append(w, fmt.Sprintf("with tapecycle %d and runtapes %d, the changer needs at least %d slots (it has %d): "+
			"the newest %d volumes, a run's %d and a spare run's %d, so that a client that misses its full one night does not leave its chain on the volume the next run needs; add slots or lower tapecycle",
			t, r, t+2*r, s, t, r, r))
	}
	if need := (cyc + lookahead) * r; s >= t+r && s < need {
		advice = append(advice, fmt.Sprintf("%d slots at runtapes %d rotate every %s, shorter than one dumpcycle's chain (%s) plus the %d runs the planner looks ahead: "+
			"tapir promotes fulls to keep each DLE restorable, %s; set slots to at least %d for fulls every dumpcycle",
			s, r, plural(s/r, "run"), plural(cyc, "run"), lookahead, every(s/r-lookahead, cyc), need))
	}
	return w, advice
}

func every(n, cyc int) string {
	switch {
	case n == 1:
		return fmt.Sprintf("a full of every DLE every run instead of every %d", cyc)
	case n < 1:
		return "more than a full of every DLE every run, which cannot be done"
	}
	return fmt.Sprintf("a full of every DLE every %d runs instead of every %d", n, cyc)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
