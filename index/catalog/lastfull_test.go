package catalog

import "testing"

// TestLastFullAndNewest: only restorable images count (good, or whole on
// the holding disk), never a failed or unfinished one; LastFull looks at
// level 0 only.
func TestLastFullAndNewest(t *testing.T) { forEachBackend(t, testLastFullAndNewest) }

func testLastFullAndNewest(t *testing.T) {
	c := newCatalog(t)
	ctx := t.Context()
	if d, err := c.LastFull(ctx, "h", "/p"); err != nil || d != nil {
		t.Fatalf("empty catalog: %v, %v", d, err)
	}
	r1 := mkRun(t, c, "20250301010000")
	full := mkDump(t, c, r1, "h", "/p", 0)
	holdDump(t, c, full, 3<<20)
	other := mkDump(t, c, r1, "h", "/q", 0)
	holdDump(t, c, other, 1<<20)
	r2 := mkRun(t, c, "20250302010000")
	inc := mkDump(t, c, r2, "h", "/p", 1)
	holdDump(t, c, inc, 1<<20)
	r3 := mkRun(t, c, "20250303010000")
	failed := mkDump(t, c, r3, "h", "/p", 0)
	if err := c.FailDump(ctx, failed, "agent died"); err != nil {
		t.Fatal(err)
	}
	mkDump(t, c, r3, "h", "/p", 2) // still dumping

	d, err := c.LastFull(ctx, "h", "/p")
	if err != nil || d == nil || d.ID != full {
		t.Fatalf("LastFull = %+v, %v; want dump %d", d, err, full)
	}
	d, err = c.NewestRestorable(ctx, "h", "/p")
	if err != nil || d == nil || d.ID != inc {
		t.Fatalf("NewestRestorable = %+v, %v; want dump %d", d, err, inc)
	}
	if d, err := c.LastFull(ctx, "h", "/none"); err != nil || d != nil {
		t.Fatalf("unknown DLE: %v, %v", d, err)
	}
}
