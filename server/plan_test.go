package server

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
)

// The run takes its levels from the planner: a new DLE gets a full, the
// next night an incremental; `tapir admin force` makes the next run a full
// and the flag is cleared once that full is on a volume.
func TestPlannerLevelsAndForce(t *testing.T) {
	s := newSite(t, "")
	night := func(clock clock.Clock) map[string]int {
		t.Helper()
		rep, out, err := s.night(t, Deps{Clock: clock})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		m := map[string]int{}
		for _, d := range rep.DLEs {
			m[d.Path] = d.Level
		}
		return m
	}
	day := func(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }
	if l := night(day(0)); l[s.data] != 0 {
		t.Fatalf("night 1: levels %v, want a full of %s", l, s.data)
	}
	if l := night(day(1)); l[s.data] != 1 {
		t.Fatalf("night 2: levels %v, want level 1", l)
	}
	if _, err := Force(t.Context(), s.cfg, "localhost", s.data, true); err != nil {
		t.Fatal(err)
	}
	forced, _ := s.catalog(t).Forced(t.Context())
	if len(forced) != 1 {
		t.Fatalf("forced %v", forced)
	}
	sc, err := PlanTonight(context.Background(), s.cfg, Deps{Clock: day(2), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var explain bytes.Buffer
	sc.Explain(&explain)
	if strings.Contains(explain.String(), "DEGRADED") {
		t.Errorf("plan --explain calls a night with a usable volume degraded:\n%s", explain.String())
	}
	if !strings.Contains(explain.String(), "forced by tapir admin force") {
		t.Errorf("plan --explain does not say why the full:\n%s", explain.String())
	}
	if l := night(day(2)); l[s.data] != 0 {
		t.Fatalf("forced night: levels %v, want a full", l)
	}
	forced, _ = s.catalog(t).Forced(t.Context())
	if len(forced) != 0 {
		t.Errorf("force flag still set after the full is on a volume: %v", forced)
	}
	if l := night(day(3)); l[s.data] != 1 {
		t.Errorf("night after the forced full: levels %v, want level 1", l)
	}
	var due bytes.Buffer
	if err := WriteDue(t.Context(), &due, s.cfg, day(3)); err != nil || !strings.Contains(due.String(), "localhost:"+s.data) || !strings.Contains(due.String(), "in 6 days") {
		t.Errorf("admin due: %v\n%s", err, due.String())
	}
	var bal bytes.Buffer
	if err := WriteBalance(t.Context(), &bal, s.cfg, day(3)); err != nil || !strings.Contains(bal.String(), "balanced") {
		t.Errorf("admin balance: %v\n%s", err, bal.String())
	}
	if _, err := Force(t.Context(), s.cfg, "nohost", "", true); err == nil || !strings.Contains(err.Error(), "not in the disk list") {
		t.Errorf("force of an unknown host: %v", err)
	}
}

// The planner's history is what the catalog holds as safe: good dumps and
// images on the holding disk, never failed ones, in the configuration's
// time zone.
func TestPlannerHistoryFromCatalog(t *testing.T) {
	s := newSite(t, "")
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cat := s.catalog(t)
	run, _ := cat.BeginRun(t.Context(), "20200101010101", "test", time.Now())
	if _, err := cat.CreateDump(t.Context(), &catalog.Dump{RunID: run, Host: "localhost", Path: s.data, Level: 0, Datestamp: "20200101010101", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	dles, err := plannerDLEs(t.Context(), cat, s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dles {
		if len(d.History) != 1 || d.History[0].Level != 0 || d.History[0].OutBytes == 0 {
			t.Errorf("%s: history %+v, want the one good full (not the dumping one)", d.Name(), d.History)
		}
		if d.History[0].Time.Location() != s.cfg.Location() {
			t.Errorf("history time in %v, want %v", d.History[0].Time.Location(), s.cfg.Location())
		}
	}
}
