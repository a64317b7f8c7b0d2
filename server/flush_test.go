package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/index/catalog"
)

func holdingFiles(t *testing.T, s *site) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*"))
	return files
}

// TestLeftoversAreFlushed (promise 1): a night without a usable volume
// leaves its images on the holding disk; the next night with autoflush
// puts them on a volume first; `tapir flush` refuses a damaged image and
// keeps it for inspection.
func TestLeftoversAreFlushed(t *testing.T) {
	s := newSite(t, "")
	night := func() (string, error) {
		var out bytes.Buffer
		_, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Out: &out})
		return out.String(), err
	}
	degraded := func() {
		t.Helper()
		// Only blank volumes and no autolabel: no volume is usable.
		path, auto := s.cfg.Changer.Path, s.cfg.Autolabel
		s.cfg.Changer.Path, s.cfg.Autolabel = filepath.Join(s.dir, "blank-vtapes"), ""
		s.cfg.Reserve = 0 // fulls may use the holding disk in degraded mode
		out, err := night()
		s.cfg.Changer.Path, s.cfg.Autolabel = path, auto
		s.cfg.Reserve = 100
		if !errors.Is(err, ErrRunFailed) || !strings.Contains(out, "HOLDING") {
			t.Fatalf("degraded night: %v\n%s", err, out)
		}
		if n := len(holdingFiles(t, s)); n != 2 {
			t.Fatalf("degraded night left %d holding files, want 2", n)
		}
	}

	degraded()
	s.cfg.Autoflush = true
	out, err := night()
	if err != nil {
		t.Fatalf("autoflush night: %v\n%s", err, out)
	}
	if strings.Count(out, "FLUSH") != 2 {
		t.Errorf("report does not show the two flushed images:\n%s", out)
	}
	if left := holdingFiles(t, s); len(left) != 0 {
		t.Errorf("holding not empty after autoflush: %v", left)
	}
	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	hold, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpHolding)
	cat.Close()
	if len(hold) != 0 {
		t.Errorf("%d dumps still 'holding' in the catalog", len(hold))
	}

	// A flipped byte: flush refuses that image, tapes the other, keeps it.
	s.cfg.Autoflush = false
	degraded()
	files := holdingFiles(t, s)
	bad := files[0]
	b, _ := os.ReadFile(bad)
	b[len(b)-100] ^= 0x40
	os.WriteFile(bad, b, 0o640)
	var fout bytes.Buffer
	_, err = Flush(context.Background(), s.cfg, FlushOptions{}, Deps{Log: testLogger(t), Out: &fout})
	if !errors.Is(err, ErrRunFailed) {
		t.Errorf("flush with a damaged image: got %v, want ErrRunFailed", err)
	}
	if !strings.Contains(fout.String(), "is damaged") || !strings.Contains(fout.String(), "kept for inspection") {
		t.Errorf("flush report does not name the damaged image:\n%s", fout.String())
	}
	if left := holdingFiles(t, s); len(left) != 1 || left[0] != bad {
		t.Errorf("after flush, holding holds %v; want only the damaged %s", left, bad)
	}
}

// `tapir admin holding delete` removes an image that waits for a volume
// and the catalog then knows it will never be on one.
func TestHoldingDeleteMarksDumpFailed(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Changer.Path, s.cfg.Autolabel, s.cfg.Reserve = filepath.Join(s.dir, "blank-vtapes"), "", 0
	if _, _, err := s.night(t, Deps{}); !errors.Is(err, ErrRunFailed) {
		t.Fatalf("degraded night: %v", err)
	}
	ims, err := HoldingList(t.Context(), s.cfg)
	if err != nil || len(ims) != 2 || ims[0].State != "waiting" || ims[1].State != "waiting" {
		t.Fatalf("list: %+v %v", ims, err)
	}
	sel := HoldingSelect{Host: "localhost", Path: s.data}
	if got, err := HoldingDelete(t.Context(), s.cfg, sel, true, testLogger(t)); err != nil || len(got) != 1 || len(holdingFiles(t, s)) != 2 {
		t.Fatalf("dry run: %+v %v", got, err)
	}
	got, err := HoldingDelete(t.Context(), s.cfg, sel, false, testLogger(t))
	if err != nil || len(got) != 1 {
		t.Fatalf("delete: %+v %v", got, err)
	}
	if n := len(holdingFiles(t, s)); n != 1 {
		t.Errorf("%d holding files left, want 1", n)
	}
	d, err := s.catalog(t).Dump(t.Context(), got[0].DumpID)
	if err != nil || d.Status != catalog.DumpFailed || !strings.Contains(d.Error, "deleted from the holding disk") {
		t.Errorf("catalog: %+v %v", d, err)
	}
}
