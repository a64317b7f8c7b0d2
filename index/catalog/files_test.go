package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFileWriterAddValidation(t *testing.T) { forEachBackend(t, testFileWriterAddValidation) }

func testFileWriterAddValidation(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/etc", 0)
	w, err := c.NewFileWriter(t.Context(), id, testFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	tests := []struct {
		name string
		r    FileRecord
		want string
	}{
		{"ok", FileRecord{Path: "etc/passwd", Type: '0'}, ""},
		{"dumpdir", FileRecord{Path: "etc", Type: 'D'}, ""},
		{"non-utf8 name", FileRecord{Path: "x/\xff\xfe", Type: '0'}, ""},
		{"empty", FileRecord{Path: "", Type: '0'}, "path is empty"},
		{"absolute", FileRecord{Path: "/etc/passwd", Type: '0'}, "starts with '/'"},
		{"dot slash", FileRecord{Path: "./etc", Type: '0'}, `"." component`},
		{"trailing slash", FileRecord{Path: "etc/", Type: '5'}, "trailing slash"},
		{"double slash", FileRecord{Path: "etc//x", Type: '0'}, "empty component"},
		{"dotdot", FileRecord{Path: "etc/../../x", Type: '0'}, `".." component`},
		{"nul", FileRecord{Path: "a\x00b", Type: '0'}, "NUL"},
		{"type", FileRecord{Path: "a", Type: 'x'}, "tar type 'x'"},
		{"negative size", FileRecord{Path: "a", Type: '0', Size: -1}, "negative size"},
		{"unaligned", FileRecord{Path: "a", Type: '0', TarOffset: 100}, "not a 512-byte block boundary"},
	}
	for _, tc := range tests {
		err := w.Add(t.Context(), tc.r)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "index dump") {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if w.Added() != 3 {
		t.Errorf("Added = %d, want 3", w.Added())
	}
}

func TestFileWriterLifecycle(t *testing.T) { forEachBackend(t, testFileWriterLifecycle) }

func testFileWriterLifecycle(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	recs := synthRecords(10, 1) // a directory each: a batch commits all but the last record

	t.Run("batches commit as they fill", func(t *testing.T) {
		id := mkDump(t, c, run, "web1", "/etc", 0)
		w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, testFrameSize))
		w.batch = 4
		for i := range 10 {
			if err := w.Add(t.Context(), recs(i)); err != nil {
				t.Fatal(err)
			}
			// A batch commits when a record comes after it: the last
			// record waits for its span, the next record's offset.
			if got, want := countRows(t, c, "files", id), i/4*4; got != want {
				t.Errorf("after %d adds %d rows committed, want %d", i+1, got, want)
			}
		}
		if err := w.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, c, "files", id); n != 10 {
			t.Errorf("%d rows after commit", n)
		}
		if err := w.Add(t.Context(), recs(0)); err == nil || !strings.Contains(err.Error(), "already committed") {
			t.Errorf("Add after Commit: %v", err)
		}
		if err := w.Commit(t.Context()); err == nil {
			t.Error("second Commit succeeded")
		}
		if err := w.Abort(); err == nil || !strings.Contains(err.Error(), "FailDump") {
			t.Errorf("Abort after Commit: %v", err)
		}
		if n := countRows(t, c, "files", id); n != 10 {
			t.Errorf("refused Abort deleted rows: %d left", n)
		}
		// A second index for the same dump is refused.
		if _, err := c.NewFileWriter(t.Context(), id, testFrameSize); err == nil || !strings.Contains(err.Error(), "already has an index") {
			t.Errorf("second writer: %v", err)
		}
	})

	t.Run("abort removes committed batches", func(t *testing.T) {
		id := mkDump(t, c, run, "web1", "/etc", 0)
		w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, testFrameSize))
		w.batch = 4
		for i := range 10 {
			if err := w.Add(t.Context(), recs(i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := countRows(t, c, "files", id); n != 8 {
			t.Fatalf("%d rows before abort", n)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, c, "files", id); n != 0 {
			t.Errorf("%d rows after abort", n)
		}
		if err := w.Abort(); err != nil {
			t.Errorf("second Abort: %v", err)
		}
		// The dump may be indexed again after an abort.
		ingest(t, c, id, recs(0))
		if err := w.Abort(); err != nil || countRows(t, c, "files", id) != 1 {
			t.Errorf("a stale Abort touched the new index: %v", err)
		}
	})

	t.Run("one writer per dump", func(t *testing.T) {
		id := mkDump(t, c, run, "web1", "/etc", 0)
		w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, testFrameSize))
		if _, err := c.NewFileWriter(t.Context(), id, testFrameSize); err == nil || !strings.Contains(err.Error(), "another FileWriter") {
			t.Errorf("concurrent writer: %v", err)
		}
		w.Commit(t.Context())
	})

	t.Run("fail dump while ingesting", func(t *testing.T) {
		id := mkDump(t, c, run, "web1", "/etc", 0)
		w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, testFrameSize))
		w.batch = 4
		for i := range 5 {
			if err := w.Add(t.Context(), recs(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.FailDump(t.Context(), id, "client died"); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, c, "files", id); n != 0 {
			t.Errorf("%d rows after FailDump", n)
		}
		var err error
		for i := 5; i < 10 && err == nil; i++ {
			err = w.Add(t.Context(), recs(i))
		}
		if err == nil {
			err = w.Commit(t.Context())
		}
		if err == nil || !strings.Contains(err.Error(), "marked failed") {
			t.Errorf("ingest after FailDump: %v", err)
		}
		if err2 := w.Commit(t.Context()); err2 != err {
			t.Errorf("error not sticky: %v", err2)
		}
		if err := w.Abort(); err != nil {
			t.Error(err)
		}
		if n := countRows(t, c, "files", id); n != 0 {
			t.Errorf("%d rows after failed ingest", n)
		}
		if _, err := c.NewFileWriter(t.Context(), id, testFrameSize); err == nil || !strings.Contains(err.Error(), "has failed") {
			t.Errorf("writer for a failed dump: %v", err)
		}
	})

	t.Run("frame size", func(t *testing.T) {
		id, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "h", Path: "/p"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.NewFileWriter(t.Context(), id, 0); err == nil {
			t.Error("frame size 0 accepted")
		}
		w := must[*FileWriter](t)(c.NewFileWriter(t.Context(), id, 4096))
		w.Commit(t.Context())
		if d, _ := c.Dump(t.Context(), id); d.FrameSize != 4096 {
			t.Errorf("frame size not recorded: %d", d.FrameSize)
		}
		id2 := mkDump(t, c, run, "h", "/p", 0)
		if _, err := c.NewFileWriter(t.Context(), id2, 4096); err == nil || !strings.Contains(err.Error(), "differs from the dump's frame size") {
			t.Errorf("mismatched frame size: %v", err)
		}
		if _, err := c.NewFileWriter(t.Context(), 99999, 4096); !errors.Is(err, ErrNotFound) {
			t.Errorf("writer for a missing dump: %v", err)
		}
	})
}

func TestListDir(t *testing.T) { forEachBackend(t, testListDir) }

func testListDir(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/", 0)
	mt := time.Date(2024, 12, 24, 18, 0, 0, 123456789, time.UTC)
	recs := []FileRecord{
		{Path: "etc", Type: '5', Mode: 0o755, Mtime: mt, TarOffset: 0},
		{Path: "etc/passwd", Type: '0', Size: 1234, Mode: 0o644, Mtime: mt, UID: 0, GID: 0, TarOffset: 512},
		{Path: "etc/ssl", Type: 'D', Mode: 0o755, TarOffset: 2560},
		{Path: "etc/ssl/cert.pem", Type: '0', Size: 3 << 20, Mode: 0o600, UID: 7, GID: 8, TarOffset: 3072},
		{Path: "etc/localtime", Type: '2', Link: "/usr/share/zoneinfo/UTC", TarOffset: testFrameSize*3 + 1024},
		{Path: "etc/passwd", Type: '0', Size: 99, Mode: 0o600, TarOffset: testFrameSize*3 + 2048}, // appended again: wins
		{Path: "vmlinuz", Type: '1', Link: "boot/vmlinuz-6.1", TarOffset: testFrameSize*3 + 4096},
		{Path: "dev/null", Type: '3', Mode: 0o666, TarOffset: testFrameSize*3 + 8192},
		{Path: "old", Type: '0', Mtime: time.Unix(-86400, 0), TarOffset: testFrameSize*3 + 9216},
	}
	ingest(t, c, id, recs...)
	names := func(rs []FileRecord) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Path)
		}
		return out
	}
	tests := []struct {
		dir  string
		want []string
	}{
		{"", []string{"etc", "old", "vmlinuz"}}, // "dev" has no entry of its own
		{".", []string{"etc", "old", "vmlinuz"}},
		{"/", []string{"etc", "old", "vmlinuz"}},
		{"etc", []string{"etc/localtime", "etc/passwd", "etc/ssl"}},
		{"/etc/", []string{"etc/localtime", "etc/passwd", "etc/ssl"}},
		{"./etc", []string{"etc/localtime", "etc/passwd", "etc/ssl"}},
		{"etc/ssl", []string{"etc/ssl/cert.pem"}},
		{"dev", []string{"dev/null"}},
		{"nowhere", nil},
		{"etc/passwd", nil},
	}
	for _, tc := range tests {
		got, err := c.ListDir(t.Context(), id, tc.dir)
		if err != nil {
			t.Errorf("ListDir(%q): %v", tc.dir, err)
			continue
		}
		if !slices.Equal(names(got), tc.want) {
			t.Errorf("ListDir(%q) = %v, want %v", tc.dir, names(got), tc.want)
		}
	}
	etc, _ := c.ListDir(t.Context(), id, "etc")
	want := map[string]FileRecord{}
	for _, r := range recs {
		want[r.Path] = r // the last occurrence wins
	}
	for _, got := range etc {
		w := want[got.Path]
		if !got.Mtime.Equal(w.Mtime) {
			t.Errorf("%s mtime %v, want %v", got.Path, got.Mtime, w.Mtime)
		}
		got.Mtime, w.Mtime = time.Time{}, time.Time{}
		got.Span = 0 // TestFileWriterSpans checks spans
		if got != w {
			t.Errorf("ListDir entry\n %+v\nwant\n %+v", got, w)
		}
	}
	root, _ := c.ListDir(t.Context(), id, "")
	if !root[1].Mtime.Equal(time.Unix(-86400, 0)) {
		t.Errorf("pre-1970 mtime: %v", root[1].Mtime)
	}
	if _, err := c.ListDir(t.Context(), 99999, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListDir of a missing dump: %v", err)
	}
	if _, err := c.ListDir(t.Context(), id, "etc/../.."); err == nil {
		t.Error("ListDir accepted a '..' path")
	}
}

func TestFindFile(t *testing.T) { forEachBackend(t, testFindFile) }

func testFindFile(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "V1", "20250301010000")
	// web1:/etc: full on 1 March, incrementals on 2 and 3 March, a holding
	// (not yet taped) incremental on 4 March, a failed one on 5 March.
	type plan struct {
		ds     string
		level  int
		files  []string
		status string
	}
	plans := []plan{
		{"20250301010000", 0, []string{"passwd", "hosts", "ssl", "ssl/cert.pem"}, DumpGood},
		{"20250302010000", 1, []string{"passwd"}, DumpGood},
		{"20250303010000", 2, []string{"hosts"}, DumpGood},
		{"20250304010000", 1, []string{"passwd", "hosts"}, DumpHolding},
		{"20250305010000", 1, []string{"passwd"}, DumpFailed},
	}
	ids := map[string]int64{}
	for _, p := range plans {
		run := mkRun(t, c, p.ds)
		id := mkDump(t, c, run, "web1", "/etc", p.level)
		ids[p.ds] = id
		var recs []FileRecord
		for i, f := range p.files {
			recs = append(recs, FileRecord{Path: f, Type: '0', Size: 100, TarOffset: int64(i) * 1024})
		}
		ingest(t, c, id, recs...)
		switch p.status {
		case DumpGood:
			holdDump(t, c, id, 5*testFrameSize)
			tapeDump(t, c, id, "V1")
		case DumpHolding:
			holdDump(t, c, id, 5*testFrameSize)
		case DumpFailed:
			if err := c.FailDump(t.Context(), id, "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another DLE and another host with the same file names.
	other := mkRun(t, c, "20250306010000")
	for _, hp := range [][2]string{{"web1", "/usr/etc"}, {"web2", "/etc"}} {
		id := mkDump(t, c, other, hp[0], hp[1], 0)
		ingest(t, c, id, FileRecord{Path: "passwd", Type: '0'}, FileRecord{Path: "hosts", Type: '0'})
		holdDump(t, c, id, 1024)
		tapeDump(t, c, id, "V1")
	}

	tests := []struct {
		file, asOf string
		want       string // datestamp of the dump, "" = not found
	}{
		{"passwd", "", "20250302010000"},
		{"hosts", "", "20250303010000"},
		{"ssl/cert.pem", "", "20250301010000"},
		{"/ssl/cert.pem", "", "20250301010000"},
		{"./ssl/", "", "20250301010000"},
		{"passwd", "20250301235959", "20250301010000"},
		{"passwd", "20250302010000", "20250302010000"},
		{"passwd", "20250301", "20250301010000"},
		{"passwd", "202503", "20250302010000"},
		{"hosts", "20250302", "20250301010000"},
		{"passwd", "20250228", ""},
		{"shadow", "", ""},
		{"ssl/missing", "", ""},
	}
	for _, tc := range tests {
		loc, err := c.FindFile(t.Context(), "web1", "/etc", tc.file, tc.asOf)
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("FindFile(%q, %q): %v, want ErrNotFound", tc.file, tc.asOf, err)
			} else if msg := err.Error(); !strings.Contains(msg, "web1:/etc") || !strings.Contains(msg, tc.file) {
				t.Errorf("not-found error %q does not name host, path and file", msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("FindFile(%q, %q): %v", tc.file, tc.asOf, err)
			continue
		}
		if loc.Dump.Datestamp != tc.want || loc.Dump.ID != ids[tc.want] || loc.Dump.Status != DumpGood {
			t.Errorf("FindFile(%q, %q) found dump %s (%d), want %s", tc.file, tc.asOf, loc.Dump.Datestamp, loc.Dump.ID, tc.want)
		}
		if len(loc.Parts) != 1 || loc.Parts[0].Volume != "V1" || loc.Parts[0].DumpID != loc.Dump.ID {
			t.Errorf("FindFile(%q) parts %+v", tc.file, loc.Parts)
		}
	}
	if _, err := c.FindFile(t.Context(), "web1", "/etc", "passwd", "2025-03-01"); err == nil || !strings.Contains(err.Error(), "as-of date") {
		t.Errorf("bad asOf: %v", err)
	}
	if _, err := c.FindFile(t.Context(), "web1", "/etc", "", ""); err == nil {
		t.Error("FindFile of the root succeeded")
	}
	if _, err := c.FindFile(t.Context(), "web1", "/etc", "a/../../b", ""); err == nil {
		t.Error("FindFile accepted '..'")
	}
}

func TestFindFileFramesAndDuplicates(t *testing.T) {
	forEachBackend(t, testFindFileFramesAndDuplicates)
}

func testFindFileFramesAndDuplicates(t *testing.T) {
	c := newCatalog(t)
	addVolume(t, c, "V1", "20250301010000")
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/home", 0)
	ingest(t, c, id,
		FileRecord{Path: "small", Type: '0', Size: 10, TarOffset: 2*testFrameSize + 1024},
		FileRecord{Path: "big", Type: '0', Size: 3 * testFrameSize, TarOffset: testFrameSize - 512},
		FileRecord{Path: "tail", Type: '0', Size: 100, TarOffset: 9*testFrameSize + 512},
		FileRecord{Path: "dup", Type: '0', Size: 1, TarOffset: 512},
		FileRecord{Path: "dup", Type: '0', Size: 2, TarOffset: 5*testFrameSize + 512},
		FileRecord{Path: "dup", Type: '0', Size: 3, TarOffset: 3*testFrameSize + 512},
	)
	holdDump(t, c, id, 9*testFrameSize+4096)
	tapeDump(t, c, id, "V1")
	tests := []struct {
		file        string
		size        int64
		first, last int
	}{
		{"small", 10, 2, 2},
		{"big", 3 * testFrameSize, 0, 4}, // 3 MiB + headers from 1 MiB-512
		{"tail", 100, 9, 9},              // clipped to the last frame
		{"dup", 2, 5, 5},                 // the entry latest in the stream wins
	}
	for _, tc := range tests {
		loc, err := c.FindFile(t.Context(), "web1", "/home", tc.file, "")
		if err != nil {
			t.Fatal(err)
		}
		if loc.File.Size != tc.size {
			t.Errorf("%s: size %d, want %d", tc.file, loc.File.Size, tc.size)
		}
		if len(loc.Frames) == 0 || loc.Frames[0].Index != tc.first || loc.Frames[len(loc.Frames)-1].Index != tc.last {
			t.Errorf("%s: frames %+v, want %d..%d", tc.file, loc.Frames, tc.first, tc.last)
			continue
		}
		f0 := loc.Frames[0]
		if loc.File.TarOffset < f0.TarOffset || loc.File.TarOffset >= f0.TarOffset+f0.TarSize {
			t.Errorf("%s: tar offset %d is not in its first frame %+v", tc.file, loc.File.TarOffset, f0)
		}
	}
}
