package server

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapir-backup/tapir/config"
)

// gather collects c into "name{k=v,...}" -> value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The metrics tell the result of the last run, not that it started: its
// end and status, the last successful run, every DLE's last good dump and
// the last failure, the holding disks, the volumes.
func TestMetricsAfterRuns(t *testing.T) {
	s := newSite(t, "")
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cat := s.catalog(t)
	cfg := s.cfg
	m := gather(t, NewCollector(func() *config.Config { return cfg }, cat, testLogger(t)))
	for _, name := range []string{"tapir_last_run_end_timestamp_seconds{}", "tapir_last_successful_run_end_timestamp_seconds{}"} {
		if m[name] == 0 {
			t.Errorf("%s not set: %v", name, m)
		}
	}
	if m["tapir_last_run_status{status=ok}"] != 1 || m["tapir_last_run_status{status=failed}"] != 0 {
		t.Errorf("last run status: %v", m)
	}
	for _, d := range s.cfg.DLEs {
		lbl := fmt.Sprintf("{host=%s,path=%s}", d.Host, d.Path)
		if m["tapir_dle_last_good_dump_timestamp_seconds"+lbl] == 0 || m["tapir_dle_last_full_timestamp_seconds"+lbl] == 0 {
			t.Errorf("DLE %s: no last good dump in %v", lbl, m)
		}
	}
	if m["tapir_last_run_dles{status=OK}"] != 2 || m["tapir_last_run_taped_bytes{}"] == 0 || m["tapir_volumes{state=labelled}"] != 1 {
		t.Errorf("run and volume figures: %v", m)
	}
	if m[fmt.Sprintf("tapir_holding_bytes{disk=%s,kind=capacity}", s.cfg.Holding[0].Path)] == 0 || m["tapir_run_in_progress{}"] != 0 || m["tapir_scrape_error{}"] != 0 {
		t.Errorf("holding, progress, errors: %v", m)
	}
	lastGood := m["tapir_last_successful_run_end_timestamp_seconds{}"]

	// A failed night: the last run is failed, the last successful one stays.
	s.cfg.Hosts["localhost"] = config.Host{Address: "127.0.0.1:1"}
	s.cfg.Retries = 0
	s.night(t, Deps{})
	m = gather(t, NewCollector(func() *config.Config { return cfg }, cat, testLogger(t)))
	if m["tapir_last_run_status{status=failed}"] != 1 || m["tapir_last_successful_run_end_timestamp_seconds{}"] != lastGood {
		t.Errorf("after a failed night: %v", m)
	}
	if m[fmt.Sprintf("tapir_dle_failed_in_last_run{host=localhost,path=%s}", s.data)] != 1 {
		t.Errorf("the failed DLE is not flagged: %v", m)
	}
}
