package server

import (
	"fmt"
	"slices"

	"github.com/tapir-backup/tapir/taper"
)

// chainsAtRisk is the planner's look-ahead (promise 7: the planner
// promotes a full before a chain can block the rotation): for every DLE
// ("host:path") whose newest chain sits on a written volume that the next
// run would have to reuse (taper.AtRisk), it says why. Giving those DLEs
// a full tonight supersedes their old chains, so the volume is free when
// it is needed.
func (v *volumes) chainsAtRisk() (map[string]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.chainsAtRiskLocked()
}

func (v *volumes) chainsAtRiskLocked() (map[string]string, error) {
	states, _, err := v.states(true)
	if err != nil {
		return nil, err
	}
	var labelFor func(int) string
	if v.cfg.Autolabel != "" {
		labelFor = v.cfg.AutolabelFor
	}
	labels := taper.AtRisk(states, v.cfg.Tapecycle, v.cfg.LabelRegexp(), labelFor, max(v.cfg.Runtapes-len(v.used), 0), v.cfg.Runtapes)
	if len(labels) == 0 {
		return nil, nil
	}
	chains, err := v.cat.Chains()
	if err != nil {
		return nil, err
	}
	risk := map[string]string{}
	for _, l := range labels {
		for _, ch := range chains {
			name := ch.Host + ":" + ch.Path
			if _, done := risk[name]; done || !slices.Contains(ch.Volumes, l) {
				continue
			}
			risk[name] = fmt.Sprintf("its newest chain (full of %s) is on %s, which one of the next %d runs must reuse (tapecycle %d)",
				stampDate(ch.Full().Datestamp), l, taper.Lookahead, v.cfg.Tapecycle)
		}
	}
	return risk, nil
}

// stampDate is a datestamp's day, 2025-03-01.
func stampDate(ds string) string {
	if len(ds) < 8 {
		return ds
	}
	return ds[:4] + "-" + ds[4:6] + "-" + ds[6:8]
}
