package server

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// cutter sits between the server and an agent and, at given offsets of
// all the agent->server bytes it carries (across connections), cuts the
// connection carrying that byte or flips that byte (which TLS rejects).
type cutter struct {
	ln net.Listener

	mu      sync.Mutex
	target  string
	points  []int64 // offsets still to act at, ascending
	corrupt int64   // the offset whose byte is flipped (one of points)
	total   int64   // agent->server bytes carried
	acted   []int64 // the offsets acted at
	done    chan struct{}
	// notify, when set, is closed once notifyAt bytes went by.
	notifyAt int64
	notify   chan struct{}
	// stall, when set, makes the acts stalls instead of cuts: the
	// connection carries nothing more from the agent, and stays open
	// (the agent's writes block) until stall is closed.
	stall chan struct{}
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, corrupt: -1}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.handle(conn)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) setTarget(a string) {
	c.mu.Lock()
	c.target = a
	c.mu.Unlock()
}

func (c *cutter) handle(s net.Conn) {
	defer s.Close()
	c.mu.Lock()
	target := c.target
	c.mu.Unlock()
	a, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer a.Close()
	go func() { io.Copy(a, s); a.(*net.TCPConn).CloseWrite() }()
	buf := make([]byte, 16<<10)
	acted := false // a connection is acted on once; its later bytes count for nothing
	for {
		n, err := a.Read(buf)
		if n > 0 && acted {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		} else if n > 0 {
			c.mu.Lock()
			start := c.total
			cut := false
			if len(c.points) > 0 && start+int64(n) > c.points[0] {
				acted = true
				p := c.points[0]
				c.points = c.points[1:]
				c.acted = append(c.acted, p)
				switch {
				case p == c.corrupt:
					buf[p-start] ^= 0x5a
				case c.stall != nil:
					n = int(p - start)
					st := c.stall
					c.total += int64(n)
					c.mu.Unlock()
					s.Write(buf[:n])
					<-st
					return
				default:
					n, cut = int(p-start), true
				}
				if len(c.points) == 0 && c.done != nil {
					close(c.done)
				}
			}
			c.total += int64(n)
			if c.notify != nil && c.total > c.notifyAt {
				close(c.notify)
				c.notify = nil
			}
			c.mu.Unlock()
			if _, werr := s.Write(buf[:n]); werr != nil || cut {
				return
			}
		}
		if err != nil {
			s.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

// resumeTree writes about size bytes under dir: large incompressible
// files (cut by frames), a few hundred small ones, a sparse file, a hard
// link, a symlink and an empty directory.
func resumeTree(t *testing.T, dir string, size int64, rnd *rand.Rand) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "small"), 0o755))
	for i := range 300 {
		b := make([]byte, rnd.IntN(3000))
		for k := range b {
			b[k] = byte('a' + rnd.IntN(26))
		}
		must(os.WriteFile(filepath.Join(dir, "small", fmt.Sprintf("s%03d.txt", i)), b, 0o644))
	}
	must(os.MkdirAll(filepath.Join(dir, "big", "deeper", "empty"), 0o755))
	var left = size
	for i := 0; left > 0; i++ {
		n := min(left, int64(1+rnd.IntN(8))<<20+int64(rnd.IntN(4096)))
		b := make([]byte, n)
		for k := 0; k < len(b); k += 8 {
			v := rnd.Uint64()
			for j := 0; j < 8 && k+j < len(b); j++ {
				b[k+j] = byte(v >> (8 * j))
			}
		}
		sub := "big"
		if i%3 == 2 {
			sub = "big/deeper"
		}
		must(os.WriteFile(filepath.Join(dir, sub, fmt.Sprintf("b%03d.bin", i)), b, 0o600))
		left -= n
	}
	f, err := os.Create(filepath.Join(dir, "big", "sparse.img"))
	must(err)
	must(f.Truncate(32 << 20))
	f.WriteAt(bytes.Repeat([]byte("data"), 100<<10), 8<<20)
	f.WriteAt(bytes.Repeat([]byte("tail"), 1000), 31<<20)
	must(f.Close())
	must(os.Link(filepath.Join(dir, "small", "s001.txt"), filepath.Join(dir, "small-link.txt")))
	must(os.Symlink("small/s002.txt", filepath.Join(dir, "a-symlink")))
}

// resumeSite is a site with one DLE of about size bytes, dumped in
// frames of frameSize through addr.
func resumeSite(t *testing.T, size int64, frameSize int64) (*site, string) {
	s := newSite(t, "")
	seed := uint64(time.Now().UnixNano())
	t.Logf("tree seed %d", seed)
	src := filepath.Join(s.dir, "src")
	resumeTree(t, src, size, rand.New(rand.NewPCG(seed, 1)))
	dt := s.cfg.Dumptypes["default"]
	dt.FrameSize = config.Size(frameSize)
	s.cfg.Dumptypes["resume"] = dt
	s.cfg.DLEs = []config.DLE{{Host: "localhost", Path: src, Dumptype: "resume"}}
	s.cfg.Retries = 0
	s.cfg.ResumeAttempts = 6
	tt := s.cfg.Tapetypes["small"]
	tt.Length = config.Size(max(256<<20, 3*size))
	s.cfg.Tapetypes["small"] = tt
	return s, src
}

// restoreImage restores the DLE's image on the vtape with dd, zstd and
// GNU tar alone, checks that tar -t reads it, and compares the tree.
func restoreImage(t *testing.T, s *site, src string) { restoreImageKey(t, s, src, nil) }

// restoreImageKey is restoreImage of an image encrypted to k (nil: not
// encrypted): dd | age -d -i KEY | zstd -dc | tar, and the catalog's
// sizes, SHA-256 and age header match the bytes on the volume.
func restoreImageKey(t *testing.T, s *site, src string, k *testKey) {
	t.Helper()
	dec := ""
	if k != nil {
		dec = fmt.Sprintf("age -d -i '%s' | ", k.file)
		checkEncryptedImages(t, s, src, k)
	}
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "0000[1-9].*"))
	if len(files) == 0 {
		t.Fatal("no image file on the vtapes")
	}
	// The last one: a dump started over leaves the tape file of the
	// attempt that failed before it (recorded as failed).
	files = files[len(files)-1:]
	if b, err := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | %szstd -dc | tar -tf - >/dev/null", files[0], dec)).CombinedOutput(); err != nil {
		t.Fatalf("dd | zstd -dc | tar -t: %v\n%s", err, b)
	}
	out := filepath.Join(s.dir, "restored")
	os.MkdirAll(out, 0o755)
	if b, err := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | %szstd -dc | tar -xpf - -C '%s'", files[0], dec, out)).CombinedOutput(); err != nil {
		t.Fatalf("dd | zstd -dc | tar -x: %v\n%s", err, b)
	}
	sameTree(t, src, out)
	if b, err := exec.Command("cmp", filepath.Join(out, "small", "s001.txt"), filepath.Join(out, "small-link.txt")).CombinedOutput(); err != nil {
		t.Errorf("hard link: %v %s", err, b)
	}
}

// resumeBytes is the size of the tree TestResumeCutDump dumps:
// TAPIR_RESUME_BYTES (bench/resume.sh sets 1 GiB), else 24 MiB, which
// keeps go test quick on a loaded machine.
func resumeBytes(t *testing.T) int64 {
	if v := os.Getenv("TAPIR_RESUME_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1<<20 {
			t.Fatalf("TAPIR_RESUME_BYTES=%q: want a number of bytes, at least 1 MiB", v)
		}
		return n
	}
	return 24 << 20
}

// A dump cut at three random points of its stream, and once corrupted (a
// flipped byte, which TLS rejects), resumes after the last whole frame
// each time: the image is whole (SHA-256 checked by the server and the
// taper), restores with dd | zstd -dc | tar to the same tree, and each
// cut sent again at most two frames. Each resume is in the report.
func TestResumeCutDump(t *testing.T) { resumeCutDump(t, false) }

// The same with a client-side encrypted dump (encrypt = "client"): the
// agent announces its resume points in the age file, the image is one
// age file that dd | age -d | zstd -dc | tar restores, the catalog's
// SHA-256 is of the whole ciphertext, and each cut sent again at most
// two frames.
func TestResumeCutEncryptedDump(t *testing.T) { resumeCutDump(t, true) }

func resumeCutDump(t *testing.T, encrypt bool) {
	for _, tool := range []string{"dd", "zstd", "tar", "diff", "cmp", "age"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; scripts/test installs it", tool)
		}
	}
	size := resumeBytes(t)
	const frameSize = 1 << 20
	s, src := resumeSite(t, size, frameSize)
	var k *testKey
	if encrypt {
		k = newTestKey(t, filepath.Join(t.TempDir(), "keys"))
		s.encryptDumptype("resume", config.EncryptClient, k)
	}
	c := newCutter(t, s.cfg.HostAddress("localhost"))
	s.cfg.Hosts["localhost"] = config.Host{Address: c.addr()}
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 2))
	// Offsets in the agent's stream (the payload is about size bytes of
	// incompressible data, and more with the resumes' bytes).
	var points []int64
	for range 4 {
		points = append(points, size/20+rnd.Int64N(size*8/10))
	}
	slices.Sort(points)
	for i := 1; i < len(points); i++ {
		points[i] = max(points[i], points[i-1]+1) // one act per offset
	}
	c.points, c.corrupt, c.done = points, points[rnd.IntN(len(points))], make(chan struct{})
	t.Logf("seed %d: acting at %v, corrupting at %d", seed, points, c.corrupt)

	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	select {
	case <-c.done:
	default:
		t.Fatalf("the stream ended before every cut: acted at %v of %v", c.acted, points)
	}
	d := rep.DLEs[0]
	if d.Status != report.StatusOK {
		t.Fatalf("%s: %s %q %v", d.Path, d.Status, d.Reason, d.Strange)
	}
	if len(d.Resumes) != len(points) {
		t.Fatalf("%d resumes in the report, want %d: %+v", len(d.Resumes), len(points), d.Resumes)
	}
	for i, r := range d.Resumes {
		t.Logf("cut %d: resumed after frame %d (%d bytes kept), %d bytes received again, %d written by the agent past it: %s", i+1, r.Frames, r.Bytes, r.Resent, r.AgentSent, r.Reason)
		if r.Resent > 2*(frameSize+frameSize/64) {
			t.Errorf("cut %d: %d bytes received again, more than 2 frames of %d", i+1, r.Resent, frameSize)
		}
	}
	if os.Getenv("TAPIR_SHOW_REPORT") != "" {
		t.Log(out)
	}
	if !strings.Contains(out, "RESUMED after ") {
		t.Errorf("the report does not show the resumes:\n%s", out)
	}
	// A vtape drive takes an image from its first bytes (stream.go): the
	// resumed image went to the volume while it was dumped, and the
	// taper's SHA-256 of it matched.
	if !d.Streamed {
		t.Errorf("the image was not taped while it was dumped")
	}
	restoreImageKey(t, s, src, k)
	if rs := resumeStates(t, s); len(rs) != 0 {
		t.Errorf("the agent kept resume states after the dump: %v", rs)
	}
}

// resumeStates lists the agent's resume states.
func resumeStates(t *testing.T, s *site) []string {
	ds, _ := filepath.Glob(filepath.Join(s.dir, "agent-state", "resume", "*"))
	return ds
}

// An agent killed (SIGKILL) in the middle of a dump and started again:
// the server reconnects and the dump resumes from the agent's saved walk
// and checkpoints; the image is whole and the incremental state advances.
func TestResumeAfterAgentRestart(t *testing.T) {
	t.Run("saved walk", func(t *testing.T) { resumeAfterAgentRestart(t, false, false) })
	// A client-side encrypted dump: the agent continues the same age
	// file from its saved key and encryptor state.
	t.Run("encrypted", func(t *testing.T) { resumeAfterAgentRestart(t, false, true) })
	// The agent's state directory lost with the restart: the agent says
	// it cannot resume, and the dump starts over (retries).
	t.Run("state lost", func(t *testing.T) { resumeAfterAgentRestart(t, true, false) })
}

func resumeAfterAgentRestart(t *testing.T, lose, encrypt bool) {
	s, src := resumeSite(t, 16<<20, 256<<10)
	var k *testKey
	if encrypt {
		k = newTestKey(t, filepath.Join(t.TempDir(), "keys"))
		s.encryptDumptype("resume", config.EncryptClient, k)
	}
	if lose {
		s.cfg.Retries = 1
	}
	tlsDir := filepath.Join(s.dir, "tls")
	state := filepath.Join(s.dir, "agent-state")
	addrFile := filepath.Join(s.dir, "agent.addr")
	start := func() (*exec.Cmd, string) {
		os.Remove(addrFile)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TAPIR_TEST_CHILD=agent", "TAPIR_TEST_CERTDIR="+tlsDir, "TAPIR_TEST_HOST=localhost",
			"TAPIR_TEST_ADDRFILE="+addrFile, "TAPIR_TEST_STATEDIR="+state)
		cmd.Stderr = os.Stderr
		var out syncBuffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		out.waitFor(t, func(s string) bool { return strings.HasSuffix(s, "\n") })
		addr, _ := os.ReadFile(addrFile)
		return cmd, string(addr)
	}
	agent, addr := start()
	c := newCutter(t, addr)
	// Not a cut: the proxy only says when 6 MiB of the dump went by.
	mid := make(chan struct{})
	c.notifyAt, c.notify = 6<<20, mid
	s.cfg.Hosts["localhost"] = config.Host{Address: c.addr()}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		<-mid
		agent.Process.Signal(syscall.SIGKILL)
		agent.Wait()
		if lose {
			os.RemoveAll(filepath.Join(state, "resume"))
		}
		_, addr := start()
		c.setTarget(addr)
	}()
	rep, out, err := s.night(t, Deps{})
	<-killed
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	d := rep.DLEs[0]
	switch {
	case lose && (d.Status != report.StatusOK || len(d.Retries) != 1 || !strings.Contains(d.Retries[0].Reason, "cannot resume") || len(d.Resumes) != 0):
		t.Fatalf("%s: %s %q, retries %+v, resumes %+v\n%s", d.Path, d.Status, d.Reason, d.Retries, d.Resumes, out)
	case !lose && (d.Status != report.StatusOK || len(d.Resumes) != 1):
		t.Fatalf("%s: %s %q, resumes %+v\n%s", d.Path, d.Status, d.Reason, d.Resumes, out)
	}
	restoreImageKey(t, s, src, k)
	levels, _ := filepath.Glob(filepath.Join(state, "*", "level-0.state"))
	if len(levels) != 1 {
		t.Errorf("the incremental state did not advance: %v", levels)
	}
	if rs, _ := filepath.Glob(filepath.Join(state, "resume", "*")); len(rs) != 0 {
		t.Errorf("the agent kept resume states after the dump: %v", rs)
	}
}

// mitm terminates the server's TLS as the agent and the agent's as the
// server (the test CA issues both), so that it cuts a dump stream at a
// place of its plaintext: cut picks, from the agent's whole stream of the
// first dump connection, the payload offset to cut at (or -1 to cut when
// the server sends its Confirm instead).
type mitm struct {
	ln        net.Listener
	target    string
	asAgent   *tls.Config
	asServer  *tls.Config
	cut       func(payload []byte, ends []int64) int64
	mu        sync.Mutex
	dumps     int
	cutAtByte int64
}

func newMITM(t *testing.T, s *site, target string, cut func(payload []byte, ends []int64) int64) *mitm {
	tlsDir := filepath.Join(s.dir, "tls")
	asAgent, err := wire.ServerConfig(wire.Files{CA: filepath.Join(tlsDir, "ca.crt"), Cert: filepath.Join(tlsDir, "localhost.crt"), Key: filepath.Join(tlsDir, "localhost.key")}, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	asServer, err := wire.ClientConfig(wire.Files{CA: filepath.Join(tlsDir, "ca.crt"), Cert: filepath.Join(tlsDir, "backup.crt"), Key: filepath.Join(tlsDir, "backup.key")}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{ln: ln, target: target, asAgent: asAgent, asServer: asServer, cut: cut, cutAtByte: -2}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go m.handle(t, c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return m
}

func (m *mitm) handle(t *testing.T, raw net.Conn) {
	defer raw.Close()
	sc := tls.Server(raw, m.asAgent)
	araw, err := net.Dial("tcp", m.target)
	if err != nil {
		return
	}
	defer araw.Close()
	ac := tls.Client(araw, m.asServer)
	srv, agt := wire.NewConn(sc), wire.NewConn(ac)
	var req wire.Request
	if err := srv.ReadMsg(&req); err != nil {
		return
	}
	agt.WriteMsg(req)
	m.mu.Lock()
	first := req.Op == wire.OpDump && m.dumps == 0
	if req.Op == wire.OpDump {
		m.dumps++
	}
	m.mu.Unlock()
	if !first {
		go func() { // server -> agent
			for {
				typ, b, err := srv.ReadFrame()
				if err != nil {
					ac.CloseWrite()
					return
				}
				agt.WriteFrame(typ, b, true)
			}
		}()
		for {
			typ, b, err := agt.ReadFrame()
			if err != nil {
				return
			}
			if srv.WriteFrame(typ, b, true) != nil {
				return
			}
		}
	}
	// The first dump: the agent's whole stream first, up to Done.
	type frame struct {
		typ byte
		b   []byte
	}
	var frames []frame
	var payload []byte
	msgs := 0
	for msgs < 2 {
		typ, b, err := agt.ReadFrame()
		if err != nil {
			return
		}
		frames = append(frames, frame{typ, bytes.Clone(b)})
		if typ == wire.FrameData {
			payload = append(payload, b...)
		}
		if typ == wire.FrameMsg {
			msgs++
		}
	}
	var ends []int64
	g := newFrameGate(true, 1<<20, func([]byte) error { return nil })
	g.onFrame = func() { ends = append(ends, g.payload) }
	var cks []int64 // an encrypted stream: the agent's checkpoints say where
	for _, f := range frames {
		if f.typ == wire.FrameCheckpoint {
			ck, _ := wire.DecodeCheckpoint(f.b)
			cks = append(cks, ck.Cipher)
		}
	}
	for p := payload; len(p) > 0 && cks == nil; { // a few bytes at a time: one frame passes per call
		n := min(len(p), 4096)
		g.Write(p[:n])
		p = p[n:]
	}
	if cks != nil {
		ends, g.tail = cks, true
	}
	if len(ends) < 2 || !g.tail {
		t.Errorf("the MITM found %d frames in %d payload bytes (off %v, tail %v)", len(ends), len(payload), g.off, g.tail)
		return
	}
	at := m.cut(payload, ends)
	m.mu.Lock()
	m.cutAtByte = at
	m.mu.Unlock()
	var off int64
	for _, f := range frames {
		if f.typ == wire.FrameData && at >= 0 && off+int64(len(f.b)) > at {
			srv.WriteFrame(wire.FrameData, f.b[:at-off], true)
			return // cut in the payload
		}
		if f.typ == wire.FrameData {
			off += int64(len(f.b))
		}
		srv.WriteFrame(f.typ, f.b, true)
	}
	// Cut at the Confirm: the server has everything and says so; the
	// agent never hears it.
	srv.ReadFrame()
}

// A cut inside the last frame, inside the seek table, and while the
// server sends its Confirm: the dump resumes (or, for the Confirm, is
// confirmed again on a new connection), the image is whole and the
// incremental state advances.
func TestResumeCutAtTheEnd(t *testing.T) {
	t.Run("plain", func(t *testing.T) { resumeCutAtTheEnd(t, false) })
	// Client-side encrypted: the ends are the agent's checkpoints (the
	// age chunks sealed before each frame end); past the last one, the
	// chunk being filled, the seek table and the last chunk.
	t.Run("encrypted", func(t *testing.T) { resumeCutAtTheEnd(t, true) })
}

func resumeCutAtTheEnd(t *testing.T, encrypt bool) {
	for _, tc := range []struct {
		name string
		cut  func(payload []byte, ends []int64) int64
	}{
		{"last frame", func(p []byte, ends []int64) int64 {
			n := len(ends)
			return (ends[n-2] + ends[n-1]) / 2
		}},
		{"seek table", func(p []byte, ends []int64) int64 {
			return ends[len(ends)-1] + 10
		}},
		{"confirm", func(p []byte, ends []int64) int64 { return -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, src := resumeSite(t, 6<<20, 1<<20)
			var k *testKey
			if encrypt {
				k = newTestKey(t, filepath.Join(t.TempDir(), "keys"))
				s.encryptDumptype("resume", config.EncryptClient, k)
			}
			m := newMITM(t, s, s.cfg.HostAddress("localhost"), tc.cut)
			s.cfg.Hosts["localhost"] = config.Host{Address: m.ln.Addr().String()}
			rep, out, err := s.night(t, Deps{})
			if err != nil {
				t.Fatalf("night: %v\n%s", err, out)
			}
			d := rep.DLEs[0]
			if d.Status != report.StatusOK {
				t.Fatalf("%s %q %v\n%s", d.Status, d.Reason, d.Strange, out)
			}
			want := 1
			if tc.name == "confirm" {
				want = 0
			}
			if len(d.Resumes) != want {
				t.Fatalf("%d resumes, want %d: %+v", len(d.Resumes), want, d.Resumes)
			}
			m.mu.Lock()
			at := m.cutAtByte
			m.mu.Unlock()
			if at == -2 {
				t.Fatal("the MITM never saw the dump")
			}
			restoreImageKey(t, s, src, k)
			if levels, _ := filepath.Glob(filepath.Join(s.dir, "agent-state", "*", "level-0.state")); len(levels) != 1 {
				t.Errorf("the incremental state did not advance: %v", levels)
			}
			if rs := resumeStates(t, s); len(rs) != 0 {
				t.Errorf("the agent kept resume states after the dump: %v", rs)
			}
		})
	}
}

// Encryption: a server-side encrypted dump resumes (the server encrypts
// whole frames only, so its age stream never takes a byte back), and so
// does a client-side encrypted one (the agent announces its resume
// points and continues its age file from a saved state); both restore
// with dd | age -d | zstd -dc | tar.
func TestResumeEncrypted(t *testing.T) {
	for _, mode := range []string{config.EncryptServer, config.EncryptClient} {
		t.Run(mode, func(t *testing.T) {
			s, src := resumeSite(t, 8<<20, 1<<20)
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			s.encryptDumptype("resume", mode, k)
			s.cfg.Retries = 1
			c := newCutter(t, s.cfg.HostAddress("localhost"))
			c.points, c.corrupt = []int64{5 << 20}, -1
			s.cfg.Hosts["localhost"] = config.Host{Address: c.addr()}
			rep, out, err := s.night(t, Deps{})
			if err != nil {
				t.Fatalf("night: %v\n%s", err, out)
			}
			d := rep.DLEs[0]
			if d.Status != report.StatusOK || len(c.acted) != 1 {
				t.Fatalf("%s %q, cuts %v", d.Status, d.Reason, c.acted)
			}
			// Both resume: server-side, the server encrypts whole frames;
			// client-side, the agent continues its age file.
			if len(d.Resumes) != 1 || len(d.Retries) != 0 {
				t.Fatalf("resumes %+v, retries %+v", d.Resumes, d.Retries)
			}
			restoreImageKey(t, s, src, k)
		})
	}
}

// A hostile agent whose answer to a resume points elsewhere than what the
// server holds (another payload offset, another frame, or no answer) is
// not believed: the dump fails with the reason and nothing of it is kept.
func TestResumeHostileAgentPointsElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name string
		lie  func(*wire.Resume) *wire.Resumed
	}{
		{"payload offset", func(r *wire.Resume) *wire.Resumed {
			return &wire.Resumed{Frames: r.Frames, TarOffset: r.Frames * 64 << 10, PayloadOffset: r.PayloadOffset + 1}
		}},
		{"frame", func(r *wire.Resume) *wire.Resumed {
			return &wire.Resumed{Frames: r.Frames - 1, TarOffset: (r.Frames - 1) * 64 << 10, PayloadOffset: r.PayloadOffset}
		}},
		{"tar offset", func(r *wire.Resume) *wire.Resumed {
			return &wire.Resumed{Frames: r.Frames, TarOffset: 1 << 40, PayloadOffset: r.PayloadOffset}
		}},
		{"no answer", func(r *wire.Resume) *wire.Resumed { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			// A valid payload: one 512 KiB file in 64 KiB frames.
			body := make([]byte, 512<<10)
			rnd := rand.New(rand.NewPCG(1, 1))
			for i := range body {
				body[i] = byte(rnd.Uint32())
			}
			var payload bytes.Buffer
			pw, _ := image.NewPayloadWriter(&payload, image.WriterOptions{FrameSize: 64 << 10})
			tw := tar.NewWriter(pw)
			tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
			off := pw.TarOffset()
			tw.WriteHeader(&tar.Header{Name: "./f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
			tw.Write(body)
			tw.Close()
			pw.Close()
			sum := pw.Sum()
			cutAt := sum.Frames[4].Offset + sum.Frames[4].Size/2
			var resumes atomic.Int32
			addr := serveFakeAgent(t, s, func(tc2 *tls.Conn) {
				defer tc2.Close()
				c := wire.NewConn(tc2)
				var req wire.Request
				if c.ReadMsg(&req) != nil {
					return
				}
				switch {
				case req.Op == wire.OpEstimate:
					c.WriteMsg(wire.Reply{OK: true, Estimates: []wire.Estimate{{Level: 0, Bytes: 600 << 10, Files: 1}}})
				case req.Op == wire.OpDump && req.Resume == nil:
					c.WriteMsg(wire.Reply{OK: true, Features: []string{"resume"}})
					c.WriteFrame(wire.FrameIndex, wire.AppendIndex(nil, wire.IndexRecord{Path: "f", Type: tar.TypeReg, Size: int64(len(body)), Mode: 0o644, Mtime: time.Unix(1700000000, 0), TarOffset: off}), false)
					(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(payload.Bytes()[:cutAt])
					c.Flush() // and the connection goes
				case req.Op == wire.OpDump:
					resumes.Add(1)
					c.WriteMsg(wire.Reply{OK: true, Features: []string{"resume"}, Resumed: tc.lie(req.Resume)})
					(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(payload.Bytes()[cutAt:])
				default:
					c.WriteMsg(wire.Reply{OK: true})
				}
			}, false)
			s.cfg.Hosts["localhost"] = config.Host{Address: addr}
			s.cfg.DLEs = []config.DLE{{Host: "localhost", Path: "/hostile", Dumptype: "default"}}
			s.cfg.Retries = 0
			rep, out, err := s.night(t, Deps{})
			if err == nil {
				t.Fatalf("the night succeeded\n%s", out)
			}
			d := rep.DLEs[0]
			if d.Status != report.StatusFailed || !strings.Contains(d.Reason, "points elsewhere") || resumes.Load() != 1 {
				t.Fatalf("%s %q after %d resumes", d.Status, d.Reason, resumes.Load())
			}
			if left, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*")); len(left) != 0 {
				t.Fatalf("holding files left: %v", left)
			}
		})
	}
}

// A stream that stops moving (the agent's connection stalls, the agent
// blocked in its writes) fails after dtimeout, a transport reason: the
// server reconnects, the agent stops the stalled connection's dump and
// resumes it.
func TestResumeAfterProgressTimeout(t *testing.T) {
	s, src := resumeSite(t, 8<<20, 1<<20)
	c := newCutter(t, s.cfg.HostAddress("localhost"))
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	c.points, c.corrupt, c.stall = []int64{3 << 20}, -1, stall
	s.cfg.Hosts["localhost"] = config.Host{Address: c.addr()}
	s.cfg.Dtimeout = config.Duration(time.Second)
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	d := rep.DLEs[0]
	if d.Status != report.StatusOK || len(d.Resumes) != 1 || !strings.Contains(d.Resumes[0].Reason, "made no progress") {
		t.Fatalf("%s %q, resumes %+v", d.Status, d.Reason, d.Resumes)
	}
	restoreImage(t, s, src)
}

// A hostile agent of a client-side encrypted dump is not believed
// either: an answer to a resume at another ciphertext offset, or a
// checkpoint that points past what it sent, fails the dump with the
// reason and nothing of it is kept.
func TestResumeHostileEncryptedAgent(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		lie        func(*wire.Resume) *wire.Resumed
		badCk      bool
	}{
		{"cipher offset", "points elsewhere", func(r *wire.Resume) *wire.Resumed {
			return &wire.Resumed{Frames: r.Frames, TarOffset: r.Frames * 64 << 10, PayloadOffset: r.PayloadOffset, CipherOffset: r.CipherOffset + 16}
		}, false},
		{"checkpoint past the data", "does not follow", nil, true},
		// Checkpoints inside frames rather than at their ends: found out
		// when the frame records come.
		{"checkpoint off a frame end", "its frame records say otherwise", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			s.encryptDumptype("default", config.EncryptClient, k)
			body := make([]byte, 512<<10)
			rnd := rand.New(rand.NewPCG(1, 1))
			for i := range body {
				body[i] = byte(rnd.Uint32())
			}
			var payload bytes.Buffer
			pw, _ := image.NewPayloadWriter(&payload, image.WriterOptions{FrameSize: 64 << 10})
			tw := tar.NewWriter(pw)
			tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
			tw.WriteHeader(&tar.Header{Name: "./f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
			tw.Write(body)
			tw.Close()
			pw.Close()
			sum := pw.Sum()
			// The age file, with the checkpoint of every frame end.
			var ct bytes.Buffer
			enc, err := crypt.NewEncryptor(&ct, []string{k.rcpt})
			if err != nil {
				t.Fatal(err)
			}
			var cks []wire.Checkpoint
			for i, f := range sum.Frames {
				enc.Write(payload.Bytes()[f.Offset : f.Offset+f.Size])
				st, _ := enc.State()
				cks = append(cks, wire.Checkpoint{Frames: int64(i + 1), Plain: st.Plain, Cipher: st.Cipher})
			}
			last := sum.Frames[len(sum.Frames)-1]
			enc.Write(payload.Bytes()[last.Offset+last.Size:]) // the seek table
			enc.Close()
			all := ct.Bytes()
			features := []string{"age", "resume", "resume-age"}
			var resumes atomic.Int32
			addr := serveFakeAgent(t, s, func(tc2 *tls.Conn) {
				defer tc2.Close()
				c := wire.NewConn(tc2)
				var req wire.Request
				if c.ReadMsg(&req) != nil {
					return
				}
				switch {
				case req.Op == wire.OpEstimate:
					c.WriteMsg(wire.Reply{OK: true, Estimates: []wire.Estimate{{Level: 0, Bytes: 600 << 10, Files: 1}}})
				case req.Op == wire.OpDump && req.Resume == nil:
					c.WriteMsg(wire.Reply{OK: true, Features: features})
					dw := wire.DataWriter{C: c, Chunk: 1 << 20}
					if tc.lie == nil && !tc.badCk {
						// The whole stream, each checkpoint a byte
						// before its frame's end.
						sent := int64(0)
						for _, ck := range cks {
							dw.Write(all[sent:ck.Cipher])
							sent = ck.Cipher
							ck.Plain--
							c.WriteFrame(wire.FrameCheckpoint, wire.AppendCheckpoint(nil, ck), false)
						}
						dw.Write(all[sent:])
						var fb []byte
						for _, f := range sum.Frames {
							fb = wire.AppendFrameInfo(fb, f)
						}
						c.WriteFrame(wire.FrameFrame, fb, false)
						h := sha256.Sum256(all)
						c.WriteMsg(wire.Done{OrigSize: sum.OriginalSize, PayloadSize: int64(len(all)), SHA256: hex.EncodeToString(h[:]), Files: 1, Frames: int64(len(sum.Frames))})
						var cf wire.Confirm
						c.ReadMsg(&cf)
						return
					}
					sent := int64(0)
					for _, ck := range cks[:4] {
						dw.Write(all[sent:ck.Cipher])
						sent = ck.Cipher
						if tc.badCk {
							ck.Cipher += 3 * 65552
						}
						c.WriteFrame(wire.FrameCheckpoint, wire.AppendCheckpoint(nil, ck), false)
					}
					dw.Write(all[sent : sent+1000])
					c.Flush() // and the connection goes
				case req.Op == wire.OpDump:
					resumes.Add(1)
					c.WriteMsg(wire.Reply{OK: true, Features: features, Resumed: tc.lie(req.Resume)})
					(wire.DataWriter{C: c, Chunk: 1 << 20}).Write(all[req.Resume.CipherOffset:])
				default:
					c.WriteMsg(wire.Reply{OK: true})
				}
			}, false)
			s.cfg.Hosts["localhost"] = config.Host{Address: addr}
			s.cfg.DLEs = []config.DLE{{Host: "localhost", Path: "/hostile", Dumptype: "default"}}
			s.cfg.Retries = 0
			rep, out, err := s.night(t, Deps{})
			if err == nil {
				t.Fatalf("the night succeeded\n%s", out)
			}
			d := rep.DLEs[0]
			if d.Status != report.StatusFailed || !strings.Contains(d.Reason, tc.want) {
				t.Fatalf("%s %q after %d resumes", d.Status, d.Reason, resumes.Load())
			}
			if left, _ := filepath.Glob(filepath.Join(s.cfg.Holding[0].Path, "*", "*")); len(left) != 0 {
				t.Fatalf("holding files left: %v", left)
			}
		})
	}
}
