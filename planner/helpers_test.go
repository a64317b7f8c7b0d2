package planner

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tz is the time zone of the tests; the runs start at 01:00.
var tz = time.FixedZone("CET", 3600)

// now is the run the tests plan: Tuesday 2026-12-01 01:00 CET.
var now = time.Date(2026, 12, 1, 1, 0, 0, 0, tz)

// ago is the run n days before now (at the same hour).
func ago(n int) time.Time { return now.AddDate(0, 0, -n) }

// full and inc make history entries with a compression ratio of 0.5.
func full(daysAgo int, orig int64) Dump {
	return Dump{Time: ago(daysAgo), Level: 0, OrigBytes: orig, OutBytes: orig / 2}
}

func inc(daysAgo, level int, orig int64) Dump {
	return Dump{Time: ago(daysAgo), Level: level, OrigBytes: orig, OutBytes: orig / 2}
}

// est makes an estimate map from level, bytes pairs.
func est(pairs ...int64) map[int]int64 {
	m := map[int]int64{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[int(pairs[i])] = pairs[i+1]
	}
	return m
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./planner -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from the output (run with -update if the change is wanted)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// mustPlan plans or fails the test.
func mustPlan(t testing.TB, cfg Config, dles []DLE) *Schedule {
	t.Helper()
	sc, err := Plan(cfg, dles, now)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, cfg, dles, sc)
	return sc
}

// planOne plans the single DLE d, named h:/p, with ruleConfig changed by
// mod (when not nil).
func planOne(t testing.TB, mod func(*Config), d DLE) *Schedule {
	t.Helper()
	cfg := ruleConfig()
	if mod != nil {
		mod(&cfg)
	}
	d.Host, d.Path = "h", "/p"
	return mustPlan(t, cfg, []DLE{d})
}

// checkInvariants asserts what every schedule must satisfy: each DLE is
// either dumped or skipped, once; the chosen level and the fallback have
// estimates and their sizes are those estimates; the night fits; every
// decision has a reason.
func checkInvariants(t testing.TB, cfg Config, dles []DLE, sc *Schedule) {
	t.Helper()
	seen := map[string]int{}
	byName := map[string]*DLE{}
	for i := range dles {
		n := dles[i].Name()
		if _, dup := byName[n]; !dup {
			byName[n] = &dles[i]
		}
	}
	var total int64
	for _, e := range sc.Entries {
		n := e.Host + ":" + e.Path
		seen[n]++
		d := byName[n]
		if d == nil {
			t.Fatalf("entry %s is not a DLE", n)
		}
		if b, ok := d.Estimates[e.Level]; !ok || b != e.EstOrig || b < 0 {
			t.Errorf("%s: level %d chosen with EstOrig %d, estimates %v", n, e.Level, e.EstOrig, d.Estimates)
		}
		if e.Fallback >= 0 {
			if e.Level != 0 || e.Fallback == 0 {
				t.Errorf("%s: fallback %d for level %d", n, e.Fallback, e.Level)
			}
			if b, ok := d.Estimates[e.Fallback]; !ok || b != e.FallbackOrig {
				t.Errorf("%s: fallback level %d with %d bytes, estimates %v", n, e.Fallback, e.FallbackOrig, d.Estimates)
			}
		}
		if e.Reason == "" {
			t.Errorf("%s: no reason", n)
		}
		total += e.EstOut + cfg.ImageOverhead
	}
	for _, s := range sc.Skipped {
		n := s.Host + ":" + s.Path
		seen[n]++
		if s.Reason == "" {
			t.Errorf("%s: skipped without a reason", n)
		}
	}
	for _, d := range sc.Delayed {
		if d.Reason == "" {
			t.Errorf("%s:%s: delayed without a reason", d.Host, d.Path)
		}
	}
	for i := range dles {
		if n := dles[i].Name(); seen[n] < 1 {
			t.Errorf("%s is neither dumped nor skipped", n)
		}
	}
	if total != sc.Total {
		t.Errorf("Total %d, entries add up to %d", sc.Total, total)
	}
	if sc.Total > sc.Capacity {
		t.Errorf("the night does not fit: %d of %d", sc.Total, sc.Capacity)
	}
}

// entry finds the DLE's entry, or nil.
func entry(sc *Schedule, host, path string) *Entry {
	for i := range sc.Entries {
		if sc.Entries[i].Host == host && sc.Entries[i].Path == path {
			return &sc.Entries[i]
		}
	}
	return nil
}

func skipped(sc *Schedule, host, path string) *Skipped {
	for i := range sc.Skipped {
		if sc.Skipped[i].Host == host && sc.Skipped[i].Path == path {
			return &sc.Skipped[i]
		}
	}
	return nil
}

func delayed(sc *Schedule, host, path string) *Delayed {
	for i := range sc.Delayed {
		if sc.Delayed[i].Host == host && sc.Delayed[i].Path == path {
			return &sc.Delayed[i]
		}
	}
	return nil
}
