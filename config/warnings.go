package config

import "fmt"

// ChainWarnings reports the settings that cannot keep one restorable chain
// per DLE (its newest full and the incrementals after it) in the rotation
// of volumes, one sentence each, with the smallest value that would work.
// They are warnings, not errors: tapir still runs, but it never overwrites
// a volume that holds a newest chain, so such a site either runs out of
// volumes or needs fulls more often than dumpcycle says. The rules:
//
//   - slots < tapecycle + runtapes (only when the number of slots is known:
//     the disk changer's slots, a robot's when written): the newest
//     tapecycle volumes may not be overwritten and a run needs runtapes
//     more, so no volume ever leaves tapecycle to be reused.
//   - tapecycle < runspercycle × runtapes: a dumpcycle of runs writes more
//     volumes than tapecycle protects, so a DLE's chain is on a volume due
//     for reuse before its next full is due; the planner then promotes fulls
//     every tapecycle/runtapes runs instead of every runspercycle.
//     Amanda's advice is tapecycle at least runspercycle × runtapes + 1.
//
// `tapir config check` prints them; c must be a loaded configuration.
func ChainWarnings(c *Config) []string {
	var w []string
	t, r := c.Tapecycle, c.Runtapes
	if t < 1 || r < 1 {
		return nil // Load refuses these
	}
	if s := c.Changer.Slots; s > 0 && (c.Changer.Type == "disk" || c.Changer.Type == "robot") && s < t+r {
		w = append(w, fmt.Sprintf("with tapecycle %d and runtapes %d, the changer needs at least %d slots (it has %d): "+
			"the newest %d volumes are never overwritten and a run needs %d more, so no volume ever leaves tapecycle to be reused; add slots or lower tapecycle",
			t, r, t+r, s, t, r))
	}
	if need := c.Runspercycle * r; t < need {
		every := fmt.Sprintf("a full of every DLE every %d runs instead of every %d", t/r, c.Runspercycle)
		switch {
		case t/r == 1:
			every = fmt.Sprintf("a full of every DLE every run instead of every %d", c.Runspercycle)
		case t/r < 1:
			every = "more than a full of every DLE every run, which cannot be done"
		}
		w = append(w, fmt.Sprintf("tapecycle %d is less than runspercycle × runtapes (%d × %d = %d): "+
			"the chain of one dumpcycle (%s, %s) does not fit in the rotation, so tapir must promote fulls to keep each DLE restorable: %s; "+
			"set tapecycle to at least %d",
			t, c.Runspercycle, r, need, plural(c.Dumpcycle, "day"), plural(c.Runspercycle, "run"), every, need+1))
	}
	return w
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
