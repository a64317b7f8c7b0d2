package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/tapir-backup/tapir/config"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
)

// TestRunAfterCrash: a run killed mid-dump leaves a "running" run, a
// "dumping" dump and a .tmp holding file. The next run cleans all three up
// and says so in its report.
func TestRunAfterCrash(t *testing.T) {
	s := newSite(t, "")
	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	crashed := time.Now().Add(-24 * time.Hour)
	ds := crashed.Format("20060102150405")
	runID, err := cat.BeginRun(t.Context(), ds, "test", crashed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.CreateDump(t.Context(), &catalog.Dump{RunID: runID, Host: "localhost", Path: s.data, Level: 0, Datestamp: ds, Started: crashed}); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	tmp := filepath.Join(s.cfg.Holding[0].Path, ds, "localhost._x.0.tmp")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("half an image"), 0o640); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if _, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Out: &out}); err != nil {
		t.Fatalf("dump after crash: %v\n%s", err, out.String())
	}
	for _, want := range []string{"was interrupted while dumping", "removed partial holding file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not say %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s still there: %v", tmp, err)
	}
	cat, err = catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	r, err := cat.Run(t.Context(), ds)
	if err != nil || r.Status != "failed" {
		t.Errorf("crashed run: %+v %v, want status failed", r, err)
	}
}

// TestSecondRunRefused: two runs of one configuration never overlap.
func TestSecondRunRefused(t *testing.T) {
	s := newSite(t, "")
	l, err := lockRun(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	_, err = Dump(context.Background(), s.cfg, Deps{Log: testLogger(t)})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d host ", os.Getpid())) || !strings.Contains(err.Error(), " started ") {
		t.Fatalf("second run: got %v, want ErrBusy naming the holder's pid, host and start", err)
	}
}

// A catalog on PostgreSQL is no file: its run lock is in the state
// directory, never a file named after the DSN.
func TestLockPathOfADSN(t *testing.T) {
	cfg := &config.Config{StateDir: "/var/lib/tapir/site", Catalog: "postgres://tapir:secret@db/tapir"}
	if got := lockPath(cfg); got != "/var/lib/tapir/site/run.lock" {
		t.Fatalf("lock of a DSN catalog: %s", got)
	}
	cfg.Catalog = "/var/lib/tapir/site/catalog.db"
	if got := lockPath(cfg); got != "/var/lib/tapir/site/catalog.db.lock" {
		t.Fatalf("lock of a SQLite catalog: %s", got)
	}
}
