package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/gnutar"
)

// chainCatalog builds a DLE with three good images:
//
//	L0 (1 March):  a, b, keep, d/x, d/y, gone/z
//	L1 (2 March):  b deleted, a renamed to c (stored), new file n, gone/ removed,
//	               d/y changed (stored); a, keep, d/x unchanged
//	L2 (3 March):  keep changed; everything else unchanged
//
// and returns the catalog and the dump ids.
func chainCatalog(t *testing.T) (*Catalog, []int64) {
	t.Helper()
	c := newCatalog(t)
	addVolume(t, c, "V1", "20250301010000")
	var ids []int64
	mk := func(ds string, level int, recs []FileRecord, listings map[string][]gnutar.DirEntry) {
		run := mkRun(t, c, ds)
		id, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "web1", Path: "/srv", Level: level, FrameSize: testFrameSize, Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			recs[i].TarOffset = int64(i+1) * 1024
		}
		ingest(t, c, id, recs...)
		holdDump(t, c, id, int64(len(recs)+2)*1024)
		tapeDump(t, c, id, "V1")
		if listings != nil {
			m := map[string]string{}
			for d, l := range listings {
				m[d] = gnutar.EncodeDumpdir(l)
			}
			if err := c.SetListings(t.Context(), id, m); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	f := func(p string, size int64) FileRecord { return FileRecord{Path: p, Type: '0', Size: size, Mode: 0o644} }
	dir := func(p string) FileRecord { return FileRecord{Path: p, Type: '5', Mode: 0o755} }
	y := func(n string) gnutar.DirEntry { return gnutar.DirEntry{Kind: 'Y', Name: n} }
	nn := func(n string) gnutar.DirEntry { return gnutar.DirEntry{Kind: 'N', Name: n} }
	dd := func(n string) gnutar.DirEntry { return gnutar.DirEntry{Kind: 'D', Name: n} }
	mk("20250301010000", 0, []FileRecord{f("a", 1), f("b", 2), dir("d"), f("d/x", 3), f("d/y", 4), dir("gone"), f("gone/z", 5), f("keep", 6)}, nil)
	mk("20250302010000", 1, []FileRecord{f("c", 1), dir("d"), f("d/y", 44), f("n", 7)},
		map[string][]gnutar.DirEntry{
			"":  {y("c"), dd("d"), nn("keep"), y("n")},
			"d": {nn("x"), y("y")},
		})
	mk("20250303010000", 2, []FileRecord{dir("d"), f("keep", 66)},
		map[string][]gnutar.DirEntry{
			"":  {nn("c"), dd("d"), y("keep"), nn("n")},
			"d": {nn("x"), nn("y")},
		})
	return c, ids
}

func TestViewAppliesIncrementals(t *testing.T) { forEachBackend(t, testViewAppliesIncrementals) }

func testViewAppliesIncrementals(t *testing.T) {
	c, _ := chainCatalog(t)
	type ent struct {
		name string
		dump int
	}
	ls := func(v *View, dir string) []ent {
		t.Helper()
		es, err := v.List(t.Context(), dir)
		if err != nil {
			t.Fatalf("List(%q): %v", dir, err)
		}
		var out []ent
		for _, e := range es {
			out = append(out, ent{e.Name, e.Dump})
		}
		return out
	}
	for _, tc := range []struct {
		asOf  string
		chain int
		root  []ent
		d     []ent
	}{
		{"20250301", 1, []ent{{"a", 0}, {"b", 0}, {"d", 0}, {"gone", 0}, {"keep", 0}}, []ent{{"x", 0}, {"y", 0}}},
		{"20250302", 2, []ent{{"c", 1}, {"d", 1}, {"keep", 0}, {"n", 1}}, []ent{{"x", 0}, {"y", 1}}},
		{"", 3, []ent{{"c", 1}, {"d", 2}, {"keep", 2}, {"n", 1}}, []ent{{"x", 0}, {"y", 1}}},
	} {
		v, err := c.View(t.Context(), "web1", "/srv", tc.asOf)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Chain) != tc.chain {
			t.Errorf("as of %q: chain of %d images, want %d", tc.asOf, len(v.Chain), tc.chain)
		}
		if got := ls(v, ""); !slices.Equal(got, tc.root) {
			t.Errorf("as of %q: ls / = %v, want %v", tc.asOf, got, tc.root)
		}
		if got := ls(v, "/d/"); !slices.Equal(got, tc.d) {
			t.Errorf("as of %q: ls d = %v, want %v", tc.asOf, got, tc.d)
		}
	}
	v, _ := c.View(t.Context(), "web1", "/srv", "")
	if _, err := v.List(t.Context(), "gone"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gone is not a directory") {
		t.Errorf("ls of a deleted directory: %v", err)
	}
	if ok, _ := v.IsDir(t.Context(), "d"); !ok {
		t.Errorf("d is not a directory of the view")
	}
	r, err := v.Stat(t.Context(), "d/y")
	if err != nil || r.Size != 44 || v.Chain[r.Dump].Level != 1 {
		t.Errorf("stat d/y = %+v %v, want the level-1 record of 44 bytes", r, err)
	}
	if _, err := v.Stat(t.Context(), "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat of a deleted file: %v", err)
	}
	var walked []string
	if err := v.Walk(t.Context(), "", func(r ViewRecord) error { walked = append(walked, r.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c", "d", "d/x", "d/y", "keep", "n"}; !slices.Equal(walked, want) {
		t.Errorf("walk = %v, want %v", walked, want)
	}
	found, more, err := v.Find(t.Context(), "[bcx]", 0)
	var fp []string
	for _, r := range found {
		fp = append(fp, r.Path)
	}
	if err != nil || more || !slices.Equal(fp, []string{"c", "d/x"}) {
		t.Errorf("find [bcx] = %v %v %v, want c and d/x (b was deleted)", fp, more, err)
	}
	found, _, _ = v.Find(t.Context(), "d/*", 0)
	if len(found) != 2 {
		t.Errorf("find d/* = %+v", found)
	}
	// Older dates: the full alone still has b.
	v1, _ := c.View(t.Context(), "web1", "/srv", "20250301")
	if r, err := v1.Stat(t.Context(), "/b"); err != nil || r.Size != 2 {
		t.Errorf("stat b as of 1 March: %+v %v", r, err)
	}
}

func TestViewErrors(t *testing.T) { forEachBackend(t, testViewErrors) }

func testViewErrors(t *testing.T) {
	c, ids := chainCatalog(t)
	if _, err := c.View(t.Context(), "web1", "/srv", "20250228"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "oldest full is of 2025-03-01 01:00:00") {
		t.Errorf("view before the first full: %v", err)
	}
	if _, err := c.View(t.Context(), "web2", "/srv", ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no image of web2:/srv") {
		t.Errorf("view of an unknown host: %v", err)
	}
	if _, err := c.View(t.Context(), "web1", "/srv", "2025-03"); err == nil {
		t.Errorf("a malformed date was accepted")
	}
	// An incremental without listings cannot be viewed until they are recorded.
	run := mkRun(t, c, "20250304010000")
	id := mkDump(t, c, run, "web1", "/srv", 3)
	ingest(t, c, id, FileRecord{Path: "late", Type: '0', TarOffset: 512})
	holdDump(t, c, id, 2048)
	_, err := c.View(t.Context(), "web1", "/srv", "")
	var nl *NoListingsError
	if !errors.Is(err, ErrNoListings) || !errors.As(err, &nl) || nl.Dump.ID != id {
		t.Fatalf("view with an unlisted incremental: %v", err)
	}
	if err := c.SetListings(t.Context(), id, map[string]string{"": gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: 'Y', Name: "late"}})}); err != nil {
		t.Fatal(err)
	}
	v, err := c.View(t.Context(), "web1", "/srv", "")
	if err != nil {
		t.Fatal(err)
	}
	es, _ := v.List(t.Context(), "")
	if len(es) != 1 || es[0].Name != "late" {
		t.Errorf("ls after the level 3 that lists only late: %+v", es)
	}
	if hosts, err := c.Hosts(t.Context()); err != nil || !slices.Equal(hosts, []string{"web1"}) {
		t.Errorf("hosts %v %v", hosts, err)
	}
	if dles, err := c.DLEPaths(t.Context(), "web1"); err != nil || !slices.Equal(dles, []string{"/srv"}) {
		t.Errorf("DLEs %v %v", dles, err)
	}
	_ = ids
}

func TestFileWriterSpans(t *testing.T) { forEachBackend(t, testFileWriterSpans) }

func testFileWriterSpans(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "h", "/p", 0)
	w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, testFrameSize))
	w.batch = 2 // spans cross batch boundaries
	offs := []int64{0, 1536, 4096, 5120, 9216}
	for i, o := range offs {
		if err := w.Add(t.Context(), FileRecord{Path: fmt.Sprintf("f%d", i), Type: '0', TarOffset: o}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs, err := c.ListDir(t.Context(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		want := int64(0)
		if i+1 < len(offs) {
			want = offs[i+1] - offs[i]
		}
		if r.Span != want {
			t.Errorf("%s: span %d, want %d", r.Path, r.Span, want)
		}
	}
}

func TestForceFlags(t *testing.T) { forEachBackend(t, testForceFlags) }

func testForceFlags(t *testing.T) {
	c := newCatalog(t)
	for _, d := range []DLE{{"web1", "/etc"}, {"db1", "/var"}, {"web1", "/etc"}} {
		if err := c.SetForce(t.Context(), d.Host, d.Path, true); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Forced(t.Context())
	if err != nil || !slices.Equal(got, []DLE{{"db1", "/var"}, {"web1", "/etc"}}) {
		t.Fatalf("forced = %v %v", got, err)
	}
	if err := c.SetForce(t.Context(), "db1", "/var", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetForce(t.Context(), "bad host", "/x", true); err == nil {
		t.Errorf("a host with a blank was accepted")
	}
	// A good full of web1:/etc clears its flag; an incremental does not.
	addVolume(t, c, "V1", "20250301010000")
	run := mkRun(t, c, "20250301010000")
	inc := mkDump(t, c, run, "web1", "/etc", 1)
	holdDump(t, c, inc, 1024)
	tapeDump(t, c, inc, "V1")
	if got, _ := c.Forced(t.Context()); len(got) != 1 {
		t.Errorf("an incremental cleared the force flag: %v", got)
	}
	full := mkDump(t, c, run, "web1", "/etc", 0)
	holdDump(t, c, full, 1024)
	tapeDump(t, c, full, "V1")
	if got, _ := c.Forced(t.Context()); len(got) != 0 {
		t.Errorf("force flag left after a good full: %v", got)
	}
}

// bigDirCatalog holds one full of a DLE whose directory "big" has n files,
// and a level 1 that changed every 10th of them and lists the directory.
func bigDirCatalog(tb testing.TB, n int) *Catalog {
	c := newCatalog(tb)
	run := mkRun(tb, c, "20250301010000")
	id := mkDump(tb, c, run, "h", "/p", 0)
	w := must[*FileWriter](tb)(c.NewFileWriter(tb.Context(), id, testFrameSize))
	w.Add(tb.Context(), FileRecord{Path: "big", Type: '5', TarOffset: 0})
	for i := range n {
		w.Add(tb.Context(), FileRecord{Path: fmt.Sprintf("big/file%06d.txt", i), Type: '0', Size: int64(i), Mode: 0o644, Mtime: t0, TarOffset: int64(i+1) * 1024})
	}
	if err := w.Commit(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	holdDump(tb, c, id, int64(n+2)*1024)
	run2 := mkRun(tb, c, "20250302010000")
	id2 := mkDump(tb, c, run2, "h", "/p", 1)
	w2 := must[*FileWriter](tb)(c.NewFileWriter(tb.Context(), id2, testFrameSize))
	w2.Add(tb.Context(), FileRecord{Path: "big", Type: '5', TarOffset: 0})
	lst := make([]gnutar.DirEntry, 0, n)
	for i := range n {
		name := fmt.Sprintf("file%06d.txt", i)
		kind := byte('N')
		if i%10 == 0 {
			kind = 'Y'
			w2.Add(tb.Context(), FileRecord{Path: "big/" + name, Type: '0', Size: 1, TarOffset: int64(i+1) * 1024})
		}
		lst = append(lst, gnutar.DirEntry{Kind: kind, Name: name})
	}
	if err := w2.Commit(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	holdDump(tb, c, id2, int64(n+2)*1024)
	if err := c.SetListings(tb.Context(), id2, map[string]string{"": gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: 'D', Name: "big"}}), "big": gnutar.EncodeDumpdir(lst)}); err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestViewListBigDirectory: ls of a directory of 100,000 entries through a
// full and an incremental. The time is logged, never asserted (a busy
// machine is no failure): BenchmarkViewList100k is the measurement.
func TestViewListBigDirectory(t *testing.T) { forEachBackend(t, testViewListBigDirectory) }

func testViewListBigDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 110,000 index rows")
	}
	c := bigDirCatalog(t, 100000)
	v, err := c.View(t.Context(), "h", "/p", "")
	if err != nil {
		t.Fatal(err)
	}
	var best time.Duration
	for i := 0; i < 3; i++ {
		v, _ = c.View(t.Context(), "h", "/p", "") // no cache between rounds
		start := time.Now()
		es, err := v.List(t.Context(), "big")
		d := time.Since(start)
		if err != nil || len(es) != 100000 {
			t.Fatalf("ls big: %d entries, %v", len(es), err)
		}
		if es[10].Dump != 1 || es[11].Dump != 0 {
			t.Errorf("entries 10 and 11 come from images %d and %d, want 1 and 0", es[10].Dump, es[11].Dump)
		}
		if i == 0 || d < best {
			best = d
		}
	}
	t.Logf("ls of a 100,000-entry directory (full + incremental): best of 3 %v", best)
}

// BenchmarkViewList100k measures ls of a 100,000-entry directory through a
// full and an incremental (goal: under 100 ms).
// Run: go test -run '^$' -bench ViewList100k ./index/
func BenchmarkViewList100k(b *testing.B) { forEachBackendB(b, benchViewList100k) }

func benchViewList100k(b *testing.B) {
	c := bigDirCatalog(b, 100000)
	b.ResetTimer()
	for b.Loop() {
		v, err := c.View(b.Context(), "h", "/p", "")
		if err != nil {
			b.Fatal(err)
		}
		if es, err := v.List(b.Context(), "big"); err != nil || len(es) != 100000 {
			b.Fatal(len(es), err)
		}
	}
}

// TestOverwriteDropsListings: when the volume is overwritten, the dumps on
// it leave the catalog with their file rows and listings, in the same
// transaction.
func TestOverwriteDropsListings(t *testing.T) { forEachBackend(t, testOverwriteDropsListings) }

func testOverwriteDropsListings(t *testing.T) {
	c, ids := chainCatalog(t)
	if n := countRows(t, c, "listings", ids[1]); n != 2 {
		t.Fatalf("%d listings before", n)
	}
	dropped, err := c.StartVolumeWrite(t.Context(), "V1", 1, 262144, "20250310010000")
	if err != nil || len(dropped) != 3 {
		t.Fatalf("dropped %d dumps: %v", len(dropped), err)
	}
	for _, id := range ids {
		for _, table := range []string{"files", "frames", "listings"} {
			if n := countRows(t, c, table, id); n != 0 {
				t.Errorf("%d %s rows of dump %d left", n, table, id)
			}
		}
	}
	if _, err := c.View(t.Context(), "web1", "/srv", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("view after the overwrite: %v", err)
	}
}
