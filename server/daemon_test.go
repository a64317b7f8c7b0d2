package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
)

// smtpSink is a real SMTP server on loopback that keeps what it receives.
type smtpSink struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (b *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{b: b}, nil }

type sinkSession struct{ b *smtpSink }

func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, b)
	s.b.mu.Unlock()
	return err
}

func (b *smtpSink) got() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.msgs...)
}

func startSMTP(t *testing.T) (*smtpSink, string) {
	b := &smtpSink{}
	srv := smtp.NewServer(b)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b, ln.Addr().String()
}

// runsIn lists the finished runs in the catalog.
func runsIn(t *testing.T, s *site) []catalog.Run {
	t.Helper()
	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	rs, err := cat.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var done []catalog.Run
	for _, r := range rs {
		if !r.Finished.IsZero() {
			done = append(done, r)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Datestamp < done[j].Datestamp })
	return done
}

// The missed-tape night, end to end, driven by the server's own cron on an
// injected clock. Night 1: the volume the run expects is not in the
// changer; the run goes degraded (incrementals to the holding disk, fulls
// only within the reserve), its mailed report is flagged and names the
// volume to insert. Night 2: the volume is back and autoflush is on:
// night 1's images go to it first, then night 2's dumps; the volume is
// ejected; the report lists both; a file of each night restores; the
// holding disk is empty.
func TestMissedTapeNight(t *testing.T) {
	s := newSite(t, "")
	sink, smtpAddr := startSMTP(t)
	zone := time.FixedZone("CET", 3600)
	day0 := time.Date(2026, 11, 30, 1, 0, 0, 0, zone)

	// The site: two labelled volumes, tapecycle 1; night 0 writes
	// test-001 (by hand, before the server starts).
	s.cfg.Tapecycle, s.cfg.Autolabel = 1, ""
	s.cfg.Changer.Slots = 2
	s.cfg.Reserve = 100 // the default: in degraded mode no full may use the holding disk
	s.cfg.Autoflush, s.cfg.Eject = true, true
	s.cfg.Mailto = []string{"ops@example.com"}
	s.cfg.Mail.Server, s.cfg.Mail.From = smtpAddr, "tapir@backup.example.com"
	s.cfg.Schedule, s.cfg.Timezone = "0 1 * * *", "Europe/Paris"
	s.cfg.Server.MetricsListen = "127.0.0.1:0"
	s.cfg.Server.IndexListen = "127.0.0.1:0"
	saveConfig(t, s)
	label := func(slot int, name string) {
		t.Helper()
		if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: name, Slot: slot}, Deps{Log: testLogger(t)}); err != nil {
			t.Fatal(err)
		}
	}
	label(1, "test-001")
	label(2, "test-002")
	clk := clock.NewFake(day0)
	if _, out, err := s.night(t, Deps{Clock: clk}); err != nil {
		t.Fatalf("night 0: %v\n%s", err, out)
	}
	if got := len(sink.got()); got != 1 {
		t.Fatalf("%d mails after night 0", got)
	}

	// test-002 leaves the changer (an operator forgot to put it back).
	slot2 := filepath.Join(s.cfg.Changer.Path, "slot2")
	away := filepath.Join(s.dir, "shelf-test-002")
	if err := os.Rename(slot2, away); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.data, "etc", "night1.conf"), []byte("written on night 1\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	go func() {
		done <- Daemon(ctx, DaemonOptions{ConfigFile: s.cfgPath, Deps: Deps{Clock: clk, Log: log}, Index: ServeIndex,
			Ready: func(i, m net.Addr) { ready <- [2]net.Addr{i, m} }})
	}()
	var addrs [2]net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	}
	// The daemon logs "next run" when it has armed its timer, and "run
	// finished" once the run has returned (its report mailed).
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Set(day0.Add(7 * 24 * time.Hour)) // night 1, 01:00: a week later, the fulls are due
	logs.waitCount(t, "run finished", 1)
	if n := len(runsIn(t, s)); n != 2 {
		t.Fatalf("%d runs after night 1", n)
	}
	mails := sink.got()
	if len(mails) != 2 {
		t.Fatalf("%d mails after night 1", len(mails))
	}
	m1, err := mail.ReadMessage(bytes.NewReader(mails[1]))
	if err != nil {
		t.Fatal(err)
	}
	body1, _ := io.ReadAll(m1.Body)
	if subj := m1.Header.Get("Subject"); !strings.Contains(subj, "STRANGE") || !strings.Contains(subj, "TAPIR MAIL REPORT FOR December 7, 2026") {
		t.Errorf("night 1 subject %q", subj)
	}
	if !strings.Contains(string(body1), "test-002") || !strings.Contains(strings.ToLower(string(body1)), "degraded") {
		t.Errorf("night 1's report does not name the volume to insert:\n%s", body1)
	}
	if n := len(holdingFiles(t, s)); n != 2 {
		t.Fatalf("%d holding files after night 1, want the 2 incrementals", n)
	}
	rep1, err := report.ParseJSON([]byte(runsIn(t, s)[1].Report))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep1.DLEs {
		if d.Level != 1 || d.Status != report.StatusHolding || !strings.Contains(d.Demoted, "demoted to level 1") || !strings.Contains(strings.Join(rep1.Notes, "\n"), "reserve = 100%") {
			t.Errorf("night 1: %s level %d %s, demoted %q; want the due full demoted to level 1 by the reserve", d.Path, d.Level, d.Status, d.Demoted)
		}
	}

	// test-002 is back in its slot for night 2 (the disk changer made an
	// empty slot directory meanwhile: a blank volume it could not use).
	os.Remove(slot2)
	if err := os.Rename(away, slot2); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.data, "etc", "night2.conf"), []byte("written on night 2\n"), 0o644)
	logs.waitCount(t, "next run", 3) // at start, at night 1's start, at its end
	clk.Set(day0.Add(8 * 24 * time.Hour))
	logs.waitCount(t, "run finished", 2)
	mails = sink.got()
	if len(mails) != 3 || len(runsIn(t, s)) != 3 {
		t.Fatalf("%d mails, %d runs after night 2", len(mails), len(runsIn(t, s)))
	}
	m2, _ := mail.ReadMessage(bytes.NewReader(mails[len(mails)-1]))
	body2, _ := io.ReadAll(m2.Body)
	if strings.Contains(m2.Header.Get("Subject"), "STRANGE") || strings.Contains(m2.Header.Get("Subject"), "FAIL") {
		t.Errorf("night 2 subject %q\n%s", m2.Header.Get("Subject"), body2)
	}
	runs := runsIn(t, s)
	rep2, err := report.ParseJSON([]byte(runs[len(runs)-1].Report))
	if err != nil {
		t.Fatal(err)
	}
	flushed, fresh := 0, 0
	for _, d := range rep2.DLEs {
		if d.Status != report.StatusOK {
			t.Errorf("night 2: %s %s %s", d.Path, d.Status, d.Reason)
		}
		if d.Flushed != "" {
			flushed++
		} else {
			fresh++
		}
	}
	if flushed != 2 || fresh != 2 || len(rep2.Volumes) != 1 || rep2.Volumes[0].Label != "test-002" {
		t.Errorf("night 2: %d flushed, %d dumped, volumes %+v\n%s", flushed, fresh, rep2.Volumes, rep2.Text())
	}
	if n := len(holdingFiles(t, s)); n != 0 {
		t.Errorf("holding not empty after night 2: %d files", n)
	}
	// Ejected: the disk changer's drive is empty (a new changer loads
	// nothing; the volume's files are closed): nothing to assert beyond
	// the note-free report; the eject error would be a note.
	if strings.Contains(string(body2), "eject failed") {
		t.Errorf("eject failed:\n%s", body2)
	}
	// A file of each night restores.
	for night, name := range map[string]string{runs[1].Datestamp: "etc/night1.conf", runs[2].Datestamp: "etc/night2.conf"} {
		to := t.TempDir()
		res, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: name, To: to, AsOf: night, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Errorf("recover %s of %s: %v", name, night, err)
			continue
		}
		want, _ := os.ReadFile(filepath.Join(s.data, name))
		got, _ := os.ReadFile(res.Written)
		if !bytes.Equal(got, want) {
			t.Errorf("recover %s: %q, want %q", name, got, want)
		}
	}
	// The metrics see the result of the last night.
	resp, err := http.Get("http://" + addrs[1].String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `tapir_last_run_status{status="ok"} 1`) {
		t.Errorf("metrics after night 2:\n%s", metrics)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("daemon: %v", err)
	}
}

// SIGHUP: a bad new configuration is rejected (logged) and the old one
// stays in force; a good one changes the schedule.
func TestDaemonReload(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Schedule, s.cfg.Server.MetricsListen, s.cfg.Server.IndexListen = "0 1 * * *", "", "127.0.0.1:0"
	saveConfig(t, s)
	good, _ := os.ReadFile(s.cfgPath)
	day := time.Date(2026, 12, 1, 0, 30, 0, 0, time.Local)
	clk := clock.NewFake(day)
	var logs syncBuffer
	log := slogTo(&logs)
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Daemon(ctx, DaemonOptions{ConfigFile: s.cfgPath, Deps: Deps{Clock: clk, Log: log}, Reload: reload})
	}()
	armed := func(n int) { // the daemon waits for its n-th timer
		t.Helper()
		logs.waitCount(t, "next run", n)
	}
	armed(1)
	os.WriteFile(s.cfgPath, []byte("org = \"test\"\nschedul = \"0 3 * * *\"\n"), 0o644)
	reload <- struct{}{}
	logs.waitFor(t, func(log string) bool {
		return strings.Contains(log, "configuration rejected on reload") && strings.Contains(log, "unknown key")
	})
	armed(2)
	clk.Set(day.Add(30 * time.Minute)) // 01:00: the old schedule is in force
	logs.waitCount(t, "run finished", 1)
	if n := len(runsIn(t, s)); n != 1 {
		t.Fatalf("%d runs after the 01:00 run", n)
	}
	armed(4) // after the run: the timer for the next day

	os.WriteFile(s.cfgPath, bytes.Replace(good, []byte(`schedule = "0 1 * * *"`), []byte(`schedule = "0 3 * * *"`), 1), 0o644)
	reload <- struct{}{}
	logs.waitFor(t, func(log string) bool { return strings.Contains(log, `schedule="0 3 * * *"`) })
	armed(5)
	// The daemon's only timer, armed for 03:00, does not fire at 02:30
	// (Set fires what is due before it returns).
	clk.Set(day.Add(2 * time.Hour)) // 02:30: nothing yet
	if n := clk.Pending(); n != 1 {
		t.Errorf("%d timers pending at 02:30, want the daemon's for 03:00", n)
	}
	if n := len(runsIn(t, s)); n != 1 {
		t.Errorf("%d runs before 03:00 with the 03:00 schedule", n)
	}
	clk.Set(day.Add(150 * time.Minute)) // 03:00
	logs.waitCount(t, "run finished", 2)
	if n := len(runsIn(t, s)); n != 2 {
		t.Errorf("%d runs after the 03:00 run", n)
	}
	cancel()
	<-done
}

// SIGTERM while a night runs: the dumps in flight finish onto the holding
// disk, the DLEs not started yet are reported, the run ends with its
// report, and the daemon returns.
func TestDaemonGracefulStop(t *testing.T) {
	s := newSite(t, "")
	slow := config.DefaultDumptype()
	slow.Compress = config.CompressNone
	slow.Bandwidth = 384 << 10
	s.cfg.Dumptypes["slow"] = slow
	s.dles(t, "slow", 2, 1<<20, "a", "b", "c") // about 5 s each
	s.cfg.Inparallel, s.cfg.Maxdumps = 1, 1
	s.cfg.Schedule, s.cfg.Server.MetricsListen, s.cfg.Server.IndexListen = "@every 1h", "", ""
	saveConfig(t, s)
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Daemon(context.Background(), DaemonOptions{ConfigFile: s.cfgPath, Deps: Deps{Clock: clk, Log: testLogger(t)}, Stop: stop})
	}()
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	// The status file is refreshed every second: its rewrite is the event
	// that says a dump sends its bytes.
	waitFiles(t, func() bool {
		st, live, err := ReadStatus(s.cfg)
		if err != nil || !live {
			return false
		}
		dumping, finished := false, false
		for _, d := range st.DLEs {
			dumping = dumping || (d.State == "dumping" && d.Bytes > 0)
			finished = finished || d.State == "done" || d.State == "holding"
		}
		if finished {
			t.Fatal("a dump finished before the test saw the first one running; the dumps are too fast for this machine")
		}
		return dumping
	}, filepath.Dir(s.cfg.Catalog))
	close(stop)
	if err := <-done; err != nil { // a daemon that does not stop is caught by go test -timeout
		t.Fatal(err)
	}
	runs := runsIn(t, s)
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	rep, err := report.ParseJSON([]byte(runs[0].Report))
	if err != nil {
		t.Fatal(err)
	}
	stopped, saved := 0, 0
	for _, d := range rep.DLEs {
		switch {
		case d.Status == report.StatusFailed && strings.Contains(d.Reason, "asked to stop (SIGTERM)"):
			stopped++
		case d.Status == report.StatusOK || d.Status == report.StatusHolding:
			saved++
		default:
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	if saved != 1 || stopped != 2 {
		t.Errorf("%d saved, %d not started; want the one in flight saved and 2 reported", saved, stopped)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// SIGTERM on an idle server (no night running) stops it at once, index
// server and all; it used to log "no run in progress" and keep serving.
func TestDaemonStopIdle(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Schedule, s.cfg.Server.MetricsListen, s.cfg.Server.IndexListen = "@every 1h", "127.0.0.1:0", "127.0.0.1:0"
	saveConfig(t, s)
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Daemon(context.Background(), DaemonOptions{ConfigFile: s.cfgPath, Deps: Deps{Clock: clk, Log: testLogger(t)}, Stop: stop, Index: ServeIndex})
	}()
	if err := clk.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// An index server that dies stops the daemon with its error.
func TestDaemonIndexServerDies(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Schedule, s.cfg.Server.MetricsListen, s.cfg.Server.IndexListen = "@every 1h", "", "127.0.0.1:0"
	saveConfig(t, s)
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	broken := func(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
		ln.Close()
		return ServeIndex(ctx, cfg, ln, log)
	}
	err := Daemon(context.Background(), DaemonOptions{ConfigFile: s.cfgPath, Deps: Deps{Clock: clk, Log: testLogger(t)}, Index: broken})
	if err == nil || !strings.Contains(err.Error(), "index server") {
		t.Fatalf("got %v, want the index server's error", err)
	}
}
