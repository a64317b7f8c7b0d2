package catalog

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
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
	var slowest time.Duration
	var mu sync.Mutex
	stop := make(chan struct{})

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
			start := time.Now()
			err = c.CommitTaped(t.Context(), id, []Part{{Volume: "V1", Part: 1, FileNo: int64(i + 1), LogicalPos: -1, Length: payload}}, t0)
			if d := time.Since(start); d > slowest {
				mu.Lock()
				slowest = d
				mu.Unlock()
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
				case <-time.After(2 * time.Millisecond):
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
	// The taper waits for at most a few batches, never for a whole ingest.
	t.Logf("slowest CommitTaped: %v", slowest)
	if slowest > 5*time.Second {
		t.Errorf("CommitTaped waited %v behind the ingest", slowest)
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
