package planner

import (
	"slices"
	"strings"
	"testing"
)

// ruleConfig is a configuration where the tape never limits and nothing
// is promoted, to test one rule at a time.
func ruleConfig() Config {
	c := DefaultConfig()
	c.TapeLength = 100 * tib
	c.Maxpromoteday = 0
	return c
}

// incs returns n daily incrementals at level, the newest yesterday.
func incs(n, level int, orig int64) []Dump {
	var h []Dump
	for i := n; i >= 1; i-- {
		h = append(h, inc(i, level, orig))
	}
	return h
}

func TestRules(t *testing.T) {
	type want struct {
		level, fallback int // level -1: skipped
		kind            Kind
		reason          string // a part of the reason
		prio            int    // checked when not 0
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		dle  DLE
		want want
	}{
		// Fulls: due after dumpcycle days, new, forced.
		{"due after dumpcycle days", nil,
			DLE{History: []Dump{full(7, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "due: last full 2026-11-24, 7 days ago (dumpcycle 7)", 1}},
		{"not due the day before", nil,
			DLE{History: []Dump{full(6, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{1, -1, KindIncremental, "next full 2026-12-02 (in 1 day)", 1}},
		{"overdue raises the priority", nil,
			DLE{Priority: High, History: []Dump{full(10, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "overdue: last full 2026-11-21, 10 days ago", 2 + 3}},
		{"dumpcycle 1: a full every run", func(c *Config) { c.Dumpcycle, c.Runspercycle = 1, 1 },
			DLE{History: []Dump{full(1, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "dumpcycle 1", 1}},
		{"new DLE", nil,
			DLE{Estimates: est(0, gib)},
			want{0, -1, KindNew, "new: no full on record", 1 + 7}},
		{"only incrementals on record is new", nil,
			DLE{History: []Dump{inc(2, 1, mib)}, Estimates: est(0, gib)},
			want{0, -1, KindNew, "no full on record", 0}},
		{"forced", nil,
			DLE{Forced: true, History: []Dump{full(2, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindForced, "forced by tapir admin force (last full 2026-11-29, 2 days ago)", 1 + 7}},
		{"forced new DLE", nil,
			DLE{Forced: true, Estimates: est(0, gib)},
			want{0, -1, KindForced, "forced by tapir admin force (no full on record)", 0}},

		// Strategies.
		{"noinc: a full every run", nil,
			DLE{Strategy: NoInc, History: []Dump{full(1, gib)}, Estimates: est(0, gib)},
			want{0, -1, KindNoInc, "strategy noinc", 0}},
		{"skip", nil,
			DLE{Strategy: Skip, History: []Dump{full(30, gib)}},
			want{-1, -1, "", "strategy skip", 0}},
		{"skip ignores force", nil,
			DLE{Strategy: Skip, Forced: true, Estimates: est(0, gib)},
			want{-1, -1, "", "strategy skip (the force flag is ignored)", 0}},
		{"nofull: level 1 however old the full", nil,
			DLE{Strategy: NoFull, History: append([]Dump{full(40, gib)}, incs(5, 1, mib)...), Estimates: est(1, 100*mib, 2, mib)},
			want{1, -1, KindIncremental, "strategy nofull: level 1 every run", 0}},
		{"nofull: a full when none is on record", nil,
			DLE{Strategy: NoFull, Estimates: est(0, gib)},
			want{0, -1, KindNew, "new", 0}},
		{"nofull: a full when forced", nil,
			DLE{Strategy: NoFull, Forced: true, History: []Dump{full(40, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindForced, "forced", 0}},
		{"incronly: bumps, no full", nil,
			DLE{Strategy: IncrOnly, History: append([]Dump{full(60, gib)}, incs(2, 2, 100*mib)...), Estimates: est(2, 100*mib, 3, mib)},
			want{3, -1, KindIncremental, "strategy incronly: no full is scheduled", 0}},
		{"incronly: a full when forced", nil,
			DLE{Strategy: IncrOnly, Forced: true, History: []Dump{full(60, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindForced, "forced", 0}},
		{"empty strategy is standard, empty priority is medium", nil,
			DLE{History: []Dump{full(7, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "due", 1}},
		{"low priority", nil,
			DLE{Priority: Low, History: []Dump{full(3, gib)}, Estimates: est(0, gib, 1, mib)},
			want{1, -1, KindIncremental, "", 0}},

		// Bumping.
		{"after a full always level 1", nil,
			DLE{History: []Dump{full(1, gib)}, Estimates: est(0, gib, 1, 100*mib, 2, mib)},
			want{1, -1, KindIncremental, "level 1: first incremental after the full", 0}},
		{"not before bumpdays runs", nil,
			DLE{History: []Dump{full(2, gib), inc(1, 1, 100*mib)}, Estimates: est(0, gib, 1, 200*mib, 2, mib)},
			want{1, -1, KindIncremental, "1 run at level 1 (bumpdays 2)", 0}},
		{"bump after bumpdays runs when it saves more than bumpsize", nil,
			DLE{History: append([]Dump{full(3, gib)}, incs(2, 1, 100*mib)...), Estimates: est(0, gib, 1, 200*mib, 2, 189*mib)},
			want{2, -1, KindIncremental, "level 2: bumped after 2 runs at level 1, saves 11 MiB (threshold 10 MiB)", 0}},
		{"no bump when it saves exactly bumpsize", nil,
			DLE{History: append([]Dump{full(3, gib)}, incs(2, 1, 100*mib)...), Estimates: est(0, gib, 1, 200*mib, 2, 190*mib)},
			want{1, -1, KindIncremental, "level 2 would save 10 MiB, not more than the threshold 10 MiB", 0}},
		{"level 2 needs bumpsize x bumpmult (15 MiB): 14 MiB stays", nil,
			DLE{History: append([]Dump{full(5, gib), inc(4, 1, mib)}, incs(2, 2, 100*mib)...), Estimates: est(0, gib, 2, 100*mib, 3, 86*mib)},
			want{2, -1, KindIncremental, "threshold 15 MiB", 0}},
		{"level 2 needs bumpsize x bumpmult (15 MiB): 16 MiB bumps", nil,
			DLE{History: append([]Dump{full(5, gib), inc(4, 1, mib)}, incs(2, 2, 100*mib)...), Estimates: est(0, gib, 2, 100*mib, 3, 84*mib)},
			want{3, -1, KindIncremental, "saves 16 MiB (threshold 15 MiB)", 0}},
		{"level 3 needs bumpsize x bumpmult^2 (22.5 MiB): 22 MiB stays", nil,
			DLE{History: append([]Dump{full(6, gib), inc(5, 1, mib), inc(4, 2, mib)}, incs(3, 3, 100*mib)...), Estimates: est(0, gib, 3, 100*mib, 4, 78*mib)},
			want{3, -1, KindIncremental, "threshold 22.5 MiB", 0}},
		{"level 3 needs bumpsize x bumpmult^2 (22.5 MiB): 23 MiB bumps", nil,
			DLE{History: append([]Dump{full(6, gib), inc(5, 1, mib), inc(4, 2, mib)}, incs(3, 3, 100*mib)...), Estimates: est(0, gib, 3, 100*mib, 4, 77*mib)},
			want{4, -1, KindIncremental, "saves 23 MiB (threshold 22.5 MiB)", 0}},
		{"bumpmult 2 at level 3: 40 MiB", func(c *Config) { c.Bumpmult = 2 },
			DLE{History: append([]Dump{full(6, gib), inc(5, 1, mib), inc(4, 2, mib)}, incs(3, 3, 100*mib)...), Estimates: est(0, gib, 3, 100*mib, 4, 61*mib)},
			want{3, -1, KindIncremental, "threshold 40 MiB", 0}},
		{"bumppercent of the full", func(c *Config) { c.Bumppercent = 20 },
			DLE{History: append([]Dump{full(3, gib)}, incs(2, 1, 300*mib)...), Estimates: est(0, gib, 1, 300*mib, 2, 100*mib)},
			want{1, -1, KindIncremental, "level 2 would save 200 MiB, not more than the threshold 205 MiB", 0}},
		{"bumpdays 1", func(c *Config) { c.Bumpdays = 1 },
			DLE{History: []Dump{full(2, gib), inc(1, 1, 100*mib)}, Estimates: est(0, gib, 1, 200*mib, 2, mib)},
			want{2, -1, KindIncremental, "bumped after 1 run at level 1", 0}},
		{"level 9 is the highest", nil,
			DLE{History: append([]Dump{full(6, gib)}, incs(3, 9, 100*mib)...), Estimates: est(0, gib, 9, 100*mib)},
			want{9, -1, KindIncremental, "level 9 is the highest", 0}},
		{"a bump resets the count", nil,
			DLE{History: append(append([]Dump{full(5, gib)}, incs(4, 1, mib)[:3]...), inc(1, 2, mib)), Estimates: est(0, gib, 2, 200*mib, 3, mib)},
			want{2, -1, KindIncremental, "1 run at level 2 (bumpdays 2)", 0}},
		{"level estimate failed, next level has one", nil,
			DLE{History: append([]Dump{full(3, gib)}, incs(2, 1, mib)...), Estimates: est(0, gib, 2, mib)},
			want{2, -1, KindIncremental, "the level 1 estimate failed; level 2 has one", 0}},

		// Bad input never stops the night.
		{"unknown strategy", nil,
			DLE{Strategy: "sometimes", Estimates: est(0, gib)},
			want{-1, -1, "", `unknown strategy "sometimes"`, 0}},
		{"unknown priority counts as medium", nil,
			DLE{Priority: "urgent", History: []Dump{full(7, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "due", 1}},
		{"history after now is ignored", nil,
			DLE{History: []Dump{full(8, gib), {Time: now.AddDate(0, 0, 1), Level: 0, OrigBytes: gib, OutBytes: gib}}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, "overdue", 0}},
		{"bad levels and sizes are ignored", nil,
			DLE{History: []Dump{full(8, gib), {Time: ago(1), Level: 12}, {Time: ago(1), Level: 0, OrigBytes: -1}, {Level: 0}},
				Estimates: map[int]int64{0: gib, 1: mib, -1: 5, 10: 5, 2: -7}},
			want{0, 1, KindDue, "overdue", 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := planOne(t, tc.mod, tc.dle)
			if tc.want.level < 0 {
				s := skipped(sc, "h", "/p")
				if s == nil || !strings.Contains(s.Reason, tc.want.reason) {
					t.Fatalf("want skipped with %q, got %+v, skipped %+v", tc.want.reason, sc.Entries, sc.Skipped)
				}
				return
			}
			e := entry(sc, "h", "/p")
			if e == nil {
				t.Fatalf("not dumped: %+v", sc.Skipped)
			}
			if e.Level != tc.want.level || e.Fallback != tc.want.fallback || e.Kind != tc.want.kind || !strings.Contains(e.Reason, tc.want.reason) {
				t.Errorf("got level %d fallback %d kind %s reason %q\nwant level %d fallback %d kind %s reason containing %q",
					e.Level, e.Fallback, e.Kind, e.Reason, tc.want.level, tc.want.fallback, tc.want.kind, tc.want.reason)
			}
			if tc.want.prio != 0 && e.Priority != tc.want.prio {
				t.Errorf("priority %d, want %d", e.Priority, tc.want.prio)
			}
		})
	}
}

func TestBadInputIsNoted(t *testing.T) {
	cfg := ruleConfig()
	dles := []DLE{
		{Host: "h", Path: "/p", Priority: "urgent", History: []Dump{full(8, gib), {Time: ago(1), Level: 12}}, Estimates: map[int]int64{0: gib, 1: mib, 11: 3}},
		{Host: "", Path: "/x", Estimates: est(0, gib)},
		{Host: "h", Path: "", Estimates: est(0, gib)},
		{Host: "h", Path: "/p", Estimates: est(0, gib)},
	}
	sc := mustPlan(t, cfg, dles)
	notes := strings.Join(sc.Notes, "\n")
	for _, want := range []string{
		`h:/p: unknown priority "urgent" counted as medium (want low, medium or high)`,
		"h:/p: ignored estimate 3 bytes for level 11; dump of 2026-11-30 at level 12 (levels are 0..9)",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	var reasons []string
	for _, s := range sc.Skipped {
		reasons = append(reasons, s.Host+":"+s.Path+" "+s.Reason)
	}
	got := strings.Join(reasons, "\n")
	for _, want := range []string{
		":/x cannot be planned: the DLE has no host",
		"h: cannot be planned: the DLE has no path",
		"h:/p cannot be planned: listed twice (the first entry is planned)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("skipped lack %q:\n%s", want, got)
		}
	}
	if e := entry(sc, "h", "/p"); e == nil || e.Level != 0 {
		t.Errorf("the first h:/p should be dumped: %+v", sc.Entries)
	}
}

func TestEstimateLevels(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name string
		dle  DLE
		want []int
	}{
		{"new", DLE{}, []int{0}},
		{"after a full", DLE{History: []Dump{full(1, gib)}}, []int{0, 1}},
		{"one run at level 1", DLE{History: []Dump{full(2, gib), inc(1, 1, mib)}}, []int{0, 1}},
		{"bumpdays runs at level 1", DLE{History: append([]Dump{full(3, gib)}, incs(2, 1, mib)...)}, []int{0, 1, 2}},
		{"at level 3", DLE{History: append([]Dump{full(9, gib), inc(8, 1, mib), inc(6, 2, mib)}, incs(5, 3, mib)...)}, []int{0, 3, 4}},
		{"at level 9", DLE{History: append([]Dump{full(5, gib)}, incs(3, 9, mib)...)}, []int{0, 9}},
		{"forced", DLE{Forced: true, History: append([]Dump{full(3, gib)}, incs(2, 1, mib)...)}, []int{0, 1, 2}},
		{"noinc", DLE{Strategy: NoInc, History: []Dump{full(1, gib)}}, []int{0}},
		{"skip", DLE{Strategy: Skip, History: []Dump{full(1, gib)}}, nil},
		{"nofull", DLE{Strategy: NoFull, History: append([]Dump{full(30, gib)}, incs(5, 1, mib)...)}, []int{1}},
		{"nofull new", DLE{Strategy: NoFull}, []int{0}},
		{"nofull forced", DLE{Strategy: NoFull, Forced: true, History: []Dump{full(30, gib)}}, []int{0, 1}},
		{"incronly", DLE{Strategy: IncrOnly, History: append([]Dump{full(30, gib)}, incs(2, 2, mib)...)}, []int{2, 3}},
		{"incronly forced", DLE{Strategy: IncrOnly, Forced: true, History: append([]Dump{full(30, gib)}, incs(2, 2, mib)...)}, []int{0, 2, 3}},
		{"bad strategy", DLE{Strategy: "x"}, nil},
	} {
		d := tc.dle
		d.Host, d.Path = "h", "/p"
		if got := EstimateLevels(cfg, d, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPlanPicksOnlyEstimatedLevels: with estimates for exactly the levels
// EstimateLevels asks, every level Plan picks (and every fallback) has
// one; with any one of them missing too.
func TestPlanPicksOnlyEstimatedLevels(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TapeLength = 300 * gib
	var dles []DLE
	histories := [][]Dump{
		nil,
		{full(7, 10*gib)},
		{full(3, 10*gib), inc(2, 1, gib), inc(1, 1, gib)},
		append([]Dump{full(11, 10*gib), full(4, 10*gib)}, incs(3, 2, gib)...),
		append([]Dump{full(20, 10*gib)}, incs(4, 3, gib)...),
	}
	for i, h := range histories {
		for _, st := range []Strategy{Standard, NoFull, NoInc, IncrOnly} {
			for _, forced := range []bool{false, true} {
				dles = append(dles, DLE{Host: "h" + itoa(i), Path: "/" + string(st) + map[bool]string{true: "-forced"}[forced],
					Strategy: st, Forced: forced, History: h})
			}
		}
	}
	for i := range dles {
		dles[i].Estimates = map[int]int64{}
		for _, l := range EstimateLevels(cfg, dles[i], now) {
			dles[i].Estimates[l] = int64(10-l) * gib
		}
	}
	mustPlan(t, cfg, dles) // checkInvariants asserts the estimates
	for drop := 0; drop <= MaxLevel; drop++ {
		cut := make([]DLE, len(dles))
		for i, d := range dles {
			cut[i] = d
			cut[i].Estimates = map[int]int64{}
			for l, b := range d.Estimates {
				if l != drop {
					cut[i].Estimates[l] = b
				}
			}
		}
		mustPlan(t, cfg, cut)
	}
}

// Every DLE that is not dumped says which kind of reason kept it out, so
// that the report can tell a skip on purpose from a night that was too
// small and from a failed estimate.
func TestSkippedCause(t *testing.T) {
	cfg := ruleConfig()
	cases := []struct {
		name string
		d    DLE
		want Cause
	}{
		{"strategy skip", DLE{Strategy: Skip, Estimates: est(0, 100*mib)}, CauseStrategy},
		{"new DLE without a level 0 estimate", DLE{Estimates: est(1, 10*mib)}, CauseEstimate},
		{"full larger than the night", DLE{Estimates: est(0, 3*cfg.Capacity())}, CauseFit},
		{"no host", DLE{Estimates: est(0, mib)}, CauseInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			if tc.want != CauseInvalid {
				d.Host, d.Path = "h", "/p"
			} else {
				d.Path = "/p"
			}
			sc, err := Plan(cfg, []DLE{d}, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(sc.Skipped) != 1 || sc.Skipped[0].Cause != tc.want {
				t.Fatalf("skipped %+v, want cause %s", sc.Skipped, tc.want)
			}
		})
	}
}

// A DLE whose dumptype does not compress tells the planner so: without
// history its output is estimated at its tar size, not at CompRatio.
func TestPerDLECompRatio(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  int64
	}{{0, 30 * mib}, {1, 60 * mib}} {
		sc := planOne(t, nil, DLE{CompRatio: tc.ratio, Estimates: est(0, 60*mib)})
		if len(sc.Entries) != 1 || sc.Entries[0].EstOut != tc.want {
			t.Errorf("CompRatio %v: entries %+v, want EstOut %d", tc.ratio, sc.Entries, tc.want)
		}
	}
}
