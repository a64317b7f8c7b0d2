package catalog

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentWriters runs dumpers ingesting indexes, a taper committing
// dumps, readers, and a second Catalog on the same file (another process,
// such as `tapir label`) all at once.
func TestConcurrentWriters(t *testing.T) {
	const (
		dumpers    = 4
		perDumper  = 20000
		taped      = 30
		otherVols  = 20
		batchLimit = 2000
	)
	c := newCatalog(t)
	other, err := Open(c.Path())
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
	// ingested counts the index records the dumpers have added; the
	// taper notes how many were added while it committed one dump.
	var ingested, behind atomic.Int64
	stop := make(chan struct{})
	committed := make(chan struct{}, 2) // a reader browses after each CommitTaped

	for i := range dumpers {
		wg.Go(func() {
			w, err := c.NewFileWriter(dumpIDs[i], testFrameSize)
			if err != nil {
				errs <- err
				return
			}
			w.batch = batchLimit
			gen := synthRecords(perDumper, 50)
			for j := range perDumper {
				if err := w.Add(gen(j)); err != nil {
					errs <- err
					w.Abort()
					return
				}
				ingested.Add(1)
			}
			if err := w.Commit(); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() { // the taper
		for i := range taped {
			id, err := c.CreateDump(&Dump{RunID: run, Host: "taped", Path: fmt.Sprintf("/p%d", i), FrameSize: testFrameSize})
			if err != nil {
				errs <- err
				return
			}
			frames, payload := testFrames(2 * testFrameSize)
			if err := c.SetDumpHolding(id, 2*testFrameSize, payload, testSHA, 0, "/hold", frames, t0); err != nil {
				errs <- err
				return
			}
			before := ingested.Load()
			err = c.CommitTaped(id, []Part{{Volume: "V1", Part: 1, FileNo: int64(i + 1), LogicalPos: -1, Length: payload}}, t0)
			if n := ingested.Load() - before; n > behind.Load() {
				behind.Store(n)
			}
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
			if _, err := other.AddVolume(Volume{Label: fmt.Sprintf("NEW-%02d", i), Created: t0}); err != nil {
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
				if _, err := c.Dumps("", ""); err != nil {
					errs <- err
					return
				}
				if _, err := c.FindFile("host0", "/data", "home/u000/src/d00000/file000000.txt", ""); err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
					return
				}
				if _, err := c.Volumes(); err != nil {
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
	good, err := c.DumpsWithStatus(DumpGood)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != taped {
		t.Errorf("%d good dumps, want %d", len(good), taped)
	}
	vols, _ := c.Volumes()
	if len(vols) != otherVols+1 {
		t.Errorf("%d volumes, want %d", len(vols), otherVols+1)
	}
	// The taper waits for at most a few batches, never for a whole ingest:
	// counted in records added meanwhile, not in time.
	t.Logf("at most %d index records added during one CommitTaped (batches of %d)", behind.Load(), batchLimit)
	if n := behind.Load(); n >= dumpers*perDumper/2 {
		t.Errorf("%d of the %d index records were added while one CommitTaped waited", n, dumpers*perDumper)
	}
	// Each dump's index is whole and findable.
	loc, err := c.Dump(dumpIDs[2])
	if err != nil || loc.Status != DumpDumping {
		t.Errorf("dump: %+v %v", loc, err)
	}
	entries, err := c.ListDir(dumpIDs[2], "home/u000/src/d00000")
	if err != nil || len(entries) != 50 {
		t.Errorf("ListDir: %d entries, %v", len(entries), err)
	}
}
