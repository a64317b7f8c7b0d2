package planner

import (
	"slices"
	"strings"
	"testing"
)

// risk is the ChainAtRisk text of the tests.
const risk = "its last full (2026-11-28) is on T-001, which the next run must reuse"

// A DLE whose newest chain blocks the volume the next run must reuse gets a
// full tonight, whatever its place in the cycle and its strategy (when the
// strategy dumps incrementals); the reason says why.
func TestChainAtRisk(t *testing.T) {
	type want struct {
		level, fallback int // level -1: skipped
		kind            Kind
		reason          []string // parts of the reason
		prio            int      // checked when not 0
	}
	for _, tc := range []struct {
		name string
		dle  DLE
		want want
	}{
		{"mid-cycle: a full tonight",
			DLE{ChainAtRisk: risk, History: []Dump{full(3, gib), inc(2, 1, mib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindChain, []string{"promoted: chain at risk: " + risk + " (last full 2026-11-28, 3 days ago); a full tonight starts a newer chain"}, 1 + 7}},
		{"the day after a full: still a full (the chain is worth more than the cycle)",
			DLE{ChainAtRisk: risk, History: []Dump{full(1, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindChain, []string{"chain at risk"}, 1 + 7}},
		{"due anyway: the due full supersedes the chain, with the chain's priority",
			DLE{ChainAtRisk: risk, History: []Dump{full(8, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindDue, []string{"overdue: last full", "this full also supersedes the newest chain, which was at risk: " + risk}, 1 + 1 + 7}},
		{"forced anyway",
			DLE{ChainAtRisk: risk, Forced: true, History: []Dump{full(3, gib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindForced, []string{"forced", "also supersedes"}, 1 + 7}},
		{"nofull: a full, or nothing restores after the volume is reused",
			DLE{ChainAtRisk: risk, Strategy: NoFull, History: []Dump{full(40, gib), inc(1, 1, mib)}, Estimates: est(0, gib, 1, mib)},
			want{0, 1, KindChain, []string{"chain at risk"}, 0}},
		{"incronly: likewise",
			DLE{ChainAtRisk: risk, Strategy: IncrOnly, History: []Dump{full(40, gib), inc(1, 2, mib)}, Estimates: est(0, gib, 2, mib)},
			want{0, 2, KindChain, []string{"chain at risk"}, 0}},
		{"noinc: a full every run anyway",
			DLE{ChainAtRisk: risk, Strategy: NoInc, History: []Dump{full(1, gib)}, Estimates: est(0, gib)},
			want{0, -1, KindNoInc, []string{"strategy noinc", "also supersedes"}, 0}},
		{"no full on record: the risk cannot be (new DLE)",
			DLE{ChainAtRisk: risk, Estimates: est(0, gib)},
			want{0, -1, KindNew, []string{"new"}, 0}},
		{"level 0 estimate failed: the incremental, and the chain stays at risk",
			DLE{ChainAtRisk: risk, History: []Dump{full(3, gib), inc(1, 1, mib)}, Estimates: est(1, mib)},
			want{1, -1, KindDelayed, []string{"promoted: chain at risk: " + risk, "level 0 estimate failed", "; the chain stays at risk; that volume cannot be reused"}, 0}},
		{"skip: named, never dumped",
			DLE{ChainAtRisk: risk, Strategy: Skip, History: []Dump{full(30, gib)}},
			want{-1, -1, "", []string{"strategy skip; the chain stays at risk: " + risk}, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := planOne(t, nil, tc.dle)
			var reason string
			if tc.want.level < 0 {
				s := skipped(sc, "h", "/p")
				if s == nil {
					t.Fatalf("want skipped, got %+v", sc.Entries)
				}
				reason = s.Reason
			} else {
				e := entry(sc, "h", "/p")
				if e == nil {
					t.Fatalf("not dumped: %+v", sc.Skipped)
				}
				if e.Level != tc.want.level || e.Fallback != tc.want.fallback || e.Kind != tc.want.kind {
					t.Errorf("got level %d fallback %d kind %s, want level %d fallback %d kind %s (%s)",
						e.Level, e.Fallback, e.Kind, tc.want.level, tc.want.fallback, tc.want.kind, e.Reason)
				}
				if tc.want.prio != 0 && e.Priority != tc.want.prio {
					t.Errorf("priority %d, want %d", e.Priority, tc.want.prio)
				}
				reason = e.Reason
			}
			for _, part := range tc.want.reason {
				if !strings.Contains(reason, part) {
					t.Errorf("reason %q lacks %q", reason, part)
				}
			}
			full := tc.want.level == 0
			if tc.want.kind == KindNew {
				if len(sc.Chains) != 1 || !sc.Chains[0].Full {
					t.Errorf("chains %+v", sc.Chains)
				}
				return
			}
			if len(sc.Chains) != 1 || sc.Chains[0].Full != full || sc.Chains[0].Risk != risk {
				t.Errorf("chains %+v, want one with Full %v", sc.Chains, full)
			}
			notes := strings.Join(sc.Notes, "\n")
			if stays := strings.Contains(notes, "h:/p: no full tonight, so its newest chain stays at risk ("+risk+")"); stays == full {
				t.Errorf("note of a chain that stays at risk: %v, want %v:\n%s", stays, !full, notes)
			}
			if d := delayed(sc, "h", "/p"); d != nil && !strings.Contains(d.Reason, "the chain stays at risk") {
				t.Errorf("delayed reason %q does not say the chain stays at risk", d.Reason)
			}
		})
	}
}

// Fitting the night delays a full that saves a chain after the ordinary
// due fulls and those without fallback, but before a new DLE's first full
// and a forced full; a chain left at risk is said so.
func TestChainAtRiskFit(t *testing.T) {
	cfg := ruleConfig()
	cfg.TapeLength = 7 * gib // one 5 GiB full and the incrementals fit, not two fulls
	due := DLE{Host: "a", Path: "/due", Priority: High, History: []Dump{full(9, 10*gib), inc(1, 1, mib)}, Estimates: est(0, 10*gib, 1, mib)}
	noFallback := DLE{Host: "b", Path: "/nofallback", Priority: High, History: []Dump{full(9, 10*gib), inc(1, 1, mib)}, Estimates: est(0, 10*gib)}
	chain := DLE{Host: "c", Path: "/chain", Priority: Low, ChainAtRisk: risk, History: []Dump{full(2, 10*gib), inc(1, 1, mib)}, Estimates: est(0, 10*gib, 1, mib)}
	newDLE := DLE{Host: "d", Path: "/new", Priority: Low, Estimates: est(0, 10*gib)}
	forced := DLE{Host: "e", Path: "/forced", Priority: Low, Forced: true, History: []Dump{full(2, 10*gib), inc(1, 1, mib)}, Estimates: est(0, 10*gib, 1, mib)}

	sc := mustPlan(t, cfg, []DLE{due, noFallback, chain})
	if e := entry(sc, "c", "/chain"); e == nil || e.Level != 0 || e.Kind != KindChain {
		t.Errorf("the chain's full was delayed before a due one: %+v", sc.Entries)
	}
	if d := delayed(sc, "a", "/due"); d == nil {
		t.Errorf("the due full should be delayed: %+v", sc.Delayed)
	}
	if s := skipped(sc, "b", "/nofallback"); s == nil {
		t.Errorf("the full without fallback should go before the chain's: %+v", sc.Skipped)
	}

	for _, other := range []DLE{newDLE, forced} {
		sc := mustPlan(t, cfg, []DLE{chain, other})
		if e := entry(sc, other.Host, other.Path); e == nil || e.Level != 0 {
			t.Errorf("%s: its full was delayed before the chain's: %+v", other.Name(), sc.Entries)
		}
		d := delayed(sc, "c", "/chain")
		if d == nil || !strings.Contains(d.Reason, "but delayed: the night needs") || !strings.Contains(d.Reason, "the chain stays at risk") {
			t.Fatalf("%s: the chain's full should be delayed, saying the chain stays at risk: %+v", other.Name(), sc.Delayed)
		}
		if len(sc.Chains) != 1 || sc.Chains[0].Full {
			t.Errorf("%s: chains %+v", other.Name(), sc.Chains)
		}
		var b strings.Builder
		if err := sc.Explain(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{
			"chains at risk (1; each DLE's newest chain is on a volume the next run must reuse):\n  c:/chain  STAYS AT RISK, no full tonight: " + risk + "\n",
			"c:/chain: no full tonight, so its newest chain stays at risk",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: explain lacks %q:\n%s", other.Name(), want, out)
			}
		}
	}
}

// The promoted full of a chain counts in tonight's fulls: it is not moved
// by balancing, and balancing promotes less because of it.
func TestChainAtRiskAndBalance(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TapeLength = 10 * tib
	dles := []DLE{cycleDLE("d1", 1, 10*gib), cycleDLE("d2", 2, 10*gib), cycleDLE("d3", 3, 10*gib), cycleDLE("d3-b", 3, 10*gib),
		cycleDLE("d4", 4, 10*gib), cycleDLE("d5", 5, 10*gib), cycleDLE("d6", 6, 10*gib)}
	sc := mustPlan(t, cfg, dles)
	if len(promoted(sc)) == 0 {
		t.Fatalf("nothing promoted on an empty night: %+v", sc.Entries)
	}
	dles[5].ChainAtRisk = risk
	sc = mustPlan(t, cfg, dles)
	if e := entry(sc, "d5", "/data"); e == nil || e.Kind != KindChain {
		t.Fatalf("d5: %+v", e)
	}
	if p := promoted(sc); len(p) != 0 {
		t.Errorf("the chain's full fills tonight, yet %v were promoted to balance", p)
	}
	var b strings.Builder
	if err := sc.Explain(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  d5:/data  full tonight: "+risk+"\n") {
		t.Errorf("explain:\n%s", b.String())
	}
}

// The levels to size include level 0 for a DLE whose chain is at risk,
// whatever its strategy; due and balance put its full tonight.
func TestChainAtRiskEstimatesDueBalance(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name string
		dle  DLE
		want []int
	}{
		{"standard", DLE{History: []Dump{full(2, gib), inc(1, 1, mib)}}, []int{0, 1}},
		{"nofull", DLE{Strategy: NoFull, History: []Dump{full(30, gib), inc(1, 1, mib)}}, []int{0, 1}},
		{"incronly", DLE{Strategy: IncrOnly, History: append([]Dump{full(30, gib)}, incs(2, 2, mib)...)}, []int{0, 2, 3}},
		{"skip", DLE{Strategy: Skip, History: []Dump{full(30, gib)}}, nil},
	} {
		d := tc.dle
		d.Host, d.Path, d.ChainAtRisk = "h", "/p", risk
		if got := EstimateLevels(cfg, d, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	dles := []DLE{
		{Host: "a", Path: "/p", ChainAtRisk: risk, History: []Dump{full(2, gib)}, Estimates: est(0, gib)},
		{Host: "b", Path: "/p", ChainAtRisk: risk, Strategy: NoFull, History: []Dump{full(30, gib)}, Estimates: est(0, 2*gib)},
		{Host: "c", Path: "/p", History: []Dump{full(2, gib)}, Estimates: est(0, gib)},
	}
	due, err := Due(cfg, dles, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range due.Entries {
		atRisk := e.Host != "c"
		if atRisk && (e.DueIn != 0 || e.Never || e.Note != "chain at risk: "+risk) {
			t.Errorf("due %s: %+v", e.Host, e)
		}
		if !atRisk && e.DueIn != 5 {
			t.Errorf("due %s: %+v", e.Host, e)
		}
	}
	bal, err := Balance(cfg, dles, now)
	if err != nil {
		t.Fatal(err)
	}
	if bal.Days[0].DLEs != 2 || bal.Days[0].Bytes != gib/2+gib {
		t.Errorf("balance tonight: %+v", bal.Days[0])
	}
}
