package catalog

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/pgtest"

	"github.com/tapir-backup/tapir/image"
)

var t0 = time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC)

const testFrameSize = 1 << 20

var testSHA = strings.Repeat("ab", 32)

// The catalog conformance suite: every test that touches a catalog runs
// as two subtests, sqlite (always) and postgres (on the server of
// internal/pgtest; skipped without one unless TAPIR_TEST_POSTGRES_REQUIRED
// is set). The tests that are about SQLite files (paths, PRAGMAs, corrupt
// files) run on SQLite only and say so.
var backends = []string{"sqlite", "postgres"}

// forEachBackend runs fn as one subtest per backend; newCatalog and
// newLocation in it (and in its subtests) use that backend.
func forEachBackend(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, fn)
	}
}

// forEachBackendB is forEachBackend for a benchmark.
func forEachBackendB(b *testing.B, fn func(b *testing.B)) {
	b.Helper()
	for _, name := range backends {
		b.Run(name, fn)
	}
}

// backendOf is the backend of the forEachBackend subtest tb is in.
func backendOf(tb testing.TB) string {
	parts := strings.Split(tb.Name(), "/")
	if len(parts) > 1 && parts[1] == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

// newLocation returns where a new, empty catalog of tb's backend is: a
// file name in a temporary directory, or a fresh PostgreSQL database.
func newLocation(tb testing.TB) string {
	tb.Helper()
	if backendOf(tb) == "postgres" {
		return pgtest.DSN(tb)
	}
	return filepath.Join(tb.TempDir(), "state", "catalog.db")
}

// locations remembers where each test catalog is, for tests that open it
// a second time (Path masks a DSN's password).
var locations sync.Map // *Catalog -> string

func newCatalog(tb testing.TB) *Catalog {
	tb.Helper()
	loc := newLocation(tb)
	c, err := Open(loc)
	if err != nil {
		tb.Fatal(err)
	}
	locations.Store(c, loc)
	tb.Cleanup(func() { c.Close() })
	return c
}

// locationOf is the location newCatalog opened c at.
func locationOf(c *Catalog) string {
	loc, _ := locations.Load(c)
	return loc.(string)
}

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func mkRun(tb testing.TB, c *Catalog, ds string) int64 {
	tb.Helper()
	id, err := c.BeginRun(tb.Context(), ds, "Daily", t0)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mkDump(tb testing.TB, c *Catalog, runID int64, host, path string, level int) int64 {
	tb.Helper()
	id, err := c.CreateDump(tb.Context(), &Dump{RunID: runID, Host: host, Path: path, Level: level, FrameSize: testFrameSize, Started: t0})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// testFrames cuts orig tar bytes into frames of testFrameSize that compress
// to half their size.
func testFrames(orig int64) (frames []image.Frame, payload int64) {
	for off, i := int64(0), 0; off < orig; i++ {
		n := min(int64(testFrameSize), orig-off)
		frames = append(frames, image.Frame{Index: i, TarOffset: off, TarSize: n, Offset: payload, Size: (n + 1) / 2})
		off += n
		payload += (n + 1) / 2
	}
	return frames, payload
}

func holdDump(tb testing.TB, c *Catalog, id, orig int64) int64 {
	tb.Helper()
	frames, payload := testFrames(orig)
	if err := c.SetDumpHolding(tb.Context(), id, orig, payload, testSHA, 0, fmt.Sprintf("/hold/%d", id), frames, t0.Add(time.Minute)); err != nil {
		tb.Fatal(err)
	}
	return payload
}

// tapeDump puts a holding dump on the given volumes, one part per volume,
// splitting the payload evenly.
func tapeDump(tb testing.TB, c *Catalog, id int64, vols ...string) {
	tb.Helper()
	d, err := c.Dump(tb.Context(), id)
	if err != nil {
		tb.Fatal(err)
	}
	var parts []Part
	per := d.PayloadSize / int64(len(vols))
	off := int64(0)
	for i, v := range vols {
		n := per
		if i == len(vols)-1 {
			n = d.PayloadSize - off
		}
		parts = append(parts, Part{Volume: v, Part: i + 1, FileNo: int64(i + 1), Record: 0, LogicalPos: -1, Offset: off, Length: n})
		off += n
	}
	if err := c.CommitTaped(tb.Context(), id, parts, t0.Add(time.Hour)); err != nil {
		tb.Fatal(err)
	}
}

func addVolume(tb testing.TB, c *Catalog, label string, written string) {
	tb.Helper()
	if _, err := c.AddVolume(tb.Context(), Volume{Label: label, Slot: 1, Blocksize: 262144, Created: t0}); err != nil {
		tb.Fatal(err)
	}
	if written != "" {
		if _, err := c.StartVolumeWrite(tb.Context(), label, 1, 262144, written); err != nil {
			tb.Fatal(err)
		}
	}
}

// ingest writes records to a new FileWriter and commits.
func ingest(tb testing.TB, c *Catalog, dumpID int64, recs ...FileRecord) {
	tb.Helper()
	w, err := c.NewFileWriter(tb.Context(), dumpID, testFrameSize)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Add(tb.Context(), r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Commit(tb.Context()); err != nil {
		tb.Fatal(err)
	}
}

// synthRecords makes n records: directories d000/d001/... each with perDir files.
func synthRecords(n, perDir int) func(i int) FileRecord {
	return func(i int) FileRecord {
		dir := i / perDir
		return FileRecord{
			Path:      fmt.Sprintf("home/u%03d/src/d%05d/file%06d.txt", dir%97, dir, i),
			Type:      '0',
			Size:      int64(i % 100000),
			Mode:      0o644,
			Mtime:     t0.Add(time.Duration(i) * time.Second),
			UID:       1000,
			GID:       1000,
			TarOffset: int64(i) * 2048,
		}
	}
}
