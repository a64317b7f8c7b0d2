package planner

import (
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// fitConfig has one volume of length and no promotion.
func fitConfig(length int64) Config {
	c := DefaultConfig()
	c.TapeLength = length
	c.Maxpromoteday = 0
	c.ImageOverhead = 0
	return c
}

// due is a standard DLE whose last full was daysAgo days ago, sizes in
// tar bytes (compressing to half).
func due(host string, daysAgo int, size, incr int64) DLE {
	return DLE{Host: host, Path: "/p", History: []Dump{full(daysAgo, size), inc(1, 1, incr)}, Estimates: est(0, size, 1, incr)}
}

// levels summarizes a schedule as "host:level" in host order, "host:-"
// when not dumped.
func levels(sc *Schedule, hosts ...string) string {
	var out []string
	for _, h := range hosts {
		if e := entry(sc, h, "/p"); e != nil {
			out = append(out, h+":"+itoa(e.Level))
		} else {
			out = append(out, h+":-")
		}
	}
	return strings.Join(out, " ")
}

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length int64
		dles   []DLE
		want   string
		reason map[string]string // host -> a part of its delayed or skipped reason
	}{
		{"fits: nothing changes", 100 * gib,
			[]DLE{due("a", 7, 40*gib, 2*gib), due("b", 8, 40*gib, 2*gib)},
			"a:0 b:0", nil},
		{"the newest previous full is delayed first", 50 * gib,
			[]DLE{due("a", 7, 40*gib, 2*gib), due("b", 9, 40*gib, 2*gib), due("c", 8, 40*gib, 2*gib)},
			"a:1 b:0 c:0", map[string]string{"a": "due: last full 2026-11-24, 7 days ago (dumpcycle 7), but delayed: the night needs 60 GiB, the run can write 50 GiB"}},
		{"then the next newest", 30 * gib,
			[]DLE{due("a", 7, 40*gib, 2*gib), due("b", 9, 40*gib, 2*gib), due("c", 8, 40*gib, 2*gib)},
			"a:1 b:0 c:1", nil},
		{"low priority before high priority", 30 * gib,
			[]DLE{due("a", 7, 40*gib, 2*gib), {Host: "b", Path: "/p", Priority: Low, History: []Dump{full(9, 40*gib)}, Estimates: est(0, 40*gib, 1, 2*gib)}},
			"a:0 b:1", nil},
		{"a futile full before a due one", 29*gib + 600*mib,
			[]DLE{due("a", 7, 40*gib, 2*gib), due("f", 3, 20*gib, 19*gib)},
			"a:0 f:1", map[string]string{"f": "level 1 would be 95 % of a full"}},
		{"new fulls after due ones, forced last", 45 * gib,
			[]DLE{due("a", 9, 40*gib, 2*gib), {Host: "n", Path: "/p", Estimates: est(0, 40*gib)},
				{Host: "f", Path: "/p", Forced: true, History: []Dump{full(2, 40*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 40*gib, 1, 2*gib)}},
			"a:1 f:0 n:0", nil},
		{"a new full that does not fit is not dumped, and says so", 25 * gib,
			[]DLE{due("a", 9, 40*gib, 2*gib), {Host: "n", Path: "/p", Estimates: est(0, 40*gib)},
				{Host: "f", Path: "/p", Forced: true, History: []Dump{full(2, 40*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 40*gib, 1, 2*gib)}},
			"a:1 f:0 n:-", map[string]string{"n": "new: no full on record, but its first full (20 GiB) does not fit: the night needs 60 GiB, the run can write 25 GiB (1 volume of 25 GiB); it is tried again next run"}},
		{"a forced full falls back to its incremental when nothing else helps", 10 * gib,
			[]DLE{due("a", 9, 16*gib, 2*gib),
				{Host: "f", Path: "/p", Forced: true, History: []Dump{full(2, 20*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 20*gib, 1, 2*gib)}},
			"a:0 f:1", map[string]string{"f": "forced by tapir admin force (last full 2026-11-29, 2 days ago), but delayed"}},
		{"a noinc full that does not fit is not dumped", 15 * gib,
			[]DLE{due("a", 9, 16*gib, 2*gib), {Host: "x", Path: "/p", Strategy: NoInc, History: []Dump{full(1, 30*gib)}, Estimates: est(0, 30*gib)}},
			"a:0 x:-", map[string]string{"x": "strategy noinc: a full every run, but the full (15 GiB) does not fit and there is no incremental to dump instead"}},
		{"incrementals dropped: lowest priority, largest first, then what fits is put back", 10 * gib,
			[]DLE{
				{Host: "a", Path: "/p", Priority: Low, History: []Dump{full(2, 100*gib)}, Estimates: est(0, 100*gib, 1, 8*gib)},
				{Host: "b", Path: "/p", Priority: Low, History: []Dump{full(2, 100*gib)}, Estimates: est(0, 100*gib, 1, 6*gib)},
				{Host: "c", Path: "/p", Priority: Low, History: []Dump{full(2, 100*gib)}, Estimates: est(0, 100*gib, 1, 4*gib)},
				{Host: "d", Path: "/p", Priority: High, History: []Dump{full(2, 100*gib)}, Estimates: est(0, 100*gib, 1, 10*gib)},
			},
			// 4+3+2+5 = 14 GiB: a (4) is dropped, 10 fits; b and c stay.
			"a:- b:1 c:1 d:1", map[string]string{"a": "not dumped: the night needs 14 GiB, the run can write 10 GiB (1 volume of 10 GiB); once the fulls were delayed, incrementals were dropped, lowest priority and largest first"}},
		{"what was delayed is put back when a later change made room", 20 * gib,
			[]DLE{due("a", 7, 20*gib, 2*gib), due("b", 8, 16*gib, 2*gib), due("c", 9, 60*gib, 2*gib)},
			// 10+8+30 = 48: a delayed (39), b delayed (32), c delayed (3);
			// then c does not come back (32), b does (10), a too (19).
			"a:0 b:0 c:1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fitConfig(tc.length)
			sc := mustPlan(t, cfg, tc.dles)
			var hosts []string
			for _, d := range tc.dles {
				hosts = append(hosts, d.Host)
			}
			hosts = sortedCopy(hosts)
			if got := levels(sc, hosts...); got != tc.want {
				var b strings.Builder
				_ = sc.Explain(&b)
				t.Fatalf("got %s, want %s\n%s", got, tc.want, b.String())
			}
			for h, want := range tc.reason {
				var why string
				if d := delayed(sc, h, "/p"); d != nil {
					why = d.Reason
				} else if s := skipped(sc, h, "/p"); s != nil {
					why = s.Reason
				}
				if !strings.Contains(why, want) {
					t.Errorf("%s: reason %q lacks %q", h, why, want)
				}
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func TestOversize(t *testing.T) {
	cfg := fitConfig(100 * gib)
	cfg.Runtapes = 2
	dles := []DLE{
		due("big", 7, 500*gib, 4*gib),
		{Host: "bignew", Path: "/p", Estimates: est(0, 500*gib)},
		{Host: "bigincr", Path: "/p", History: []Dump{full(3, 900*gib)}, Estimates: est(0, 900*gib, 1, 420*gib)},
		due("ok", 7, 20*gib, gib),
	}
	sc := mustPlan(t, cfg, dles)
	if got := levels(sc, "big", "bigincr", "bignew", "ok"); got != "big:1 bigincr:- bignew:- ok:0" {
		t.Fatalf("got %s", got)
	}
	notes := strings.Join(sc.Notes, "\n")
	for _, want := range []string{
		"full of big:/p (250 GiB) is larger than the 200 GiB one run may write (2 volumes of 100 GiB): dumped at level 1 instead; raise runtapes or split the DLE",
		"full of bignew:/p (250 GiB) is larger than the 200 GiB one run may write (2 volumes of 100 GiB): not dumped; raise runtapes or split the DLE",
		"level 1 of bigincr:/p (210 GiB) is larger than the 200 GiB one run may write",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if d := delayed(sc, "big", "/p"); d == nil || d.Level != 1 {
		t.Errorf("big:/p should be delayed to level 1: %+v", sc.Delayed)
	}
	if sc.CycleFull != 10*gib {
		t.Errorf("CycleFull %s: the fulls larger than a run must not count in the balance", bytesize.Format(sc.CycleFull))
	}
}

// TestOverheadCounts: each image costs its header and last block too.
func TestOverheadCounts(t *testing.T) {
	cfg := fitConfig(10 * gib)
	cfg.ImageOverhead = gib
	sc := mustPlan(t, cfg, []DLE{due("a", 7, 16*gib, 2*gib), due("b", 3, 4*gib, 2*gib)})
	// a: 8 + 1, b: 1 + 1 = 11 > 10: a is delayed.
	if got := levels(sc, "a", "b"); got != "a:1 b:1" {
		t.Errorf("got %s", got)
	}
	if sc.Total != 4*gib {
		t.Errorf("Total %s, want 4 GiB", bytesize.Format(sc.Total))
	}
}
