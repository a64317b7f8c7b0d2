package planner

import (
	"fmt"
	"strings"
	"testing"
)

// The three planner complaints of Amanda users (reference/amanda.md §10.8),
// each with the behaviour tapir promises instead (docs/format/planner.md).

// Complaint 1: over-eager promotion. With fewer DLEs than days in the
// cycle, Amanda promotes a full every night to fill the empty nights, and
// some DLEs get a full much more often than once per cycle. tapir fills a
// light night only with a full that does not carry it past the balanced
// size, never promotes a full by more than half a cycle, and never promotes
// a DLE whose last full was already early.
func TestComplaintOverEagerPromotion(t *testing.T) {
	for _, sizes := range [][]int64{
		{10 * gib, 10 * gib, 10 * gib},                 // fewer DLEs than days
		{50 * gib, 2 * gib, 2 * gib, 2 * gib, 1 * gib}, // one big, a few small
		{8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib, 8 * gib}, // more DLEs than days
	} {
		t.Run(fmt.Sprint(len(sizes), " DLEs"), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TapeLength = 10 * tib
			const nights = 70
			dles := make([]DLE, len(sizes))
			fulls := make([][]int, len(sizes))
			for i := range dles {
				dles[i] = DLE{Host: fmt.Sprintf("h%d", i), Path: "/p"}
			}
			for night := range nights {
				when := now.AddDate(0, 0, night)
				for i := range dles {
					dles[i].Estimates = map[int]int64{0: sizes[i], 1: sizes[i] / 50, 2: sizes[i] / 60}
				}
				sc, err := Plan(cfg, dles, when)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range sc.Entries {
					var i int
					fmt.Sscanf(e.Host, "h%d", &i)
					dles[i].History = append(dles[i].History, Dump{Time: when, Level: e.Level, OrigBytes: e.EstOrig, OutBytes: e.EstOut})
					if e.Level == 0 {
						fulls[i] = append(fulls[i], night)
					}
				}
			}
			total := 0
			for i, f := range fulls {
				total += len(f)
				prevEarly := false
				for j := 1; j < len(f); j++ {
					gap := f[j] - f[j-1]
					if gap < 4 {
						t.Errorf("%s: fulls on nights %d and %d", dles[i].Name(), f[j-1], f[j])
					}
					if gap < 7 && prevEarly {
						t.Errorf("%s: promoted twice in a row (nights %v)", dles[i].Name(), f)
					}
					prevEarly = gap < 7
				}
			}
			// One full per DLE and cycle, and at most one extra per DLE
			// over the ten cycles for balancing.
			if perDLE := nights/7 + 1; total > len(sizes)*(perDLE+1) {
				t.Errorf("%d fulls for %d DLEs in %d nights: %v", total, len(sizes), nights, fulls)
			}
		})
	}
}

// Complaint 2: estimating an incremental and dumping a full (zmanda/amanda
// #255), and degraded fallbacks sized like the full (#282). tapir dumps only
// a level it has tonight's estimate for, and a fallback carries its own.
func TestComplaintEstimateIncrementalDumpFull(t *testing.T) {
	cfg := ruleConfig()
	dles := []DLE{
		// Due, but the level 0 estimate failed: level 1 tonight, the full
		// is delayed and tried again next run.
		{Host: "noest0", Path: "/p", History: []Dump{full(8, 40*gib), inc(1, 1, gib)}, Estimates: est(1, 2*gib)},
		// New and the level 0 estimate failed: nothing to dump.
		{Host: "newnoest", Path: "/p", Estimates: est(1, gib)},
		// Due, with both estimates: the fallback is sized by its own.
		{Host: "ok", Path: "/p", History: []Dump{full(7, 40*gib), inc(1, 1, gib)}, Estimates: est(0, 40*gib, 1, 3*gib)},
		// Not due, every incremental estimate failed: a full, whose
		// estimate is known, rather than nothing.
		{Host: "noinc", Path: "/p", History: []Dump{full(3, 40*gib), inc(1, 1, gib)}, Estimates: est(0, 40*gib)},
		// nofull whose level 1 estimate failed: not dumped.
		{Host: "nofull", Path: "/p", Strategy: NoFull, History: []Dump{full(30, 40*gib)}, Estimates: est(0, 40*gib)},
	}
	sc := mustPlan(t, cfg, dles)
	e := entry(sc, "noest0", "/p")
	d := delayed(sc, "noest0", "/p")
	if e == nil || e.Level != 1 || e.EstOrig != 2*gib || d == nil ||
		!strings.Contains(d.Reason, "overdue: last full 2026-11-23, 8 days ago (dumpcycle 7), but the level 0 estimate failed: level 1 instead, the full is tried again next run") {
		t.Errorf("noest0: entry %+v delayed %+v", e, d)
	}
	if s := skipped(sc, "newnoest", "/p"); s == nil ||
		s.Reason != "new: no full on record, but the level 0 estimate failed: nothing can be dumped, it is tried again next run" {
		t.Errorf("newnoest: %+v", s)
	}
	if e := entry(sc, "ok", "/p"); e == nil || e.Level != 0 || e.EstOrig != 40*gib || e.Fallback != 1 ||
		e.FallbackOrig != 3*gib || e.FallbackOut != 3*gib/2 || e.EstOut != 20*gib {
		t.Errorf("ok: %+v", e)
	}
	if e := entry(sc, "noinc", "/p"); e == nil || e.Level != 0 || e.Kind != KindNoIncrEst ||
		e.Reason != "no incremental is possible (the level 1 estimate failed): a full instead, whose estimate is known" {
		t.Errorf("noinc: %+v", e)
	}
	if s := skipped(sc, "nofull", "/p"); s == nil || s.Reason != "no incremental is possible: the level 1 estimate failed" {
		t.Errorf("nofull: %+v", s)
	}
}

// Complaint 3: incrementals that save nothing (zmanda/amanda PR #54). When
// the incremental tapir would dump is FutilePercent (90 %) of a full or
// more, it dumps the full instead, with the incremental as its fallback;
// a bump that does not save more than the threshold does not happen.
func TestComplaintFutileIncrementals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		dle   DLE
		level int
		kind  Kind
		why   string
	}{
		{"level 1 at 95 % of a full", nil,
			DLE{History: []Dump{full(3, 10*gib), inc(1, 1, 9*gib)}, Estimates: est(0, 10*gib, 1, 9500*mib)},
			0, KindFutile, "level 1 would be 93 % of a full (9.3 GiB of 10 GiB): a full instead"},
		{"level 1 at exactly 90 %", nil,
			DLE{History: []Dump{full(3, 10*gib), inc(1, 1, 9*gib)}, Estimates: est(0, 100*mib, 1, 90*mib)},
			0, KindFutile, "90 %"},
		{"level 1 at 89 % is dumped", nil,
			DLE{History: []Dump{full(3, 10*gib), inc(1, 1, 9*gib)}, Estimates: est(0, 100*mib, 1, 89*mib)},
			1, KindIncremental, "level 1"},
		{"futile percent 0 turns it off", func(c *Config) { c.FutilePercent = 0 },
			DLE{History: []Dump{full(3, 10*gib), inc(1, 1, 9*gib)}, Estimates: est(0, 10*gib, 1, 10*gib)},
			1, KindIncremental, "level 1"},
		{"a bump that makes it worthwhile is taken instead", nil,
			DLE{History: append([]Dump{full(4, 10*gib)}, incs(2, 1, 9*gib)...), Estimates: est(0, 10*gib, 1, 9500*mib, 2, 2*gib)},
			2, KindIncremental, "level 2: bumped"},
		{"nofull never gets a full for it", nil,
			DLE{Strategy: NoFull, History: []Dump{full(30, 10*gib), inc(1, 1, 9*gib)}, Estimates: est(1, 10*gib)},
			1, KindIncremental, "strategy nofull"},
		{"a bump that saves nothing does not happen", nil,
			DLE{History: append([]Dump{full(4, 10*gib)}, incs(2, 1, gib)...), Estimates: est(0, 10*gib, 1, gib, 2, gib-5*mib)},
			1, KindIncremental, "level 2 would save 5 MiB, not more than the threshold 10 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := planOne(t, tc.mod, tc.dle)
			e := entry(sc, "h", "/p")
			if e == nil || e.Level != tc.level || e.Kind != tc.kind || !strings.Contains(e.Reason, tc.why) {
				t.Fatalf("got %+v, want level %d kind %s reason with %q", e, tc.level, tc.kind, tc.why)
			}
			if e.Kind == KindFutile && e.Fallback != 1 {
				t.Errorf("a futile incremental's full must fall back to it: %+v", e)
			}
		})
	}
}
