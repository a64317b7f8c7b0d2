package catalog

import (
	"reflect"
	"testing"
	"time"
)

func TestCopyRecordAndRead(t *testing.T) { forEachBackend(t, testCopyRecordAndRead) }

func testCopyRecordAndRead(t *testing.T) {
	c := newCatalog(t)
	ctx := t.Context()
	for _, v := range []string{"T1", "O1", "O2"} {
		addVolume(t, c, v, "20250301010000")
	}
	run := mkRun(t, c, "20250301010000")
	d := mkDump(t, c, run, "a", "/home", 0)
	// Still being dumped: no copy.
	if _, err := c.RecordCopy(ctx, d, []Part{{Volume: "O1", Part: 1, FileNo: 1, Length: 1}}, t0); err == nil {
		t.Fatal("RecordCopy of a dump being written succeeded")
	}
	payload := holdDump(t, c, d, 5000)
	tapeDump(t, c, d, "T1")
	// On the image's own volume: refused.
	if _, err := c.RecordCopy(ctx, d, []Part{{Volume: "T1", Part: 1, FileNo: 2, Length: payload}}, t0); err == nil {
		t.Fatal("RecordCopy onto the image's own volume succeeded")
	}
	// Not the whole payload: refused.
	if _, err := c.RecordCopy(ctx, d, []Part{{Volume: "O1", Part: 1, FileNo: 1, Length: payload - 1}}, t0); err == nil {
		t.Fatal("RecordCopy of part of the payload succeeded")
	}
	half := payload / 2
	parts := []Part{{Volume: "O1", Part: 1, FileNo: 1, LogicalPos: -1, Length: half},
		{Volume: "O2", Part: 2, FileNo: 1, LogicalPos: -1, Offset: half, Length: payload - half}}
	n, err := c.RecordCopy(ctx, d, parts, t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("RecordCopy = %d, %v; want copy 1", n, err)
	}
	cs, err := c.Copies(ctx, d)
	if err != nil || len(cs) != 1 {
		t.Fatalf("Copies = %+v, %v", cs, err)
	}
	for i := range parts {
		parts[i].DumpID = d
	}
	if !reflect.DeepEqual(cs[0].Parts, parts) || !cs[0].Copied.Equal(t0.Add(time.Hour)) || !reflect.DeepEqual(cs[0].Volumes(), []string{"O1", "O2"}) {
		t.Errorf("copy = %+v, want parts %+v", cs[0], parts)
	}
	on, err := c.DumpsCopiedOnVolume(ctx, "O2")
	if err != nil || len(on) != 1 || on[0].ID != d {
		t.Errorf("DumpsCopiedOnVolume(O2) = %+v, %v", on, err)
	}
	all, err := c.AllCopies(ctx)
	if err != nil || len(all) != 1 || len(all[d]) != 1 {
		t.Errorf("AllCopies = %+v, %v", all, err)
	}
}

// Overwriting a copy volume forgets the copy, never the image; overwriting
// the image's volume while a whole copy is elsewhere keeps the image, on
// its copy.
func TestCopyVolumeOverwrite(t *testing.T) { forEachBackend(t, testCopyVolumeOverwrite) }

func testCopyVolumeOverwrite(t *testing.T) {
	c := newCatalog(t)
	ctx := t.Context()
	for _, v := range []string{"T1", "T2", "O1", "O2"} {
		addVolume(t, c, v, "20250301010000")
	}
	run := mkRun(t, c, "20250301010000")
	a := mkDump(t, c, run, "a", "/home", 0)
	pa := holdDump(t, c, a, 5000)
	tapeDump(t, c, a, "T1")
	b := mkDump(t, c, run, "b", "/home", 0)
	pb := holdDump(t, c, b, 5000)
	tapeDump(t, c, b, "T1")
	if _, err := c.RecordCopy(ctx, a, []Part{{Volume: "O1", Part: 1, FileNo: 1, LogicalPos: -1, Length: pa}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordCopy(ctx, b, []Part{{Volume: "O2", Part: 1, FileNo: 1, LogicalPos: -1, Length: pb}}, t0); err != nil {
		t.Fatal(err)
	}
	// O2 overwritten: b's copy goes, b stays on T1.
	dropped, err := c.StartVolumeWrite(ctx, "O2", 1, 262144, "20250302010000")
	if err != nil || len(dropped) != 0 {
		t.Fatalf("StartVolumeWrite(O2) dropped %+v, %v; want nothing", dropped, err)
	}
	if cs, _ := c.Copies(ctx, b); len(cs) != 0 {
		t.Errorf("b still has copies %+v after O2 was overwritten", cs)
	}
	// T1 overwritten: a lives on on O1 (its copy becomes its parts), b
	// has no copy left and leaves the catalog.
	dropped, err = c.StartVolumeWrite(ctx, "T1", 1, 262144, "20250302010000")
	if err != nil || len(dropped) != 1 || dropped[0].ID != b {
		t.Fatalf("StartVolumeWrite(T1) dropped %+v, %v; want b only", dropped, err)
	}
	ps, err := c.Parts(ctx, a)
	if err != nil || len(ps) != 1 || ps[0].Volume != "O1" {
		t.Fatalf("parts of a = %+v, %v; want its copy on O1", ps, err)
	}
	if cs, _ := c.Copies(ctx, a); len(cs) != 0 {
		t.Errorf("a's copy is still a copy %+v after it became its parts", cs)
	}
	ch, err := c.Chains(ctx)
	if err != nil || len(ch) != 1 || !reflect.DeepEqual(ch[0].Volumes, []string{"O1"}) {
		t.Errorf("chains = %+v, %v; want a's on O1", ch, err)
	}
	// rmvolume of O1 now forgets a.
	if dropped, err := c.RemoveVolume(ctx, "O1"); err != nil || len(dropped) != 1 {
		t.Errorf("RemoveVolume(O1) = %+v, %v", dropped, err)
	}
}

// An image waiting on the holding disk may be copied; flushed later it is
// good on its own volumes and keeps its copy; lost on the holding disk
// before any flush it is kept on its copy; without a copy KeepOnCopy
// changes nothing.
func TestCopyOfHoldingImage(t *testing.T) { forEachBackend(t, testCopyOfHoldingImage) }

func testCopyOfHoldingImage(t *testing.T) {
	c := newCatalog(t)
	ctx := t.Context()
	for _, v := range []string{"T1", "O1", "O2"} {
		addVolume(t, c, v, "20250301010000")
	}
	run := mkRun(t, c, "20250301010000")
	if err := c.SetForce(ctx, "a", "/home", true); err != nil {
		t.Fatal(err)
	}
	flushed := mkDump(t, c, run, "b", "/home", 0)
	pf := holdDump(t, c, flushed, 4000)
	lost := mkDump(t, c, run, "a", "/home", 0)
	pl := holdDump(t, c, lost, 5000)
	bare := mkDump(t, c, run, "c", "/home", 0)
	holdDump(t, c, bare, 3000)

	if _, err := c.RecordCopy(ctx, flushed, []Part{{Volume: "O1", Part: 1, FileNo: 1, LogicalPos: -1, Length: pf}}, t0); err != nil {
		t.Fatalf("copy of a holding image: %v", err)
	}
	copied := t0.Add(3 * time.Hour)
	if _, err := c.RecordCopy(ctx, lost, []Part{{Volume: "O2", Part: 1, FileNo: 1, LogicalPos: -1, Length: pl}}, copied); err != nil {
		t.Fatalf("copy of a holding image: %v", err)
	}
	// Flushed after its copy: good on T1, its copy kept.
	tapeDump(t, c, flushed, "T1")
	if cs, _ := c.Copies(ctx, flushed); len(cs) != 1 || cs[0].Volumes()[0] != "O1" {
		t.Errorf("copies of the flushed image %+v", cs)
	}
	if l, err := c.KeepOnCopy(ctx, flushed); err != nil || l != nil {
		t.Errorf("KeepOnCopy of a good image = %v, %v; want nothing done", l, err)
	}
	// No copy: nothing changes, the caller fails it.
	if l, err := c.KeepOnCopy(ctx, bare); err != nil || l != nil {
		t.Errorf("KeepOnCopy without a copy = %v, %v", l, err)
	}
	if d, _ := c.Dump(ctx, bare); d.Status != DumpHolding {
		t.Errorf("the image without a copy is %q", d.Status)
	}
	// Lost on the holding disk: kept on O2.
	l, err := c.KeepOnCopy(ctx, lost)
	if err != nil || len(l) != 1 || l[0] != "O2" {
		t.Fatalf("KeepOnCopy = %v, %v; want [O2]", l, err)
	}
	d, err := c.Dump(ctx, lost)
	if err != nil || d.Status != DumpGood || d.HoldingPath != "" || !d.Taped.Equal(copied) {
		t.Fatalf("kept image %+v, %v", d, err)
	}
	if ps, _ := c.Parts(ctx, lost); len(ps) != 1 || ps[0].Volume != "O2" || ps[0].Length != pl {
		t.Errorf("parts of the kept image %+v", ps)
	}
	if cs, _ := c.Copies(ctx, lost); len(cs) != 0 {
		t.Errorf("its copy is still a copy: %+v", cs)
	}
	if f, _ := c.Forced(ctx); len(f) != 0 {
		t.Errorf("a good full did not end the forced full: %+v", f)
	}
	if err := c.FailDump(ctx, lost, "x"); err == nil {
		t.Error("the kept image could still be failed")
	}
}
