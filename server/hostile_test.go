package server

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// hostileEntry is one tar entry a hostile agent sends.
type hostileEntry struct {
	name, link string
	typ        byte
	body       string
	indexAs    string // the name its index record gives; "" = the same
}

// hostileAgent speaks the agent protocol on loopback with the client's
// certificate and answers every dump with the crafted entries (zstd
// frames, an index record for each entry but the root) and warns warnings.
type hostileAgent struct {
	entries []hostileEntry
	warns   []string
	hooks   []wire.HookRun // sent in Done, as hook runs
}

// serveFakeAgent accepts TLS connections as the client agent of s
// (localhost's certificate) on a loopback port and gives each to handle:
// on a goroutine of its own, or one after the other with serial (a fake
// that records what it was asked). It returns the address.
func serveFakeAgent(t *testing.T, s *site, handle func(*tls.Conn), serial bool) string {
	t.Helper()
	tlsDir := filepath.Join(s.dir, "tls")
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: filepath.Join(tlsDir, "ca.crt"), Cert: filepath.Join(tlsDir, "localhost.crt"), Key: filepath.Join(tlsDir, "localhost.key")}, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			if serial {
				handle(tls.Server(raw, tlsCfg))
			} else {
				go handle(tls.Server(raw, tlsCfg))
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func (h *hostileAgent) serve(t *testing.T, s *site) string {
	t.Helper()
	return serveFakeAgent(t, s, h.handle, false)
}

func (h *hostileAgent) handle(tc *tls.Conn) {
	defer tc.Close()
	c := wire.NewConn(tc)
	var req wire.Request
	if err := c.ReadMsg(&req); err != nil {
		return
	}
	switch req.Op {
	case wire.OpEstimate:
		var est []wire.Estimate
		for _, l := range req.Levels {
			est = append(est, wire.Estimate{Level: l, Bytes: 64 << 10, Files: int64(len(h.entries))})
		}
		c.WriteMsg(wire.Reply{OK: true, Estimates: est})
		return
	case wire.OpDump:
	default:
		c.WriteMsg(wire.Reply{OK: true, Version: "hostile"})
		return
	}
	c.WriteMsg(wire.Reply{OK: true})
	var payload bytes.Buffer
	pw, _ := image.NewPayloadWriter(&payload, image.WriterOptions{Comp: image.Comp(req.Compress), FrameSize: req.FrameSize})
	cw := &countWriter{w: pw}
	tw := tar.NewWriter(cw)
	var idx []byte
	files := int64(0)
	for _, e := range h.entries {
		off := (cw.n + 511) &^ 511
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		tw.WriteHeader(hdr)
		if hdr.Size > 0 {
			tw.Write([]byte(e.body))
		}
		name := strings.TrimSuffix(strings.TrimPrefix(e.name, "./"), "/")
		if e.indexAs != "" {
			name = e.indexAs
		}
		if name == "." || name == "" {
			continue
		}
		idx = wire.AppendIndex(idx, wire.IndexRecord{Path: name, Type: e.typ, Size: hdr.Size, Mode: 0o644, Mtime: hdr.ModTime, Link: e.link, TarOffset: off})
		files++
	}
	tw.Close()
	pw.Close()
	sum := pw.Sum()
	for _, w := range h.warns {
		if c.WriteFrame(wire.FrameWarn, []byte(w), false) != nil {
			return
		}
	}
	(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(payload.Bytes())
	c.WriteFrame(wire.FrameIndex, idx, false)
	var fb []byte
	for _, f := range sum.Frames {
		fb = wire.AppendFrameInfo(fb, f)
	}
	c.WriteFrame(wire.FrameFrame, fb, false)
	c.WriteMsg(wire.Done{OrigSize: sum.OriginalSize, PayloadSize: sum.PayloadSize, SHA256: sum.SHA256, Files: files, Frames: int64(len(sum.Frames)), Hooks: h.hooks})
	c.Flush()
	var cf wire.Confirm
	c.ReadMsg(&cf)
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// A client whose image holds names a restore must never see, or whose tar
// stream does not match its index, gets its dump FAILED with the reason;
// nothing of it is catalogued good (promise 8: the server checks what it
// ingests). A flood of warnings is kept within the documented limits.
func TestHostileAgentImagesRefused(t *testing.T) {
	root := hostileEntry{name: "./", typ: tar.TypeDir}
	for _, tc := range []struct {
		name    string
		entries []hostileEntry
		want    string
	}{
		{"dot-dot", []hostileEntry{root, {name: "./../x", typ: tar.TypeReg, body: "x"}}, "leaves the DLE"},
		{"dot-dot inside", []hostileEntry{root, {name: "./a/../../x", typ: tar.TypeReg, body: "x"}}, "is not a clean relative name"},
		{"absolute", []hostileEntry{root, {name: "/etc/cron.d/x", typ: tar.TypeReg, body: "x"}}, "is absolute"},
		{"root as a symlink", []hostileEntry{{name: "./", typ: tar.TypeSymlink, link: "/etc"}, {name: "./victim", typ: tar.TypeReg, body: "x"}}, "the DLE root (\".\") is not a directory"},
		{"dot as a file", []hostileEntry{{name: ".", typ: tar.TypeReg, body: "x"}}, "is not a directory"},
		{"hard link out", []hostileEntry{root, {name: "./h", typ: tar.TypeLink, link: "../../etc/shadow"}}, "is a hard link to"},
		{"index lies", []hostileEntry{root, {name: "./a", typ: tar.TypeReg, body: "a", indexAs: "b"}}, "does not match the agent's index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			h := &hostileAgent{entries: tc.entries}
			s.cfg.Hosts["localhost"] = config.Host{Address: h.serve(t, s)}
			s.cfg.DLEs = s.cfg.DLEs[:1]
			rep, out, err := s.night(t, Deps{})
			if err == nil || len(rep.DLEs) != 1 || rep.DLEs[0].Status != report.StatusFailed || !strings.Contains(rep.DLEs[0].Reason, tc.want) {
				t.Fatalf("want FAILED with %q: %v\n%s", tc.want, err, out)
			}
			if good, _ := s.catalog(t).DumpsWithStatus(t.Context(), "good"); len(good) != 0 {
				t.Errorf("a hostile image was catalogued good: %v", good)
			}
			if held, _ := s.catalog(t).DumpsWithStatus(t.Context(), "holding"); len(held) != 0 {
				t.Errorf("a hostile image waits on the holding disk: %v", held)
			}
		})
	}

	// A command DLE's image has no index: an agent that sends index
	// records for one is refused.
	t.Run("command DLE with an index", func(t *testing.T) {
		s := newSite(t, "")
		h := &hostileAgent{entries: []hostileEntry{root, {name: "./a", typ: tar.TypeReg, body: "a"}}}
		s.cfg.Hosts["localhost"] = config.Host{Address: h.serve(t, s)}
		s.cfg.Dumptypes["db"] = config.Dumptype{Command: []string{"/usr/bin/pg_dump"}, FrameSize: 64 << 10}
		s.cfg.DLEs = s.cfg.DLEs[:1]
		s.cfg.DLEs[0].Dumptype = "db"
		rep, out, err := s.night(t, Deps{})
		if err == nil || rep.DLEs[0].Status != report.StatusFailed || !strings.Contains(rep.DLEs[0].Reason, "command DLE") {
			t.Fatalf("want FAILED naming the command DLE: %v\n%s", err, out)
		}
		if good, _ := s.catalog(t).DumpsWithStatus(t.Context(), "good"); len(good) != 0 {
			t.Errorf("catalogued good: %v", good)
		}
	})

	// Hook runs an agent reports are bounded in the report: their
	// number, each output's tail, and what reaches a terminal.
	t.Run("hook flood", func(t *testing.T) {
		s := newSite(t, "")
		h := &hostileAgent{entries: []hostileEntry{root, {name: "./a", typ: tar.TypeReg, body: "a"}}}
		// 150 runs of about 20 KiB each (as JSON): within one frame
		// (wire.MaxFrame), far past what the report keeps.
		for i := range 150 {
			h.hooks = append(h.hooks, wire.HookRun{Name: fmt.Sprintf("pre%d", i), Command: strings.Repeat("c", 4<<10), Exit: -99,
				Seconds: -5, Output: strings.Repeat("\x1b[2J\r", 1<<10) + "last line", Error: strings.Repeat("e", 4<<10)})
		}
		s.cfg.Hosts["localhost"] = config.Host{Address: h.serve(t, s)}
		s.cfg.DLEs = s.cfg.DLEs[:1]
		rep, out, err := s.night(t, Deps{})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		hs := rep.DLEs[0].Hooks
		if len(hs) != wire.MaxHookRuns {
			t.Fatalf("%d hook runs kept, want %d", len(hs), wire.MaxHookRuns)
		}
		for _, r := range hs {
			if len(r.Output) > wire.MaxHookOutput+8 || len(r.Command) > maxWarningLine+8 || len(r.Error) > maxWarningLine+8 || r.Exit < -1 || r.Seconds < 0 {
				t.Fatalf("hook run kept unbounded: output %d, command %d, error %d bytes, exit %d, seconds %v", len(r.Output), len(r.Command), len(r.Error), r.Exit, r.Seconds)
			}
		}
		if strings.Contains(out, "\x1b") || !strings.Contains(out, "last line") || len(out) > 1<<20 {
			t.Errorf("report of %d bytes: escape or last line wrong", len(out))
		}
	})

	t.Run("warning flood", func(t *testing.T) {
		s := newSite(t, "")
		h := &hostileAgent{entries: []hostileEntry{root, {name: "./a", typ: tar.TypeReg, body: "a"}}}
		for range 400 {
			h.warns = append(h.warns, strings.Repeat("w", 64<<10))
		}
		s.cfg.Hosts["localhost"] = config.Host{Address: h.serve(t, s)}
		s.cfg.DLEs = s.cfg.DLEs[:1]
		rep, out, err := s.night(t, Deps{})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		d := rep.DLEs[0]
		if d.Status != report.StatusStrange || len(d.Strange) > maxWarnings+1 || !strings.Contains(d.Strange[len(d.Strange)-1], "more warnings") {
			t.Fatalf("status %s, %d warning lines", d.Status, len(d.Strange))
		}
		total := 0
		for _, l := range d.Strange {
			total += len(l)
		}
		if total > maxWarningBytes+maxWarningLine+200 || len(out) > 2*maxWarningBytes+64<<10 {
			t.Errorf("warnings kept %d bytes, report %d bytes; limits %d and about %d", total, len(out), maxWarningBytes, 2*maxWarningBytes+64<<10)
		}
	})
}
