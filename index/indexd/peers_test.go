package indexd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// Restore from anywhere: two tapir servers, a and b, share one catalog;
// a's changer holds the volumes (and a's holding disk an image) that b's
// shell restores from. b's index server fetches the frames from a's over
// mutual TLS with its server certificate.

// peerPair is server a (its site: catalog, vtapes, holding, the CA) and
// server b (its own empty changer and holding disk, the same catalog).
type peerPair struct {
	a, b         *testsite.Site
	data         string
	addrA, addrB string
	stopA        func()
	aReads       *countingVolumes
	fetches      atomic.Int64 // fetch requests a answered
}

func serveSrv(t *testing.T, srv *indexd.Server) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Log == nil {
		srv.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	var once bool
	stop = func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "localhost:" + port, stop
}

// newPeerPair makes both servers; register says whether a registers the
// address of its index server.
func newPeerPair(t *testing.T, register bool) *peerPair {
	t.Helper()
	ctx := context.Background()
	a, err := testsite.New(t.TempDir(), testsite.Options{Blocksize: 32 << 10, Server: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := testsite.New(t.TempDir(), testsite.Options{Blocksize: 32 << 10, Server: "b", Catalog: a.CatalogDB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := &peerPair{a: a, b: b, data: filepath.Join(t.TempDir(), "data")}
	if err := testsite.MakeTree(p.data); err != nil {
		t.Fatal(err)
	}
	// A full spanning two of a's volumes, and a level 1 on a's holding
	// disk.
	if _, err := a.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: p.data}}, testsite.RunOptions{SplitAt: 5000}); err != nil {
		t.Fatal(err)
	}
	testsite.Mutate(p.data)
	if _, err := a.Run(ctx, "20250608010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: p.data, Level: 1}}, testsite.RunOptions{HoldingOnly: true}); err != nil {
		t.Fatal(err)
	}
	tlsA, err := wire.ServerConfig(a.ServerFiles(), wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	p.aReads = &countingVolumes{&indexd.DiskVolumes{Changer: a.Changer, Catalog: a.Catalog}, new(atomic.Int64), &labelLog{}}
	srvA := &indexd.Server{Catalog: a.Catalog, TLS: tlsA, Volumes: p.aReads, Holding: []string{a.Holding}}
	indexd.SetDoneHook(srvA, func(op string, err error) {
		if op == wire.IdxFetch {
			p.fetches.Add(1)
		}
	})
	p.addrA, p.stopA = serveSrv(t, srvA)
	if register {
		if err := a.Catalog.RegisterServer(ctx, "hosta", p.addrA, time.Now(), false); err != nil {
			t.Fatal(err)
		}
	}
	p.addrB, _ = serveSrv(t, &indexd.Server{Catalog: b.Catalog, TLS: tlsA, Holding: []string{b.Holding},
		Volumes: &indexd.DiskVolumes{Changer: b.Changer, Catalog: b.Catalog}, Peers: p.peers()})
	return p
}

// peers is b's way to a: its server certificate, role tapir-server.
func (p *peerPair) peers() *indexd.Peers {
	return &indexd.Peers{Self: "b", TLS: func(name string) (*tls.Config, error) { return wire.ClientConfig(p.a.ServerFiles(), name) }}
}

// TestPeerRestoreFromAnywhere: a shell connected to b restores files of
// a full that spans two of a's volumes and of an incremental on a's
// holding disk; the plan says where each volume is read; the files are
// identical to the source; the whole DLE restores too.
func TestPeerRestoreFromAnywhere(t *testing.T) {
	p := newPeerPair(t, true)
	cl := dial(t, p.a, p.addrB, "web1", wire.RoleClient)
	ctx := context.Background()
	q := recover.Query{Host: "web1", DLE: "/srv"}
	paths := []string{"home/alice/big.bin", "etc/passwd", "home/carol/hello.txt"}
	to := t.TempDir()
	res, err := cl.Restore(ctx, q, paths, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 3 {
		t.Fatalf("restore through b: %+v %v", res, err)
	}
	for _, rel := range paths {
		want, _ := os.ReadFile(filepath.Join(p.data, rel))
		got, err := os.ReadFile(filepath.Join(to, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: restored %d bytes (%v), want the %d of the source", rel, len(got), err, len(want))
		}
	}
	var where []string
	for _, im := range res.Images {
		for _, v := range im.Volumes {
			where = append(where, v.Label+": "+v.Where)
			if !v.Available || !strings.Contains(v.Where, "tapir server a at "+p.addrA) {
				t.Errorf("plan: volume %+v; want it available from tapir server a (%s)", v, p.addrA)
			}
		}
	}
	if len(where) != 2 {
		t.Errorf("plan volumes %v: want the full's two", where)
	}
	if p.aReads.read.Load() == 0 {
		t.Errorf("a's volumes were never read")
	}
	// The whole DLE: a loads each volume once, and b asks once per part
	// (and once for the holding image), not once per frame.
	p.aReads.labels.take()
	p.fetches.Store(0)
	all := t.TempDir()
	res, err = cl.Restore(ctx, q, []string{""}, recover.RestoreOptions{To: all})
	if err != nil || !res.OK() {
		t.Fatalf("whole DLE through b: %+v %v", res, err)
	}
	frames := 0
	for _, im := range res.Images {
		frames += im.Frames
	}
	if loads, n := p.aReads.labels.take(), p.fetches.Load(); loads != "TEST-001 TEST-002" || n != 3 {
		t.Errorf("a loaded %q and answered %d fetches for %d frames; want TEST-001 TEST-002 once each, and 3 fetches", loads, n, frames)
	}
	if diff := treeDiff(t, p.data, all); diff != "" {
		t.Errorf("the whole DLE restored through b differs from the source: %s", diff)
	}
}

// treeDiff compares the regular files of two trees by content.
func treeDiff(t *testing.T, a, b string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(a, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(a, path)
		x, _ := os.ReadFile(path)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			out = append(out, rel)
		}
		return nil
	})
	return strings.Join(out, ", ")
}

// TestPeerVolumeBroughtHere: a volume of a moved into b's changer is read
// there, even with a's index server down.
func TestPeerVolumeBroughtHere(t *testing.T) {
	p := newPeerPair(t, true)
	p.stopA()
	for _, slot := range []string{"slot1", "slot2"} {
		os.RemoveAll(filepath.Join(p.b.Vtapes, slot))
		if err := os.CopyFS(filepath.Join(p.b.Vtapes, slot), os.DirFS(filepath.Join(p.a.Vtapes, slot))); err != nil {
			t.Fatal(err)
		}
	}
	cl := dial(t, p.a, p.addrB, "admin1", wire.RoleAdmin)
	to := t.TempDir()
	// The full alone (the level 1 is on a's holding disk, a is down).
	res, err := cl.Restore(context.Background(), recover.Query{Host: "web1", DLE: "/srv", Date: "20250607"}, []string{"etc/passwd"}, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 1 {
		t.Fatalf("restore of a's volume in b's changer: %+v %v", res, err)
	}
	if v := res.Images[0].Volumes[0]; !strings.HasPrefix(v.Where, "slot ") {
		t.Errorf("plan: %+v; want it read from b's slot", v)
	}
}

// TestPeerUnreachable: a registered no address, or is down: the plan says
// the volume is not available and why, the restore fails naming server a
// and what to do, and writes nothing.
func TestPeerUnreachable(t *testing.T) {
	for _, c := range []struct {
		name     string
		register bool
		want     []string
	}{
		{"no address", false, []string{"volume TEST-001 belongs to tapir server a, which has registered no index server address", "start `tapir server` there"}},
		{"down", true, []string{"tapir server a, whose index server is at", "cannot be reached", "start it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPeerPair(t, c.register)
			p.stopA()
			cl := dial(t, p.a, p.addrB, "web1", wire.RoleClient)
			msg := restoreFails(t, cl, "restored without a")
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("restore: %s\nwant it to say %q", msg, w)
				}
			}
		})
	}
}

// TestPeerDamagedHeader: a's copy of the image has a flipped header byte:
// a refuses to send it, and the shell at b is told which volume and file
// of which server, and what is wrong; nothing is written.
func TestPeerDamagedHeader(t *testing.T) {
	p := newPeerPair(t, true)
	files, _ := filepath.Glob(filepath.Join(p.a.Vtapes, "slot1", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("slot 1 holds %v", files)
	}
	b, _ := os.ReadFile(files[0])
	i := bytes.Index(b, []byte("\nframe-size: ")) + 13
	b[i] ^= 1
	os.WriteFile(files[0], b, 0o640)
	cl := dial(t, p.a, p.addrB, "web1", wire.RoleClient)
	msg := restoreFails(t, cl, "a damaged header restored through b")
	for _, w := range []string{"tapir server a:", "volume TEST-001 file 1", "checksum mismatch"} {
		if !strings.Contains(msg, w) {
			t.Errorf("restore: %s\nwant it to say %q", msg, w)
		}
	}
	if strings.Contains(msg, p.a.Dir) || strings.Contains(msg, p.b.Dir) {
		t.Errorf("the shell was shown a server's paths: %s", msg)
	}
}

// rawFetch sends one fetch to addr with a certificate of who and role and
// returns the reply, and the bytes of the stream (or its error message).
func rawFetch(t *testing.T, site *testsite.Site, addr, who, role string, req wire.IndexRequest) (wire.IndexReply, []byte, string) {
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
	defer tc.Close()
	c := wire.NewConn(tc)
	c.SetReadLimit(4 << 20)
	if err := c.WriteMsg(req); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	var rep wire.IndexReply
	if err := c.ReadMsg(&rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		return rep, nil, ""
	}
	var data []byte
	for {
		var m wire.FetchMsg
		if err := c.ReadMsg(&m); err != nil {
			t.Fatal(err)
		}
		switch {
		case m.End:
			return rep, data, ""
		case m.Error != "":
			return rep, data, m.Error
		case m.Data > 0:
			for want := len(data) + int(m.Data); len(data) < want; {
				_, b, err := c.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				data = append(data, b...)
			}
		}
	}
}

// TestPeerFetch: fetch is for servers only; it checks the image, its
// host and DLE and every range; many ranges come back in the order asked,
// equal to the payload as the holding disk reads it.
func TestPeerFetch(t *testing.T) {
	p := newPeerPair(t, true)
	ctx := context.Background()
	ds, err := p.a.Catalog.Dumps(ctx, "web1", "/srv")
	if err != nil || len(ds) != 2 {
		t.Fatalf("dumps %v %v", ds, err)
	}
	full, incr := ds[1], ds[0]
	parts, _ := p.a.Catalog.Parts(ctx, full.ID)
	whole := make([]byte, full.PayloadSize)
	ir := indexd.NewImageReader(ctx, &indexd.DiskVolumes{Changer: p.a.Changer, Catalog: p.a.Catalog}, nil, full, parts)
	if _, err := ir.ReadAt(whole, 0); err != nil {
		t.Fatal(err)
	}
	ir.Close()
	ok := wire.IndexRequest{Op: wire.IdxFetch, Host: "web1", DLE: "/srv", Dump: full.ID}
	for _, c := range []struct {
		name, role string
		mod        func(*wire.IndexRequest)
		want       string
	}{
		{"client", wire.RoleClient, func(*wire.IndexRequest) {}, "only another tapir server"},
		{"admin", wire.RoleAdmin, func(*wire.IndexRequest) {}, "only another tapir server"},
		{"no range", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = nil }, "names no payload range"},
		{"negative", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = []wire.Range{{Off: -1, Len: 5}} }, "at least 0"},
		{"too long", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = []wire.Range{{Off: 0, Len: wire.MaxFetchRange + 1}} }, "1 to"},
		{"past the end", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = []wire.Range{{Off: full.PayloadSize - 1, Len: 2}} }, "outside the"},
		{"huge offset", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = []wire.Range{{Off: 1<<63 - 10, Len: 20}} }, "outside the"},
		{"too many", wire.RoleServer, func(r *wire.IndexRequest) { r.Ranges = make([]wire.Range, wire.MaxFetchRanges+1) }, "at most 4096"},
		{"other host", wire.RoleServer, func(r *wire.IndexRequest) { r.Host = "db1" }, "not of db1:/srv"},
		{"no image", wire.RoleServer, func(r *wire.IndexRequest) { r.Dump = 999999 }, "no dump with id 999999"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := ok
			req.Ranges = []wire.Range{{Off: 0, Len: 10}}
			c.mod(&req)
			rep, _, _ := rawFetch(t, p.a, p.addrA, "peer", c.role, req)
			if rep.OK || !strings.Contains(rep.Error, c.want) {
				t.Errorf("fetch: %+v; want refused saying %q", rep, c.want)
			}
		})
	}
	t.Run("many ranges", func(t *testing.T) {
		req := ok
		var want []byte
		// Ranges across the split between the two volumes, backwards and
		// repeated: each comes back as asked.
		for _, r := range []wire.Range{{Off: full.PayloadSize - 3000, Len: 3000}, {Off: 0, Len: 1}, {Off: 4000, Len: 2000}, {Off: 4000, Len: 2000}, {Off: 100, Len: 3 << 20 / 2}} {
			r.Len = min(r.Len, full.PayloadSize-r.Off)
			req.Ranges = append(req.Ranges, r)
			want = append(want, whole[r.Off:r.Off+r.Len]...)
		}
		rep, got, msg := rawFetch(t, p.a, p.addrA, "b", wire.RoleServer, req)
		if !rep.OK || msg != "" || !bytes.Equal(got, want) {
			t.Errorf("fetch: %+v %q: %d bytes, equal %v; want the %d asked for", rep, msg, len(got), bytes.Equal(got, want), len(want))
		}
	})
	t.Run("holding", func(t *testing.T) {
		req := ok
		req.Dump = incr.ID
		req.Ranges = []wire.Range{{Off: 0, Len: incr.PayloadSize}}
		rep, got, msg := rawFetch(t, p.a, p.addrA, "b", wire.RoleServer, req)
		hb, err := os.ReadFile(incr.HoldingPath)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || msg != "" || !bytes.Equal(got, hb[image.HeaderSize:]) {
			t.Errorf("fetch of the holding image: %+v %q, %d bytes; want its %d payload bytes", rep, msg, len(got), incr.PayloadSize)
		}
	})
}

// TestPeerOwner: which server a volume is read from.
func TestPeerOwner(t *testing.T) {
	p := newPeerPair(t, true)
	ctx := context.Background()
	links := p.peers().Links(p.b.Catalog)
	defer links.Close()
	if srv, remote := links.Owner(ctx, &indexd.DiskVolumes{Changer: p.b.Changer, Catalog: p.b.Catalog}, "TEST-001"); !remote || srv.Name != "a" || srv.IndexAddr != p.addrA {
		t.Errorf("owner of TEST-001 seen from b: %+v %v; want a at %s", srv, remote, p.addrA)
	}
	self := (&indexd.Peers{Self: "a"}).Links(p.a.Catalog)
	if _, remote := self.Owner(ctx, nil, "TEST-001"); remote {
		t.Errorf("a would fetch its own volume from a peer")
	}
	var none *indexd.Peers
	if _, remote := none.Links(p.b.Catalog).Owner(ctx, nil, "TEST-001"); remote {
		t.Errorf("no peers, yet a remote owner")
	}
	if v, err := p.b.Catalog.Volume(ctx, "TEST-001"); err != nil || v.Server != "a" {
		t.Errorf("volume %+v %v: want it a's", v, err)
	}
}

// TestPeerRestoreEncrypted: an encrypted image on a's volume restores
// through b: a sends the age chunks of the frames asked for, b passes them
// on, and only the shell, with the key, decrypts them.
func TestPeerRestoreEncrypted(t *testing.T) {
	p := newPeerPair(t, true)
	ids, rcpt := testKey(t, t.TempDir(), "key.txt")
	tarb, files := bigTar(t, 24, 100<<10)
	img := addEncrypted(t, p.a, "20250609010000", "db1", "/var", 0, image.CompZstd, 200<<10, tarb, []string{rcpt})
	if _, err := p.a.Tape(context.Background(), "20250609020000", []int64{img.id}); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, p.a, p.addrB, "db1", wire.RoleClient)
	to := t.TempDir()
	q := recover.Query{Host: "db1", DLE: "/var"}
	res, err := cl.Restore(context.Background(), q, []string{"data/f012", "data/f013"}, recover.RestoreOptions{To: to, Identities: ids})
	if err != nil || !res.OK() || res.Restored != 2 {
		t.Fatalf("encrypted restore through b: %+v %v", res, err)
	}
	for _, name := range []string{"data/f012", "data/f013"} {
		if got, err := os.ReadFile(filepath.Join(to, name)); err != nil || !bytes.Equal(got, files[name]) {
			t.Errorf("%s: restored %d bytes (%v), want the %d of the source", name, len(got), err, len(files[name]))
		}
	}
	if v := res.Images[0].Volumes; len(v) != 1 || !strings.Contains(v[0].Where, "tapir server a") {
		t.Errorf("plan volumes %+v: want one of a's", v)
	}
}

// TestPeerHostile: the server b fetches from lies, or breaks off: every
// restore fails with an error naming it, nothing is written past what was
// asked, and b never panics.
func TestPeerHostile(t *testing.T) {
	for _, c := range []struct {
		name string
		// answer writes the reply to one fetch of want bytes.
		answer func(c *wire.Conn, want int64)
		say    string
	}{
		{"refuses", func(c *wire.Conn, want int64) { c.WriteMsg(wire.IndexReply{Error: "no such thing"}) }, "tapir server a: no such thing"},
		{"too big a piece", func(c *wire.Conn, want int64) {
			c.WriteMsg(wire.IndexReply{OK: true})
			c.WriteMsg(wire.FetchMsg{Data: wire.FetchPiece + 1})
		}, "out of place"},
		{"more than asked", func(c *wire.Conn, want int64) {
			c.WriteMsg(wire.IndexReply{OK: true})
			c.WriteMsg(wire.FetchMsg{Data: want + 1})
		}, "out of place"},
		{"longer frame than announced", func(c *wire.Conn, want int64) {
			c.WriteMsg(wire.IndexReply{OK: true})
			c.WriteMsg(wire.FetchMsg{Data: 1})
			c.WriteFrame(wire.FrameData, make([]byte, 2), false)
		}, "announced"},
		{"ends early", func(c *wire.Conn, want int64) {
			c.WriteMsg(wire.IndexReply{OK: true})
			c.WriteMsg(wire.FetchMsg{End: true})
		}, "the stream ended with"},
		{"garbage", func(c *wire.Conn, want int64) {
			c.WriteMsg(wire.IndexReply{OK: true})
			c.WriteFrame(wire.FrameMsg, []byte("{not json"), false)
		}, "tapir server a at"},
		{"hangs up", func(c *wire.Conn, want int64) {}, "the connection failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPeerPair(t, false)
			tlsA, err := wire.ServerConfig(p.a.ServerFiles(), wire.RoleServer)
			if err != nil {
				t.Fatal(err)
			}
			p.fakeA(t, tlsA, func(nc net.Conn) {
				wc := wire.NewConn(nc)
				var req wire.IndexRequest
				if wc.ReadMsg(&req) != nil || len(req.Ranges) == 0 {
					return
				}
				c.answer(wc, req.Ranges[0].Len)
				wc.Flush()
			})
			cl := dial(t, p.a, p.addrB, "web1", wire.RoleClient)
			msg := restoreFails(t, cl, "restored from a lying server")
			if !strings.Contains(msg, c.say) || !strings.Contains(msg, "tapir server a") {
				t.Errorf("restore: %s\nwant it to name tapir server a and say %q", msg, c.say)
			}
		})
	}
}

// fakeA registers, as server a's index address, a TLS listener with cfg
// that serves each connection with serve (then closes it), until the test
// ends.
func (p *peerPair) fakeA(t *testing.T, cfg *tls.Config, serve func(net.Conn)) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if err := p.a.Catalog.RegisterServer(context.Background(), "hosta", "localhost:"+port, time.Now(), false); err != nil {
		t.Fatal(err)
	}
}

// TestPeerNotAServer: the registered address answers with a certificate
// of the same CA that is not a server's (a client host's, at a hijacked
// address): b sends it nothing and says so.
func TestPeerNotAServer(t *testing.T) {
	p := newPeerPair(t, false)
	dir := t.TempDir()
	crt, key, err := p.a.CA.Issue("localhost", []string{wire.RoleClient}, dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := wire.ServerConfig(wire.Files{CA: filepath.Join(p.a.TLSDir, wire.CACertFile), Cert: crt, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 16)
	p.fakeA(t, cfg, func(nc net.Conn) {
		n, _ := nc.Read(make([]byte, 4096)) // the handshake, then what b sends
		got <- n
	})
	links := p.peers().Links(p.b.Catalog)
	defer links.Close()
	srv, _ := links.Owner(context.Background(), nil, "TEST-001")
	err = links.Hello(context.Background(), srv)
	if err == nil || !strings.Contains(err.Error(), "does not have the role tapir-server") {
		t.Errorf("hello to a client's certificate: %v; want refused for its role", err)
	}
	if n := <-got; n > 0 {
		t.Errorf("b sent %d bytes to a certificate that is not a server's", n)
	}
}

// BenchmarkPeerRestore: the whole of a 64 MiB image (64 incompressible
// files of 1 MiB, 256 KiB frames) restored through the shell from the
// server whose vtape holds it (local, the baseline) and through the other
// server, which fetches it (peer). bench/peer.sh prints the ratio.
func BenchmarkPeerRestore(b *testing.B) {
	a, err := testsite.New(b.TempDir(), testsite.Options{Server: "a"})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	bs, err := testsite.New(b.TempDir(), testsite.Options{Server: "b", Catalog: a.CatalogDB})
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	tarb, _ := bigTar(b, 64, 1<<20)
	ctx := context.Background()
	if _, err := a.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Tar: tarb, FrameSize: 256 << 10}}, testsite.RunOptions{Listings: true}); err != nil {
		b.Fatal(err)
	}
	tlsA, err := wire.ServerConfig(a.ServerFiles(), wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		b.Fatal(err)
	}
	serveB := func(srv *indexd.Server) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv.Log = slog.New(slog.DiscardHandler)
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { srv.Serve(sctx, ln); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return "localhost:" + port
	}
	addrA := serveB(&indexd.Server{Catalog: a.Catalog, TLS: tlsA, Holding: []string{a.Holding}, Volumes: &indexd.DiskVolumes{Changer: a.Changer, Catalog: a.Catalog}})
	if err := a.Catalog.RegisterServer(ctx, "hosta", addrA, time.Now(), false); err != nil {
		b.Fatal(err)
	}
	peers := &indexd.Peers{Self: "b", TLS: func(name string) (*tls.Config, error) { return wire.ClientConfig(a.ServerFiles(), name) }}
	addrB := serveB(&indexd.Server{Catalog: bs.Catalog, TLS: tlsA, Holding: []string{bs.Holding}, Volumes: &indexd.DiskVolumes{Changer: bs.Changer, Catalog: bs.Catalog}, Peers: peers})
	for _, c := range []struct{ name, addr string }{{"local", addrA}, {"peer", addrB}} {
		b.Run(c.name, func(b *testing.B) {
			cl := dial(b, a, c.addr, "web1", wire.RoleClient)
			b.SetBytes(int64(len(tarb)))
			for b.Loop() {
				to := b.TempDir()
				res, err := cl.Restore(ctx, recover.Query{Host: "web1", DLE: "/srv"}, []string{""}, recover.RestoreOptions{To: to})
				if err != nil || !res.OK() || res.Restored != 65 {
					b.Fatalf("restore from %s: %+v %v", c.name, res, err)
				}
				b.StopTimer()
				os.RemoveAll(to)
				b.StartTimer()
			}
		})
	}
}

// restoreFails restores etc/passwd of the full of web1:/srv through cl,
// which must fail (what: the failure, for the message) and write nothing;
// it returns what the restore said.
func restoreFails(t *testing.T, cl *recover.Client, what string) string {
	t.Helper()
	to := t.TempDir()
	res, err := cl.Restore(context.Background(), recover.Query{Host: "web1", DLE: "/srv", Date: "20250607"}, []string{"etc/passwd"}, recover.RestoreOptions{To: to})
	msg := fmt.Sprint(err)
	if res != nil {
		msg += fmt.Sprintf(" %+v", *res)
	}
	if err == nil && res.OK() {
		t.Fatalf("%s: %s", what, msg)
	}
	if left, _ := os.ReadDir(to); len(left) != 0 {
		t.Errorf("the restore wrote %v", left)
	}
	return msg
}

// heldVolumes counts the drives of a source lent and not given back.
type heldVolumes struct {
	indexd.VolumeSource
	held *atomic.Int64
}

func (h heldVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	dev, release, err := h.VolumeSource.Open(ctx, label, ask)
	if err != nil {
		return nil, nil, err
	}
	h.held.Add(1)
	var once sync.Once
	return dev, func() { once.Do(func() { h.held.Add(-1); release() }) }, nil
}

// TestPeerReadHoldsNoDriveHere: an image whose first part is on a volume
// in b's changer and whose second is on a's: b gives its drive back before
// it asks a for the second, so that a restore holds one drive at a time,
// here or there, and two servers restoring from each other's volumes
// never wait for each other's drives.
func TestPeerReadHoldsNoDriveHere(t *testing.T) {
	p := newPeerPair(t, true)
	os.RemoveAll(filepath.Join(p.b.Vtapes, "slot1"))
	if err := os.CopyFS(filepath.Join(p.b.Vtapes, "slot1"), os.DirFS(filepath.Join(p.a.Vtapes, "slot1"))); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds, err := p.b.Catalog.Dumps(ctx, "web1", "/srv")
	if err != nil || len(ds) != 2 {
		t.Fatalf("dumps %v %v", ds, err)
	}
	full := ds[1]
	parts, _ := p.b.Catalog.Parts(ctx, full.ID)
	if len(parts) != 2 || parts[0].Volume != "TEST-001" || parts[1].Volume != "TEST-002" {
		t.Fatalf("parts %+v: want TEST-001 then TEST-002", parts)
	}
	var held atomic.Int64
	heldAtDial := int64(-1)
	peers := p.peers()
	peers.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		heldAtDial = held.Load()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	links := peers.Links(p.b.Catalog)
	defer links.Close()
	pass := &indexd.Pass{Source: heldVolumes{&indexd.DiskVolumes{Changer: p.b.Changer, Catalog: p.b.Catalog}, &held}}
	defer pass.Close()
	ir := indexd.NewImageReader(ctx, pass, nil, full, parts)
	ir.Peers = links
	defer ir.Close()
	whole := make([]byte, full.PayloadSize)
	if _, err := ir.ReadAt(whole, 0); err != nil {
		t.Fatal(err)
	}
	if w := ir.Where(); len(w) != 2 || !strings.Contains(w[1], "at tapir server a") || strings.Contains(w[0], "tapir server") {
		t.Errorf("read from %q: want TEST-001 here, then TEST-002 at tapir server a", w)
	}
	if heldAtDial != 0 {
		t.Errorf("b held %d drive(s) of its own when it asked a for the second part; want none", heldAtDial)
	}
}
