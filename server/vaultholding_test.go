package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/server/restore"
)

// degradedNight runs a night that can write no volume (only blank
// volumes, no autolabel): its images stay on the holding disk.
func (s *site) degradedNight(t *testing.T) {
	t.Helper()
	path, auto, reserve := s.cfg.Changer.Path, s.cfg.Autolabel, s.cfg.Reserve
	s.cfg.Changer.Path, s.cfg.Autolabel = filepath.Join(s.dir, "blank-vtapes"), ""
	s.cfg.Reserve = 0 // fulls may use the holding disk in degraded mode
	_, out, err := s.night(t, Deps{})
	s.cfg.Changer.Path, s.cfg.Autolabel, s.cfg.Reserve = path, auto, reserve
	if !errors.Is(err, ErrRunFailed) || !strings.Contains(out, "HOLDING") {
		t.Fatalf("degraded night: %v\n%s", err, out)
	}
}

// holdingDump is the catalog's image of the DLE path waiting on the
// holding disk.
func holdingDump(t *testing.T, cat *catalog.Catalog, path string) catalog.Dump {
	t.Helper()
	ds, err := cat.DumpsWithStatus(t.Context(), catalog.DumpHolding)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Path == path {
			return d
		}
	}
	t.Fatalf("no image of %s waits on the holding disk", path)
	return catalog.Dump{}
}

// TestVaultCopiesHoldingImages: a night that could write no volume leaves
// its images on the holding disk; the vault copies them from there. One
// deleted by the administrator, one whose holding file vanishes before
// the flush: both are kept on their copies; one flushed normally is good
// on its own volume and keeps its copy. With the first set erased, every
// file restores from the copies.
func TestVaultCopiesHoldingImages(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.degradedNight(t)
	cat := s.catalog(t)
	if n := len(holdingFiles(t, s)); n != 2 {
		t.Fatalf("%d holding files, want 2", n)
	}
	res, err := vault(t, s, VaultOptions{})
	if err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault of the holding images: %v, %d copied", err, len(res.Copied))
	}
	for _, it := range res.Copied {
		if len(it.From) != 1 || !strings.HasPrefix(it.From[0], "holding file ") || !strings.HasPrefix(it.To[0], "test-Offsite-") {
			t.Errorf("copied %+v", it)
		}
	}
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 0 || res.Already != 2 {
		t.Fatalf("second vault: %v, copied %d, already %d", err, len(res.Copied), res.Already)
	}
	// The copy volume verifies like any: both images, nothing bad.
	vr, err := VerifyWith(t.Context(), s.cfg, "test-Offsite-001", VerifyOptions{}, Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 || vr.Orphans() != 0 || len(vr.Images) != 2 {
		t.Fatalf("verify test-Offsite-001: %v %+v", err, vr)
	}
	dles := s.cfg.DLEs
	deleted, flushed := holdingDump(t, cat, dles[0].Path), holdingDump(t, cat, dles[1].Path)

	// The listing says a waiting image has a copy; deleting it keeps it.
	ims, err := HoldingList(t.Context(), s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range ims {
		if len(im.CopyOn) != 1 || !strings.Contains(im.Detail, "deleted here, it is read from its copy") {
			t.Errorf("holding list: %+v", im)
		}
	}
	gone, err := HoldingDelete(t.Context(), s.cfg, HoldingSelect{File: deleted.HoldingPath}, false, testLogger(t))
	if err != nil || len(gone) != 1 || len(gone[0].CopyOn) != 1 {
		t.Fatalf("holding delete: %+v, %v", gone, err)
	}
	d, err := cat.Dump(t.Context(), deleted.ID)
	if err != nil || d.Status != catalog.DumpGood {
		t.Fatalf("the deleted image is %+v, %v; want good on its copy", d, err)
	}
	if ps, _ := cat.Parts(t.Context(), d.ID); len(ps) == 0 || !strings.HasPrefix(ps[0].Volume, "test-Offsite-") {
		t.Errorf("its parts %+v", ps)
	}

	// The other is flushed: good on the first set, its copy kept.
	var out strings.Builder
	if _, err := Flush(context.Background(), s.cfg, FlushOptions{}, Deps{Log: testLogger(t), Out: &out}); err != nil {
		t.Fatalf("flush: %v\n%s", err, out.String())
	}
	if d, _ := cat.Dump(t.Context(), flushed.ID); d.Status != catalog.DumpGood {
		t.Fatalf("flushed image is %q", d.Status)
	}
	if ps, _ := cat.Parts(t.Context(), flushed.ID); len(ps) == 0 || strings.HasPrefix(ps[0].Volume, "test-Offsite-") {
		t.Errorf("flushed image parts %+v; want the first set", ps)
	}
	if cs, _ := cat.Copies(t.Context(), flushed.ID); len(cs) != 1 {
		t.Errorf("flushed image copies %+v; want its copy", cs)
	}

	// A second degraded night, vaulted; one holding file vanishes before
	// the flush: it is kept on its copy, the report says so.
	s.degradedNight(t)
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault: %v", err)
	}
	vanish := holdingDump(t, cat, dles[1].Path)
	if err := os.Remove(vanish.HoldingPath); err != nil {
		t.Fatal(err)
	}
	// Before any flush, a restore reads it from its copy.
	to := filepath.Join(s.dir, "before-flush")
	if _, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: dles[1].Host, Path: dles[1].Path, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t)); err != nil {
		t.Fatalf("restore with the holding file gone: %v", err)
	}
	restoredFilesMatch(t, dles[1].Path, to)
	out.Reset()
	_, err = Flush(context.Background(), s.cfg, FlushOptions{}, Deps{Log: testLogger(t), Out: &out})
	if !strings.Contains(out.String(), "it is kept on its copy (tapir vault) on test-Offsite-") {
		t.Errorf("flush report (%v) does not say the vanished image is kept:\n%s", err, out.String())
	}
	if d, _ := cat.Dump(t.Context(), vanish.ID); d.Status != catalog.DumpGood {
		t.Fatalf("the vanished image is %q; want good on its copy", d.Status)
	}

	// The first set erased: the newest chain of each DLE restores from
	// the copies, file for file.
	slots, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "*"))
	for _, f := range slots {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, dle := range dles {
		to := filepath.Join(s.dir, "from-copies", filepath.Base(dle.Path))
		if _, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: dle.Host, Path: dle.Path, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t)); err != nil {
			t.Fatalf("restore %s with the first set erased: %v", dle.Path, err)
		}
		restoredFilesMatch(t, dle.Path, to)
	}
}

// restoredFilesMatch: every regular file restored under to is the one under src.
func restoredFilesMatch(t *testing.T, src, to string) {
	t.Helper()
	n := 0
	filepath.WalkDir(to, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			rel, _ := filepath.Rel(to, p)
			sameFile(t, filepath.Join(src, rel), p)
			n++
		}
		return err
	})
	if n == 0 {
		t.Errorf("nothing restored under %s", to)
	}
}

// TestVaultAfterDegradedNight: with after_night, a night that could
// write no volume still gets its images offsite, from the holding disk.
func TestVaultAfterDegradedNight(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "after_night = true")
	s.degradedNight(t)
	cat := s.catalog(t)
	for _, dle := range s.cfg.DLEs {
		d := holdingDump(t, cat, dle.Path)
		if cs, err := cat.Copies(t.Context(), d.ID); err != nil || len(cs) != 1 {
			t.Errorf("copies of the waiting image of %s: %+v, %v", dle.Path, cs, err)
		}
	}
}
