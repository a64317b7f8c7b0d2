package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// cancelledCtx returns a context that is already cancelled.
func cancelledCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func TestReadStopsOnCancelledContext(t *testing.T) {
	forEachBackend(t, testReadStopsOnCancelledContext)
}

func testReadStopsOnCancelledContext(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/srv", 0)
	holdDump(t, c, id, 4<<20)
	// 100 directories of 20 files each.
	var all []FileRecord
	for d := range 100 {
		dir := fmt.Sprintf("d%03d", d)
		all = append(all, FileRecord{Path: dir, Type: '5', Mode: 0o755, Mtime: t0, TarOffset: int64(len(all)+1) * 1024})
		for f := range 20 {
			all = append(all, FileRecord{Path: fmt.Sprintf("%s/f%02d", dir, f), Type: '0', Size: 100, Mode: 0o644, Mtime: t0, TarOffset: int64(len(all)+1) * 1024})
		}
	}
	ingest(t, c, id, all...)

	ctx := cancelledCtx(t)
	reads := map[string]func() error{
		"Dumps":   func() error { _, err := c.Dumps(ctx, "web1", "/srv"); return err },
		"ListDir": func() error { _, err := c.ListDir(ctx, id, "d000"); return err },
		"View":    func() error { _, err := c.View(ctx, "web1", "/srv", ""); return err },
		"Runs":    func() error { _, err := c.Runs(ctx); return err },
		"Hosts":   func() error { _, err := c.Hosts(ctx); return err },
	}
	for name, read := range reads {
		err := read()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want an error matching context.Canceled", name, err)
		}
		var oe *OpError
		if !errors.As(err, &oe) {
			t.Errorf("%s: error %v does not name the catalog and the operation", name, err)
		}
	}

	// A context that ends during a read: the walk of the whole dump stops.
	v, err := c.View(t.Context(), "web1", "/srv", "")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	seen := 0
	err = v.Walk(wctx, "", func(ViewRecord) error {
		seen++
		if seen == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk cancelled after %d entries: got %v, want an error matching context.Canceled", seen, err)
	}
	if seen >= len(all) {
		t.Fatalf("Walk visited all %d entries although its context was cancelled at the 10th", seen)
	}
	// The view still works with a live context.
	if _, err := v.List(t.Context(), ""); err != nil {
		t.Fatalf("List after a cancelled Walk: %v", err)
	}
}

func TestWriteWithCancelledContextCommitsNothing(t *testing.T) {
	forEachBackend(t, testWriteWithCancelledContextCommitsNothing)
}

func testWriteWithCancelledContextCommitsNothing(t *testing.T) {
	c := newCatalog(t)
	run := mkRun(t, c, "20250301010000")
	id := mkDump(t, c, run, "web1", "/srv", 0)
	ctx := cancelledCtx(t)

	if _, err := c.BeginRun(ctx, "20250302010000", "Daily", t0); !errors.Is(err, context.Canceled) {
		t.Errorf("BeginRun: got %v, want an error matching context.Canceled", err)
	}
	if _, err := c.AddVolume(ctx, Volume{Label: "V1", Slot: 1, Blocksize: 262144, Created: t0}); !errors.Is(err, context.Canceled) {
		t.Errorf("AddVolume: got %v, want an error matching context.Canceled", err)
	}
	if err := c.SetForce(ctx, "web1", "/srv", true); !errors.Is(err, context.Canceled) {
		t.Errorf("SetForce: got %v, want an error matching context.Canceled", err)
	}
	if err := c.FailDump(ctx, id, "stopped"); !errors.Is(err, context.Canceled) {
		t.Errorf("FailDump: got %v, want an error matching context.Canceled", err)
	}
	if _, err := c.NewFileWriter(ctx, id, testFrameSize); !errors.Is(err, context.Canceled) {
		t.Errorf("NewFileWriter: got %v, want an error matching context.Canceled", err)
	}

	live := t.Context()
	if runs := must[[]Run](t)(c.Runs(live)); len(runs) != 1 {
		t.Errorf("runs after a cancelled BeginRun: %+v, want only the first", runs)
	}
	if _, err := c.Volume(live, "V1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("volume V1 after a cancelled AddVolume: err %v, want ErrNotFound", err)
	}
	if forced := must[[]DLE](t)(c.Forced(live)); len(forced) != 0 {
		t.Errorf("forced DLEs after a cancelled SetForce: %+v", forced)
	}
	if d := must[*Dump](t)(c.Dump(live, id)); d.Status == DumpFailed {
		t.Errorf("dump failed by a FailDump with a cancelled context")
	}

	// A FileWriter whose batch or commit comes with a cancelled context
	// writes none of it; Abort still cleans up.
	w, err := c.NewFileWriter(live, id, testFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	w.batch = 2
	recs := synthRecords(3, 1)
	for i := range 2 {
		if err := w.Add(live, recs(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(ctx, recs(2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Add that flushes a batch with a cancelled context: got %v, want an error matching context.Canceled", err)
	}
	if err := w.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit: got %v, want an error matching context.Canceled", err)
	}
	if n := countRows(t, c, "files", id); n != 0 {
		t.Errorf("%d index rows committed with a cancelled context", n)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after a cancelled commit: %v", err)
	}
}

// A write that waits for the write connection gives up when its context
// ends, and writes nothing.
func TestWriteWaitingForConnectionStops(t *testing.T) {
	forEachBackend(t, testWriteWaitingForConnectionStops)
}

func testWriteWaitingForConnectionStops(t *testing.T) {
	c := newCatalog(t)
	conn, err := c.w.Conn(t.Context()) // the only write connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := c.BeginRun(ctx, "20250302010000", "Daily", t0)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("BeginRun waiting for the write connection: got %v, want an error matching context.Canceled", err)
	}
	conn.Close()
	if runs := must[[]Run](t)(c.Runs(t.Context())); len(runs) != 0 {
		t.Errorf("runs after a stopped BeginRun: %+v", runs)
	}
}
