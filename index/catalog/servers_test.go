package catalog

import (
	"errors"
	"testing"
)

// openAs opens the catalog at loc a second (third…) time, for server name,
// as another tapir server sharing it would.
func openAs(tb testing.TB, loc, name string) *Catalog {
	tb.Helper()
	c, err := Open(loc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.SetServer(name); err != nil {
		tb.Fatal(err)
	}
	return c
}

// Two servers on one catalog: each one's runs, holding dumps, clean-up and
// volumes are its own; browsing sees both.
func TestServersKeepApart(t *testing.T) {
	forEachBackend(t, func(t *testing.T) {
		loc := newLocation(t)
		a, b := openAs(t, loc, "north"), openAs(t, loc, "south")
		ctx := t.Context()

		ra := mkRun(t, a, "20250301010000")
		if _, err := b.BeginRun(ctx, "20250301010000", "Daily", t0); !errors.Is(err, ErrExists) {
			t.Fatalf("second server's run under a taken datestamp: %v, want ErrExists", err)
		}
		rb := mkRun(t, b, "20250301010001")
		da := mkDump(t, a, ra, "web1", "/etc", 0)
		db := mkDump(t, b, rb, "db1", "/var", 0)
		if d := must[*Dump](t)(a.Dump(ctx, da)); d.Server != "north" {
			t.Errorf("dump of north's run says server %q", d.Server)
		}
		holdDump(t, a, da, 3<<20)
		holdDump(t, b, db, 3<<20)
		hs := must[[]Dump](t)(a.DumpsWithStatus(ctx, DumpHolding))
		if len(hs) != 1 || hs[0].ID != da {
			t.Errorf("north's holding dumps: %+v, want only its own %d", hs, da)
		}
		if all := must[[]Dump](t)(newUnscoped(t, loc).DumpsWithStatus(ctx, DumpHolding)); len(all) != 2 {
			t.Errorf("unscoped holding dumps: %d, want 2", len(all))
		}

		// South is dumping while north starts and cleans up after a crash:
		// south's night is left alone.
		db2 := mkDump(t, b, rb, "db1", "/home", 0)
		failed := must[[]Dump](t)(a.FailInterrupted(ctx, "killed", t0))
		if len(failed) != 0 {
			t.Errorf("north failed %d dumps of south's live run", len(failed))
		}
		if d := must[*Dump](t)(b.Dump(ctx, db2)); d.Status != DumpDumping {
			t.Errorf("south's dump is %s after north's clean-up, want dumping", d.Status)
		}
		if r := must[*Run](t)(b.Run(ctx, "20250301010001")); r.Status != "running" || r.Server != "south" {
			t.Errorf("south's run after north's clean-up: %+v", r)
		}
		if runs := must[[]Run](t)(a.Runs(ctx)); len(runs) != 1 || runs[0].Server != "north" {
			t.Errorf("north's runs: %+v", runs)
		}
		if runs := must[[]Run](t)(a.AllRuns(ctx)); len(runs) != 2 {
			t.Errorf("all runs: %d, want 2", len(runs))
		}

		// Volumes: each writes its own; the other's is refused whatever
		// the write.
		addVolume(t, a, "N-001", "20250301010000")
		addVolume(t, b, "S-001", "20250301010001")
		tapeDump(t, a, da, "N-001")
		if v := must[*Volume](t)(a.Volume(ctx, "N-001")); v.Server != "north" {
			t.Errorf("N-001 belongs to %q, want north", v.Server)
		}
		vols := must[[]Volume](t)(a.Volumes(ctx))
		if len(vols) != 1 || vols[0].Label != "N-001" {
			t.Errorf("north's volumes: %+v", vols)
		}
		if all := must[[]Volume](t)(a.AllVolumes(ctx)); len(all) != 2 {
			t.Errorf("all volumes: %d, want 2", len(all))
		}
		writes := map[string]func() error{
			"StartVolumeWrite": func() error { _, err := b.StartVolumeWrite(ctx, "N-001", 1, 262144, "20250301010001"); return err },
			"BeginOverwrite":   func() error { return b.BeginOverwrite(ctx, "N-001", "20250301010001", "N-001") },
			"LabelVolume old":  func() error { _, err := b.LabelVolume(ctx, "N-001", "S-009", 1, 262144, t0); return err },
			"LabelVolume new":  func() error { _, err := b.LabelVolume(ctx, "", "N-001", 1, 262144, t0); return err },
			"AddVolume":        func() error { _, err := b.AddVolume(ctx, Volume{Label: "N-001", Created: t0}); return err },
			"SetVolumeReuse":   func() error { return b.SetVolumeReuse(ctx, "N-001", false) },
			"RemoveVolume":     func() error { _, err := b.RemoveVolume(ctx, "N-001"); return err },
		}
		for name, w := range writes {
			if err := w(); !errors.Is(err, ErrOtherServer) {
				t.Errorf("south's %s of north's volume: %v, want ErrOtherServer", name, err)
			}
		}
		if d := must[*Dump](t)(a.Dump(ctx, da)); d.Status != DumpGood {
			t.Errorf("north's image is %s after south's attempts, want good", d.Status)
		}

		// A volume nobody owns yet goes to the first server that writes it.
		if _, err := newUnscoped(t, loc).AddVolume(ctx, Volume{Label: "X-001", Created: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.StartVolumeWrite(ctx, "X-001", 2, 262144, "20250301010001"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.StartVolumeWrite(ctx, "X-001", 2, 262144, "20250301010000"); !errors.Is(err, ErrOtherServer) {
			t.Errorf("north writing the volume south claimed: %v", err)
		}
	})
}

func newUnscoped(tb testing.TB, loc string) *Catalog {
	tb.Helper()
	c, err := Open(loc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestRegisterServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T) {
		loc := newLocation(t)
		a := openAs(t, loc, "north")
		ctx := t.Context()
		if err := a.RegisterServer(ctx, "backup1", "backup1:10082", t0, false); err != nil {
			t.Fatal(err)
		}
		if err := a.RegisterServer(ctx, "backup1", "backup1:10083", t0, false); err != nil {
			t.Fatalf("the same host registering again: %v", err)
		}
		again := openAs(t, loc, "north")
		if err := again.RegisterServer(ctx, "backup2", "backup2:10082", t0, false); err == nil {
			t.Fatal("a second machine under the name north was accepted")
		}
		if err := again.RegisterServer(ctx, "backup2", "backup2:10082", t0, true); err != nil {
			t.Fatalf("take-over: %v", err)
		}
		mkRun(t, openAs(t, loc, "south"), "20250301010000")
		ss := must[[]Server](t)(a.Servers(ctx))
		if len(ss) != 2 || ss[0].Name != "north" || ss[0].Host != "backup2" || ss[0].IndexAddr != "backup2:10082" ||
			ss[1].Name != "south" || ss[1].Runs != 1 {
			t.Errorf("servers: %+v", ss)
		}
		if err := a.ForgetServer(ctx, "north"); err != nil {
			t.Fatal(err)
		}
		if err := a.ForgetServer(ctx, "north"); !errors.Is(err, ErrNotFound) {
			t.Errorf("forgetting twice: %v", err)
		}
		if err := a.SetServer("../x"); err == nil {
			t.Error("a server name with a slash was accepted")
		}
	})
}

// LockServer keeps two processes under one name apart; on PostgreSQL the
// lock goes with the connection, so a process that dies holds nothing.
func TestLockServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T) {
		loc := newLocation(t)
		a := openAs(t, loc, "north")
		unlock, err := a.LockServer(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if backendOf(t) != "postgres" {
			unlock()
			return // the run lock beside the SQLite file does it
		}
		b := openAs(t, loc, "north")
		if _, err := b.LockServer(t.Context()); err == nil {
			t.Fatal("a second process took the lock of north")
		}
		if u, err := openAs(t, loc, "south").LockServer(t.Context()); err != nil {
			t.Fatalf("south's lock: %v", err)
		} else {
			u()
		}
		a.Close() // the holder goes away without unlocking
		// Its backend ends after the socket closes, not before: wait for
		// that event (the lock no longer granted), as a restart after a
		// crash would find it.
		for {
			var n int
			if err := b.r.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = ? AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, uint32(applicationID)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		u, err := b.LockServer(t.Context())
		if err != nil {
			t.Fatalf("lock after the holder's connections closed: %v", err)
		}
		u()
		unlock()
	})
}
