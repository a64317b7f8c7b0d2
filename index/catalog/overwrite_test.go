package catalog

import (
	"errors"
	"reflect"
	"testing"
)

func TestChainsNewestFullAndLater(t *testing.T) { forEachBackend(t, testChainsNewestFullAndLater) }

func testChainsNewestFullAndLater(t *testing.T) {
	c := newCatalog(t)
	for _, v := range []string{"T1", "T2", "T3", "T4"} {
		addVolume(t, c, v, "20250301010000")
	}
	night := func(ds, host string, level int, vol string, good bool) int64 {
		r, err := c.Run(t.Context(), ds)
		var id int64
		if err == nil {
			id = r.ID
		} else {
			id = mkRun(t, c, ds)
		}
		d := mkDump(t, c, id, host, "/home", level)
		holdDump(t, c, d, 1000)
		if good {
			tapeDump(t, c, d, vol)
		}
		return d
	}
	night("20250301010000", "a", 0, "T1", true)
	night("20250302010000", "a", 1, "T2", true)
	f2 := night("20250303010000", "a", 0, "T2", true)
	i1 := night("20250304010000", "a", 1, "T3", true)
	night("20250305010000", "a", 0, "T4", false) // on holding only: not a chain yet
	i2 := night("20250306010000", "a", 2, "T4", true)
	night("20250301010000", "b", 1, "T1", true) // no full: no chain
	ch, err := c.Chains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].Host != "a" {
		t.Fatalf("chains = %+v, want one for host a", ch)
	}
	var ids []int64
	for _, d := range ch[0].Dumps {
		ids = append(ids, d.ID)
	}
	if !reflect.DeepEqual(ids, []int64{f2, i1, i2}) || ch[0].Full().ID != f2 {
		t.Errorf("chain dumps = %v, want %v", ids, []int64{f2, i1, i2})
	}
	if !reflect.DeepEqual(ch[0].Volumes, []string{"T2", "T3", "T4"}) {
		t.Errorf("chain volumes = %v, want T2 T3 T4", ch[0].Volumes)
	}
}

func TestOverwriteTwoPhases(t *testing.T) { forEachBackend(t, testOverwriteTwoPhases) }

func testOverwriteTwoPhases(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "T1", "20250301010000")
	r := mkRun(t, c, "20250301010000")
	d := mkDump(t, c, r, "a", "/home", 0)
	holdDump(t, c, d, 1000)
	tapeDump(t, c, d, "T1")
	if err := c.RecordFailedFile(t.Context(), FailedFile{Volume: "T1", FileNo: 2, Datestamp: "20250301010000", Reason: "EIO"}); err != nil {
		t.Fatal(err)
	}

	// Phase 1 keeps the images; a failed label that left the old one
	// keeps them too.
	if err := c.BeginOverwrite(t.Context(), "T1", "20250302010000", "T1"); err != nil {
		t.Fatal(err)
	}
	v := must[*Volume](t)(c.Volume(t.Context(), "T1"))
	if v.Overwriting != "20250302010000" || v.OverwritingAs != "T1" {
		t.Errorf("mark = %q as %q", v.Overwriting, v.OverwritingAs)
	}
	if got := must[[]Dump](t)(c.DumpsOnVolume(t.Context(), "T1")); len(got) != 1 {
		t.Fatalf("phase 1 forgot images: %v", got)
	}
	if dropped, err := c.EndOverwrite(t.Context(), "T1", true); err != nil || len(dropped) != 0 {
		t.Fatalf("EndOverwrite kept: %v %v", dropped, err)
	}
	if v := must[*Volume](t)(c.Volume(t.Context(), "T1")); v.Overwriting != "" || v.Written != "20250301010000" {
		t.Errorf("after a kept overwrite: %+v", v)
	}

	// Phase 2 drops them and the failed files.
	if err := c.BeginOverwrite(t.Context(), "T1", "20250302010000", "T1"); err != nil {
		t.Fatal(err)
	}
	dropped, err := c.StartVolumeWrite(t.Context(), "T1", 1, 262144, "20250302010000")
	if err != nil || len(dropped) != 1 {
		t.Fatalf("StartVolumeWrite: %v %v", dropped, err)
	}
	if v := must[*Volume](t)(c.Volume(t.Context(), "T1")); v.Overwriting != "" || v.Written != "20250302010000" {
		t.Errorf("after phase 2: %+v", v)
	}
	if ff := must[[]FailedFile](t)(c.FailedFiles(t.Context(), "T1")); len(ff) != 0 {
		t.Errorf("failed files survive an overwrite: %v", ff)
	}
}

func TestEndOverwriteErasedForgetsVolume(t *testing.T) {
	forEachBackend(t, testEndOverwriteErasedForgetsVolume)
}

func testEndOverwriteErasedForgetsVolume(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "T1", "20250301010000")
	r := mkRun(t, c, "20250301010000")
	d := mkDump(t, c, r, "a", "/home", 0)
	holdDump(t, c, d, 1000)
	tapeDump(t, c, d, "T1")
	if err := c.BeginOverwrite(t.Context(), "T1", "X", "NEW-1"); err != nil {
		t.Fatal(err)
	}
	dropped, err := c.EndOverwrite(t.Context(), "T1", false)
	if err != nil || len(dropped) != 1 || dropped[0].ID != d {
		t.Fatalf("EndOverwrite erased: %v %v", dropped, err)
	}
	if _, err := c.Volume(t.Context(), "T1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("volume still known: %v", err)
	}
	if _, err := c.RemoveVolume(t.Context(), "T1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveVolume of an unknown volume: %v", err)
	}
}

func TestBeginOverwriteRefusesNoReuse(t *testing.T) {
	forEachBackend(t, testBeginOverwriteRefusesNoReuse)
}

func testBeginOverwriteRefusesNoReuse(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "T1", "20250301010000")
	if err := c.SetVolumeReuse(t.Context(), "T1", false); err != nil {
		t.Fatal(err)
	}
	if err := c.BeginOverwrite(t.Context(), "T1", "20250302010000", "T1"); err == nil {
		t.Fatal("a no-reuse volume was marked for overwriting")
	}
	if err := c.BeginOverwrite(t.Context(), "T9", "20250302010000", "T9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown volume: %v", err)
	}
}
