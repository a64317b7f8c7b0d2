package taper

import (
	"fmt"
	"regexp"
)

// Lookahead is how many runs after tonight AtRisk looks at: a chain is
// moved (its DLE gets a full) while one more night remains before its
// volume is needed, so that a single failed night does not leave the
// rotation blocked.
const Lookahead = 2

// AtRisk is the planner's look-ahead for chains (promise 7): it simulates
// tonight's run writing up to tonight volumes by ChooseVolume, then
// Lookahead runs writing up to runtapes volumes each with no chain
// protecting anything, and returns the labels of the written volumes those
// runs would have to overwrite while they hold a newest chain (Pinned).
// Giving the DLEs of those chains a full tonight moves their chains off
// the volume before it is needed. Runs that take blank or never-written
// volumes put nothing at risk. labelFor gives autolabel's n-th label
// (nil: autolabel off).
func AtRisk(vols []VolumeState, tapecycle int, labelstr *regexp.Regexp, labelFor func(n int) string, tonight, runtapes int) []string {
	states := append([]VolumeState(nil), vols...)
	next := func() string {
		if labelFor == nil {
			return ""
		}
		used := map[string]bool{}
		for _, s := range states {
			used[s.Label] = true
		}
		for n := 1; n < 1_000_000; n++ {
			if l := labelFor(n); !used[l] {
				return l
			}
		}
		return ""
	}
	write := func(c Choice, stamp string) {
		for i := range states {
			if c.Relabel && states[i].Slot == c.Slot && states[i].Blank {
				states[i] = VolumeState{Slot: c.Slot, Label: c.Label, Reuse: true}
			}
			if states[i].Label == c.Label {
				states[i].Written, states[i].Pinned = stamp, nil
			}
		}
	}
	stamp := func(run int) string { return fmt.Sprintf("9999123123%04d", run) }
	for range tonight {
		c, err := ChooseVolume(states, tapecycle, labelstr, next())
		if err != nil {
			break
		}
		write(c, stamp(0))
	}
	pinned := map[string]bool{}
	for i := range states {
		if len(states[i].Pinned) > 0 {
			pinned[states[i].Label] = true
		}
		states[i].Pinned = nil
	}
	var risk []string
	for run := 1; run <= Lookahead; run++ {
		for range runtapes {
			c, err := ChooseVolume(states, tapecycle, labelstr, next())
			if err != nil {
				break
			}
			if pinned[c.Label] && !c.Relabel {
				risk = append(risk, c.Label)
				pinned[c.Label] = false
			}
			write(c, stamp(run))
		}
	}
	return risk
}
