package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
)

// dles replaces the site's DLEs with one per directory name (created under
// the site with n random files of size bytes each).
func (s *site) dles(t *testing.T, dumptype string, n, size int, names ...string) {
	t.Helper()
	s.cfg.DLEs = nil
	for _, name := range names {
		dir := filepath.Join(s.dir, "src", name)
		randomFiles(t, dir, n, size)
		s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "localhost", Path: dir, Dumptype: dumptype})
	}
}

func (s *site) night(t *testing.T, deps Deps) (*report.Run, string, error) {
	t.Helper()
	var out bytes.Buffer
	if deps.Log == nil {
		deps.Log = testLogger(t)
	}
	deps.Out = &out
	rep, err := Dump(context.Background(), s.cfg, deps)
	return rep, out.String(), err
}

func (s *site) catalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func statuses(rep *report.Run) map[string]string {
	m := map[string]string{}
	for _, d := range rep.DLEs {
		m[filepath.Base(d.Path)] = d.Status
	}
	return m
}

// Up to inparallel dumpers run at once, but never more than maxdumps on
// one client host.
func TestMaxdumpsPerHost(t *testing.T) {
	for _, tt := range []struct{ maxdumps, want int }{{1, 1}, {2, 2}, {4, 4}} {
		t.Run(fmt.Sprint("maxdumps=", tt.maxdumps), func(t *testing.T) {
			s := newSite(t, "")
			p := newProxy(t, s.cfg.HostAddress("localhost"))
			s.cfg.Hosts["localhost"] = config.Host{Address: p.addr()}
			s.cfg.Inparallel, s.cfg.Maxdumps = 4, tt.maxdumps
			dt := config.DefaultDumptype()
			dt.Bandwidth = 1 << 20 // 1 MiB per DLE takes a second: dumps overlap
			dt.Compress = config.CompressNone
			s.cfg.Dumptypes["slow"] = dt
			s.dles(t, "slow", 4, 256<<10, "a", "b", "c", "d", "e")
			rep, out, err := s.night(t, Deps{})
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for name, st := range statuses(rep) {
				if st != report.StatusOK {
					t.Errorf("%s: %s", name, st)
				}
			}
			// Never more than maxdumps; and the parallelism is used (on a
			// loaded machine one of four may finish before the last starts).
			if got := p.peakDumps(512 << 10); got > tt.maxdumps || got < min(tt.want, 2) {
				t.Errorf("peak concurrent dumps on one host = %d, want %d", got, tt.want)
			}
		})
	}
}

// Two dumps that each fit the holding disk but not together: with
// holding = "required" the second waits until the taper has drained the
// first; with "auto" it goes straight to the taper. Nothing deadlocks and
// both end on a volume.
func TestSmallHoldingTwoBigDumps(t *testing.T) {
	for _, mode := range []string{"required", "auto"} {
		t.Run(mode, func(t *testing.T) {
			s := newSite(t, "")
			dt := config.DefaultDumptype()
			dt.Compress = config.CompressNone
			dt.Holding = mode
			s.cfg.Dumptypes["big"] = dt
			s.dles(t, "big", 5, 1<<20, "one", "two") // about 5 MiB each
			s.cfg.Holding[0].Use = 7 << 20
			s.cfg.Inparallel = 2
			var out bytes.Buffer // a deadlock is caught by go test -timeout
			rep, err := Dump(t.Context(), s.cfg, Deps{Log: testLogger(t), Out: &out})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for name, st := range statuses(rep) {
				if st != report.StatusOK {
					t.Errorf("%s: %s", name, st)
				}
			}
			if left := holdingFiles(t, s); len(left) != 0 {
				t.Errorf("holding not empty: %v", left)
			}
			good, _ := s.catalog(t).DumpsWithStatus(t.Context(), catalog.DumpGood)
			if len(good) != 2 {
				t.Errorf("%d good dumps, want 2", len(good))
			}
		})
	}
}

// Without a holding disk every image goes straight to the volume, and is
// restorable with standard tools like any other.
func TestNoHoldingDiskGoesStraightToTape(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Holding = nil
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for name, st := range statuses(rep) {
		if st != report.StatusOK {
			t.Errorf("%s: %s", name, st)
		}
	}
	// The image on the vtape restores with dd, zstd and tar.
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("vtape files %v", files)
	}
	dest := t.TempDir()
	cmd := exec.Command("sh", "-c", fmt.Sprintf("dd if=%q bs=32k skip=1 status=none | zstd -dc | tar -xpf - -C %q", files[0], dest))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore with standard tools: %v\n%s", err, b)
	}
	if b, err := exec.Command("diff", "-r", s.data, dest).CombinedOutput(); err != nil {
		t.Errorf("restored tree differs: %s", b)
	}
}

// A stream that moves no byte for dtimeout fails with a message saying so
// (and, retried, fails again: both attempts are in the report); a stream
// that is merely slow never fails.
func TestProgressTimeout(t *testing.T) {
	s := newSite(t, "")
	p := newProxy(t, s.cfg.HostAddress("localhost"))
	s.cfg.Hosts["localhost"] = config.Host{Address: p.addr()}
	s.cfg.Dtimeout = config.Duration(time.Second)
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	dt.Bandwidth = 512 << 10 // 1.5 MiB at 512 KiB/s: 3 s, three times the dtimeout
	dt.Strategy = "noinc"    // a full every night
	s.cfg.Dumptypes["slow"] = dt
	s.dles(t, "slow", 3, 512<<10, "slow")
	rep, out, err := s.night(t, Deps{})
	if err != nil || statuses(rep)["slow"] != report.StatusOK {
		t.Fatalf("a slow stream failed: %v\n%s", err, out)
	}
	if d := rep.DLEs[0].DumpTime; d < 2*time.Second {
		t.Errorf("dump took %v; the bandwidth limit did not slow it", d)
	}

	// Now the network stalls once the dump has started.
	s.cfg.Retries = 1
	p.stallAfter(64 << 10) // once the dump's first bytes flowed, not during the estimate
	s.cfg.Dumptypes["slow"] = dt
	rep, out, err = s.night(t, Deps{})
	p.resume()
	if !errors.Is(err, ErrRunFailed) {
		t.Fatalf("a stalled stream did not fail the run: %v\n%s", err, out)
	}
	d := rep.DLEs[0]
	if d.Status != report.StatusFailed || len(d.Retries) != 1 || !strings.Contains(d.Retries[0].Reason, "made no progress for 1s (dtimeout)") {
		t.Errorf("status %s, reason %q, earlier attempts %+v", d.Status, d.Reason, d.Retries)
	}
	if !strings.Contains(out, "made no progress for 1s (dtimeout)") {
		t.Errorf("the report does not say why the first attempt failed:\n%s", out)
	}
}

// A connection cut mid-stream fails that attempt; the retry succeeds; the
// report says it was retried and why.
func TestRetryAfterCut(t *testing.T) {
	s := newSite(t, "")
	p := newProxy(t, s.cfg.HostAddress("localhost"))
	s.cfg.Hosts["localhost"] = config.Host{Address: p.addr()}
	s.cfg.DLEs = s.cfg.DLEs[:1]
	// Let only the first dump connection be cut, once it carried 1 MiB.
	s.cfg.Retries = 1
	s.cfg.ResumeAttempts = 0 // the start over; resume_test.go resumes instead
	cutOnce := p.cutOnceAfter(1 << 20)
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	select {
	case <-cutOnce:
	default:
		t.Fatal("no connection was cut")
	}
	if statuses(rep)["data"] != report.StatusOK {
		t.Errorf("statuses %v", statuses(rep))
	}
	if !strings.Contains(out, "was successfully retried") || !strings.Contains(out, "connection closed in the middle of the dump") {
		t.Errorf("the report does not tell of the failed attempt:\n%s", out)
	}
	failed, _ := s.catalog(t).DumpsWithStatus(t.Context(), catalog.DumpFailed)
	if len(failed) != 1 {
		t.Errorf("%d failed attempts in the catalog, want 1", len(failed))
	}
}

// An image larger than a volume continues on the next one, up to
// runtapes; the run reports it and the parts restore with standard tools.
// With too few volumes, what does not fit stays on the holding disk.
func TestSpanningAndRuntapes(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	dt.Strategy = "noinc"
	s.cfg.Dumptypes["big"] = dt
	s.dles(t, "big", 6, 1<<20, "big") // 6 MiB
	tt := s.cfg.Tapetypes["small"]
	tt.Length = 4 << 20
	s.cfg.Tapetypes["small"] = tt
	s.cfg.Runtapes = 3
	s.cfg.Tapecycle = 1
	s.cfg.Changer.Slots = 6
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Volumes) < 2 || !strings.Contains(out, "spans") {
		t.Fatalf("volumes %+v\n%s", rep.Volumes, out)
	}
	cat := s.catalog(t)
	good, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	parts, _ := cat.Parts(t.Context(), good[0].ID)
	if len(parts) < 2 {
		t.Fatalf("%d parts", len(parts))
	}
	var cmd strings.Builder
	cmd.WriteString("(")
	for _, p := range parts {
		v, _ := cat.Volume(t.Context(), p.Volume)
		files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, fmt.Sprintf("slot%d", v.Slot), fmt.Sprintf("%05d.*", p.FileNo)))
		fmt.Fprintf(&cmd, "dd if=%q bs=32k skip=1 status=none; ", files[0])
	}
	dest := t.TempDir()
	fmt.Fprintf(&cmd, ") | tar -xpf - -C %q", dest)
	if b, err := exec.Command("sh", "-c", cmd.String()).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd.String(), err, b)
	}
	if b, err := exec.Command("diff", "-r", s.cfg.DLEs[0].Path, dest).CombinedOutput(); err != nil {
		t.Errorf("restored tree differs: %s", b)
	}

	// One volume per run is too few for 6 MiB on 4 MiB volumes. The
	// planner knows it of the DLE whose history says it does not compress,
	// and delays it with its reason.
	s.cfg.Runtapes = 1
	s.cfg.Tapecycle = 1
	rep, out, err = s.night(t, Deps{})
	if d := rep.DLEs[0]; d.Status != report.StatusDelayed || !strings.Contains(d.Reason, "runtapes") {
		t.Errorf("known 6 MiB full on one 4 MiB volume: %s %q\n%s", d.Status, d.Reason, out)
	}
	// A new DLE the planner believes compresses (it does not: random
	// bytes) is planned, runs out of volume, and stays on the holding disk.
	zst := config.DefaultDumptype()
	zst.Strategy = "noinc"
	s.cfg.Dumptypes["zst"] = zst
	s.dles(t, "zst", 6, 1<<20, "random")
	rep, out, err = s.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) || statuses(rep)["random"] != report.StatusHolding || !strings.Contains(out, "runtapes = 1") {
		t.Fatalf("err %v, statuses %v\n%s", err, statuses(rep), out)
	}
	if n := len(holdingFiles(t, s)); n != 1 {
		t.Errorf("%d holding files, want the 1 image that did not fit", n)
	}
	// The reason is said once, in NOTES; the DLE's line points there.
	for _, d := range rep.DLEs {
		if d.Status == report.StatusHolding && d.Reason != reasonNoVolume {
			t.Errorf("%s: reason %q, want %q", d.Path, d.Reason, reasonNoVolume)
		}
	}
	if n := strings.Count(out, "no further volume could be written tonight: this run already wrote 1 volume(s) (test-004), runtapes = 1"); n != 1 {
		t.Errorf("the run's volume limit is noted %d times, want once:\n%s", n, out)
	}
}

// offsetClock is the wall clock moved by a fixed amount.
type offsetClock time.Duration

func (c offsetClock) Now() time.Time                       { return time.Now().Add(time.Duration(c)) }
func (offsetClock) After(d time.Duration) <-chan time.Time { return clock.Real.After(d) }
func (offsetClock) NewTimer(d time.Duration) clock.Timer   { return clock.Real.NewTimer(d) }

// With no usable volume the run goes degraded: the images stay on the
// holding disk, and a full that does not fit in the share the reserve
// leaves to fulls is demoted to its fallback incremental. The report says
// which volume was expected and what was done instead.
func TestDegradedDemotesFullToFallback(t *testing.T) {
	s := newSite(t, "")
	s.cfg.DLEs = s.cfg.DLEs[:1]
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	// Eight days later the full is due, but no volume is usable: the
	// changer holds only blank volumes and autolabel is off.
	os.WriteFile(filepath.Join(s.data, "etc", "new.conf"), []byte("changed\n"), 0o644)
	s.cfg.Autolabel = ""
	s.cfg.Changer.Path = filepath.Join(s.dir, "blank-vtapes")
	s.cfg.Reserve = 40
	s.cfg.Holding[0].Use = 2 << 20 // fulls may use 60%: 1.2 MiB, less than the full
	rep, out, err := s.night(t, Deps{Clock: offsetClock(8 * 24 * time.Hour)})
	if !errors.Is(err, ErrRunFailed) {
		t.Fatalf("degraded night: %v\n%s", err, out)
	}
	d := rep.DLEs[0]
	if d.Status != report.StatusHolding || d.Level != 1 || !strings.Contains(d.Demoted, "demoted to level 1") || !strings.Contains(out, "reserve = 40%") {
		t.Errorf("status %s level %d demoted %q", d.Status, d.Level, d.Demoted)
	}
	if rep.Degraded == nil || !strings.Contains(out, "STRANGE") {
		t.Errorf("the report does not flag degraded mode:\n%s", out)
	}
	if n := len(holdingFiles(t, s)); n != 1 {
		t.Errorf("%d holding files, want the level 1 image", n)
	}
	// Without a fallback (a DLE never dumped before), the full is skipped
	// with its reason.
	randomFiles(t, filepath.Join(s.dir, "newbig"), 2, 1<<20)
	s.cfg.DLEs = []config.DLE{{Host: "localhost", Path: filepath.Join(s.dir, "newbig"), Dumptype: "default"}}
	rep, out, _ = s.night(t, Deps{Clock: offsetClock(9 * 24 * time.Hour)})
	if d := rep.DLEs[len(rep.DLEs)-1]; d.Status != report.StatusFailed || !strings.Contains(d.Reason, "no incremental to fall back to") {
		t.Errorf("new DLE in degraded mode: %s %q\n%s", d.Status, d.Reason, out)
	}
}

// netusage holds all streams of a run together under one rate: two
// parallel dumps of 4 MiB each at 4 MiB/s in all (one second of burst
// allowed) take at least a second.
func TestNetusageAcrossStreams(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 4, 1<<20, "a", "b")
	s.cfg.Inparallel, s.cfg.Maxdumps = 2, 2
	s.cfg.Netusage = 4 << 20
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d := rep.DumpTime; d < 900*time.Millisecond {
		t.Errorf("dump phase took %v; netusage did not hold the two streams to 4 MiB/s together", d)
	}
}
