package server

import (
	"context"

	"github.com/tapir-backup/tapir/taper"
)

// reuseAtRisk is the planner's look-ahead (promise 7: the planner
// promotes a full before a chain can block the rotation): the labels of
// the written volumes holding a newest chain that the next runs would
// have to reuse (taper.AtRisk). markChainsAtRisk gives the DLEs of those
// chains a full tonight, so that each volume is free when it is needed.
func (v *volumes) reuseAtRisk(ctx context.Context) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	states, _, err := v.states(ctx, true)
	if err != nil {
		return nil, err
	}
	var labelFor func(int) string
	if v.cfg.Autolabel != "" {
		labelFor = v.cfg.AutolabelFor
	}
	return taper.AtRisk(states, v.cfg.Tapecycle, v.cfg.LabelRegexp(), labelFor, max(v.cfg.Runtapes-len(v.used), 0), v.cfg.Runtapes), nil
}
