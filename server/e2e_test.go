package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/wire"
)

// site is a whole tapir installation in a temp dir: CA, server and client
// certificates, a client agent on loopback, a configuration.
type site struct {
	dir, data, cfgPath string
	cfg                *config.Config
	// agentDumps counts the dumps the site's agent has finished with
	// (its "dump sent" or "dump failed" log line, written after any
	// confirmation and state change), for tests to wait on.
	agentDumps *eventCount
}

// eventCount counts events and lets a test wait until it reaches n.
type eventCount struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func newEventCount() *eventCount { return &eventCount{ch: make(chan struct{})} }

func (e *eventCount) add() {
	e.mu.Lock()
	e.n++
	close(e.ch)
	e.ch = make(chan struct{})
	e.mu.Unlock()
}

// wait returns once n events have been counted.
func (e *eventCount) wait(n int) {
	for {
		e.mu.Lock()
		if e.n >= n {
			e.mu.Unlock()
			return
		}
		ch := e.ch
		e.mu.Unlock()
		<-ch
	}
}

// notifyHandler calls on for every record before handing it on.
type notifyHandler struct {
	slog.Handler
	on func(slog.Record)
}

func (h notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	h.on(r)
	return h.Handler.Handle(ctx, r)
}

func (h notifyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return notifyHandler{h.Handler.WithAttrs(as), h.on}
}

func (h notifyHandler) WithGroup(name string) slog.Handler {
	return notifyHandler{h.Handler.WithGroup(name), h.on}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startAgent runs a client agent with the certificate in certDir/localhost.*
// trusting caFile, and returns its address.
func startAgent(t *testing.T, caFile, certDir string, log *slog.Logger) string {
	t.Helper()
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: caFile, Cert: filepath.Join(certDir, "localhost.crt"), Key: filepath.Join(certDir, "localhost.key")}, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := &client.Agent{Log: log.With("component", "agent"), TLS: tlsCfg, StateDir: filepath.Join(filepath.Dir(certDir), "agent-state")}
	go func() { a.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func newSite(t *testing.T, agentCADir string) *site {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	tlsDir := filepath.Join(dir, "tls")
	ca, err := wire.InitCA(tlsDir, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("backup", []string{wire.RoleServer}, tlsDir, now); err != nil {
		t.Fatal(err)
	}
	certDir := tlsDir
	if agentCADir != "" { // the agent's certificate comes from another CA
		other, err := wire.InitCA(agentCADir, "other", now)
		if err != nil {
			t.Fatal(err)
		}
		certDir = agentCADir
		if _, _, err := other.Issue("localhost", []string{wire.RoleClient}, certDir, now); err != nil {
			t.Fatal(err)
		}
	} else if _, _, err := ca.Issue("localhost", []string{wire.RoleClient}, tlsDir, now); err != nil {
		t.Fatal(err)
	}
	agentDumps := newEventCount()
	log := slog.New(notifyHandler{testLogger(t).Handler(), func(r slog.Record) {
		if r.Message == "dump sent" || r.Message == "dump failed" {
			agentDumps.add()
		}
	}})
	addr := startAgent(t, filepath.Join(tlsDir, "ca.crt"), certDir, log)

	data := filepath.Join(dir, "data")
	makeTree(t, data)
	cfgPath := filepath.Join(dir, "tapir.toml")
	cfgText := fmt.Sprintf(`org = "test"
statedir = "state"
tapecycle = 2

[tls]
ca = "tls/ca.crt"
cert = "tls/backup.crt"
key = "tls/backup.key"

[changer]
type = "disk"
path = "vtapes"
slots = 5
tapetype = "small"

[tapetype.small]
length = "256 MiB"
blocksize = "64 KiB"

[[holding]]
path = "holding"

[dumptype.default]
frame_size = "64 KiB"

[dumptype.gz]
compress = "client-gzip"
frame_size = "64 KiB"

[host.localhost]
address = %q

[[dle]]
host = "localhost"
path = %q

[[dle]]
host = "localhost"
path = %q
dumptype = "gz"
`, addr, data, filepath.Join(data, "sub"))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The administrator creates the changer's directory and the holding
	// disk; tapir never does (an unmounted disk must be noticed). A
	// second changer directory holds only blank slots, for nights
	// without a usable volume.
	for _, d := range []string{cfg.Changer.Path, cfg.Holding[0].Path, filepath.Join(dir, "blank-vtapes")} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return &site{dir: dir, data: data, cfgPath: cfgPath, cfg: cfg, agentDumps: agentDumps}
}

// makeTree writes a small tree with the kinds of files the spine handles.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mt := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	write := func(rel string, b []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, b, mode))
		must(os.Chmod(p, mode))
		must(os.Chtimes(p, mt, mt))
	}
	big := make([]byte, 3<<20+12345) // spans many 64 KiB frames
	rand.Read(big[:len(big)/2])
	write("big.bin", big, 0o644)
	write("etc/passwd", []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	write("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o600)
	write("bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("sub/deep/a/b/c/file with spaces.txt", bytes.Repeat([]byte("tapir "), 5000), 0o640)
	write("sub/x.txt", []byte("x"), 0o644)
	write("empty.txt", nil, 0o644)
	must(os.MkdirAll(filepath.Join(root, "emptydir"), 0o755))
	must(os.Symlink("etc/passwd", filepath.Join(root, "link-to-passwd")))
}

func TestNightEndToEnd(t *testing.T) {
	s := newSite(t, "")
	var out bytes.Buffer
	rep, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Clock: clock.Real, Out: &out})
	if err != nil {
		t.Fatalf("dump: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	if len(rep.DLEs) != 2 {
		t.Fatalf("report has %d DLEs, want 2", len(rep.DLEs))
	}
	for _, d := range rep.DLEs {
		if d.Status != "OK" {
			t.Errorf("%s:%s status %s (%s)", d.Host, d.Path, d.Status, d.Reason)
		}
	}
	if !strings.Contains(out.String(), "TAPIR MAIL REPORT") {
		t.Errorf("report not printed")
	}
	reports, _ := filepath.Glob(filepath.Join(s.cfg.ReportDir, "*.txt"))
	if len(reports) != 1 {
		t.Errorf("want one report file in %s, got %v", s.cfg.ReportDir, reports)
	}
	// The holding disk is empty: every image is on a volume.
	left, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*"))
	if len(left) != 0 {
		t.Errorf("holding disk not empty after the run: %v", left)
	}
	// The catalog says every dump is good and has its part.
	cat, err := catalog.Open(s.cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	dumps, err := cat.Dumps(t.Context(), "localhost", "")
	cat.Close()
	if err != nil || len(dumps) != 2 {
		t.Fatalf("catalog dumps: %v %v", dumps, err)
	}
	for _, d := range dumps {
		if d.Status != "good" {
			t.Errorf("catalog: dump %s status %s", d.Path, d.Status)
		}
	}

	// Restore several files, byte for byte, mode and mtime.
	to := filepath.Join(s.dir, "restore")
	for _, tc := range []struct{ path, file string }{
		{s.data, "big.bin"},
		{s.data, "etc/shadow"},
		{s.data, filepath.Join(s.data, "bin/run.sh")},
		{s.data, "sub/deep/a/b/c/file with spaces.txt"},
		{filepath.Join(s.data, "sub"), "x.txt"}, // from the gzip image
		{s.data, "empty.txt"},
	} {
		res, err := restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: tc.path, File: tc.file, To: to, Overwrite: true, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Errorf("recover %s: %v", tc.file, err)
			continue
		}
		rel, _ := restore.RelPath(tc.path, tc.file)
		sameFile(t, filepath.Join(tc.path, rel), res.Written)
	}

	// A file in no image gets a clear error.
	_, err = restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "no/such/file", To: to, Volumes: mustVolumes(t, s.cfg)}, nil)
	if err == nil || !strings.Contains(err.Error(), "in no image") {
		t.Errorf("recover of a missing file: got %v, want an error saying it is in no image", err)
	}
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	wb, err1 := os.ReadFile(want)
	gb, err2 := os.ReadFile(got)
	if err1 != nil || err2 != nil {
		t.Errorf("read %s / %s: %v %v", want, got, err1, err2)
		return
	}
	if !bytes.Equal(wb, gb) {
		t.Errorf("%s: restored content differs (%d vs %d bytes)", got, len(gb), len(wb))
	}
	ws, _ := os.Stat(want)
	gs, _ := os.Stat(got)
	if ws.Mode() != gs.Mode() {
		t.Errorf("%s: mode %v, want %v", got, gs.Mode(), ws.Mode())
	}
	if !ws.ModTime().Equal(gs.ModTime()) {
		t.Errorf("%s: mtime %v, want %v", got, gs.ModTime(), ws.ModTime())
	}
}

// TestImageRestoresWithStandardTools: the vtape file restores with dd,
// zstd and GNU tar alone (promise 5).
func TestImageRestoresWithStandardTools(t *testing.T) {
	for _, tool := range []string{"dd", "zstd", "tar", "diff", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; scripts/test installs it", tool)
		}
	}
	s := newSite(t, "")
	if _, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "0000[1-9].*"))
	if len(files) != 2 {
		t.Fatalf("want 2 image files on the vtape, got %v", files)
	}
	for _, f := range files {
		out := filepath.Join(s.dir, "tar-"+filepath.Base(f))
		os.MkdirAll(out, 0o755)
		dec, src := "zstd -dc", s.data
		if strings.HasSuffix(f, "_sub.0") {
			dec, src = "gzip -dc", filepath.Join(s.data, "sub")
		}
		cmd := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | %s | tar -xpf - -C '%s'", f, dec, out))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, b)
		}
		if b, err := exec.Command("diff", "-r", "--no-dereference", src, out).CombinedOutput(); err != nil {
			t.Errorf("diff -r %s %s: %v\n%s", src, out, err, b)
		}
		// mtimes survive too (diff does not compare them).
		for _, rel := range []string{"big.bin", "etc/shadow"} {
			if strings.HasSuffix(f, "_sub.0") {
				break
			}
			sameFile(t, filepath.Join(src, rel), filepath.Join(out, rel))
		}
	}
}

// TestForeignCertificateRefused: an agent whose certificate comes from
// another CA is refused, and its DLE fails with a message that says so.
func TestForeignCertificateRefused(t *testing.T) {
	s := newSite(t, filepath.Join(t.TempDir(), "otherca"))
	var out bytes.Buffer
	rep, err := Dump(context.Background(), s.cfg, Deps{Log: testLogger(t), Out: &out})
	if err == nil {
		t.Fatalf("dump succeeded against an agent with a foreign certificate")
	}
	for _, d := range rep.DLEs {
		if d.Status != "FAILED" || !strings.Contains(d.Reason, "not signed by this server's CA") {
			t.Errorf("%s: status %s reason %q; want FAILED naming the foreign CA", d.Path, d.Status, d.Reason)
		}
	}
	if !strings.Contains(out.String(), "FAIL:") || !strings.Contains(out.String(), "not signed by this server's CA") {
		t.Errorf("report does not flag the failure:\n%s", out.String())
	}
}
