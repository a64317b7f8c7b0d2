package server

import (
	"fmt"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index"
)

// chooseLevel picks tonight's level for one DLE until the planner (which
// balances fulls over the cycle) takes over: a full when the DLE has no
// full that is safe (on a volume or on the holding disk) or its newest is
// dumpcycle days old, otherwise level 1 against that full. Strategies
// "noinc" always dump a full; "nofull" and "incronly" dump a full only
// when there is none at all.
func chooseLevel(cat *index.Catalog, cfg *config.Config, dle config.DLE, dt config.Dumptype, now time.Time) (int, string, error) {
	dumps, err := cat.Dumps(dle.Host, dle.Path)
	if err != nil {
		return 0, "", err
	}
	var last time.Time
	for _, d := range dumps {
		if d.Level != 0 || (d.Status != index.DumpGood && d.Status != index.DumpHolding) {
			continue
		}
		if d.Started.After(last) {
			last = d.Started
		}
	}
	switch {
	case dt.Strategy == "noinc":
		return 0, "strategy noinc", nil
	case last.IsZero():
		return 0, "no full dump of this DLE is on a volume or the holding disk", nil
	case dt.Strategy == "nofull" || dt.Strategy == "incronly":
		return 1, "strategy " + dt.Strategy, nil
	}
	cycle := time.Duration(cfg.Dumpcycle) * 24 * time.Hour
	if age := now.Sub(last); age >= cycle-time.Hour {
		return 0, fmt.Sprintf("the newest full is %.1f days old (dumpcycle %d)", age.Hours()/24, cfg.Dumpcycle), nil
	}
	return 1, fmt.Sprintf("full of %s is within the dumpcycle", last.Format("2006-01-02")), nil
}
