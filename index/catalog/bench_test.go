package catalog

import (
	"testing"
	"time"
)

// BenchmarkIngest1M pushes 1,000,000 index records through a FileWriter.
// Run it with: go test -run '^$' -bench Ingest1M -benchtime 1x ./index/
// (sub-benchmarks sqlite and postgres, the latter on TAPIR_TEST_POSTGRES).
func BenchmarkIngest1M(b *testing.B) { forEachBackendB(b, benchIngest1M) }

func benchIngest1M(b *testing.B) {
	const n = 1_000_000
	c := newCatalog(b)
	run := mkRun(b, c, "20250301010000")
	gen := synthRecords(n, 200)
	recs := make([]FileRecord, n)
	for i := range recs {
		recs[i] = gen(i)
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := mkDump(b, c, run, "bench", "/home", i%100)
		b.StartTimer()
		start := time.Now()
		w, err := c.NewFileWriter(b.Context(), id, testFrameSize)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			if err := w.Add(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(b.Context()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/1M")
}

// BenchmarkCommitTaped measures one durable CommitTaped (a small write
// transaction with synchronous=FULL: one fsync of the WAL).
func BenchmarkCommitTaped(b *testing.B) { forEachBackendB(b, benchCommitTaped) }

func benchCommitTaped(b *testing.B) {
	c := newCatalog(b)
	run := mkRun(b, c, "20250301010000")
	addVolume(b, c, "V1", "20250301010000")
	var ids []int64
	for range b.N {
		id := mkDump(b, c, run, "h", "/p", 0)
		if err := c.SetDumpHolding(b.Context(), id, 0, 100, testSHA, 0, "/hold", nil, t0); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	b.ResetTimer()
	for i, id := range ids {
		if err := c.CommitTaped(b.Context(), id, []Part{{Volume: "V1", Part: 1, FileNo: int64(i + 1), LogicalPos: -1, Length: 100}}, t0); err != nil {
			b.Fatal(err)
		}
	}
}
