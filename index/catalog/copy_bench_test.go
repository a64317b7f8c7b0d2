package catalog

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/pgtest"
)

// BenchmarkCopy measures Copy (with its verification) of an SQLite
// catalog holding TAPIR_BENCH_COPY_FILES file rows (default 100,000) in
// dumps of 50,000, to a new SQLite file and to a new PostgreSQL database;
// rows/s counts every row of every table. For the rate quoted in
// docs/format/catalog.md:
//
//	TAPIR_BENCH_COPY_FILES=1000000 go test ./index/catalog/ -run '^$' -bench BenchmarkCopy -benchtime 1x
func BenchmarkCopy(b *testing.B) {
	n := 100000
	if s := os.Getenv("TAPIR_BENCH_COPY_FILES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("TAPIR_BENCH_COPY_FILES=%q is not a positive number", s)
		}
		n = v
	}
	src := openAt(b, filepath.Join(b.TempDir(), "src.db"))
	addVolume(b, src, "V001", "20250301010000")
	gen := synthRecords(n, 50)
	const perDump = 50000
	start := time.Now()
	for i := 0; i < n; i += perDump {
		run := mkRun(b, src, fmt.Sprintf("2025%02d%02d010000", 4+i/perDump/28, 1+i/perDump%28))
		id := mkDump(b, src, run, "web1", fmt.Sprintf("/srv%d", i/perDump%3), 0)
		w, err := src.NewFileWriter(b.Context(), id, testFrameSize)
		if err != nil {
			b.Fatal(err)
		}
		for j := i; j < min(n, i+perDump); j++ {
			r := gen(j)
			r.TarOffset = int64(j-i) * 2048
			if err := w.Add(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(b.Context()); err != nil {
			b.Fatal(err)
		}
		holdDump(b, src, id, int64(perDump)*2048)
		tapeDump(b, src, id, "V001")
	}
	b.Logf("source: %d file rows made in %s", n, time.Since(start).Round(time.Millisecond))
	for _, to := range []string{"sqlite", "postgres"} {
		b.Run(to, func(b *testing.B) {
			var rows int64
			var copied, verified time.Duration
			for b.Loop() {
				b.StopTimer()
				loc := filepath.Join(b.TempDir(), "dst.db")
				if to == "postgres" {
					loc = pgtest.DSN(b)
				}
				dst := openAt(b, loc)
				b.StartTimer()
				res, err := Copy(b.Context(), src, dst, benchLog())
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Rows
				copied += res.Copied
				verified += res.Verified
			}
			b.ReportMetric(float64(rows)/copied.Seconds(), "rows/s-copy")
			b.ReportMetric(float64(rows)/(copied+verified).Seconds(), "rows/s-with-verify")
		})
	}
}

// benchLog logs Copy's progress (a line per table, with its rate) when
// TAPIR_BENCH_LOG is set.
func benchLog() *slog.Logger {
	if os.Getenv("TAPIR_BENCH_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
