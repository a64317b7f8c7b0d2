package catalog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/internal/pgtest"
)

// genCatalog fills c with a random catalog made through the public API:
// two servers, runs, volumes, dumps at several levels (held, taped on one
// or two volumes, failed), their frames, file indexes (FileWriter) and
// directory listings, force flags and failed tape files. names adds odd
// but valid names (spaces, quotes, non-ASCII UTF-8).
func genCatalog(t testing.TB, c *Catalog, seed uint64, dumps int) {
	t.Helper()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 17))
	for _, s := range []string{"north", "south"} {
		if err := c.SetServer(s); err != nil {
			t.Fatal(err)
		}
		if err := c.RegisterServer(ctx, "host-"+s, s+":10082", t0, false); err != nil {
			t.Fatal(err)
		}
	}
	nvol := 2 + rng.IntN(4)
	for i := range nvol {
		addVolume(t, c, fmt.Sprintf("V%03d", i+1), fmt.Sprintf("202503%02d010000", i+1))
	}
	hosts := []string{"web1", "db-2", "café"}
	paths := []string{"/srv", "/home", "/var/lib/it's"}
	names := []string{"a", "b c", "ümlaut", "x'y", `q"q`, "日本", "z"}
	var runID int64
	for i := range dumps {
		if i%3 == 0 {
			ds := fmt.Sprintf("202504%02d%02d0000", 1+i/24%28, i%24)
			runID = mkRun(t, c, ds)
		}
		host, path := hosts[rng.IntN(len(hosts))], paths[rng.IntN(len(paths))]
		level := rng.IntN(3)
		id := mkDump(t, c, runID, host, path, level)
		if rng.IntN(8) == 0 {
			if err := c.FailDump(ctx, id, "the client went away"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var recs []FileRecord
		nf := rng.IntN(40)
		for j := range nf {
			dir := names[rng.IntN(len(names))]
			recs = append(recs, FileRecord{
				Path: fmt.Sprintf("%s/%s%d", dir, names[rng.IntN(len(names))], j), Type: '0',
				Size: rng.Int64N(1 << 30), Mode: 0o644, Mtime: t0.Add(time.Duration(rng.IntN(1e6)) * time.Second),
				UID: rng.IntN(2000), GID: rng.IntN(2000), TarOffset: int64(j+1) * 4096,
			})
			if rng.IntN(10) == 0 {
				recs[len(recs)-1].Type = '2'
				recs[len(recs)-1].Link = "../" + names[rng.IntN(len(names))]
				recs[len(recs)-1].Mtime = time.Time{} // NULL
			}
		}
		ingest(t, c, id, recs...)
		holdDump(t, c, id, int64(nf+2)*4096+rng.Int64N(3<<20))
		if level > 0 {
			lst := map[string]string{"": gnutar.EncodeDumpdir([]gnutar.DirEntry{{Kind: 'Y', Name: names[rng.IntN(len(names))]}, {Kind: 'N', Name: "old"}})}
			if err := c.SetListings(ctx, id, lst); err != nil {
				t.Fatal(err)
			}
		}
		switch rng.IntN(3) {
		case 0: // stays on the holding disk
		case 1:
			tapeDump(t, c, id, fmt.Sprintf("V%03d", 1+rng.IntN(nvol)))
		case 2:
			a := 1 + rng.IntN(nvol)
			tapeDump(t, c, id, fmt.Sprintf("V%03d", a), fmt.Sprintf("V%03d", 1+a%nvol))
		}
		if i%3 == 2 {
			if err := c.FinishRun(ctx, runID, "ok", t0.Add(time.Hour), "report of "+host); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.SetForce(ctx, "web1", "/srv", true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetForce(ctx, "café", "/home", true); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordFailedFile(ctx, FailedFile{Volume: "V001", FileNo: 99, Datestamp: "20250401000000", Host: "web1", Path: "/srv", Reason: "end of tape"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVolumeReuse(ctx, "V002", false); err != nil {
		t.Fatal(err)
	}
}

// answers is what a catalog says to the questions runs, recover sessions
// and admin commands ask: it must be the same on a copy.
func answers(t testing.TB, c *Catalog) map[string]any {
	t.Helper()
	ctx := t.Context()
	out := map[string]any{}
	put := func(k string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = v
	}
	runs, err := c.AllRuns(ctx)
	put("runs", runs, err)
	vols, err := c.AllVolumes(ctx)
	put("volumes", vols, err)
	forced, err := c.Forced(ctx)
	put("forced", forced, err)
	servers, err := c.Servers(ctx)
	put("servers", servers, err)
	ff, err := c.FailedFiles(ctx, "V001")
	put("failed files", ff, err)
	chains, err := c.Chains(ctx)
	put("chains", chains, err)
	hosts, err := c.Hosts(ctx)
	put("hosts", hosts, err)
	for _, h := range hosts {
		dles, err := c.DLEPaths(ctx, h)
		put("dles "+h, dles, err)
		for _, p := range dles {
			ds, err := c.Dumps(ctx, h, p)
			put("dumps "+h+p, ds, err)
			for _, d := range ds {
				parts, err := c.Parts(ctx, d.ID)
				put(fmt.Sprint("parts ", d.ID), parts, err)
				frames, err := c.Frames(ctx, d.ID)
				put(fmt.Sprint("frames ", d.ID), frames, err)
			}
			for _, r := range runs {
				v, err := c.View(ctx, h, p, r.Datestamp)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				var walked []ViewRecord
				err = v.Walk(ctx, "", func(r ViewRecord) error { walked = append(walked, r); return nil })
				put("walk "+h+p+r.Datestamp, walked, err)
				found, _, err := v.Find(ctx, "*a*", 0)
				put("find "+h+p+r.Datestamp, found, err)
				for _, w := range walked {
					loc, err := c.FindFile(ctx, h, p, w.Path, r.Datestamp)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					put("findfile "+h+p+r.Datestamp+w.Path, loc, err)
				}
			}
		}
	}
	return out
}

func sameAnswers(t *testing.T, a, b map[string]any) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("the copy answers %d questions, the source %d", len(b), len(a))
	}
	n := 0
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			t.Errorf("%s differs:\nsource %+v\ncopy   %+v", k, v, b[k])
			if n++; n > 5 {
				return
			}
		}
	}
}

func openAt(t testing.TB, loc string) *Catalog {
	t.Helper()
	c, err := Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// destinations are where a copy goes: a new SQLite file, and a new
// PostgreSQL database when there is a test server.
func destinations(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "copy", "catalog.db") },
		"postgres": func(t *testing.T) string { return pgtest.DSN(t) },
	}
}

// A random catalog copied to each backend, and back: the copy has the same
// rows (Checksums) and answers every question the same.
func TestCopyProperty(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
			genCatalog(t, src, seed, 12+int(seed)*10)
			want := answers(t, src)
			for name, loc := range destinations(t) {
				t.Run(name, func(t *testing.T) {
					dst := openAt(t, loc(t))
					res, err := Copy(t.Context(), src, dst, nil)
					if err != nil {
						t.Fatal(err)
					}
					if res.Rows == 0 || len(res.Tables) < 11 {
						t.Errorf("copied %d rows in %d tables", res.Rows, len(res.Tables))
					}
					// The copy's planner statistics are gathered: on
					// PostgreSQL the tables are vacuumed and analyzed, on
					// SQLite sqlite_stat1 knows the files table.
					if res.AnalyzeErr != nil || res.Analyzed <= 0 {
						t.Errorf("the copy's statistics: %v after %v", res.AnalyzeErr, res.Analyzed)
					}
					q := `SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'files'`
					if dst.d.pg {
						q = `SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'files' AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL`
					}
					var n int
					if err := dst.r.QueryRow(q).Scan(&n); err != nil || n == 0 {
						t.Errorf("no statistics of the copy's files table (%d, %v)", n, err)
					}
					if err := Compare(t.Context(), src, dst); err != nil {
						t.Fatal(err)
					}
					sameAnswers(t, want, answers(t, dst))
					// New rows get new ids after the copied ones.
					id := mkRun(t, dst, "20990101000000")
					runs, _ := src.AllRuns(t.Context())
					if len(runs) > 0 && id <= runs[len(runs)-1].ID {
						t.Errorf("new run id %d after a copy of runs up to %d", id, runs[len(runs)-1].ID)
					}
					// And back to SQLite.
					back := openAt(t, filepath.Join(t.TempDir(), "back.db"))
					if _, err := Copy(t.Context(), dst, back, nil); err != nil {
						t.Fatal(err)
					}
					if err := Compare(t.Context(), dst, back); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// The checksums of an SQLite catalog and its PostgreSQL copy are equal
// only when the rows are: text, blobs, integers and NULL are told apart.
func TestChecksumEncoding(t *testing.T) {
	col := func(k kind) column { return column{kind: k} }
	enc := func(c column, v any) string {
		b, err := encodeValue(nil, c, v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	seen := map[string]string{}
	for _, tc := range []struct {
		name string
		c    column
		v    any
	}{
		{"null", col(kindText), nil},
		{"empty text", col(kindText), ""},
		{"empty blob", col(kindBlob), []byte{}},
		{"zero", col(kindInt), int64(0)},
		{"text 0", col(kindText), "0"},
		{"blob 0", col(kindBlob), []byte("0")},
	} {
		e := enc(tc.c, tc.v)
		if other, ok := seen[e]; ok {
			t.Errorf("%s encodes like %s", tc.name, other)
		}
		seen[e] = tc.name
	}
	// A driver's []byte for text and string for a blob are the same values.
	if enc(col(kindText), []byte("x")) != enc(col(kindText), "x") || enc(col(kindBlob), "x") != enc(col(kindBlob), []byte("x")) {
		t.Error("the encoding depends on the driver's Go type")
	}
	if _, err := encodeValue(nil, col(kindInt), struct{}{}); err == nil {
		t.Error("an unknown type encoded without an error")
	}
}

// A destination with rows is refused, with what to do, and keeps its rows.
func TestCopyRefusesNonEmpty(t *testing.T) {
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	genCatalog(t, src, 1, 3)
	for name, loc := range destinations(t) {
		t.Run(name, func(t *testing.T) {
			dst := openAt(t, loc(t))
			mkRun(t, dst, "20990101000000")
			before, err := Checksums(t.Context(), dst)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Copy(t.Context(), src, dst, nil)
			if err == nil || !strings.Contains(err.Error(), "not empty (table runs has rows)") || !strings.Contains(err.Error(), "new") {
				t.Fatalf("copy into a catalog with a run: %v", err)
			}
			after, _ := Checksums(t.Context(), dst)
			if !reflect.DeepEqual(before, after) {
				t.Error("the refused copy changed the destination")
			}
		})
	}
	if _, err := Copy(t.Context(), src, src, nil); err == nil || !strings.Contains(err.Error(), "same catalog") {
		t.Errorf("copy onto itself: %v", err)
	}
}

// A copy that differs from its source (a row changed on the way) fails
// the verification, naming the table.
func TestCopyTamperedDetected(t *testing.T) {
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	genCatalog(t, src, 2, 6)
	for name, loc := range destinations(t) {
		t.Run(name, func(t *testing.T) {
			dst := openAt(t, loc(t))
			done := false
			copyTamper = func(table string, row []any) {
				if table == "files" && !done {
					done = true
					row[3] = row[3].(string) + "~" // lo
				}
			}
			defer func() { copyTamper = nil }()
			_, err := Copy(t.Context(), src, dst, nil)
			if err == nil || !strings.Contains(err.Error(), "table files: the rows differ") || !strings.Contains(err.Error(), "copy again") {
				t.Fatalf("tampered copy: %v", err)
			}
			if err := Compare(t.Context(), src, dst); err == nil || !strings.Contains(err.Error(), "files") {
				t.Errorf("Compare of the tampered copy: %v", err)
			}
		})
	}
}

// A catalog whose file names are not UTF-8 (SQLite keeps bytes) is not
// copied into a PostgreSQL database in UTF8: the error names the table,
// the row and the way out, and nothing is committed. Into a database in
// SQL_ASCII the same names are kept byte for byte.
func TestCopyNonUTF8(t *testing.T) {
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	genCatalog(t, src, 3, 3)
	run := mkRun(t, src, "20260101000000")
	id := mkDump(t, src, run, "web1", "/srv", 0)
	ingest(t, src, id, FileRecord{Path: "ok", Type: '0', TarOffset: 0}, FileRecord{Path: "caf\xe9", Type: '0', TarOffset: 1024})

	// SQLite to SQLite keeps the bytes.
	dst := openAt(t, filepath.Join(t.TempDir(), "dst.db"))
	if _, err := Copy(t.Context(), src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := dst.Entry(t.Context(), id, "caf\xe9"); err != nil || r.Path != "caf\xe9" {
		t.Errorf("non-UTF-8 name in the SQLite copy: %v %v", r, err)
	}

	pg := openAt(t, pgtest.DSN(t))
	_, err := Copy(t.Context(), src, pg, nil)
	if err == nil || !strings.Contains(err.Error(), "table names") || !strings.Contains(err.Error(), "not valid UTF-8") ||
		!strings.Contains(err.Error(), "SQL_ASCII") || !strings.Contains(err.Error(), `"caf\xe9"`) {
		t.Fatalf("non-UTF-8 name into PostgreSQL: %v", err)
	}
	assertEmpty(t, pg)

	// A database in SQL_ASCII takes them.
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ascii := strings.TrimPrefix(u.Path, "/") + "_ascii"
	pgExec(t, pgtest.Server(t), "CREATE DATABASE "+ascii+" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
	t.Cleanup(func() { pgExec(t, pgtest.Server(t), "DROP DATABASE IF EXISTS "+ascii+" WITH (FORCE)") })
	u.Path = "/" + ascii
	asciiDSN := u.String()
	pa := openAt(t, asciiDSN)
	if _, err := Copy(t.Context(), src, pa, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := pa.Entry(t.Context(), id, "caf\xe9"); err != nil || r.Path != "caf\xe9" {
		t.Errorf("non-UTF-8 name in the SQL_ASCII copy: %v %v", r, err)
	}
}

func assertEmpty(t *testing.T, c *Catalog) {
	t.Helper()
	sums, err := Checksums(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if s.Rows != 0 {
			t.Errorf("table %s of the destination has %d rows after a failed copy", s.Table, s.Rows)
		}
	}
}

// A copy whose context ends half-way (in the file index, or in the last
// table copied) commits nothing; the destination is still empty and takes
// a copy afterwards.
func TestCopyCancelled(t *testing.T) {
	src := openAt(t, filepath.Join(t.TempDir(), "src.db"))
	genCatalog(t, src, 4, 9)
	for name, loc := range destinations(t) {
		for _, at := range []string{"files", "servers"} {
			t.Run(name+"/"+at, func(t *testing.T) {
				dst := openAt(t, loc(t))
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				copyTamper = func(table string, row []any) {
					if table == at {
						cancel()
					}
				}
				_, err := Copy(ctx, src, dst, nil)
				copyTamper = nil
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled copy: %v", err)
				}
				assertEmpty(t, dst)
				if _, err := Copy(t.Context(), src, dst, nil); err != nil {
					t.Fatalf("copy after a cancelled one: %v", err)
				}
			})
		}
	}
}
