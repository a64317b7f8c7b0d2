package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBeginRun(t *testing.T) { forEachBackend(t, testBeginRun) }

func testBeginRun(t *testing.T) {
	c := newCatalog(t)
	mkRun(t, c, "20250301010000")
	tests := []struct {
		name      string
		datestamp string
		started   time.Time
		want      string
		is        error
	}{
		{"ok", "20250302010000", t0, "", nil},
		{"duplicate", "20250301010000", t0, "already in the catalog", ErrExists},
		{"short", "2025030101", t0, "not YYYYMMDDhhmmss", nil},
		{"letters", "2025030101000x", t0, "not YYYYMMDDhhmmss", nil},
		{"bad month", "20251301010000", t0, "not a valid date", nil},
		{"no start", "20250303010000", time.Time{}, "start time is missing", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.BeginRun(t.Context(), tc.datestamp, "Daily", tc.started)
			if tc.want == "" {
				if err != nil || id <= 0 {
					t.Fatalf("BeginRun = %d, %v", id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "begin run "+tc.datestamp) {
				t.Errorf("error %q does not name the operation", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
		})
	}
}

func TestFinishRunAndRead(t *testing.T) { forEachBackend(t, testFinishRunAndRead) }

func testFinishRunAndRead(t *testing.T) {
	c := newCatalog(t)
	id := mkRun(t, c, "20250301010000")
	tests := []struct {
		name   string
		id     int64
		status string
		fin    time.Time
		want   string
	}{
		{"running is not final", id, RunRunning, t0, "not one of ok"},
		{"unknown status", id, "great", t0, "not one of ok"},
		{"no time", id, RunOK, time.Time{}, "finish time is missing"},
		{"missing run", 999, RunOK, t0, "no run with id 999"},
		{"ok", id, RunStrange, t0.Add(time.Hour), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.FinishRun(t.Context(), tc.id, tc.status, tc.fin, "the report")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	r, err := c.Run(t.Context(), "20250301010000")
	if err != nil {
		t.Fatal(err)
	}
	want := Run{ID: id, Datestamp: "20250301010000", Org: "Daily", Status: RunStrange, Report: "the report"}
	if !r.Started.Equal(t0) || !r.Finished.Equal(t0.Add(time.Hour)) {
		t.Errorf("times %v %v", r.Started, r.Finished)
	}
	r.Started, r.Finished = time.Time{}, time.Time{}
	if *r != want {
		t.Errorf("Run = %+v, want %+v", *r, want)
	}
	if _, err := c.Run(t.Context(), "20990101000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run of a missing datestamp: %v", err)
	}
	if err := c.FinishRun(t.Context(), 999, RunOK, t0, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("FinishRun of a missing run: %v", err)
	}
}

func TestRunsNewestFirst(t *testing.T) { forEachBackend(t, testRunsNewestFirst) }

func testRunsNewestFirst(t *testing.T) {
	c := newCatalog(t)
	for _, ds := range []string{"20250302010000", "20250301010000", "20250303010000"} {
		mkRun(t, c, ds)
	}
	runs, err := c.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Datestamp)
		if r.Status != RunRunning || !r.Finished.IsZero() {
			t.Errorf("new run %+v", r)
		}
	}
	if strings.Join(got, " ") != "20250303010000 20250302010000 20250301010000" {
		t.Errorf("Runs order %v", got)
	}
}
