package server

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./server -run %s -update creates it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./server -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", p, t.Name(), got, want)
	}
}

// scrubbed renders rep as text with what differs from one test run to the
// next replaced by fixed values: the site's directory, the host name, the
// datestamp and the times. Sizes stay: the images are of files of fixed
// sizes, dumped uncompressed.
func scrubbed(rep *report.Run, site string) string {
	r := *rep
	r.Hostname = "backup.example.com"
	r.Datestamp = "20260305010000"
	r.Start = time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC)
	r.End = r.Start.Add(12 * time.Minute)
	r.EstimateTime, r.DumpTime, r.TapeTime = time.Minute, 10*time.Minute, 0
	r.Config = strings.ReplaceAll(r.Config, site, "$SITE")
	r.DLEs = append([]report.DLE(nil), rep.DLEs...)
	for i := range r.DLEs {
		r.DLEs[i].Path = strings.ReplaceAll(r.DLEs[i].Path, site, "$SITE")
		if r.DLEs[i].OutSize > 0 {
			r.DLEs[i].DumpTime = 2 * time.Second
		}
	}
	return datestamps.ReplaceAllString(strings.ReplaceAll(r.Text(), site, "$SITE"), "YYYYMMDDhhmmss")
}

var datestamps = regexp.MustCompile(`\b20[0-9]{12}\b`)

// The whole report of a degraded night: the one volume of the rotation
// is still inside tapecycle, the blank ones may not be labelled
// (autolabel off). Five DLEs keep their incrementals on the holding disk
// and a new one cannot keep its full. The reason is said once, with the
// one action to take; every DLE's line is short.
func TestDegradedReportGolden(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 2, 4096, "a", "b", "c", "d", "e")
	s.cfg.Holding[0].Use = 64 << 20
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	randomFiles(t, filepath.Join(s.dir, "src", "a", "new"), 1, 4096)
	randomFiles(t, filepath.Join(s.dir, "src", "new"), 2, 4096)
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: filepath.Join(s.dir, "src", "new"), Dumptype: "raw"})
	s.cfg.Autolabel = ""
	// plan --explain tells before the night that it will be degraded, and
	// why, in the words of the report.
	sc, err := PlanTonight(t.Context(), s.cfg, Deps{Clock: offsetClock(24 * time.Hour), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var explain bytes.Buffer
	if err := sc.Explain(&explain); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(explain.String(), "DEGRADED: no usable volume as things stand: the only volume in the changer is within tapecycle 2") {
		t.Errorf("plan --explain does not say the night will be degraded:\n%s", explain.String())
	}
	rep, out, err := s.night(t, Deps{Clock: offsetClock(24 * time.Hour)})
	if !errors.Is(err, ErrRunFailed) || rep == nil || rep.Degraded == nil {
		t.Fatalf("night 2: %v, want a degraded night\n%s", err, out)
	}
	text := scrubbed(rep, s.dir)
	golden(t, "degraded.golden", text)
	if n := strings.Count(text, "autolabel is off"); n != 1 {
		t.Errorf("the reason is said %d times, want once:\n%s", n, text)
	}
	if strings.Contains(text, "no usable volume: no usable volume") {
		t.Errorf("the reason stutters:\n%s", text)
	}
}
