package server

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
)

// `tapir status --cancel` from another process ends a running night as
// SIGTERM to the server does: the dump in flight finishes and is kept,
// no new dump starts, and the report says who cancelled the night. The
// request is made from the run's own log, at the moment the first image
// is on the holding disk: no sleep, no race with the end of the night.
func TestCancelRunningNight(t *testing.T) {
	s := newSite(t, "")
	s.dles(t, "default", 2, 4096, "first", "second", "third")
	s.cfg.Inparallel, s.cfg.Maxdumps = 1, 1

	if _, err := Cancel(s.cfg, time.Now()); !errors.Is(err, ErrNoRun) {
		t.Fatalf("cancel with no run ever: %v, want ErrNoRun", err)
	}
	var once sync.Once
	var cancelErr error
	var asked *Status
	log := slog.New(notifyHandler{testLogger(t).Handler(), func(r slog.Record) {
		if r.Message == "dumped to holding" {
			once.Do(func() { asked, cancelErr = Cancel(s.cfg, time.Now()) })
		}
	}})
	rep, out, err := s.night(t, Deps{Log: log})
	if cancelErr != nil {
		t.Fatalf("cancel of the running night: %v", cancelErr)
	}
	if err == nil || rep == nil {
		t.Fatalf("a cancelled night ends without error: %v\n%s", err, out)
	}
	if asked == nil || asked.Datestamp != rep.Datestamp {
		t.Errorf("cancel asked run %+v, the night was %s", asked, rep.Datestamp)
	}
	if !strings.Contains(rep.Aborted, "cancelled by user ") || !strings.Contains(out, "THE RUN WAS ABORTED: cancelled by user ") {
		t.Errorf("the report does not say who cancelled the night: %q\n%s", rep.Aborted, out)
	}
	var kept, notRun int
	for _, d := range rep.DLEs {
		switch {
		case d.Status == report.StatusOK || d.Status == report.StatusHolding:
			kept++
		case d.Status == report.StatusFailed && strings.Contains(d.Reason, "the night was cancelled by user ") && strings.Contains(d.Reason, "the next run dumps it"):
			notRun++
		default:
			t.Errorf("%s: %s %q", d.Path, d.Status, d.Reason)
		}
	}
	if kept != 1 || notRun != 2 {
		t.Errorf("%d DLEs kept, %d not run; want the one in flight kept and the two others not started\n%s", kept, notRun, out)
	}
	if _, err := os.Stat(CancelFile(s.cfg)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cancel request outlives its night: %v", err)
	}
	if _, err := Cancel(s.cfg, time.Now()); !errors.Is(err, ErrNoRun) || !strings.Contains(err.Error(), "has ended") {
		t.Errorf("cancel after the night: %v", err)
	}
	// The next night runs whole: the request was for the cancelled one.
	if rep, out, err := s.night(t, Deps{}); err != nil || rep.Aborted != "" {
		t.Errorf("night after the cancelled one: %v %q\n%s", err, rep.Aborted, out)
	}
}

// A request left for another run (an old datestamp) cancels nothing.
func TestCancelRequestForAnotherRun(t *testing.T) {
	s := newSite(t, "")
	if err := os.MkdirAll(filepath.Dir(CancelFile(s.cfg)), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(CancelFile(s.cfg), []byte(`{"datestamp":"20200101010000","by":"user x on y (pid 1)"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if rep, out, err := s.night(t, Deps{}); err != nil || rep.Aborted != "" {
		t.Errorf("night with a stale cancel request: %v %q\n%s", err, rep.Aborted, out)
	}
}

// tapir dump -c FILE HOST [DISK...] runs only those DLEs; the others are
// not run and their history stays as it was, so admin due says the same
// of them; an unknown host or disk is an error listing what exists.
func TestSubsetNight(t *testing.T) {
	s := newSite(t, "")
	s.dles(t, "default", 1, 4096, "a", "b", "c")
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "other", Path: "/srv", Dumptype: "default"})
	s.cfg.Hosts["other"] = config.Host{Address: "127.0.0.1:1"}
	whole := s.cfg.DLEs
	s.cfg.DLEs = whole[:3]
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	s.cfg.DLEs = whole
	a, b, c := whole[0].Path, whole[1].Path, whole[2].Path

	if _, _, err := Subset(s.cfg, "nohost", nil); err == nil || !strings.Contains(err.Error(), `host "nohost" is not in the disk list`) || !strings.Contains(err.Error(), "its hosts are: localhost, other") {
		t.Errorf("unknown host: %v", err)
	}
	if _, _, err := Subset(s.cfg, "localhost", []string{a, "/nowhere"}); err == nil || !strings.Contains(err.Error(), `no DLE "/nowhere"`) || !strings.Contains(err.Error(), a+", "+b+", "+c) {
		t.Errorf("unknown disk: %v", err)
	}
	day := offsetClock(3 * 24 * time.Hour)
	var before strings.Builder
	if err := WriteDue(t.Context(), &before, s.cfg, day); err != nil {
		t.Fatal(err)
	}
	sub, note, err := Subset(s.cfg, "localhost", []string{b, b})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.DLEs) != 1 || len(s.cfg.DLEs) != 4 {
		t.Fatalf("subset %v of %d DLEs", sub.DLEs, len(s.cfg.DLEs))
	}
	var buf strings.Builder
	rep, err := Dump(t.Context(), sub, Deps{Log: testLogger(t), Clock: day, Out: &buf, Subset: note})
	if err != nil {
		t.Fatalf("subset night: %v\n%s", err, buf.String())
	}
	if len(rep.DLEs) != 1 || rep.DLEs[0].Path != b || rep.DLEs[0].Status != report.StatusOK {
		t.Errorf("subset night ran %+v, want %s only", rep.DLEs, b)
	}
	if !strings.Contains(buf.String(), "subset: only 1 of the 4 DLEs ran tonight (tapir dump localhost "+b+")") {
		t.Errorf("the report does not say the night was a subset:\n%s", buf.String())
	}
	// The others' history is unchanged: admin due says the same of them.
	var after strings.Builder
	if err := WriteDue(t.Context(), &after, s.cfg, day); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, c, "/srv"} {
		if lineOf(before.String(), p) != lineOf(after.String(), p) || lineOf(after.String(), p) == "" {
			t.Errorf("admin due of %s changed by a night that did not run it:\nbefore %q\nafter  %q", p, lineOf(before.String(), p), lineOf(after.String(), p))
		}
	}
	dumps, err := s.catalog(t).Dumps(t.Context(), "localhost", a)
	if err != nil || len(dumps) != 1 {
		t.Errorf("dumps of %s after the subset night: %d (%v), want night 1's only", a, len(dumps), err)
	}
}

// lineOf is the line of text that names the DLE localhost:path or
// other:path, "" when none.
func lineOf(text, path string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, ":"+path+" ") {
			return l
		}
	}
	return ""
}
