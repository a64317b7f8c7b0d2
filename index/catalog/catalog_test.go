package catalog

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion = %d, but there are %d migration steps", SchemaVersion, len(migrations))
	}
}

// SQLite only: a file, its mode and its PRAGMAs (PostgreSQL: TestPostgresMeta).
func TestOpenCreatesFileAndPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "catalog.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Path() != path {
		t.Errorf("Path() = %q, want %q", c.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("catalog file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{c.w, "journal_mode", "wal"},
		{c.w, "foreign_keys", "1"},
		{c.w, "synchronous", "2"},
		{c.w, "busy_timeout", "5000"},
		{c.w, "user_version", strconv.Itoa(SchemaVersion)},
		{c.w, "application_id", "1413566546"},
		{c.r, "journal_mode", "wal"},
		{c.r, "foreign_keys", "1"},
		{c.r, "query_only", "1"},
		{c.r, "busy_timeout", "5000"},
	} {
		var got string
		if err := tc.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
}

// SQLite only: file names.
func TestOpenRelativePathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	c, err := Open("cat.db")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := filepath.Join(dir, "cat.db"); c.Path() != want {
		t.Errorf("Path() = %q, want %q", c.Path(), want)
	}
}

// SQLite only: file names.
func TestOpenOddFileName(t *testing.T) {
	// '?', '#' and '%' must not be taken for URI syntax.
	path := filepath.Join(t.TempDir(), "we?ird#dir %41", "cat?.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mkRun(t, c, "20250301010000")
	c.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("catalog not at the literal path: %v", err)
	}
	c, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(t.Context(), "20250301010000"); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsData(t *testing.T) { forEachBackend(t, testReopenKeepsData) }

func testReopenKeepsData(t *testing.T) {
	path := newLocation(t)
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	d := mkDump(t, c, run, "web1", "/etc", 0)
	ingest(t, c, d, FileRecord{Path: "passwd", Type: '0', Size: 10, Mode: 0o644, Mtime: t0, TarOffset: 512})
	holdDump(t, c, d, 4096)
	tapeDump(t, c, d, "V1")
	if err := c.FinishRun(t.Context(), run, RunOK, t0.Add(2*time.Hour), "report"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Run(t.Context(), "20250301010000")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != RunOK || r.Report != "report" || !r.Finished.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("run after reopen: %+v", r)
	}
	loc, err := c.FindFile(t.Context(), "web1", "/etc", "passwd", "")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Dump.ID != d || loc.File.Size != 10 || len(loc.Parts) != 1 || loc.Parts[0].Volume != "V1" {
		t.Errorf("location after reopen: %+v", loc)
	}
	v, err := c.Volume(t.Context(), "V1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Bytes != loc.Dump.PayloadSize {
		t.Errorf("volume bytes %d, want %d", v.Bytes, loc.Dump.PayloadSize)
	}
}

// SQLite only: testdata holds a version 1 SQLite file (PostgreSQL: TestPostgresMigrationFromV1).
func TestMigrationFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	script, err := os.ReadFile("testdata/catalog-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var version int
	if err := c.r.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion {
		t.Errorf("user_version after migration = %d, want %d", version, SchemaVersion)
	}

	runs, err := c.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Datestamp != "20240106013000" || runs[1].Report != "all fine" ||
		!runs[1].Finished.Equal(time.Unix(0, 1704421800000000000)) || !runs[0].Finished.IsZero() {
		t.Errorf("runs after migration: %+v", runs)
	}
	d, err := c.Dump(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := Dump{ID: 1, RunID: 1, Host: "web1", Path: "/etc", Level: 0, Datestamp: "20240105013000",
		Status: DumpGood, OrigSize: 3000000, PayloadSize: 5000, SHA256: strings.Repeat("ab", 32), Comp: "zst",
		FrameSize: 1048576, Files: 3, Started: time.Unix(0, 1704418300000000000), Finished: time.Unix(0, 1704418400000000000),
		Server: "Daily"} // the run's org, until servers had names
	if !sameDump(*d, want) {
		t.Errorf("dump 1 after migration:\n got %+v\nwant %+v", *d, want)
	}
	vols, err := c.Volumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || vols[0].Label != "DAILY-001" || vols[0].Bytes != 5000 || vols[1].Reuse || !vols[0].Reuse || vols[0].Slot != 3 {
		t.Errorf("volumes after migration: %+v", vols)
	}
	loc, err := c.FindFile(t.Context(), "web1", "/etc", "ssl/cert.pem", "")
	if err != nil {
		t.Fatal(err)
	}
	if loc.File.TarOffset != 1048576+4096 || loc.File.Size != 2000000 || loc.Parts[0].LogicalPos != 12 ||
		len(loc.Frames) != 2 || loc.Frames[0].Index != 1 {
		t.Errorf("location after migration: %+v", loc)
	}
	hold, err := c.DumpsWithStatus(t.Context(), DumpHolding)
	if err != nil {
		t.Fatal(err)
	}
	if len(hold) != 1 || hold[0].HoldingPath != "/holding/20240106013000/web1._etc.1" || hold[0].Comp != "gz" {
		t.Errorf("holding dumps after migration: %+v", hold)
	}
	// The migrated catalog accepts new writes through the new column.
	addVolume(t, c, "DAILY-003", "20240106013000")
	if err := c.CommitTaped(t.Context(), 2, []Part{{Volume: "DAILY-003", Part: 1, FileNo: 1, LogicalPos: -1, Length: 1000}}, t0); err != nil {
		t.Fatal(err)
	}
	d, err = c.Dump(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Taped.Equal(t0) || d.Status != DumpGood {
		t.Errorf("dump 2 after taping: %+v", d)
	}
}

func sameDump(a, b Dump) bool {
	ok := a.Started.Equal(b.Started) && a.Finished.Equal(b.Finished) && a.Taped.Equal(b.Taped)
	a.Started, a.Finished, a.Taped = time.Time{}, time.Time{}, time.Time{}
	b.Started, b.Finished, b.Taped = time.Time{}, time.Time{}, time.Time{}
	for _, d := range []*Dump{&a, &b} {
		if d.Encryption == "" {
			d.Encryption = "none"
		}
		if d.Payload == "" {
			d.Payload = PayloadTar
		}
	}
	return ok && reflect.DeepEqual(a, b)
}

// SQLite only: foreign and damaged files (PostgreSQL: TestPostgresOpenRefuses).
func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"newer schema", func(t *testing.T, path string) {
			c, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.w.Exec("PRAGMA user_version = 99"); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}, "schema version 99 is newer than this tapir understands (" + strconv.Itoa(SchemaVersion) + ")"},
		{"foreign application", func(t *testing.T, path string) {
			db, _ := sql.Open("sqlite3", path)
			defer db.Close()
			if _, err := db.Exec("PRAGMA application_id = 42; CREATE TABLE t(x)"); err != nil {
				t.Fatal(err)
			}
		}, "not a tapir catalog (SQLite application_id 0x2a)"},
		{"foreign tables", func(t *testing.T, path string) {
			db, _ := sql.Open("sqlite3", path)
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
				t.Fatal(err)
			}
		}, "not a tapir catalog (an SQLite database with tables"},
		{"not sqlite", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("this is a text file\n", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not an SQLite database"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "catalog.db")
			tc.setup(t, path)
			c, err := Open(path)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tc.want)
			}
		})
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) { forEachBackend(t, testConcurrentOpenMigratesOnce) }

func testConcurrentOpenMigratesOnce(t *testing.T) {
	path := newLocation(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	cats := make([]*Catalog, 4)
	for i := range cats {
		wg.Go(func() { cats[i], errs[i] = Open(path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer cats[i].Close()
	}
	if _, err := cats[0].BeginRun(t.Context(), "20250301010000", "x", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := cats[3].Run(t.Context(), "20250301010000"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameCatalogAndOperation(t *testing.T) {
	forEachBackend(t, testErrorsNameCatalogAndOperation)
}

func testErrorsNameCatalogAndOperation(t *testing.T) {
	c := newCatalog(t)
	err := c.CommitTaped(t.Context(), 12, []Part{{Volume: "V", Part: 1, FileNo: 1, Length: 1}}, t0)
	if err == nil {
		t.Fatal("CommitTaped of a missing dump succeeded")
	}
	want := "catalog " + c.Path() + ": commit taped dump 12: no dump with id 12"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Error("error does not match ErrNotFound")
	}
}

func TestClosedCatalog(t *testing.T) { forEachBackend(t, testClosedCatalog) }

func testClosedCatalog(t *testing.T) {
	c, err := Open(newLocation(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Runs(t.Context()); err == nil || !strings.Contains(err.Error(), c.Path()) {
		t.Errorf("Runs on a closed catalog: %v", err)
	}
	if _, err := c.BeginRun(t.Context(), "20250301010000", "", t0); err == nil {
		t.Error("BeginRun on a closed catalog succeeded")
	}
}

func TestTimeRoundTripAndClamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want any
	}{
		{time.Time{}, nil},
		{time.Unix(0, 0), int64(0)},
		{time.Unix(-5, 0), int64(-5e9)},
		{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), int64(-1 << 63)},
		{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), int64(1<<63 - 1)},
		{time.Unix(1700000000, 123), int64(1700000000000000123)},
	}
	for _, tc := range tests {
		if got := toNS(tc.in); got != tc.want {
			t.Errorf("toNS(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
