// Command catalogscale measures the catalog at scale (issue 17): it
// generates a DLE's dump cycle of tens of millions of file-index rows
// (gen.go) into a new catalog (an SQLite file or a PostgreSQL database),
// and prints the ingest rate, the bytes per file version on disk, the
// median time of an ls of the 100,000-entry directory through a real index
// server (mutual TLS, as the recover shell talks to it) and of a find of a
// name across all the dumps of the DLE.
//
//	catalogscale -db FILE|postgres://... [-rows 50000000] [-runs 11]
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/wire"
)

const host, dle = "bench", "/data"

var (
	reuseDB   bool
	keepDB    bool
	profileTo *os.File
)

func main() {
	db := flag.String("db", "", "the catalog to make: an SQLite file that does not exist yet, or a postgres:// DSN of a server where it may create (and at the end drop) a database")
	rows := flag.Int64("rows", 50_000_000, "index rows to generate (about)")
	cycles := flag.Int("cycles", 6, "dump cycles (a full and its incrementals)")
	incrs := flag.Int("incrs", 6, "level-1 incrementals per cycle")
	big := flag.Int("big", 100_000, "entries of the big directory")
	runs := flag.Int("runs", 11, "runs of each timed query")
	seed := flag.Uint64("seed", 1, "generator seed")
	work := flag.String("work", "", "a directory for the TLS files (default: a temporary one)")
	reuse := flag.Bool("reuse", false, "time the queries of a catalog made before with the same flags, without making it again")
	keep := flag.Bool("keep", false, "PostgreSQL: keep the database made (its DSN is printed), to look at it or to time it again with -reuse")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed queries to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "catalogscale:", err)
			os.Exit(1)
		}
		profileTo = f
	}
	reuseDB = *reuse
	keepDB = *keep
	if *db == "" {
		fmt.Fprintln(os.Stderr, "usage: catalogscale -db FILE|postgres://... [-rows N] [-runs N]")
		os.Exit(2)
	}
	if err := run(*db, *rows, *cycles, *incrs, *big, *runs, *seed, *work); err != nil {
		fmt.Fprintln(os.Stderr, "catalogscale:", err)
		os.Exit(1)
	}
}

func isPG(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

func run(db string, rows int64, cycles, incrs, big, runs int, seed uint64, work string) error {
	ctx := context.Background()
	backend := "sqlite"
	if isPG(db) {
		backend = "postgres"
	} else if _, err := os.Stat(db); err == nil && !reuseDB {
		return fmt.Errorf("%s exists; give a new file (the benchmark makes the catalog from nothing)", db)
	}
	if backend == "postgres" && !reuseDB {
		fresh, drop, err := freshDatabase(ctx, db)
		if err != nil {
			return err
		}
		if keepDB {
			fmt.Printf("   kept: %s\n", fresh)
		} else {
			defer drop()
		}
		db = fresh
	}
	cat, err := catalog.Open(db)
	if err != nil {
		return err
	}
	t := newTree(rows, cycles, incrs, big, seed)
	fmt.Printf("   %s: %d directories, %d files in a full, %d cycles of a full and %d incrementals\n", backend, len(t.dirs), t.files, cycles, incrs)

	var total int64
	var ingest, listing time.Duration
	fullID := int64(0)
	start := time.Now()
	if reuseDB {
		chain, err := cat.Chain(ctx, host, dle, "")
		if err != nil {
			return err
		}
		fullID = chain[0].ID
		total = 1
	}
	for _, d := range t.dumps() {
		if reuseDB {
			break
		}
		ds := t.datestamp(d)
		ts, _ := time.Parse("20060102150405", ds)
		runID, err := cat.BeginRun(ctx, ds, "bench", ts)
		if err != nil {
			return err
		}
		id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: runID, Host: host, Path: dle, Level: d.level(), FrameSize: frameSize, Started: ts})
		if err != nil {
			return err
		}
		fw, err := cat.NewFileWriter(ctx, id, frameSize)
		if err != nil {
			return err
		}
		var spent time.Duration
		var n, last int64
		lst, err := t.image(d, func(r catalog.FileRecord) error {
			t0 := time.Now()
			err := fw.Add(ctx, r)
			spent += time.Since(t0)
			n++
			last = r.TarOffset + 512 + r.Size
			return err
		})
		if err != nil {
			fw.Abort()
			return err
		}
		t0 := time.Now()
		if err := fw.Commit(ctx); err != nil {
			return err
		}
		spent += time.Since(t0)
		ingest += spent
		total += n
		if lst != nil {
			t0 := time.Now()
			if err := cat.SetListings(ctx, id, lst); err != nil {
				return err
			}
			listing += time.Since(t0)
		}
		payload := (last/frameSize + 1) * frameSize
		if err := cat.SetDumpHolding(ctx, id, payload, payload, strings.Repeat("ab", 32), n, "/nonexistent/holding", nil, ts.Add(time.Hour)); err != nil {
			return err
		}
		if d.day == 0 {
			fullID = id
		}
		fmt.Printf("   %s L%d %9d rows  %6.0f rows/s  (%s elapsed)\n", ds, d.level(), n, float64(n)/spent.Seconds(), time.Since(start).Round(time.Second))
	}
	rate := float64(total) / ingest.Seconds()
	if err := cat.Close(); err != nil {
		return err
	}

	if backend == "postgres" && !reuseDB {
		// What autovacuum does within minutes of a night's inserts: set
		// the visibility map (index-only scans then skip the heap) and
		// the planner's statistics. Timed apart from the ingest.
		t0 := time.Now()
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "VACUUM (ANALYZE)")
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
		fmt.Printf("   VACUUM (ANALYZE) after the ingest, as autovacuum would: %s\n", time.Since(t0).Round(time.Millisecond))
	}
	size, detail, err := diskSize(ctx, db)
	if err != nil {
		return err
	}
	perVersion := float64(size) / float64(total)
	fmt.Printf("   on disk: %d bytes, %.1f B per file version (%s)\n", size, perVersion, detail)

	// The queries, on a catalog opened again (cold caches of this process).
	cat, err = catalog.Open(db)
	if err != nil {
		return err
	}
	defer cat.Close()
	if profileTo != nil {
		pprof.StartCPUProfile(profileTo)
		defer pprof.StopCPUProfile()
	}
	lsMed, baseMed, entries, err := timeLs(ctx, cat, work, runs, fullID)
	if err != nil {
		return err
	}
	// find: one name that lives in a deep directory, across every dump.
	name, deep := t.deepName()
	var findTimes []float64
	var versions int
	for range runs {
		runtime.GC()
		t0 := time.Now()
		vs, _, err := cat.FindVersions(ctx, host, dle, name, 0)
		if err != nil {
			return err
		}
		findTimes = append(findTimes, time.Since(t0).Seconds())
		versions = len(vs)
	}
	var patTimes []float64
	pat := name[:min(len(name), 6)] + "*"
	var patFound int
	var patMore bool
	for range runs {
		t0 := time.Now()
		vs, more, err := cat.FindVersions(ctx, host, dle, pat, 1000)
		if err != nil {
			return err
		}
		patTimes = append(patTimes, time.Since(t0).Seconds())
		patFound, patMore = len(vs), more
	}
	fmt.Printf("   find %q (in %s): %d versions; find %q: %d versions (more: %v)\n", name, deep, versions, pat, patFound, patMore)
	fmt.Printf("catalogscale: backend=%s rows=%d ingest_s=%.1f listings_s=%.1f ingest_rows_per_s=%.0f bytes=%d bytes_per_version=%.1f ls_entries=%d ls_median_ms=%.1f ls_baseline_ms=%.1f find_median_ms=%.1f find_pattern_median_ms=%.1f\n",
		backend, total, ingest.Seconds(), listing.Seconds(), rate, size, perVersion, entries, lsMed*1000, baseMed*1000, median(findTimes)*1000, median(patTimes)*1000)
	return nil
}

// freshDatabase creates an empty database on the PostgreSQL server of dsn
// for the catalog and returns its DSN and a function that drops it.
func freshDatabase(ctx context.Context, dsn string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("the PostgreSQL DSN does not parse as a URL: %v", err)
	}
	name := fmt.Sprintf("tapir_scale_%d", os.Getpid())
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create database %s for the benchmark: %w", name, err)
	}
	conn.Close(ctx)
	u.Path = "/" + name
	return u.String(), func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "catalogscale: database %s left behind: %v\n", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "catalogscale: database %s left behind: %v\n", name, err)
		}
	}, nil
}

// deepName is the first file name of the deepest directory with files.
func (t *tree) deepName() (name, dir string) {
	best := -1
	for i, d := range t.dirs {
		if d.nfiles > 0 && d.path != bigDir && (best < 0 || d.depth > t.dirs[best].depth) {
			best = i
		}
	}
	return t.filesOf(best)[0].name, t.dirs[best].path
}

// timeLs times ls of the big directory through an index server on
// 127.0.0.1 over mutual TLS, a new session each run (the shell's first ls
// after cd), and, as the baseline, ListDir of the directory in the newest
// full: the index rows of one image read straight from the catalog.
func timeLs(ctx context.Context, cat *catalog.Catalog, work string, runs int, fullID int64) (lsMed, baseMed float64, entries int, err error) {
	if work == "" {
		work = os.TempDir()
	}
	tlsDir, err := os.MkdirTemp(work, "tls")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(tlsDir)
	now := time.Now()
	ca, err := wire.InitCA(tlsDir, "bench", now)
	if err != nil {
		return 0, 0, 0, err
	}
	scrt, skey, err := ca.Issue("localhost", []string{wire.RoleServer}, tlsDir, now)
	if err != nil {
		return 0, 0, 0, err
	}
	ccrt, ckey, err := ca.Issue("bench", []string{wire.RoleClient}, tlsDir, now)
	if err != nil {
		return 0, 0, 0, err
	}
	caFile := filepath.Join(tlsDir, wire.CACertFile)
	scfg, err := wire.ServerConfig(wire.Files{CA: caFile, Cert: scrt, Key: skey}, wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		return 0, 0, 0, err
	}
	ccfg, err := wire.ClientConfig(wire.Files{CA: caFile, Cert: ccrt, Key: ckey}, "localhost")
	if err != nil {
		return 0, 0, 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	srv := &indexd.Server{Catalog: cat, TLS: scfg, Log: slog.New(slog.DiscardHandler)}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr := "localhost:" + port

	q := recover.Query{Host: host, DLE: dle}
	var lsTimes, baseTimes []float64
	for i := range runs {
		cl, err := recover.Dial(ctx, addr, ccfg)
		if err != nil {
			return 0, 0, 0, err
		}
		if _, err := cl.View(q); err != nil {
			cl.Close()
			return 0, 0, 0, err
		}
		runtime.GC() // not charged for the garbage of the run before
		t0 := time.Now()
		ents, err := cl.List(q, bigDir)
		el := time.Since(t0).Seconds()
		cl.Close()
		if err != nil {
			return 0, 0, 0, err
		}
		entries = len(ents)
		runtime.GC()
		t0 = time.Now()
		recs, err := cat.ListDir(ctx, fullID, bigDir)
		if err != nil {
			return 0, 0, 0, err
		}
		bel := time.Since(t0).Seconds()
		if i == 0 && len(recs) == 0 {
			return 0, 0, 0, errors.New("the big directory is empty in the last full")
		}
		lsTimes = append(lsTimes, el)
		baseTimes = append(baseTimes, bel)
		fmt.Printf("   run %2d  ls through the index server %7.1f ms (%d entries)   ListDir of the full %7.1f ms\n", i+1, el*1000, len(ents), bel*1000)
	}
	return median(lsTimes), median(baseTimes), entries, nil
}

// diskSize is the catalog's size on disk: the SQLite file (the catalog
// was closed: its WAL is checkpointed and gone), or the sum of
// pg_total_relation_size of the tables. detail splits it by table.
func diskSize(ctx context.Context, db string) (int64, string, error) {
	if isPG(db) {
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			return 0, "", err
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT tablename, pg_total_relation_size(quote_ident(tablename)) FROM pg_tables
			WHERE schemaname = current_schema() ORDER BY 2 DESC`)
		if err != nil {
			return 0, "", err
		}
		defer rows.Close()
		var total int64
		var parts []string
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return 0, "", err
			}
			total += n
			if n >= 1<<20 {
				parts = append(parts, fmt.Sprintf("%s %d MiB", name, n>>20))
			}
		}
		return total, strings.Join(parts, ", "), rows.Err()
	}
	var size int64
	for _, f := range []string{db, db + "-wal"} {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	// By table and index, when the SQLite library has dbstat.
	detail := "no per-table figures: this SQLite lacks dbstat"
	if h, err := sql.Open("sqlite3", "file:"+db+"?mode=ro"); err == nil {
		defer h.Close()
		if rows, err := h.Query(`SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`); err == nil {
			defer rows.Close()
			var parts []string
			for rows.Next() {
				var name string
				var n int64
				if rows.Scan(&name, &n) == nil && n >= 1<<20 {
					parts = append(parts, fmt.Sprintf("%s %d MiB", name, n>>20))
				}
			}
			if len(parts) > 0 {
				detail = strings.Join(parts, ", ")
			}
		}
	}
	return size, detail, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
