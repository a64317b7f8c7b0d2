package catalog

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentWriters runs dumpers ingesting indexes, a taper committing
// dumps, readers, and a second Catalog on the same file (another process,
// such as `tapir label`) all at once.
func TestConcurrentWriters(t *testing.T) { forEachBackend(t, testConcurrentWriters) }

func testConcurrentWriters(t *testing.T) {
	const (
		dumpers    = 4
		perDumper  = 20000
		taped      = 30
		otherVols  = 20
		batchLimit = 2000
	)
	c := newCatalog(t)
	other, err := Open(locationOf(c))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	dumpIDs := make([]int64, dumpers)
	for i := range dumpers {
		dumpIDs[i] = mkDump(t, c, run, fmt.Sprintf("host%d", i), "/data", 0)
	}
	stop := make(chan struct{})
	committed := make(chan struct{}, 2) // a reader browses after each CommitTaped

	for i := range dumpers {
		wg.Go(func() {
			w, err := c.NewFileWriter(t.Context(), dumpIDs[i], testFrameSize)
			if err != nil {
				errs <- err
				return
			}
			w.batch = batchLimit
			gen := synthRecords(perDumper, 50)
			for j := range perDumper {
				if err := w.Add(t.Context(), gen(j)); err != nil {
					errs <- err
					w.Abort()
					return
				}
			}
			if err := w.Commit(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() { // the taper
		for i := range taped {
			id, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "taped", Path: fmt.Sprintf("/p%d", i), FrameSize: testFrameSize})
			if err != nil {
				errs <- err
				return
			}
			frames, payload := testFrames(2 * testFrameSize)
			if err := c.SetDumpHolding(t.Context(), id, 2*testFrameSize, payload, testSHA, 0, "/hold", frames, t0); err != nil {
				errs <- err
				return
			}
			err = c.CommitTaped(t.Context(), id, []Part{{Volume: "V1", Part: 1, FileNo: int64(i + 1), LogicalPos: -1, Length: payload}}, t0)
			for range cap(committed) {
				select {
				case committed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() { // another process labelling volumes
		for i := range otherVols {
			if _, err := other.AddVolume(t.Context(), Volume{Label: fmt.Sprintf("NEW-%02d", i), Created: t0}); err != nil {
				errs <- err
				return
			}
		}
	})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() { // recover sessions browsing meanwhile
			for {
				select {
				case <-stop:
					return
				case <-committed:
				}
				if _, err := c.Dumps(t.Context(), "", ""); err != nil {
					errs <- err
					return
				}
				if _, err := c.FindFile(t.Context(), "host0", "/data", "home/u000/src/d00000/file000000.txt", ""); err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
					return
				}
				if _, err := c.Volumes(t.Context()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range dumpIDs {
		if n := countRows(t, c, "files", id); n != perDumper {
			t.Errorf("dump %d has %d index rows, want %d", id, n, perDumper)
		}
	}
	good, err := c.DumpsWithStatus(t.Context(), DumpGood)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != taped {
		t.Errorf("%d good dumps, want %d", len(good), taped)
	}
	vols, _ := c.Volumes(t.Context())
	if len(vols) != otherVols+1 {
		t.Errorf("%d volumes, want %d", len(vols), otherVols+1)
	}
	// Each dump's index is whole and findable.
	loc, err := c.Dump(t.Context(), dumpIDs[2])
	if err != nil || loc.Status != DumpDumping {
		t.Errorf("dump: %+v %v", loc, err)
	}
	entries, err := c.ListDir(t.Context(), dumpIDs[2], "home/u000/src/d00000")
	if err != nil || len(entries) != 50 {
		t.Errorf("ListDir: %d entries, %v", len(entries), err)
	}
}

// The taper never waits for a whole ingest: a FileWriter holds the write
// lock only while it writes a batch, so a dump is committed as taped
// between two batches of an ingest still under way. (TestConcurrentWriters
// used to time CommitTaped instead, which a busy machine made fail.)
func TestCommitTapedBetweenBatches(t *testing.T) { forEachBackend(t, testCommitTapedBetweenBatches) }

func testCommitTapedBetweenBatches(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	addVolume(t, c, "V1", "20250301010000")
	dump := mkDump(t, c, run, "host0", "/data", 0)
	w, err := c.NewFileWriter(t.Context(), dump, testFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	w.batch = 100
	const records = 1000
	gen := synthRecords(records, 50)
	for j := range 250 { // two batches written, the third under way
		if err := w.Add(t.Context(), gen(j)); err != nil {
			t.Fatal(err)
		}
	}
	id, err := c.CreateDump(t.Context(), &Dump{RunID: run, Host: "taped", Path: "/p", FrameSize: testFrameSize})
	if err != nil {
		t.Fatal(err)
	}
	frames, payload := testFrames(2 * testFrameSize)
	if err := c.SetDumpHolding(t.Context(), id, 2*testFrameSize, payload, testSHA, 0, "/hold", frames, t0); err != nil {
		t.Fatal(err)
	}
	// Were the ingest one transaction, this would wait for the lock
	// until the writer's Commit (below) or fail as busy.
	if err := c.CommitTaped(t.Context(), id, []Part{{Volume: "V1", Part: 1, FileNo: 1, LogicalPos: -1, Length: payload}}, t0); err != nil {
		t.Fatalf("CommitTaped during an ingest: %v", err)
	}
	for j := 250; j < records; j++ {
		if err := w.Add(t.Context(), gen(j)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, c, "files", dump); n != records {
		t.Errorf("%d index rows, want %d", n, records)
	}
	good, err := c.DumpsWithStatus(t.Context(), DumpGood)
	if err != nil || len(good) != 1 {
		t.Errorf("good dumps %+v, %v", good, err)
	}
}
