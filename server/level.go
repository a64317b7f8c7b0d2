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
//
// It also returns the fallback for degraded mode (level 1 when a full
// exists to base it on, else -1) and the ratio of payload to tar bytes of
// the DLE's newest image (how much holding space an estimate needs).
func chooseLevel(cat *index.Catalog, cfg *config.Config, dle config.DLE, dt config.Dumptype, now time.Time) (level, fallback int, why string, ratio float64, known bool, err error) {
	dumps, err := cat.Dumps(dle.Host, dle.Path)
	if err != nil {
		return 0, -1, "", 0, false, err
	}
	ratio = 0.5 // Amanda's default comprate
	if dt.Compress == config.CompressNone {
		ratio = 1
	}
	var last time.Time
	gotRatio := false
	for _, d := range dumps { // newest first
		safe := d.Status == index.DumpGood || d.Status == index.DumpHolding
		if safe && !gotRatio && d.OrigSize > 0 {
			ratio, gotRatio = min(float64(d.PayloadSize)/float64(d.OrigSize)*1.05, 1.1), true
		}
		if d.Level == 0 && safe && d.Started.After(last) {
			last = d.Started
		}
	}
	fallback = -1
	if !last.IsZero() && dt.Strategy != "noinc" {
		fallback = 1
	}
	switch {
	case dt.Strategy == "noinc":
		return 0, -1, "strategy noinc", ratio, gotRatio, nil
	case last.IsZero():
		return 0, -1, "no full dump of this DLE is on a volume or the holding disk", ratio, gotRatio, nil
	case dt.Strategy == "nofull" || dt.Strategy == "incronly":
		return 1, -1, "strategy " + dt.Strategy, ratio, gotRatio, nil
	}
	cycle := time.Duration(cfg.Dumpcycle) * 24 * time.Hour
	if age := now.Sub(last); age >= cycle-time.Hour {
		return 0, fallback, fmt.Sprintf("the newest full is %.1f days old (dumpcycle %d)", age.Hours()/24, cfg.Dumpcycle), ratio, gotRatio, nil
	}
	return 1, -1, fmt.Sprintf("full of %s is within the dumpcycle", last.Format("2006-01-02")), ratio, gotRatio, nil
}
