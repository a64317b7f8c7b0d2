package planner

import (
	"fmt"
	"strings"
	"testing"
)

// cycleDLE is a standard DLE whose full falls due in dueIn days, with
// a previous full one dumpcycle (7 days) before its last, a level 1 last
// night, and estimates for levels 0 and 1. Sizes are tar bytes; the history
// compresses to half.
func cycleDLE(host string, dueIn int, size int64) DLE { return cycleDLEc(host, dueIn, size, 7) }

// cycleDLEc is cycleDLE for another dumpcycle.
func cycleDLEc(host string, dueIn int, size int64, cycle int) DLE {
	last := cycle - dueIn
	return DLE{Host: host, Path: "/data",
		History:   []Dump{full(last+cycle, size), full(last, size), inc(1, 1, size/100)},
		Estimates: est(0, size, 1, size/100)}
}

// site14 has one DLE due on each day of a 14-day cycle but tonight, and a
// second one on day 7.
func site14() []DLE {
	var dles []DLE
	for k := 1; k < 14; k++ {
		dles = append(dles, cycleDLEc(fmt.Sprintf("d%02d", k), k, 10*gib, 14))
	}
	return append(dles, cycleDLEc("d07-b", 7, 10*gib, 14))
}

func promoted(sc *Schedule) []string {
	var p []string
	for _, e := range sc.Entries {
		if e.Kind == KindPromoted {
			p = append(p, e.Host)
		}
	}
	return p
}

func TestPromotion(t *testing.T) {
	// One DLE due on each of days 1..6 and a second one on the heavy day;
	// nothing due tonight.
	site := func(heavy int) []DLE {
		var dles []DLE
		for k := 1; k <= 6; k++ {
			dles = append(dles, cycleDLE(fmt.Sprintf("d%d", k), k, 10*gib))
		}
		return append(dles, cycleDLE(fmt.Sprintf("d%d-b", heavy), heavy, 10*gib))
	}
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		dles  []DLE
		want  string // promoted hosts, comma separated
		extra string // a part of the promoted reason
	}{
		{"a light night takes a full from the heaviest day", nil, site(3), "d3", "promoted from 2026-12-04 (3 days early) to balance the cycle"},
		{"from day 1", nil, site(1), "d1", "(1 day early)"},
		{"never more than half a cycle early", nil, site(4), "", ""},
		{"maxpromoteday 2 stops a full 3 days ahead", func(c *Config) { c.Maxpromoteday = 2 }, site(3), "", ""},
		{"maxpromoteday 2 allows 2 days ahead", func(c *Config) { c.Maxpromoteday = 2 }, site(2), "d2", ""},
		{"maxpromoteday 0 never promotes", func(c *Config) { c.Maxpromoteday = 0 }, site(1), "", ""},
		{"dumpcycle 14 reaches 7 days ahead", func(c *Config) { c.Dumpcycle, c.Runspercycle = 14, 14 }, site14(), "d07", "(7 days early)"},
		{"not when it does not fit", func(c *Config) { c.TapeLength = 5 * gib }, site(3), "", ""},
		{"not when tonight is balanced already", nil, append(site(3), cycleDLE("tonight", 0, 10*gib)), "", ""},
		{"never twice in a row", nil, []DLE{
			cycleDLE("d1", 1, 10*gib), cycleDLE("d2", 2, 10*gib),
			{Host: "early", Path: "/data", History: []Dump{full(9, 10*gib), full(4, 10*gib)}, Estimates: est(0, 10*gib, 1, gib)},
			{Host: "early2", Path: "/data", History: []Dump{full(9, 10*gib), full(4, 10*gib)}, Estimates: est(0, 10*gib, 1, gib)},
			cycleDLE("d4", 4, 10*gib), cycleDLE("d5", 5, 10*gib), cycleDLE("d6", 6, 10*gib),
		}, "", ""},
		{"only strategy standard", nil, []DLE{
			cycleDLE("d1", 1, 10*gib), cycleDLE("d2", 2, 10*gib), cycleDLE("d4", 4, 10*gib),
			{Host: "nofull", Path: "/data", Strategy: NoFull, History: []Dump{full(11, 10*gib), full(4, 10*gib)}, Estimates: est(1, gib)},
			{Host: "incronly", Path: "/data", Strategy: IncrOnly, History: []Dump{full(11, 10*gib), full(4, 10*gib)}, Estimates: est(1, gib)},
		}, "", ""},
		{"not without a level 0 estimate", nil, []DLE{
			cycleDLE("d1", 1, 10*gib), cycleDLE("d2", 2, 10*gib), cycleDLE("d4", 4, 10*gib),
			{Host: "noest", Path: "/data", History: []Dump{full(11, 10*gib), full(4, 10*gib)}, Estimates: est(1, gib)},
			{Host: "noest2", Path: "/data", History: []Dump{full(11, 10*gib), full(4, 10*gib)}, Estimates: est(1, gib)},
		}, "", ""},
		{"a big full does not overshoot a light night", nil, []DLE{
			cycleDLE("d1", 1, 10*gib), cycleDLE("d2", 2, 10*gib), cycleDLE("d4", 4, 10*gib), cycleDLE("d5", 5, 10*gib),
			cycleDLE("d6", 6, 10*gib), cycleDLE("big", 3, 40*gib), cycleDLE("small", 3, 10*gib),
		}, "small", ""},
		{"a hill is flattened into a light night", nil, []DLE{
			cycleDLE("a", 3, 10*gib), cycleDLE("b", 3, 10*gib), cycleDLE("c", 3, 10*gib), cycleDLE("d", 3, 10*gib),
			cycleDLE("e", 2, 10*gib), cycleDLE("f", 1, 10*gib), cycleDLE("g", 4, 10*gib),
		}, "a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TapeLength = 10 * tib
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			sc := mustPlan(t, cfg, tc.dles)
			got := strings.Join(promoted(sc), ",")
			if got != tc.want {
				var b strings.Builder
				_ = sc.Explain(&b)
				t.Fatalf("promoted %q, want %q\n%s", got, tc.want, b.String())
			}
			for _, e := range sc.Entries {
				if e.Kind != KindPromoted {
					continue
				}
				if e.Level != 0 || e.Fallback != 1 || !strings.Contains(e.Reason, tc.extra) {
					t.Errorf("promoted entry %+v, want level 0, fallback 1, reason with %q", e, tc.extra)
				}
			}
		})
	}
}

// TestPromotionFlattensTheBiggestHill: with two hills in reach, the full
// comes from the bigger one.
func TestPromotionFlattensTheBiggestHill(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TapeLength = 10 * tib
	dles := []DLE{
		cycleDLE("h1a", 1, 10*gib), cycleDLE("h1b", 1, 10*gib),
		cycleDLE("h2a", 2, 10*gib), cycleDLE("h2b", 2, 10*gib), cycleDLE("h2c", 2, 10*gib),
		cycleDLE("d4", 4, 10*gib), cycleDLE("d5", 5, 10*gib), cycleDLE("d6", 6, 10*gib),
	}
	sc := mustPlan(t, cfg, dles)
	if p := promoted(sc); len(p) != 1 || !strings.HasPrefix(p[0], "h2") {
		t.Errorf("promoted %v, want one of the day-2 hill", p)
	}
}
