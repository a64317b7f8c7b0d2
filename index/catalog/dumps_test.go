package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
)

func TestCreateDump(t *testing.T) { forEachBackend(t, testCreateDump) }

func testCreateDump(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	tests := []struct {
		name string
		d    Dump
		want string
	}{
		{"defaults", Dump{RunID: run, Host: "web1", Path: "/etc", Level: 0}, ""},
		{"explicit", Dump{RunID: run, Host: "web1", Path: "/var/lib/my data", Level: 3, Datestamp: "20250228010000",
			Comp: "gz", FrameSize: 4096, SHA256: testSHA, Status: DumpFailed, Error: "estimate failed"}, ""},
		{"no run", Dump{RunID: 999, Host: "web1", Path: "/etc"}, "no run with id 999 (BeginRun first)"},
		{"no host", Dump{RunID: run, Path: "/etc"}, "host is empty"},
		{"host with space", Dump{RunID: run, Host: "web 1", Path: "/etc"}, "control or blank"},
		{"no path", Dump{RunID: run, Host: "web1"}, "DLE path is empty"},
		{"level", Dump{RunID: run, Host: "web1", Path: "/etc", Level: 100}, "level 100 is outside 0..99"},
		{"negative level", Dump{RunID: run, Host: "web1", Path: "/etc", Level: -1}, "level -1"},
		{"good", Dump{RunID: run, Host: "web1", Path: "/etc", Status: DumpGood}, "only be reached through CommitTaped"},
		{"bogus status", Dump{RunID: run, Host: "web1", Path: "/etc", Status: "fine"}, "dump status \"fine\""},
		{"comp", Dump{RunID: run, Host: "web1", Path: "/etc", Comp: "xz"}, "compression \"xz\""},
		{"sha", Dump{RunID: run, Host: "web1", Path: "/etc", SHA256: "ABCD"}, "not 64 lower-case hex"},
		{"negative", Dump{RunID: run, Host: "web1", Path: "/etc", OrigSize: -1}, "must not be negative"},
		{"datestamp", Dump{RunID: run, Host: "web1", Path: "/etc", Datestamp: "yesterday"}, "datestamp \"yesterday\""},
		{"command payload", Dump{RunID: run, Host: "db1", Path: "/pg/app", Payload: PayloadCommand}, ""},
		{"command incremental", Dump{RunID: run, Host: "db1", Path: "/pg/app", Level: 1, Payload: PayloadCommand}, "level-0 image with no index"},
		{"command with files", Dump{RunID: run, Host: "db1", Path: "/pg/app", Files: 3, Payload: PayloadCommand}, "level-0 image with no index"},
		{"bogus payload", Dump{RunID: run, Host: "db1", Path: "/pg/app", Payload: "cpio"}, "payload \"cpio\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			id, err := c.CreateDump(t.Context(), &d)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.ID != id {
				t.Errorf("d.ID = %d, returned %d", d.ID, id)
			}
			got, err := c.Dump(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.d
			want.ID = id
			if want.Status == "" {
				want.Status = DumpDumping
			}
			if want.Comp == "" {
				want.Comp = "zst"
			}
			if want.Datestamp == "" {
				want.Datestamp = "20250301010000"
			}
			if !sameDump(*got, want) {
				t.Errorf("stored\n %+v\nwant\n %+v", *got, want)
			}
			if !sameDump(d, want) {
				t.Errorf("CreateDump did not fill in its argument: %+v", d)
			}
		})
	}
	if _, err := c.CreateDump(t.Context(), nil); err == nil {
		t.Error("CreateDump(nil) succeeded")
	}
}

func TestSetDumpHolding(t *testing.T) { forEachBackend(t, testSetDumpHolding) }

func testSetDumpHolding(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	good, goodPayload := testFrames(3*testFrameSize + 100)
	orig := int64(3*testFrameSize + 100)
	mod := func(f func(fr []image.Frame) []image.Frame) []image.Frame {
		fr := append([]image.Frame(nil), good...)
		return f(fr)
	}
	tests := []struct {
		name    string
		orig    int64
		payload int64
		sha     string
		frames  []image.Frame
		want    string
	}{
		{"ok", orig, goodPayload + 50, testSHA, good, ""},
		{"no frames", 0, 0, testSHA, nil, ""},
		{"bad sha", orig, goodPayload, "xyz", good, "SHA-256"},
		{"negative", -1, goodPayload, testSHA, nil, "negative size"},
		{"index", orig, goodPayload, testSHA, mod(func(f []image.Frame) []image.Frame { f[1].Index = 5; return f }), "frame 1 has index 5"},
		{"tar gap", orig, goodPayload, testSHA, mod(func(f []image.Frame) []image.Frame { f[1].TarOffset++; return f }), "starts at tar offset"},
		{"payload gap", orig, goodPayload, testSHA, mod(func(f []image.Frame) []image.Frame { f[2].Offset--; return f }), "starts at payload offset"},
		{"short middle frame", orig, goodPayload, testSHA, mod(func(f []image.Frame) []image.Frame {
			f[1].TarSize -= 512
			f[2].TarOffset -= 512
			f[3].TarOffset -= 512
			f[3].TarSize += 512
			return f
		}), "every frame but the last holds exactly the frame size"},
		{"empty frame", orig, goodPayload, testSHA, mod(func(f []image.Frame) []image.Frame { f[3].Size = 0; return f }), "empty or negative"},
		{"orig mismatch", orig + 1, goodPayload, testSHA, good, "frames hold 3145828 tar bytes but the original size is 3145829"},
		{"past payload", orig, goodPayload - 1, testSHA, good, "past the payload size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := mkDump(t, c, run, "web1", "/etc", 0)
			err := c.SetDumpHolding(t.Context(), id, tc.orig, tc.payload, tc.sha, 7, "/hold/x", tc.frames, t0.Add(time.Minute))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				d, _ := c.Dump(t.Context(), id)
				if d.Status != DumpDumping {
					t.Errorf("status after a refused SetDumpHolding: %q", d.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := c.Dump(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != DumpHolding || d.OrigSize != tc.orig || d.PayloadSize != tc.payload || d.SHA256 != tc.sha ||
				d.Files != 7 || d.HoldingPath != "/hold/x" || !d.Finished.Equal(t0.Add(time.Minute)) {
				t.Errorf("dump after SetDumpHolding: %+v", d)
			}
			frames, err := c.Frames(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != len(tc.frames) {
				t.Fatalf("Frames = %v, want %v", frames, tc.frames)
			}
			for i := range frames {
				if frames[i] != tc.frames[i] {
					t.Errorf("frame %d = %+v, want %+v", i, frames[i], tc.frames[i])
				}
			}
			// A second SetDumpHolding is refused: the dump is no longer dumping.
			err = c.SetDumpHolding(t.Context(), id, tc.orig, tc.payload, tc.sha, 7, "/hold/x", tc.frames, t0)
			if err == nil || !strings.Contains(err.Error(), `dump is "holding", not "dumping"`) {
				t.Errorf("second SetDumpHolding: %v", err)
			}
		})
	}
	if err := c.SetDumpHolding(t.Context(), 999, 0, 0, testSHA, 0, "", nil, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetDumpHolding of a missing dump: %v", err)
	}
	noFS, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "h", Path: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetDumpHolding(t.Context(), noFS, orig, goodPayload, testSHA, 0, "", good, t0); err == nil || !strings.Contains(err.Error(), "no frame size") {
		t.Errorf("SetDumpHolding without frame size: %v", err)
	}
}

func countRows(t *testing.T, c *Catalog, table string, dumpID int64) int {
	t.Helper()
	var n int
	q := `SELECT count(*) FROM ` + table + ` WHERE dump_id = ?`
	if table == "files" { // a row is a chunk of entries (schema 8)
		q = `SELECT coalesce(sum(n), 0) FROM files WHERE dump_id = ?`
	}
	if err := c.r.QueryRow(q, dumpID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFailDump(t *testing.T) { forEachBackend(t, testFailDump) }

func testFailDump(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	tests := []struct {
		name   string
		state  string // dumping, holding, good, failed
		reason string
		want   string
	}{
		{"dumping", "dumping", "client went away", ""},
		{"holding", "holding", "checksum mismatch", ""},
		{"failed again", "failed", "second reason", ""},
		{"good", "good", "whatever", `dump is "good": it is on tape`},
		{"no reason", "dumping", "", "no reason given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := mkDump(t, c, run, "web1", "/etc", 0)
			ingest(t, c, id, FileRecord{Path: "a", Type: '0'}, FileRecord{Path: "b/c", Type: '0', TarOffset: 1024})
			switch tc.state {
			case "holding":
				holdDump(t, c, id, 2048)
			case "good":
				holdDump(t, c, id, 2048)
				tapeDump(t, c, id, "V1")
			case "failed":
				if err := c.FailDump(t.Context(), id, "first"); err != nil {
					t.Fatal(err)
				}
			}
			err := c.FailDump(t.Context(), id, tc.reason)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				if countRows(t, c, "files", id) != 2 {
					t.Error("a refused FailDump deleted the index")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, _ := c.Dump(t.Context(), id)
			if d.Status != DumpFailed || d.Error != tc.reason {
				t.Errorf("after FailDump: %+v", d)
			}
			if n := countRows(t, c, "files", id); n != 0 {
				t.Errorf("%d file rows left", n)
			}
			if n := countRows(t, c, "frames", id); n != 0 {
				t.Errorf("%d frame rows left", n)
			}
		})
	}
	if err := c.FailDump(t.Context(), 999, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FailDump of a missing dump: %v", err)
	}
}

func TestDumpListings(t *testing.T) { forEachBackend(t, testDumpListings) }

func testDumpListings(t *testing.T) {
	c := newCatalog(t)
	r1 := mkRun(t, c, "20250301010000")
	r2 := mkRun(t, c, "20250302010000")
	a := mkDump(t, c, r1, "web1", "/etc", 0)
	b := mkDump(t, c, r1, "web1", "/home", 0)
	cc := mkDump(t, c, r1, "db1", "/etc", 0)
	d := mkDump(t, c, r2, "web1", "/etc", 1)
	e := mkDump(t, c, r2, "web1", "/etc", 2) // same datestamp: newer id first
	holdDump(t, c, a, 1024)
	holdDump(t, c, cc, 1024)
	if err := c.FailDump(t.Context(), b, "boom"); err != nil {
		t.Fatal(err)
	}
	ids := func(ds []Dump, err error) []int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	tests := []struct {
		name string
		got  []int64
		want []int64
	}{
		{"host and path", ids(c.Dumps(t.Context(), "web1", "/etc")), []int64{e, d, a}},
		{"host", ids(c.Dumps(t.Context(), "web1", "")), []int64{e, d, b, a}},
		{"all", ids(c.Dumps(t.Context(), "", "")), []int64{e, d, cc, b, a}},
		{"path on every host", ids(c.Dumps(t.Context(), "", "/etc")), []int64{e, d, cc, a}},
		{"missing host", ids(c.Dumps(t.Context(), "nohost", "")), nil},
		{"run 1", ids(c.RunDumps(t.Context(), r1)), []int64{a, b, cc}},
		{"run 2", ids(c.RunDumps(t.Context(), r2)), []int64{d, e}},
		{"holding oldest first", ids(c.DumpsWithStatus(t.Context(), DumpHolding)), []int64{a, cc}},
		{"failed", ids(c.DumpsWithStatus(t.Context(), DumpFailed)), []int64{b}},
		{"dumping", ids(c.DumpsWithStatus(t.Context(), DumpDumping)), []int64{d, e}},
	}
	for _, tc := range tests {
		if len(tc.got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
			continue
		}
		for i := range tc.got {
			if tc.got[i] != tc.want[i] {
				t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
				break
			}
		}
	}
	if _, err := c.DumpsWithStatus(t.Context(), "weird"); err == nil {
		t.Error("DumpsWithStatus of an unknown status succeeded")
	}
	if _, err := c.Dump(t.Context(), 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Dump(999): %v", err)
	}
	if _, err := c.Frames(t.Context(), 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Frames(999): %v", err)
	}
	if _, err := c.Parts(t.Context(), 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Parts(999): %v", err)
	}
}

func TestFailInterrupted(t *testing.T) { forEachBackend(t, testFailInterrupted) }

func testFailInterrupted(t *testing.T) {
	c := newCatalog(t)
	old := mkRun(t, c, "20250301010000")
	live := mkRun(t, c, "20250302010000")
	done := mkRun(t, c, "20250228010000")
	if err := c.FinishRun(t.Context(), done, RunOK, t0, "fine"); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishRun(t.Context(), live, RunStrange, t0, ""); err != nil { // finished: not touched
		t.Fatal(err)
	}
	dumping := mkDump(t, c, old, "web1", "/etc", 0)
	ingest(t, c, dumping, FileRecord{Path: "a", Type: '0'})
	holding := mkDump(t, c, old, "web1", "/home", 0)
	ingest(t, c, holding, FileRecord{Path: "a", Type: '0'})
	holdDump(t, c, holding, 1024)

	failed, err := c.FailInterrupted(t.Context(), "the run was killed", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].ID != dumping || failed[0].Status != DumpDumping {
		t.Errorf("failed %+v", failed)
	}
	if d, _ := c.Dump(t.Context(), dumping); d.Status != DumpFailed || d.Error != "the run was killed" || countRows(t, c, "files", dumping) != 0 {
		t.Errorf("interrupted dump %+v", d)
	}
	if d, _ := c.Dump(t.Context(), holding); d.Status != DumpHolding || countRows(t, c, "files", holding) != 1 || countRows(t, c, "frames", holding) != 1 {
		t.Errorf("holding dump touched: %+v", d)
	}
	for ds, want := range map[string]Run{
		"20250301010000": {Status: RunFailed, Report: "the run was killed", Finished: t0.Add(time.Hour)},
		"20250302010000": {Status: RunStrange, Report: "", Finished: t0},
		"20250228010000": {Status: RunOK, Report: "fine", Finished: t0},
	} {
		r, err := c.Run(t.Context(), ds)
		if err != nil || r.Status != want.Status || r.Report != want.Report || !r.Finished.Equal(want.Finished) {
			t.Errorf("run %s after FailInterrupted: %+v %v", ds, r, err)
		}
	}
	if failed, err := c.FailInterrupted(t.Context(), "again", t0); err != nil || len(failed) != 0 {
		t.Errorf("second FailInterrupted: %v %v", failed, err)
	}
	if _, err := c.FailInterrupted(t.Context(), "", t0); err == nil {
		t.Error("FailInterrupted without a reason succeeded")
	}
}
