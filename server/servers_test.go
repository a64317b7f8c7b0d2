package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/internal/pgtest"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
)

// dumpOK runs a night of cfg and fails the test unless every DLE is OK.
func dumpOK(t *testing.T, cfg *config.Config) {
	t.Helper()
	var out bytes.Buffer
	rep, err := Dump(context.Background(), cfg, Deps{Log: testLogger(t), Clock: clock.Real, Out: &out})
	if err != nil {
		t.Fatalf("night of server %s: %v\n%s", cfg.Server.Name, err, out.String())
	}
	for _, d := range rep.DLEs {
		if d.Status != "OK" {
			t.Errorf("night of server %s: %s:%s is %s (%s)", cfg.Server.Name, d.Host, d.Path, d.Status, d.Reason)
		}
	}
}

// The whole night and a restore with the catalog on PostgreSQL.
func TestNightEndToEndPostgres(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Catalog = pgtest.DSN(t)
	dumpOK(t, s.cfg)
	cat, err := OpenCatalog(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dumps, err := cat.Dumps(t.Context(), "localhost", "")
	cat.Close()
	if err != nil || len(dumps) != 2 {
		t.Fatalf("catalog dumps: %v %v", dumps, err)
	}
	for _, d := range dumps {
		if d.Status != catalog.DumpGood || d.Server != "test" {
			t.Errorf("dump %s: status %s, server %q", d.Path, d.Status, d.Server)
		}
	}
	to := filepath.Join(s.dir, "restore")
	for _, tc := range []struct{ path, file string }{
		{s.data, "big.bin"},
		{filepath.Join(s.data, "sub"), "x.txt"},
	} {
		res, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: tc.path, File: tc.file, To: to, Overwrite: true, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Fatalf("restore %s: %v", tc.file, err)
		}
		rel, _ := restore.RelPath(tc.path, tc.file)
		sameFile(t, filepath.Join(tc.path, rel), res.Written)
	}
}

// twoServers makes two sites, north and south, each with its own agent,
// holding disk and vtapes, sharing one PostgreSQL catalog; south labels
// its volumes south-NNN.
func twoServers(t *testing.T) (north, south *site) {
	dsn := pgtest.DSN(t)
	north, south = newSite(t, ""), newSite(t, "")
	reconfigure(t, north, "catalog = %q\n", "[server]\nname = \"north\"\n", dsn)
	reconfigure(t, south, "catalog = %q\nlabelstr = \"^south-[0-9]{3}$\"\nautolabel = \"south-%%%%%%\"\n", "[server]\nname = \"south\"\n", dsn)
	return north, south
}

// reconfigure puts top (a format for args) at the top of s's configuration
// and tail at its end, and loads it again.
func reconfigure(t *testing.T, s *site, top, tail string, args ...any) {
	t.Helper()
	old, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(top, args...) + string(old) + "\n" + tail
	if err := os.WriteFile(s.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.cfg, err = config.Load(s.cfgPath); err != nil {
		t.Fatal(err)
	}
}

// Two servers on one catalog, their nights at the same time: both are
// good, the runs never collide, each server's runs, volumes and reports
// are its own, and browsing sees both.
func TestTwoServersOneCatalog(t *testing.T) {
	north, south := twoServers(t)
	dumpOK(t, north.cfg)
	var wg sync.WaitGroup
	for _, s := range []*site{north, south} {
		wg.Go(func() { dumpOK(t, s.cfg) })
	}
	wg.Wait()
	dumpOK(t, south.cfg)

	cat, err := catalog.Open(north.cfg.Catalog) // for no server: sees all
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	ctx := t.Context()
	runs, err := cat.AllRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	per := map[string]int{}
	for _, r := range runs {
		if seen[r.Datestamp] {
			t.Errorf("two runs with datestamp %s", r.Datestamp)
		}
		seen[r.Datestamp] = true
		per[r.Server]++
		if r.Status != "ok" {
			t.Errorf("run %s of %s: %s", r.Datestamp, r.Server, r.Status)
		}
	}
	if per["north"] != 2 || per["south"] != 2 || len(runs) != 4 {
		t.Errorf("runs per server: %v", per)
	}
	vols, err := cat.AllVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		want := "north"
		if strings.HasPrefix(v.Label, "south-") {
			want = "south"
		}
		if v.Server != want {
			t.Errorf("volume %s belongs to %q, want %s", v.Label, v.Server, want)
		}
	}
	dumps, err := cat.Dumps(ctx, "localhost", "")
	if err != nil {
		t.Fatal(err)
	}
	per = map[string]int{}
	for _, d := range dumps {
		per[d.Server]++
	}
	if per["north"] != 4 || per["south"] != 4 {
		t.Errorf("images per server: %v", per)
	}
	servers, err := cat.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 || servers[0].Name != "north" || servers[1].Name != "south" || servers[0].Host == "" {
		t.Errorf("servers: %+v", servers)
	}

	// north's metrics see south too; its own figures stay its own.
	ncat, err := OpenCatalog(north.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ncat.Close()
	m := gather(t, NewCollector(func() *config.Config { return north.cfg }, ncat, testLogger(t)))
	for _, srv := range []string{"north", "south"} {
		if m["tapir_server_last_successful_run_end_timestamp_seconds{server="+srv+"}"] == 0 || m["tapir_server_volumes{server="+srv+"}"] == 0 {
			t.Errorf("north's metrics do not show server %s: %v", srv, m)
		}
	}
	if m["tapir_volumes{state=written}"] != m["tapir_server_volumes{server=north}"] {
		t.Errorf("north's tapir_volumes counts another server's volumes: %v", m)
	}
}

// A cartridge of north's carried into south's library: south never writes
// over it, whatever its own labelstr says, and north's images on it stay.
func TestOtherServersVolumeNeverWritten(t *testing.T) {
	dsn := pgtest.DSN(t)
	north, south := newSite(t, ""), newSite(t, "")
	reconfigure(t, north, "catalog = %q\n", "[server]\nname = \"north\"\n", dsn)
	// The same labels, and south may take any volume.
	reconfigure(t, south, "catalog = %q\nautolabel_media = [\"any\"]\n", "[server]\nname = \"south\"\n", dsn)
	dumpOK(t, north.cfg)
	// Move every vtape of north into south's changer.
	slots, _ := filepath.Glob(filepath.Join(north.cfg.Changer.Path, "slot*"))
	if len(slots) == 0 {
		t.Fatal("north wrote no vtape")
	}
	for _, sl := range slots {
		if err := os.Rename(sl, filepath.Join(south.cfg.Changer.Path, filepath.Base(sl))); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	_, _ = Dump(context.Background(), south.cfg, Deps{Log: testLogger(t), Clock: clock.Real, Out: &out})
	cat, err := catalog.Open(north.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	dumps, err := cat.Dumps(t.Context(), "localhost", "")
	if err != nil {
		t.Fatal(err)
	}
	good := 0
	for _, d := range dumps {
		if d.Server == "north" && d.Status == catalog.DumpGood {
			good++
		}
	}
	if good != 2 {
		t.Errorf("north has %d good images after south's night, want 2\n%s", good, out.String())
	}
	vols, err := cat.AllVolumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.Server == "north" && v.Written == "" {
			t.Errorf("north's volume %s was forgotten or relabelled", v.Label)
		}
	}
}

// Two machines under one server name: the second is refused before it
// touches anything, with a sentence that says what to do.
func TestSameServerNameTwoHostsRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	north, south := newSite(t, ""), newSite(t, "")
	reconfigure(t, north, "catalog = %q\n", "[server]\nname = \"north\"\n", dsn)
	reconfigure(t, south, "catalog = %q\n", "[server]\nname = \"north\"\n", dsn)
	dumpOK(t, north.cfg)
	cat, err := OpenCatalog(north.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// north's machine was registered; pretend it is another host.
	if err := cat.RegisterServer(t.Context(), "other-machine", "other-machine:10082", time.Now(), true); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	_, err = Dump(context.Background(), south.cfg, Deps{Log: testLogger(t), Clock: clock.Real, Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "runs on host other-machine") || !strings.Contains(err.Error(), "[server] name") {
		t.Fatalf("a second machine under the name north: %v", err)
	}
}

// Two runs of one server begun in the same second get distinct datestamps,
// and so do runs of two servers.
func TestBeginRunNextFreeDatestamp(t *testing.T) {
	dsn := pgtest.DSN(t)
	start := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, name := range []string{"north", "south", "north"} {
		cat, err := catalog.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer cat.Close()
		if err := cat.SetServer(name); err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{Org: "o", Timezone: "UTC"}
		ds, _, err := beginRun(t.Context(), cat, cfg, start)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ds] {
			t.Errorf("datestamp %s given twice", ds)
		}
		seen[ds] = true
	}
	if !seen["20261203010000"] || !seen["20261203010002"] {
		t.Errorf("datestamps %v: want 01:00:00 to 01:00:02", seen)
	}
}

// A night of south killed with -9 on the shared PostgreSQL catalog: while
// its run is still "running" there, north's night is good and leaves
// south's run alone (north's start fails only its own interrupted runs);
// then south's next night gets south's lock back (the database released
// the dead session's advisory lock), fails the interrupted run and flushes
// what the killed night left on south's holding disk.
func TestKilledServerLeavesTheOtherAlone(t *testing.T) {
	north, south := twoServers(t)
	raw := config.DefaultDumptype()
	raw.Compress = config.CompressNone
	raw.Strategy = "noinc"
	south.cfg.Dumptypes["raw"] = raw
	south.dles(t, "raw", 2, 1<<20, "a", "b")
	south.cfg.Inparallel = 2
	saveConfig(t, south)
	cmd, childOut := startStalledNight(t, south)
	childOut.waitFor(t, func(log string) bool {
		return countMsg(log, "dumped to holding") >= 2 && strings.Contains(log, childStalled)
	})

	dumpOK(t, north.cfg) // south's night is alive and stalled meanwhile
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cat, err := catalog.Open(north.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	statuses := func() map[string][]string {
		runs, err := cat.AllRuns(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, r := range runs {
			m[r.Server] = append(m[r.Server], r.Status)
		}
		return m
	}
	if got := statuses(); fmt.Sprint(got["south"]) != "[running]" || fmt.Sprint(got["north"]) != "[ok]" {
		t.Fatalf("runs after north's night beside south's killed one: %v", got)
	}

	south.cfg.Autoflush = true
	rep, out, err := south.night(t, Deps{})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(south.dir, "child.log"))
		t.Fatalf("south's night after the kill: %v\n%s\nchild:\n%s", err, out, b)
	}
	flushed := 0
	for _, d := range rep.DLEs {
		if d.Flushed != "" {
			flushed++
		}
		if d.Status != report.StatusOK {
			t.Errorf("south %s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	if flushed != 2 {
		t.Errorf("%d images flushed, want the 2 the killed night left\n%s", flushed, out)
	}
	if got := statuses(); !(fmt.Sprint(got["south"]) == "[failed ok]" || fmt.Sprint(got["south"]) == "[ok failed]") || fmt.Sprint(got["north"]) != "[ok]" {
		t.Errorf("runs after south's next night: %v", got)
	}
	assertGoodMeansOnVolume(t, south)
	assertGoodMeansOnVolume(t, north)
}
