package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
)

// tapir status during a night: the dump in flight shows its share of the
// estimate, and the one held back says why (its host's maxdumps). The
// agent's stream is stalled by a proxy, so the state holds still; each
// rewrite of the status file is the event to look again.
func TestStatusShowsEstimateShareAndWhy(t *testing.T) {
	s := newSite(t, "")
	p := newProxy(t, s.cfg.HostAddress("localhost"))
	s.cfg.Hosts["localhost"] = config.Host{Address: p.addr()}
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	dt.FrameSize = 64 << 10 // frames arrive before the stall
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 4, 256<<10, "a", "b")
	s.cfg.Inparallel, s.cfg.Maxdumps = 2, 1
	p.stallAfter(256 << 10)
	if err := os.MkdirAll(filepath.Dir(s.cfg.Catalog), 0o750); err != nil { // watched before the night creates it
		t.Fatal(err)
	}
	type result struct {
		rep *report.Run
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, out, err := s.night(t, Deps{})
		done <- result{rep, out, err}
	}()
	var st *Status
	var live bool
	waitFiles(t, func() bool {
		var err error
		st, live, err = ReadStatus(s.cfg)
		if err != nil || !live {
			return false
		}
		dumping, held := false, false
		for _, d := range st.DLEs {
			dumping = dumping || (d.State == "dumping" && d.Bytes > 0 && d.Estimate > 0)
			held = held || (d.State == "waiting" && strings.Contains(d.Reason, "waiting for maxdumps: localhost has 1 dump(s) running (maxdumps = 1)"))
		}
		return dumping && held
	}, filepath.Dir(s.cfg.Catalog))
	var view strings.Builder
	if err := WriteStatus(&view, st, live, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(view.String(), "OF EST.") || !strings.Contains(view.String(), " %") || !strings.Contains(view.String(), "waiting for maxdumps") {
		t.Errorf("status during the night:\n%s", view.String())
	}
	p.resume()
	r := <-done // a night that never ends is caught by go test -timeout
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
}

// The columns of one dumping row: share of the estimate, rate, time left.
func TestStatusProgressColumns(t *testing.T) {
	for _, tc := range []struct {
		d        DLEState
		pct, eta string
	}{
		{DLEState{State: "dumping", Bytes: 50 << 20, Estimate: 100 << 20, Rate: 5 << 20}, "50 %", "10s"},
		{DLEState{State: "dumping", Bytes: 130, Estimate: 100, Rate: 1}, "130 %", "past est."},
		{DLEState{State: "dumping", Bytes: 10, Estimate: 100}, "10 %", ""},
		{DLEState{State: "dumping", Bytes: 10}, "", ""},
		{DLEState{State: "waiting", Estimate: 100, Reason: "waiting for maxdumps"}, "", ""},
	} {
		pct, eta := progressOf(tc.d)
		if pct != tc.pct || eta != tc.eta {
			t.Errorf("%+v: %q %q, want %q %q", tc.d, pct, eta, tc.pct, tc.eta)
		}
	}
}

// tapir status --watch does not end with the night: between nights it
// says it waits for the next one, and shows the next night when it
// comes. Each look is an event (Looked); the ticks are the test's.
func TestWatchWaitsForTheNextNight(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Schedule = "0 1 * * *"
	ticks := make(chan time.Time)
	looked := make(chan struct{})
	var out strings.Builder
	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() {
		ended <- Watch(ctx, s.cfg, &out, WatchOptions{Ticks: ticks, Looked: func() { looked <- struct{}{} }})
	}()
	<-looked
	if got := out.String(); !strings.Contains(got, "no run of") || !strings.Contains(got, `Waiting for the next night (schedule "0 1 * * *": `) {
		t.Errorf("before any night:\n%s", got)
	}
	rep, text, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	ticks <- time.Now()
	<-looked
	got := out.String()
	if !strings.Contains(got, "The last run, "+rep.Datestamp) || strings.Count(got, "Waiting for the next night") != 2 {
		t.Errorf("after a night:\n%s", got)
	}
	select {
	case err := <-ended:
		t.Fatalf("watch ended after the night: %v", err)
	default:
	}
	cancel()
	if err := <-ended; err != nil {
		t.Errorf("watch: %v", err)
	}
}
