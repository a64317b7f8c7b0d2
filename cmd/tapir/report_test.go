package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
)

// TestReportCommand: tapir report re-renders past runs kept in a real
// catalog, as text or JSON, and says clearly when it cannot.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapir.toml")
	if err := os.WriteFile(cfg, []byte("org = \"t\"\nstatedir = \""+dir+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "report", "-c", cfg); code != 1 || !strings.Contains(stderr, "catalog.db does not exist: no run has been recorded") {
		t.Errorf("no catalog: exit %d, %s", code, stderr)
	}

	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 2, 1, 0, 0, 0, time.UTC)
	rep := &report.Run{Org: "t", Config: cfg, Datestamp: "20250302010000", Kind: report.KindDump, Start: t0, End: t0.Add(time.Hour),
		DLEs: []report.DLE{{Host: "h", Path: "/p", Status: report.StatusStrange, Strange: []string{"tar: x: file changed"},
			OrigSize: 1 << 20, OutSize: 1 << 19, Parts: []report.Part{{Volume: "t-001", FileNo: 1, Part: 1, Bytes: 1 << 19}}}}}
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	record := func(ds string, started time.Time, status, text string) {
		id, err := cat.BeginRun(t.Context(), ds, "t", started)
		if err != nil {
			t.Fatal(err)
		}
		if status != "" {
			if err := cat.FinishRun(t.Context(), id, status, started.Add(time.Hour), text); err != nil {
				t.Fatal(err)
			}
		}
	}
	record("20250301010000", t0.Add(-24*time.Hour), "ok", "t TAPIR MAIL REPORT FOR March 1, 2025\nkept as text\n")
	record("20250302010000", t0, "strange", string(js))
	record("20250303010000", t0.Add(24*time.Hour), "", "") // still running
	cat.Close()

	out, stderr, code := run(t, "report", "-c", cfg)
	if code != 0 || out != rep.Text() {
		t.Errorf("newest finished run: exit %d, %s\n%s", code, stderr, out)
	}
	out, _, code = run(t, "report", "-c", cfg, "20250302", "--format", "json")
	var j map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j["datestamp"] != "20250302010000" || j["status"] != "strange" {
		t.Errorf("json: exit %d\n%s", code, out)
	}
	if out, _, code = run(t, "report", "-c", cfg, "20250301010000"); code != 0 || !strings.Contains(out, "kept as text") {
		t.Errorf("text-only run: exit %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"20250301010000", "--format", "json"}, 1, "report of run 20250301010000: this run's report was kept as text only"},
		{[]string{"2025030"}, 1, "run 2025030 matches 3 runs (20250303010000, 20250302010000, 20250301010000): give more digits"},
		{[]string{"20250303"}, 1, "run 20250303010000 is still running"},
		{[]string{"1999"}, 1, "no run 1999 in catalog " + filepath.Join(dir, "catalog.db") + "; the newest are: 20250303010000, 20250302010000, 20250301010000"},
		{[]string{"--format", "html"}, 2, `--format "html": want text or json`},
		{[]string{"a", "b"}, 2, "at most one RUN"},
	} {
		_, stderr, code := run(t, append([]string{"report", "-c", cfg}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("tapir report %v: exit %d, %s; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
