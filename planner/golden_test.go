package planner

import (
	"strings"
	"testing"
)

// smallSite is a site of a dozen DLEs that shows most decisions: due,
// overdue, new, forced, promoted, bumped, futile, nofull, incronly, noinc,
// skip, a failed level 0 estimate, and a full too big for the run.
func smallSite() (Config, []DLE) {
	cfg := DefaultConfig()
	cfg.Runtapes = 2
	cfg.TapeLength = 200 * gib
	dles := []DLE{
		{Host: "web1", Path: "/etc", History: []Dump{full(7, 200*mib), inc(6, 1, 2*mib), inc(1, 1, 4*mib)},
			Estimates: est(0, 210*mib, 1, 5*mib)},
		{Host: "web1", Path: "/home", History: []Dump{full(5, 40*gib), inc(4, 1, 1*gib), inc(3, 1, 2*gib), inc(2, 1, 3*gib), inc(1, 1, 4*gib)},
			Estimates: est(0, 40*gib, 1, 5*gib, 2, 1*gib)},
		{Host: "web1", Path: "/srv", History: []Dump{full(11, 30*gib), full(4, 30*gib), inc(3, 1, 1*gib), inc(2, 1, 1*gib), inc(1, 1, 1*gib)},
			Estimates: est(0, 30*gib, 1, 1*gib, 2, 1023*mib)},
		{Host: "web2", Path: "/data", History: []Dump{full(6, 120*gib), inc(1, 1, 3*gib)}, Estimates: est(0, 120*gib, 1, 3*gib)},
		{Host: "web2", Path: "/srv", History: []Dump{full(5, 100*gib), inc(1, 1, 1*gib)}, Estimates: est(0, 100*gib, 1, 1*gib)},
		{Host: "files1", Path: "/a", History: []Dump{full(4, 160*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 160*gib, 1, 2*gib)},
		{Host: "files1", Path: "/b", History: []Dump{full(3, 140*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 140*gib, 1, 2*gib)},
		{Host: "files1", Path: "/c", History: []Dump{full(2, 140*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 140*gib, 1, 2*gib)},
		{Host: "files1", Path: "/d", History: []Dump{full(1, 140*gib)}, Estimates: est(0, 140*gib, 1, 1*gib)},
		{Host: "db1", Path: "/var/lib/pgsql", Priority: High, Forced: true, History: []Dump{full(3, 60*gib), inc(2, 1, 5*gib), inc(1, 1, 6*gib)},
			Estimates: est(0, 61*gib, 1, 7*gib)},
		{Host: "db1", Path: "/srv/archive", Priority: Low, History: []Dump{full(10, 40*gib), inc(2, 1, 1*gib), inc(1, 1, 1*gib)},
			Estimates: est(0, 40*gib, 1, 2*gib, 2, 2*gib)},
		{Host: "new1", Path: "/data", Estimates: est(0, 4*gib)},
		{Host: "app1", Path: "/opt", Strategy: NoFull, History: []Dump{full(40, 8*gib), inc(1, 1, 500*mib)},
			Estimates: est(1, 510*mib)},
		{Host: "app1", Path: "/scratch", Strategy: Skip},
		{Host: "app1", Path: "/logs", History: []Dump{full(4, 10*gib), inc(3, 1, 4*gib), inc(2, 1, 7*gib), inc(1, 1, 9*gib)},
			Estimates: est(0, 10*gib, 1, 9700*mib, 2, 9600*mib)},
		{Host: "app1", Path: "/var", Strategy: IncrOnly, History: []Dump{full(60, 20*gib), inc(30, 1, 2*gib), inc(2, 2, 300*mib), inc(1, 2, 310*mib)},
			Estimates: est(2, 320*mib, 3, 100*mib)},
		{Host: "mail1", Path: "/var/spool", Strategy: NoInc, History: []Dump{full(1, 3*gib)},
			Estimates: est(0, 3*gib)},
		{Host: "mail1", Path: "/home", History: []Dump{full(8, 20*gib), inc(1, 1, 2*gib)},
			Estimates: est(1, 2*gib)},
		{Host: "big1", Path: "/video", History: []Dump{full(7, 900*gib), inc(1, 1, 1*gib)},
			Estimates: est(0, 900*gib, 1, 2*gib)},
	}
	return cfg, dles
}

func TestExplainGolden(t *testing.T) {
	cfg, dles := smallSite()
	sc := mustPlan(t, cfg, dles)
	var b strings.Builder
	if err := sc.Explain(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "explain-small-site.golden", b.String())

	// Same input, same output, whatever the order of the DLEs.
	rev := make([]DLE, len(dles))
	for i := range dles {
		rev[len(dles)-1-i] = dles[i]
	}
	var b2 strings.Builder
	if err := mustPlan(t, cfg, rev).Explain(&b2); err != nil {
		t.Fatal(err)
	}
	if b2.String() != b.String() {
		t.Errorf("the explanation depends on the order of the DLEs:\n%s\n---\n%s", b2.String(), b.String())
	}
}

// TestExplainFullNightGolden: a night that does not fit, delayed fulls,
// dropped incrementals and what was put back.
func TestExplainFullNightGolden(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TapeLength = 45 * gib
	dles := []DLE{
		{Host: "a", Path: "/one", History: []Dump{full(7, 20*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 20*gib, 1, 2*gib)},
		{Host: "a", Path: "/two", History: []Dump{full(9, 60*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 60*gib, 1, 2*gib)},
		{Host: "b", Path: "/three", History: []Dump{full(8, 16*gib), inc(1, 1, 2*gib)}, Estimates: est(0, 16*gib, 1, 2*gib)},
		{Host: "b", Path: "/new", Estimates: est(0, 10*gib)},
		{Host: "c", Path: "/forced", Forced: true, History: []Dump{full(2, 50*gib), inc(1, 1, 1*gib)}, Estimates: est(0, 50*gib, 1, 1*gib)},
		{Host: "c", Path: "/tmp", Priority: Low, History: []Dump{full(3, 10*gib), inc(1, 1, 6*gib)}, Estimates: est(0, 10*gib, 1, 8*gib)},
	}
	sc := mustPlan(t, cfg, dles)
	var b strings.Builder
	if err := sc.Explain(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "explain-full-night.golden", b.String())
}

// TestReportsGolden: the texts of tapir admin due and tapir admin balance.
func TestReportsGolden(t *testing.T) {
	cfg, dles := smallSite()
	for _, tc := range []struct {
		golden string
		write  func(*strings.Builder) error
	}{
		{"due-small-site.golden", func(b *strings.Builder) error {
			r, err := Due(cfg, dles, now)
			if err != nil {
				return err
			}
			return r.Write(b)
		}},
		{"balance-small-site.golden", func(b *strings.Builder) error {
			r, err := Balance(cfg, dles, now)
			if err != nil {
				return err
			}
			return r.Write(b)
		}},
	} {
		var b strings.Builder
		if err := tc.write(&b); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.golden, b.String())
	}
}

// TestExplainDegradedGolden: the server found no usable volume, so the
// explanation says first that the night will be degraded, and why.
func TestExplainDegradedGolden(t *testing.T) {
	cfg, dles := smallSite()
	sc := mustPlan(t, cfg, dles)
	sc.Degraded = "4 blank volumes but autolabel is off;\nlabel a new volume with `tapir label` or turn on autolabel"
	var b strings.Builder
	if err := sc.Explain(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "explain-degraded.golden", b.String())
	if !strings.Contains(b.String(), "DEGRADED: no usable volume as things stand: 4 blank volumes but autolabel is off; label a new volume") {
		t.Errorf("the degraded night is not said on one line:\n%s", b.String())
	}
}
