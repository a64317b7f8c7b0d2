package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
)

// streamSite is a site whose agent is reached through a proxy (to hold
// the dump of the data DLE in the middle), dumping one DLE at a time
// (the data DLE first, the largest), with a drive slower than any dumper
// (1 byte/s: the start rule says start as soon as there are bytes), and
// a log that records, in order, each message with the path it names.
type streamSite struct {
	*site
	p      *proxy
	mu     sync.Mutex
	events []string // "<msg> <path>"
	seen   map[string]chan struct{}
}

func newStreamSite(t *testing.T) *streamSite {
	s := &streamSite{site: newSite(t, ""), seen: map[string]chan struct{}{}}
	s.p = newProxy(t, s.cfg.HostAddress("localhost"))
	s.cfg.Hosts["localhost"] = config.Host{Address: s.p.addr()}
	s.cfg.Inparallel = 1
	s.cfg.Retries = 0
	tt := s.cfg.Tapetypes["small"]
	tt.Speed = 1
	s.cfg.Tapetypes["small"] = tt
	return s
}

func (s *streamSite) log(t *testing.T) *slog.Logger {
	return slog.New(pathHandler{Handler: testLogger(t).Handler(), on: s.event})
}

func (s *streamSite) event(msg, path string) {
	ev := msg + " " + path
	s.mu.Lock()
	s.events = append(s.events, ev)
	if ch, ok := s.seen[ev]; ok {
		close(ch)
		delete(s.seen, ev)
	}
	s.mu.Unlock()
}

// pathHandler calls on with the message and the "path" attribute of
// every record (its own or one given by With) before handing it on.
type pathHandler struct {
	slog.Handler
	path string
	on   func(msg, path string)
}

func (h pathHandler) Handle(ctx context.Context, r slog.Record) error {
	path := h.path
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "path" {
			path = a.Value.String()
		}
		return true
	})
	h.on(r.Message, path)
	return h.Handler.Handle(ctx, r)
}

func (h pathHandler) WithAttrs(as []slog.Attr) slog.Handler {
	path := h.path
	for _, a := range as {
		if a.Key == "path" {
			path = a.Value.String()
		}
	}
	return pathHandler{h.Handler.WithAttrs(as), path, h.on}
}

func (h pathHandler) WithGroup(name string) slog.Handler {
	return pathHandler{h.Handler.WithGroup(name), h.path, h.on}
}

// when returns a channel closed when the log says msg about path.
func (s *streamSite) when(msg, path string) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.seen[msg+" "+path] = ch
	s.mu.Unlock()
	return ch
}

// index is the position of the first event msg about path, -1 if none.
func (s *streamSite) index(msg, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.events {
		if e == msg+" "+path {
			return i
		}
	}
	return -1
}

type nightResult struct {
	rep *report.Run
	out string
	err error
}

// The taper starts the image of the data DLE while its dump is held in
// the middle (by the proxy, until the log says taping started), follows
// the growing holding file, and commits it only once the dump is done:
// the image is on the volume, restores byte for byte, verifies, and its
// holding file is gone. The report says it was streamed. A vtape starts
// at the first bytes whatever its tapetype's speed: with a speed no
// dumper here reaches, the dump held in the middle is taped all the same.
func TestTapingWhileDumping(t *testing.T) {
	t.Run("slow drive", func(t *testing.T) { tapingWhileDumping(t, 1) })
	t.Run("vtape at the default speed", func(t *testing.T) { tapingWhileDumping(t, config.DefaultSpeed) })
}

func tapingWhileDumping(t *testing.T, speed config.Size) {
	s := newStreamSite(t)
	tt := s.cfg.Tapetypes["small"]
	tt.Speed = speed
	s.cfg.Tapetypes["small"] = tt
	started := s.when("taping started while dumping", s.data)
	s.p.stallAfter(1 << 20) // 1 MiB of the data DLE's ~1.6 MiB image
	stalled := s.p.whenSent(1 << 20)
	done := make(chan nightResult, 1)
	go func() {
		rep, out, err := s.night(t, Deps{Log: s.log(t)})
		done <- nightResult{rep, out, err}
	}()
	<-started
	<-stalled // (taping may start before the stall: the dump is unfinished either way)
	s.p.resume()
	res := <-done
	if res.err != nil {
		t.Fatalf("night: %v\n%s", res.err, res.out)
	}
	taping, dumped := s.index("taping started while dumping", s.data), s.index("dumped to holding", s.data)
	if taping < 0 || dumped < 0 || taping > dumped {
		t.Fatalf("taping started at event %d, dumped to holding at %d: taping did not start while dumping", taping, dumped)
	}
	var starved time.Duration
	for _, d := range res.rep.DLEs {
		if d.Status != report.StatusOK {
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
		if d.Path == s.data && !d.Streamed {
			t.Errorf("%s: not streamed", d.Path)
		}
		starved += d.Starved
	}
	if len(res.rep.Volumes) != 1 || res.rep.Volumes[0].Starved != starved {
		t.Errorf("volumes %+v: the volume's starvation is not the sum of its images' (%v)", res.rep.Volumes, starved)
	}
	if !strings.Contains(res.out, "Drive Starved (s)") {
		t.Errorf("the report has no starvation line:\n%s", res.out)
	}
	left, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*"))
	if len(left) != 0 {
		t.Errorf("holding disk not empty after the run: %v", left)
	}
	assertGoodMeansOnVolume(t, s.site)
	vr, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 || len(vr.Images) != 2 {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	to := filepath.Join(s.dir, "restore")
	for _, f := range []string{"big.bin", "sub/deep/a/b/c/file with spaces.txt"} {
		rr, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: f, To: to, Overwrite: true, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Fatalf("recover %s: %v", f, err)
		}
		sameFile(t, filepath.Join(s.data, f), rr.Written)
	}
}

// The dump of the data DLE dies (its connection cut) after the taper
// started it: the cut tape file is recorded as a failed file, verify
// skips it as a failed write, the next image follows it on the volume
// and verifies, the report says the DLE failed and names the file, and
// nothing of it stays on the holding disk.
func TestDumpDiesWhileTaped(t *testing.T) {
	s := newStreamSite(t)
	s.cfg.ResumeAttempts = 0 // a cut that cannot resume; resume_test.go resumes one that is taped
	started := s.when("taping started while dumping", s.data)
	// The scribe's log has no path: the first tape file is the data
	// DLE's (dumped first, and taped as soon as there are bytes).
	begun := s.when("tape file begun", "")
	s.p.stallAfter(1 << 20)
	stalled := s.p.whenSent(1 << 20)
	done := make(chan nightResult, 1)
	go func() {
		rep, out, err := s.night(t, Deps{Log: s.log(t)})
		done <- nightResult{rep, out, err}
	}()
	<-started
	<-begun                    // the tape file is there: the cut leaves it truncated
	<-stalled                  // the held read goes on, the next one is cut
	cut := s.p.cutOnceAfter(1) // the next bytes of the held connection
	s.p.resume()
	<-cut
	res := <-done
	if !errors.Is(res.err, ErrRunFailed) {
		t.Fatalf("night: %v\n%s", res.err, res.out)
	}
	for _, d := range res.rep.DLEs {
		switch {
		case d.Path == s.data:
			if d.Status != report.StatusFailed {
				t.Errorf("the cut DLE: %s %q", d.Status, d.Reason)
			}
		case d.Status != report.StatusOK:
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	cat := s.catalog(t)
	failed, err := cat.FailedFiles(t.Context(), "test-001")
	if err != nil || len(failed) != 1 || failed[0].FileNo != 1 || failed[0].Path != s.data || !strings.Contains(failed[0].Reason, "truncated") {
		t.Fatalf("failed files of test-001: %+v %v\n%s", failed, err, res.out)
	}
	if !strings.Contains(res.out, "volume test-001 file 1: localhost:"+s.data) || !strings.Contains(res.out, "recorded as a failed file") {
		t.Errorf("the report does not name the cut file:\n%s", res.out)
	}
	vr, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil || vr.Bad() != 0 || len(vr.Images) != 2 {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	if im := vr.Images[0]; im.FileNo != 1 || !im.FailedWrite {
		t.Errorf("file 1 is not skipped as a failed write: %+v", im)
	}
	if im := vr.Images[1]; im.FileNo != 2 || !im.OK || im.Path != filepath.Join(s.data, "sub") {
		t.Errorf("the image after the cut file: %+v", im)
	}
	left, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*"))
	if len(left) != 0 {
		t.Errorf("holding disk not empty after the run: %v", left)
	}
	assertGoodMeansOnVolume(t, s.site)
}

// An image whole on the holding disk before it is taped never starves the
// drive: with tape_whole_images every image's and every volume's
// starvation is 0 s, and the report says so.
func TestWholeImagesDoNotStarve(t *testing.T) {
	s := newStreamSite(t)
	s.cfg.TapeWholeImages = true
	rep, out, err := s.night(t, Deps{Log: s.log(t)})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	if i := s.index("taping started while dumping", s.data); i >= 0 {
		t.Errorf("taping started while dumping with tape_whole_images")
	}
	for _, d := range rep.DLEs {
		if d.Status != report.StatusOK || d.Streamed || d.Starved != 0 {
			t.Errorf("%s: %s streamed %v starved %v", d.Path, d.Status, d.Streamed, d.Starved)
		}
	}
	for _, v := range rep.Volumes {
		if v.Starved != 0 {
			t.Errorf("volume %s starved %v", v.Label, v.Starved)
		}
	}
	if !strings.Contains(out, "Drive Starved (s)              0.0") {
		t.Errorf("the report does not say 0.0 s of starvation:\n%s", out)
	}
	// So do the metrics, with the rates.
	cfg := s.cfg
	m := gather(t, NewCollector(func() *config.Config { return cfg }, s.catalog(t), testLogger(t)))
	if v, ok := m["tapir_last_run_volume_starved_seconds{volume=test-001}"]; !ok || v != 0 || m["tapir_last_run_volume_rate_bytes_per_second{volume=test-001}"] <= 0 {
		t.Errorf("volume metrics: %v", m)
	}
	for _, d := range cfg.DLEs {
		lbl := fmt.Sprintf("{host=%s,path=%s}", d.Host, d.Path)
		if v, ok := m["tapir_dle_tape_starved_seconds_in_last_run"+lbl]; !ok || v != 0 || m["tapir_dle_tape_rate_bytes_per_second_in_last_run"+lbl] <= 0 {
			t.Errorf("DLE %s metrics: %v", lbl, m)
		}
	}
}
