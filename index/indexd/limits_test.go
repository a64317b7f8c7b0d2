package indexd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/wire"
)

// serveWith starts an index server on loopback, configured by set before
// it serves, and returns its address.
func serveWith(t *testing.T, site *testsite.Site, vols indexd.VolumeSource, log *slog.Logger, set func(*indexd.Server)) string {
	t.Helper()
	tlsCfg, err := wire.ServerConfig(site.ServerFiles(), wire.RoleClient, wire.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &indexd.Server{Catalog: site.Catalog, TLS: tlsCfg, Volumes: vols, Holding: []string{site.Holding}, Log: log}
	if set != nil {
		set(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "localhost:" + port
}

// rawDial opens a TLS session without the shell's client: the test says
// every byte.
func rawDial(t testing.TB, site *testsite.Site, addr, who, role string) (*tls.Conn, *wire.Conn) {
	t.Helper()
	files, err := site.Issue(who, role)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := wire.ClientConfig(files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc, wire.NewConn(tc)
}

// TestPartialFramesHoldLittleMemory: 200 sessions each announce a request
// of the largest size the server reads and send only its first KiB. The
// server reads frames as their bytes arrive, so together they hold a few
// hundred KiB each (the documented bound: indexd.SessionMemory), not the
// 200 MiB the announced lengths add up to. Meanwhile a shell of another
// host is served; past the total cap a shell is told so, and a host past
// its own cap is told to close one of its shells.
func TestPartialFramesHoldLittleMemory(t *testing.T) {
	const attackers = 200
	site, err := testsite.New(t.TempDir(), testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	bigDir(t, site.Catalog, 10)

	const partial = 1 << 10
	var mu sync.Mutex
	waiting := map[string]bool{}
	all := make(chan struct{})
	addr := serveWith(t, site, nil, nil, func(s *indexd.Server) {
		s.MaxSessionsPerHost = attackers
		s.MaxSessions = attackers + 1
		indexd.SetReadHook(s, func(remote string, got int64) {
			// The session has taken the header and the first KiB and asks
			// for more: whatever it allocates for the frame is allocated.
			if got < 5+partial {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !waiting[remote] {
				waiting[remote] = true
				if len(waiting) == attackers {
					close(all)
				}
			}
		})
	})
	// Certificates first: issuing them allocates too.
	if _, err := site.Issue("web1", wire.RoleClient); err != nil {
		t.Fatal(err)
	}
	warm := dial(t, site, addr, "ops", wire.RoleAdmin) // TLS and catalog caches warmed
	if _, err := warm.Hosts(); err != nil {
		t.Fatal(err)
	}
	warm.Close()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	frame := make([]byte, 5+partial)
	frame[0] = wire.FrameMsg
	binary.BigEndian.PutUint32(frame[1:], wire.MaxIndexRequest)
	copy(frame[5:], `{"op":"plan","host":"web1","dle":"/big","paths":["`)
	for i := 5 + 50; i < len(frame); i++ {
		frame[i] = 'a'
	}
	for range attackers {
		tc, _ := rawDial(t, site, addr, "web1", wire.RoleClient)
		if _, err := tc.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	<-all
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	bound := int64(attackers) * indexd.SessionMemory
	t.Logf("%d sessions holding a partial %d-byte request: heap in use grew by %d KiB (%d KiB per session, bound %d KiB)",
		attackers, wire.MaxIndexRequest, grew>>10, grew/attackers>>10, indexd.SessionMemory>>10)
	if grew > bound {
		t.Errorf("heap in use grew by %d MiB with %d partial requests; the bound is %d MiB (%d KiB per session)", grew>>20, attackers, bound>>20, indexd.SessionMemory>>10)
	}

	// A shell of another host is served meanwhile (the last place).
	cl := dial(t, site, addr, "ops", wire.RoleAdmin)
	if hosts, err := cl.Hosts(); err != nil || len(hosts) != 1 || hosts[0] != "web1" {
		t.Errorf("a shell during the attack: hosts %v, %v", hosts, err)
	}
	// Past the total cap, a clear refusal.
	refused := func(who, want string) {
		t.Helper()
		files, err := site.Issue(who, wire.RoleClient)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := wire.ClientConfig(files, "localhost")
		c, err := recover.Dial(context.Background(), addr, cfg)
		var se *recover.ServerError
		if err == nil {
			c.Close()
		}
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("shell of %s over the limits: %v; want a refusal saying %q", who, err, want)
		}
	}
	refused("web3", fmt.Sprintf("serving its limit of %d sessions", attackers+1))
	refused("web1", fmt.Sprintf("too many sessions from web1 (limit %d): close another recover shell", attackers))
}

// TestHugePlanRefused: a plan of more paths than a request may name, and
// a request frame longer than the server reads, get an error reply saying
// so (the shell's client does not even send them).
func TestHugePlanRefused(t *testing.T) {
	site, err := testsite.New(t.TempDir(), testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	bigDir(t, site.Catalog, 10)
	addr := serveWith(t, site, nil, nil, nil)

	paths := make([]string, wire.MaxRequestPaths+1)
	for i := range paths {
		paths[i] = fmt.Sprintf("%d", i)
	}
	_, c := rawDial(t, site, addr, "web1", wire.RoleClient)
	if err := c.WriteMsg(wire.IndexRequest{Op: wire.IdxPlan, Host: "web1", DLE: "/big", Paths: paths}); err != nil {
		t.Fatal(err)
	}
	var r wire.IndexReply
	if err := c.ReadMsg(&r); err != nil || r.OK || !strings.Contains(r.Error, fmt.Sprintf("one extract takes at most %d", wire.MaxRequestPaths)) {
		t.Errorf("plan of %d paths: %+v %v", len(paths), r, err)
	}
	// The session goes on.
	if err := c.WriteMsg(wire.IndexRequest{Op: wire.IdxHello}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadMsg(&r); err != nil || !r.OK {
		t.Errorf("hello after a refused plan: %+v %v", r, err)
	}

	// Longer than a request may be: refused before it is read, then closed.
	long := make([]string, 40000)
	for i := range long {
		long[i] = strings.Repeat("x", 30)
	}
	if err := c.WriteMsg(wire.IndexRequest{Op: wire.IdxPlan, Host: "web1", DLE: "/big", Paths: long}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadMsg(&r); err != nil || r.OK || !strings.Contains(r.Error, "extract fewer paths at a time") {
		t.Errorf("request over %d bytes: %+v %v", wire.MaxIndexRequest, r, err)
	}

	// The shell's client refuses both before sending.
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	q := recover.Query{Host: "web1", DLE: "/big"}
	if _, _, err := cl.Plan(q, paths); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("client plan of %d paths: %v", len(paths), err)
	}
	if _, _, err := cl.Plan(q, long); err == nil || !strings.Contains(err.Error(), "fewer paths") {
		t.Errorf("client plan over %d bytes: %v", wire.MaxIndexRequest, err)
	}
	if _, err := cl.Hosts(); err != nil {
		t.Errorf("the session after refused requests: %v", err)
	}
}

// TestPlanCancelledWhenShellLeaves: the server stops planning once the
// shell has closed its connection. The plan's first step waits until the
// request's context ends, which only the server noticing the closed
// connection makes happen (without that, this test never ends).
func TestPlanCancelledWhenShellLeaves(t *testing.T) {
	site, err := testsite.New(t.TempDir(), testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	bigDir(t, site.Catalog, 2000)
	started := make(chan struct{})
	var once sync.Once
	ended := make(chan error, 1)
	addr := serveWith(t, site, nil, nil, func(s *indexd.Server) {
		indexd.SetPlanHook(s, func(ctx context.Context) {
			once.Do(func() {
				close(started)
				<-ctx.Done()
			})
		})
		indexd.SetDoneHook(s, func(op string, err error) {
			if op == wire.IdxPlan {
				ended <- err
			}
		})
	})
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	paths := make([]string, 2000)
	for i := range paths {
		paths[i] = fmt.Sprintf("big/file%06d.log", i)
	}
	go cl.Plan(recover.Query{Host: "web1", DLE: "/big"}, paths)
	<-started
	cl.Close()
	if err := <-ended; !errors.Is(err, indexd.ErrPeerGone) {
		t.Errorf("the plan ended with %v; want it cancelled because the shell left", err)
	}
}

// TestPlanOfManyPathsInOneDirectory: a plan naming many files of one
// directory (add *.log), some twice and with their directory, selects
// each entry once.
func TestPlanOfManyPathsInOneDirectory(t *testing.T) {
	site, err := testsite.New(t.TempDir(), testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	bigDir(t, site.Catalog, 3000)
	addr := serveWith(t, site, nil, nil, nil)
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	var paths []string
	for i := 0; i < 3000; i += 2 {
		paths = append(paths, fmt.Sprintf("/big/file%06d.log", i))
	}
	paths = append(paths, "big/file000000.log", "big/", "big/file000001.log")
	_, n, err := cl.Plan(recover.Query{Host: "web1", DLE: "/big"}, paths)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3001 { // big and everything under it
		t.Errorf("plan selects %d entries, want 3001", n)
	}
	_, n, err = cl.Plan(recover.Query{Host: "web1", DLE: "/big"}, paths[:1500])
	if err != nil || n != 1500 {
		t.Errorf("plan of 1500 files: %d entries, %v", n, err)
	}
	if _, _, err := cl.Plan(recover.Query{Host: "web1", DLE: "/big"}, []string{"big/file000001.log", "big/nosuch"}); err == nil || !strings.Contains(err.Error(), "big/nosuch is not in the backup") {
		t.Errorf("plan naming a missing file: %v", err)
	}
}

// TestErrorRepliesNameNoServerPath: errors of the catalog, of the holding
// disk and of the changer reach the shell as sentences about its backup,
// never with a path of the server (everything of the test site is under
// one temporary directory); the server's log has the whole error.
func TestErrorRepliesNameNoServerPath(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	data := dir + "/data"
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	testsite.Mutate(data)
	if _, err := site.Run(ctx, "20250608010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: 1}}, testsite.RunOptions{HoldingOnly: true}); err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	vols := &indexd.DiskVolumes{Changer: site.Changer, Catalog: site.Catalog}
	addr := serveWith(t, site, vols, log, nil)
	_, c := rawDial(t, site, addr, "web1", wire.RoleClient)

	var got bytes.Buffer // every frame the shell receives
	ask := func(req wire.IndexRequest) wire.IndexReply {
		t.Helper()
		if err := c.WriteMsg(req); err != nil {
			t.Fatal(err)
		}
		var r wire.IndexReply
		typ, b, err := c.ReadFrame()
		if err != nil || typ != wire.FrameMsg {
			t.Fatalf("%s: frame %q %v", req.Op, typ, err)
		}
		got.Write(b)
		if err := wire.DecodeMsg(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.OK && r.Count > 0 {
			if err := c.ReadEntries(r.Count, func(e wire.EntryInfo) error { got.WriteString(e.Path); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	expectErr := func(r wire.IndexReply, want string) {
		t.Helper()
		if r.OK || !strings.Contains(r.Error, want) {
			t.Errorf("reply %+v; want an error saying %q", r, want)
		}
	}
	view := func(op string) wire.IndexRequest { return wire.IndexRequest{Op: op, Host: "web1", DLE: "/srv"} }

	r := view(wire.IdxLs)
	r.Path = "no/such/dir"
	expectErr(ask(r), "no/such/dir is not a directory in the backup of web1:/srv")
	r = view(wire.IdxStat)
	r.Path = "etc/../../x"
	expectErr(ask(r), `".." component`)
	r = view(wire.IdxView)
	r.Date = "2025-06"
	expectErr(ask(r), "not a datestamp prefix")
	r = view(wire.IdxFind)
	expectErr(ask(r), "find needs a pattern")

	// The level 1 is on the holding disk: remove its file, then restore.
	hold, err := site.Catalog.Dumps(ctx, "web1", "/srv")
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, d := range hold {
		if d.HoldingPath != "" && d.Level == 1 {
			if err := os.Remove(d.HoldingPath); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("no holding image to remove")
	}
	// The full is on a vtape: empty its slot.
	for slot := 1; slot <= site.Slots; slot++ {
		files, _ := filepath.Glob(filepath.Join(site.Changer.SlotDir(slot), "0000[1-9].*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	r = view(wire.IdxRestore)
	r.Paths = []string{"etc", "home/carol/hello.txt"}
	rep := ask(r)
	if !rep.OK {
		t.Fatalf("restore: %+v", rep)
	}
	bad := 0
	for {
		typ, b, err := c.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		got.Write(b)
		if typ != wire.FrameMsg {
			continue
		}
		var m wire.RestoreMsg
		if err := wire.DecodeMsg(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Image != nil && m.Image.Error != "" {
			bad++
			t.Logf("image error: %s", m.Image.Error)
		}
		if m.End != nil {
			break
		}
	}
	if bad != 2 {
		t.Errorf("%d images reported unreadable, want 2 (the full's vtape file and the holding file are gone)", bad)
	}

	// The catalog fails: closed under the server's feet.
	site.Catalog.Close()
	rep = ask(wire.IndexRequest{Op: wire.IdxListHost})
	expectErr(rep, "its catalog failed")
	t.Logf("catalog failure: %s", rep.Error)

	if bytes.Contains(got.Bytes(), []byte(dir)) {
		t.Errorf("the shell received server paths:\n%s", got.String())
	}
	if !strings.Contains(logBuf.String(), dir) {
		t.Errorf("the server's log lacks the whole errors:\n%s", logBuf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
