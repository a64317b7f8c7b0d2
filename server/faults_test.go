package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/taptest"
	"github.com/tapir-backup/tapir/wire"
)

// TestMain lets a test run the server or an agent in a child process that
// it can kill -9: TAPIR_TEST_CHILD=dump|agent.
func TestMain(m *testing.M) {
	switch os.Getenv("TAPIR_TEST_CHILD") {
	case "dump":
		os.Exit(childDump())
	case "agent":
		os.Exit(childAgent())
	}
	os.Exit(m.Run())
}

// childDump runs one night of TAPIR_TEST_CONFIG whose drive stalls for
// good after TAPIR_TEST_STALL records (so that it can be killed mid-run),
// or that exits between its first catalog commit and the delete of that
// image's holding file (TAPIR_TEST_EXIT_AFTER_COMMIT).
func childDump() int {
	cfg, err := config.Load(os.Getenv("TAPIR_TEST_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tt := cfg.Tapetype()
	dc, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ch := taptest.Wrap(dc)
	var n int
	fmt.Sscan(os.Getenv("TAPIR_TEST_STALL"), &n)
	if n > 0 {
		ch.StallAfter(n)
	}
	if os.Getenv("TAPIR_TEST_EXIT_AFTER_COMMIT") != "" {
		// Dies like kill -9 between the catalog commit of the first
		// image and the delete of its holding file.
		testHookTaped = func(string) { os.Exit(childExitAfterCommit) }
	}
	if n > 0 {
		go func() {
			<-ch.Stalled()
			fmt.Fprintln(os.Stderr, childStalled)
		}()
	}
	_, err = Dump(context.Background(), cfg, Deps{Changer: ch, Out: os.Stdout, Log: testChildLog()})
	fmt.Fprintln(os.Stderr, "child dump ended:", err)
	return 0
}

// childStalled is what childDump says on stderr when its drive stalls.
const childStalled = "child dump: the drive stalls"

// childAgent serves the agent protocol with the certificate
// TAPIR_TEST_CERTDIR/TAPIR_TEST_HOST.* and writes its address to
// TAPIR_TEST_ADDRFILE, then to stdout.
func childAgent() int {
	dir, host := os.Getenv("TAPIR_TEST_CERTDIR"), os.Getenv("TAPIR_TEST_HOST")
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, host+".crt"), Key: filepath.Join(dir, host+".key")}, wire.RoleServer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(os.Getenv("TAPIR_TEST_ADDRFILE"), []byte(ln.Addr().String()), 0o644); err != nil {
		return 1
	}
	fmt.Println(ln.Addr()) // the address file is written
	a := &client.Agent{Log: testChildLog(), TLS: tlsCfg, StateDir: os.Getenv("TAPIR_TEST_STATEDIR")}
	a.Serve(context.Background(), ln)
	return 0
}

func testChildLog() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

// A drive that stalls in the middle of an image makes the dumpers wait
// for holding space (backpressure); when it resumes, the run completes
// and every image is on a volume. The run's clock is a fake one: the
// test sees the dumpers wait (their timers armed on it) and lets 30 s of
// the run's time pass during the stall, however fast or slow the
// machine. A dumper that waits has not asked its agent for the stream
// yet (it shows as waiting, no byte sent), so waiting for the taper
// never counts as a stream without progress (dtimeout, 5 s here, runs
// only while a stream is read).
func TestStalledDriveMakesDumpersWait(t *testing.T) {
	s := newSite(t, "")
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 4, 1<<20, "a", "b", "c", "d") // 4 MiB each
	s.cfg.Holding[0].Use = 10 << 20                // two images at a time
	s.cfg.Inparallel = 4
	s.cfg.Dtimeout = config.Duration(5 * time.Second)
	tt := s.cfg.Tapetype()
	dc, err := taper.NewDiskChanger(s.cfg.Changer.Path, s.cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := taptest.Wrap(dc)
	ch.StallAfter(20) // 1.2 MiB into the first image
	type result struct {
		rep *report.Run
		out string
		err error
	}
	done := make(chan result, 1)
	clk := clock.NewFake(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC))
	go func() {
		rep, out, err := s.night(t, Deps{Changer: ch, Clock: clk})
		done <- result{rep, out, err}
	}()
	select {
	case <-ch.Stalled():
	case r := <-done:
		t.Fatalf("the run ended before the drive stalled: %v\n%s", r.err, r.out)
	}
	// The next image does not fit: its dumper (one per host, maxdumps 1)
	// waits for holding space, for a change or for its timer, armed on
	// the run's clock.
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	const stall = 30 * time.Second
	for range stall / (5 * time.Second) {
		armed := clk.Armed()
		clk.Advance(5 * time.Second) // the dumper looks again, and waits again
		if err := clk.BlockUntilArmed(t.Context(), armed+1); err != nil {
			t.Fatal(err)
		}
		if err := clk.BlockUntil(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-done:
		t.Fatalf("the run ended while the drive was stalled: %v\n%s", r.err, r.out)
	default:
	}
	// The dumpers wait: the holding disk holds no more than it may.
	var held int64
	filepath.Walk(s.cfg.Holding[0].Path, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			held += fi.Size()
		}
		return nil
	})
	if held > int64(s.cfg.Holding[0].Use) {
		t.Errorf("holding holds %d bytes during the stall, more than its use %d", held, s.cfg.Holding[0].Use)
	}
	// `tapir status` shows the night live: one image taping, the others
	// waiting for the holding disk or dumped into it. The status file is
	// rewritten every second: each rewrite is the event to look again.
	var st *Status
	var live bool
	waitFiles(t, func() bool {
		st, live, err = ReadStatus(s.cfg)
		if err != nil || !live {
			return false
		}
		taping, space := 0, 0
		for _, d := range st.DLEs {
			if d.State == "taping" {
				taping++
			}
			if d.State == "waiting" && strings.Contains(d.Reason, "holding space") {
				space++
			}
		}
		return taping == 1 && space == 1
	}, filepath.Dir(s.cfg.Catalog))
	var view strings.Builder
	WriteStatus(&view, st, live, time.Now())
	states := map[string]int{}
	for _, d := range st.DLEs {
		states[d.State]++
		if d.State == "waiting" && d.Bytes != 0 {
			t.Errorf("%s waits for holding space but has %d bytes from its agent", d.Path, d.Bytes)
		}
	}
	if states["taping"] != 1 || states["waiting"]+states["holding"]+states["dumping"] != 3 || !strings.Contains(view.String(), "writing volume test-001") {
		t.Errorf("status during the stall: %v\n%s", states, view.String())
	}
	ch.Resume()
	r := <-done // a run that never completes is caught by go test -timeout
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.out)
	}
	for name, st := range statuses(r.rep) {
		if st != report.StatusOK {
			t.Errorf("%s: %s", name, st)
		}
	}
	if st, live, err := ReadStatus(s.cfg); err != nil || live || st.Phase != "done" || st.Result != "ok" {
		t.Errorf("status after the run: %+v live %v %v", st, live, err)
	}
	if r.rep.DumpTime < stall {
		t.Errorf("dump phase took %v: the dumpers did not wait for the stalled drive", r.rep.DumpTime)
	}
	if left := holdingFiles(t, s); len(left) != 0 {
		t.Errorf("holding not empty: %v", left)
	}
}

// Kill -9 of the server in the middle of a night: the next run flushes
// every image that was complete on the holding disk, drops the partial
// ones with a note, and the catalog holds no dump marked good that is not
// wholly on a volume.
func TestKilledRunLosesNothing(t *testing.T) {
	s := newSite(t, "")
	raw := config.DefaultDumptype()
	raw.Compress = config.CompressNone
	raw.Strategy = "noinc"
	slow := raw
	slow.Bandwidth = 256 << 10 // still dumping when the server dies
	s.cfg.Dumptypes["raw"], s.cfg.Dumptypes["slow"] = raw, slow
	s.dles(t, "raw", 3, 1<<20, "a", "b", "c")
	s.cfg.DLEs[2].Dumptype = "slow"
	s.cfg.Inparallel = 3
	saveConfig(t, s)
	cmd, childOut := startStalledNight(t, s)
	hold := s.cfg.Holding[0].Path
	complete := func() (n, tmp int) {
		fs, _ := filepath.Glob(filepath.Join(hold, "*", "*"))
		for _, f := range fs {
			if strings.HasSuffix(f, ".tmp") {
				tmp++
			} else {
				n++
			}
		}
		return
	}
	// The child logs each image complete on the holding disk, and says
	// when its drive stalls in the middle of the first one it tapes.
	childOut.waitFor(t, func(log string) bool {
		return countMsg(log, "dumped to holding") >= 2 && strings.Contains(log, childStalled)
	})
	// The slow image is still being written (its file is created before
	// the first byte arrives): the files of the other process say so.
	waitFiles(t, func() bool {
		n, tmp := complete()
		onTape, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot1", "00001.*"))
		return n == 2 && tmp == 1 && len(onTape) == 1
	}, hold, s.cfg.Changer.Path)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// The next night, with autoflush and a drive that works.
	s.cfg.Autoflush = true
	s.cfg.Dumptypes["slow"] = raw
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(s.dir, "child.log"))
		t.Fatalf("night after the kill: %v\n%s\nchild:\n%s", err, out, b)
	}
	flushed := 0
	for _, d := range rep.DLEs {
		if d.Flushed != "" {
			flushed++
			if d.Status != report.StatusOK {
				t.Errorf("flushed %s: %s %s", d.Path, d.Status, d.Reason)
			}
		}
	}
	if flushed != 2 {
		t.Errorf("%d images flushed, want the 2 that were complete\n%s", flushed, out)
	}
	for _, want := range []string{"removed partial holding file", "was interrupted while dumping", "took over the run lock"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q:\n%s", want, out)
		}
	}
	if left := holdingFiles(t, s); len(left) != 0 {
		t.Errorf("holding not empty: %v", left)
	}
	assertGoodMeansOnVolume(t, s)
}

// assertGoodMeansOnVolume checks every dump the catalog calls good: its
// parts cover the payload, and each part's tape file on its vtape holds the
// header and exactly that many payload bytes.
func assertGoodMeansOnVolume(t *testing.T, s *site) {
	t.Helper()
	cat, err := OpenCatalog(s.cfg) // this server's dumps, on its changer's vtapes
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	good, err := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range good {
		parts, err := cat.Parts(t.Context(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, p := range parts {
			v, err := cat.Volume(t.Context(), p.Volume)
			if err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, fmt.Sprintf("slot%d", v.Slot), fmt.Sprintf("%05d.*", p.FileNo)))
			if len(files) != 1 {
				t.Errorf("good dump %s:%s of %s: part %d on %s file %d: no such tape file", d.Host, d.Path, d.Datestamp, p.Part, p.Volume, p.FileNo)
				continue
			}
			fi, _ := os.Stat(files[0])
			if fi.Size() != p.Length+32<<10 {
				t.Errorf("good dump %s:%s: tape file %s is %d bytes, want header + %d", d.Host, d.Path, files[0], fi.Size(), p.Length)
			}
			sum += p.Length
		}
		if sum != d.PayloadSize {
			t.Errorf("good dump %s:%s of %s: parts hold %d of %d payload bytes", d.Host, d.Path, d.Datestamp, sum, d.PayloadSize)
		}
	}
}

// saveConfig writes the site's configuration as it is in memory (every
// default filled in) to its file, for a child process to load.
func saveConfig(t *testing.T, s *site) {
	t.Helper()
	f, err := os.Create(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Effective(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(s.cfgPath); err != nil {
		t.Fatal(err)
	}
}

// A client agent killed in the middle of a stream: that DLE fails with a
// one-line reason, its incremental state is unchanged, and the other
// DLEs (on another host) are unaffected.
func TestClientKilledMidStream(t *testing.T) {
	s := newSite(t, "")
	tlsDir := filepath.Join(s.dir, "tls")
	ca, err := wire.LoadCA(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("other", []string{wire.RoleClient}, tlsDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(s.dir, "other-state")
	addrFile := filepath.Join(s.dir, "other.addr")
	start := func() *exec.Cmd {
		os.Remove(addrFile)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TAPIR_TEST_CHILD=agent", "TAPIR_TEST_CERTDIR="+tlsDir, "TAPIR_TEST_HOST=other",
			"TAPIR_TEST_ADDRFILE="+addrFile, "TAPIR_TEST_STATEDIR="+state)
		cmd.Stderr = os.Stderr
		var out syncBuffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		out.waitFor(t, func(s string) bool { return strings.HasSuffix(s, "\n") }) // the agent's address
		return cmd
	}
	agent := start()
	addr, _ := os.ReadFile(addrFile)
	slow := config.DefaultDumptype()
	slow.Compress = config.CompressNone
	slow.Bandwidth = 1 << 20
	s.cfg.Dumptypes["slow"] = slow
	remote := filepath.Join(s.dir, "remote")
	randomFiles(t, remote, 8, 1<<20) // 8 MiB at 1 MiB/s
	s.cfg.DLEs = append(s.cfg.DLEs, config.DLE{Host: "other", Path: remote, Dumptype: "slow"})
	p := newProxy(t, string(addr)) // to see the agent's bytes flow
	s.cfg.Hosts["other"] = config.Host{Address: p.addr()}
	s.cfg.Retries = 0
	s.cfg.ResumeAttempts = 0 // a dump that cannot resume (resume_test.go resumes one)

	// Night 1 is complete: the state of level 0 exists.
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	snapshot := func() map[string]string {
		m := map[string]string{}
		filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				m[p] = string(b)
			}
			return nil
		})
		return m
	}
	before := snapshot()
	if len(before) == 0 {
		t.Fatal("the agent kept no incremental state")
	}
	// Night 2: new data, and the agent dies in the middle of its dump.
	randomFiles(t, filepath.Join(remote, "new"), 4, 1<<20)
	midStream := p.whenSent(1 << 20) // 1 of 8 MiB: the dump is under way
	go func() {
		<-midStream
		agent.Process.Signal(syscall.SIGKILL)
	}()
	rep, out, err := s.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	for _, d := range rep.DLEs {
		switch {
		case d.Host == "other":
			if d.Status != report.StatusFailed || strings.Contains(d.Reason, "\n") || !strings.Contains(d.Reason, "agent killed or network cut") {
				t.Errorf("killed agent's DLE: %s %q", d.Status, d.Reason)
			}
		case d.Status != report.StatusOK:
			t.Errorf("%s:%s on the healthy agent: %s %s", d.Host, d.Path, d.Status, d.Reason)
		}
	}
	after := snapshot()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("incremental state %s changed by the killed dump", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !strings.Contains(p, "pending") {
			t.Errorf("new state file %s after the killed dump", p)
		}
	}
	assertGoodMeansOnVolume(t, s)
}

// A holding filesystem that is really full (a small tmpfs, although `use`
// promises more): ENOSPC in the middle of an image gives a clear error, the
// partial file goes, and the image is dumped again straight to a volume.
// Nothing corrupt is left behind.
func TestHoldingFilesystemFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	s := newSite(t, "")
	mnt := filepath.Join(s.dir, "tmpfs")
	os.MkdirAll(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=3m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	s.cfg.Holding[0].Path = mnt
	s.cfg.Holding[0].Use = 1 << 30 // the administrator promised 1 GiB
	dt := config.DefaultDumptype()
	dt.Compress = config.CompressNone
	s.cfg.Dumptypes["raw"] = dt
	s.dles(t, "raw", 6, 1<<20, "big") // 6 MiB: does not fit 3 MiB
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d := rep.DLEs[0]
	if d.Status != report.StatusOK || len(d.Retries) != 1 || !strings.Contains(d.Retries[0].Reason, "holding filesystem is full") ||
		!strings.Contains(d.Retries[0].Reason, "straight to a volume") {
		t.Errorf("status %s, retries %+v", d.Status, d.Retries)
	}
	left, _ := filepath.Glob(filepath.Join(mnt, "*", "*"))
	if len(left) != 0 {
		t.Errorf("left on the full holding disk: %v", left)
	}
	assertGoodMeansOnVolume(t, s)
}

// startStalledNight runs a night of s's configuration in a child process
// (this test binary, TAPIR_TEST_CHILD=dump) whose taper stalls
// (TAPIR_TEST_STALL), so that a test can kill -9 it mid-night; it returns
// the child and its output as it grows (also in s.dir/child.log).
func startStalledNight(t *testing.T, s *site) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPIR_TEST_CHILD=dump", "TAPIR_TEST_CONFIG="+s.cfgPath, "TAPIR_TEST_STALL=20")
	logf, err := os.Create(filepath.Join(s.dir, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	out := &syncBuffer{}
	cmd.Stdout = io.MultiWriter(logf, out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}
