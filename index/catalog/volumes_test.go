package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAddVolume(t *testing.T) { forEachBackend(t, testAddVolume) }

func testAddVolume(t *testing.T) {
	c := newCatalog(t)
	tests := []struct {
		name string
		v    Volume
		want string
		is   error
	}{
		{"ok", Volume{Label: "DAILY-001", Slot: 1, Blocksize: 262144, Created: t0, Reuse: false, Bytes: 99}, "", nil},
		{"rebuild with written", Volume{Label: "DAILY-002", Written: "20250101010000"}, "", nil},
		{"duplicate", Volume{Label: "DAILY-001"}, "already in the catalog", ErrExists},
		{"empty", Volume{}, "volume label is empty", nil},
		{"blank", Volume{Label: "DAILY 3"}, "control or blank", nil},
		{"negative slot", Volume{Label: "X", Slot: -1}, "slot -1", nil},
		{"bad written", Volume{Label: "Y", Written: "2025"}, "datestamp \"2025\"", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.AddVolume(t.Context(), tc.v)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v does not match %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.Volume(t.Context(), tc.v.Label)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.v
			want.ID, want.Reuse, want.Bytes = id, true, 0
			if !v.Created.Equal(want.Created) {
				t.Errorf("created %v, want %v", v.Created, want.Created)
			}
			v.Created, want.Created = time.Time{}, time.Time{}
			if *v != want {
				t.Errorf("Volume = %+v, want %+v", *v, want)
			}
		})
	}
	if _, err := c.Volume(t.Context(), "NOPE"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `no volume labelled "NOPE"`) {
		t.Errorf("Volume(NOPE): %v", err)
	}
}

func TestVolumesOrder(t *testing.T) { forEachBackend(t, testVolumesOrder) }

func testVolumesOrder(t *testing.T) {
	c := newCatalog(t)
	for _, v := range []struct{ label, written string }{
		{"C", "20250102010000"}, {"A", ""}, {"B", "20250103010000"}, {"D", "20250102010000"}, {"E", ""},
	} {
		addVolume(t, c, v.label, v.written)
	}
	vols, err := c.Volumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vols {
		got = append(got, v.Label)
	}
	if want := []string{"B", "C", "D", "A", "E"}; !slices.Equal(got, want) {
		t.Errorf("Volumes order %v, want %v", got, want)
	}
}

func TestSetVolumeReuseAndStartRefusal(t *testing.T) {
	forEachBackend(t, testSetVolumeReuseAndStartRefusal)
}

func testSetVolumeReuseAndStartRefusal(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "NEW", "")
	addVolume(t, c, "OLD", "20250101010000")
	if err := c.SetVolumeReuse(t.Context(), "NEW", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVolumeReuse(t.Context(), "OLD", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVolumeReuse(t.Context(), "NOPE", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetVolumeReuse(NOPE): %v", err)
	}
	// A retired volume never written may still be written once (it holds nothing).
	if _, err := c.StartVolumeWrite(t.Context(), "NEW", 2, 262144, "20250301010000"); err != nil {
		t.Errorf("start of a never-written retired volume: %v", err)
	}
	_, err := c.StartVolumeWrite(t.Context(), "OLD", 2, 262144, "20250301010000")
	if err == nil || !strings.Contains(err.Error(), "not reusable (last written 20250101010000)") {
		t.Errorf("start of a retired written volume: %v", err)
	}
	if v, _ := c.Volume(t.Context(), "OLD"); v.Written != "20250101010000" {
		t.Errorf("refused start changed the volume: %+v", v)
	}
	if err := c.SetVolumeReuse(t.Context(), "OLD", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartVolumeWrite(t.Context(), "OLD", 2, 262144, "20250301010000"); err != nil {
		t.Errorf("start after marking reusable: %v", err)
	}
	for _, tc := range []struct {
		label, ds string
		slot      int
		bs        int64
		want      string
	}{
		{"NOPE", "20250301010000", 1, 512, "no volume labelled \"NOPE\" (label it first)"},
		{"OLD", "2025", 1, 512, "datestamp"},
		{"OLD", "20250301010000", -1, 512, "slot -1"},
		{"OLD", "20250301010000", 1, 0, "block size 0"},
	} {
		if _, err := c.StartVolumeWrite(t.Context(), tc.label, tc.slot, tc.bs, tc.ds); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartVolumeWrite(%q, %d, %d, %q): %v, want %q", tc.label, tc.slot, tc.bs, tc.ds, err, tc.want)
		}
	}
}

// TestStartVolumeWriteDropsExactly checks that overwriting a volume drops
// exactly the dumps that had a part on it (also one spanning onto another
// volume, with its other parts), and nothing else.
func TestStartVolumeWriteDropsExactly(t *testing.T) {
	forEachBackend(t, testStartVolumeWriteDropsExactly)
}

func testStartVolumeWriteDropsExactly(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	addVolume(t, c, "V2", "20250301010000")
	onlyV1 := mkDump(t, c, run, "web1", "/etc", 0)
	spans := mkDump(t, c, run, "web1", "/home", 0)
	onlyV2 := mkDump(t, c, run, "db1", "/var", 0)
	holding := mkDump(t, c, run, "db1", "/srv", 0)
	failed := mkDump(t, c, run, "db1", "/opt", 0)
	for _, id := range []int64{onlyV1, spans, onlyV2, holding} {
		ingest(t, c, id, FileRecord{Path: "f", Type: '0'})
		holdDump(t, c, id, 3*testFrameSize)
	}
	tapeDump(t, c, onlyV1, "V1")
	tapeDump(t, c, spans, "V1", "V2")
	tapeDump(t, c, onlyV2, "V2")
	if err := c.FailDump(t.Context(), failed, "x"); err != nil {
		t.Fatal(err)
	}
	v2Before, _ := c.Volume(t.Context(), "V2")

	dropped, err := c.StartVolumeWrite(t.Context(), "V1", 7, 65536, "20250308010000")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, d := range dropped {
		got = append(got, d.ID)
		if d.Status != DumpGood {
			t.Errorf("dropped dump reported with status %q", d.Status)
		}
	}
	if want := []int64{onlyV1, spans}; !slices.Equal(got, want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	for _, id := range []int64{onlyV1, spans} {
		if _, err := c.Dump(t.Context(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("dropped dump %d still readable: %v", id, err)
		}
		for _, table := range []string{"files", "frames", "parts"} {
			if n := countRows(t, c, table, id); n != 0 {
				t.Errorf("dropped dump %d left %d rows in %s", id, n, table)
			}
		}
	}
	for id, status := range map[int64]string{onlyV2: DumpGood, holding: DumpHolding, failed: DumpFailed} {
		d, err := c.Dump(t.Context(), id)
		if err != nil || d.Status != status {
			t.Errorf("dump %d after overwrite: %+v, %v", id, d, err)
		}
	}
	if parts, _ := c.Parts(t.Context(), onlyV2); len(parts) != 1 || parts[0].Volume != "V2" {
		t.Errorf("parts of the V2 dump: %+v", parts)
	}
	if _, err := c.FindFile(t.Context(), "db1", "/var", "f", ""); err != nil {
		t.Errorf("surviving dump not found: %v", err)
	}
	if _, err := c.FindFile(t.Context(), "web1", "/home", "f", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped dump still found: %v", err)
	}
	v1, _ := c.Volume(t.Context(), "V1")
	if v1.Written != "20250308010000" || v1.Bytes != 0 || v1.Slot != 7 || v1.Blocksize != 65536 {
		t.Errorf("V1 after start: %+v", v1)
	}
	if v2, _ := c.Volume(t.Context(), "V2"); *v2 != *v2Before {
		t.Errorf("V2 changed: %+v, was %+v", v2, v2Before)
	}
	// Nothing left on V1: starting it again drops nothing.
	if dropped, err := c.StartVolumeWrite(t.Context(), "V1", 7, 65536, "20250309010000"); err != nil || len(dropped) != 0 {
		t.Errorf("second start: %v, %v", dropped, err)
	}
}

func TestCommitTaped(t *testing.T) { forEachBackend(t, testCommitTaped) }

func testCommitTaped(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	addVolume(t, c, "V2", "20250301010000")
	addVolume(t, c, "FRESH", "")
	const payload = 1000
	newHolding := func(t *testing.T) int64 {
		id := mkDump(t, c, run, "web1", "/etc", 0)
		if err := c.SetDumpHolding(t.Context(), id, 0, payload, testSHA, 0, "/hold/web1._etc.0", nil, t0); err != nil {
			t.Fatal(err)
		}
		return id
	}
	two := []Part{
		{Volume: "V1", Part: 1, FileNo: 3, Record: 0, LogicalPos: 1234, Offset: 0, Length: 600},
		{Volume: "V2", Part: 2, FileNo: 1, Record: 0, LogicalPos: -1, Offset: 600, Length: 400},
	}
	edit := func(f func(p []Part)) []Part {
		p := slices.Clone(two)
		f(p)
		return p
	}
	tests := []struct {
		name  string
		parts []Part
		fin   time.Time
		want  string
	}{
		{"two volumes", two, t0, ""},
		{"one part", []Part{{Volume: "V1", Part: 1, FileNo: 9, LogicalPos: -1, Length: payload}}, t0, ""},
		{"no parts", nil, t0, "no parts given"},
		{"no time", two, time.Time{}, "finish time is missing"},
		{"numbering", edit(func(p []Part) { p[1].Part = 3 }), t0, "numbered 3"},
		{"gap", edit(func(p []Part) { p[1].Offset = 601 }), t0, "part 2 starts at payload offset 601, expected 600"},
		{"short", edit(func(p []Part) { p[1].Length = 399 }), t0, "parts cover 999 payload bytes but the payload is 1000 bytes"},
		{"long", edit(func(p []Part) { p[1].Length = 401 }), t0, "parts cover 1001"},
		{"zero length", edit(func(p []Part) { p[1].Length = 0 }), t0, "part 2 has length 0"},
		{"label file", edit(func(p []Part) { p[0].FileNo = 0 }), t0, "file 0 is the label"},
		{"bad position", edit(func(p []Part) { p[0].LogicalPos = -2 }), t0, "logical position -2"},
		{"other dump", edit(func(p []Part) { p[0].DumpID = 99999 }), t0, "belongs to dump 99999"},
		{"unknown volume", edit(func(p []Part) { p[1].Volume = "NOPE" }), t0, `volume "NOPE", which is not in the catalog`},
		{"unstarted volume", edit(func(p []Part) { p[1].Volume = "FRESH" }), t0, "never started for writing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v1, _ := c.Volume(t.Context(), "V1")
			v2, _ := c.Volume(t.Context(), "V2")
			id := newHolding(t)
			err := c.CommitTaped(t.Context(), id, tc.parts, tc.fin)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				d, _ := c.Dump(t.Context(), id)
				if d.Status != DumpHolding || d.HoldingPath == "" || countRows(t, c, "parts", id) != 0 {
					t.Errorf("a refused commit changed the dump: %+v", d)
				}
				if n1, _ := c.Volume(t.Context(), "V1"); n1.Bytes != v1.Bytes {
					t.Errorf("a refused commit changed V1 bytes")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, _ := c.Dump(t.Context(), id)
			if d.Status != DumpGood || d.HoldingPath != "" || !d.Taped.Equal(tc.fin) {
				t.Errorf("dump after commit: %+v", d)
			}
			parts, err := c.Parts(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.parts)
			var add = map[string]int64{}
			for i := range want {
				want[i].DumpID = id
				add[want[i].Volume] += want[i].Length
			}
			if !slices.Equal(parts, want) {
				t.Errorf("Parts = %+v, want %+v", parts, want)
			}
			n1, _ := c.Volume(t.Context(), "V1")
			n2, _ := c.Volume(t.Context(), "V2")
			if n1.Bytes != v1.Bytes+add["V1"] || n2.Bytes != v2.Bytes+add["V2"] {
				t.Errorf("volume bytes %d %d, want %d %d", n1.Bytes, n2.Bytes, v1.Bytes+add["V1"], v2.Bytes+add["V2"])
			}
			// Taping twice is refused.
			if err := c.CommitTaped(t.Context(), id, tc.parts, tc.fin); err == nil || !strings.Contains(err.Error(), `dump is "good", not "holding"`) {
				t.Errorf("second commit: %v", err)
			}
		})
	}
	dumping := mkDump(t, c, run, "web1", "/etc", 0)
	if err := c.CommitTaped(t.Context(), dumping, two, t0); err == nil || !strings.Contains(err.Error(), "SetDumpHolding comes first") {
		t.Errorf("commit of a dumping dump: %v", err)
	}
}

// Relabelling a volume forgets, in one transaction, every image that was on
// it (and their other parts); a label already in use is refused.
func TestLabelVolume(t *testing.T) { forEachBackend(t, testLabelVolume) }

func testLabelVolume(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	addVolume(t, c, "V2", "20250301010000")
	id := mkDump(t, c, run, "h", "/p", 0)
	frames, payload := testFrames(2 * testFrameSize)
	if err := c.SetDumpHolding(t.Context(), id, 2*testFrameSize, payload, testSHA, 0, "/hold", frames, t0); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitTaped(t.Context(), id, []Part{{Volume: "V1", Part: 1, FileNo: 1, LogicalPos: -1, Length: payload / 2},
		{Volume: "V2", Part: 2, FileNo: 1, LogicalPos: -1, Offset: payload / 2, Length: payload - payload/2}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LabelVolume(t.Context(), "V1", "V2", 1, 1<<18, t0); !errors.Is(err, ErrExists) {
		t.Errorf("relabel to a label in use: %v", err)
	}
	dropped, err := c.LabelVolume(t.Context(), "V1", "NEW-1", 1, 1<<18, t0)
	if err != nil || len(dropped) != 1 || dropped[0].ID != id {
		t.Fatalf("dropped %+v, %v", dropped, err)
	}
	if _, err := c.Dump(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("the image with a part on the relabelled volume is still in the catalog: %v", err)
	}
	if _, err := c.Volume(t.Context(), "V1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old label still there: %v", err)
	}
	v, err := c.Volume(t.Context(), "NEW-1")
	if err != nil || v.Written != "" || !v.Reuse || v.Slot != 1 {
		t.Errorf("new volume %+v %v", v, err)
	}
	if _, err := c.LabelVolume(t.Context(), "", "NEW-2", 3, 1<<18, t0); err != nil {
		t.Errorf("label a blank volume: %v", err)
	}
}
