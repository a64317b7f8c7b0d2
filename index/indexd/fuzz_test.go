package indexd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// FuzzSession feeds a session of the index server, over a real small
// catalog (a full on a vtape, an incremental on the holding disk, and an
// encrypted full of web1:/enc on the holding disk), with
// whatever a shell (or another tapir server) might send. mode bit 0: an
// admin certificate rather than web1's client one; bit 2: a server's
// certificate, which may fetch payload ranges. mode bit 1 clear: in holds requests separated by
// newlines, each sent as a frame once the previous one is answered, and
// the replies are read as the protocol says (entries, restore stream);
// set: in is written to the connection as it is, then the write side is
// closed. Whatever comes back must be well-formed frames (messages that
// decode strictly), every request must be answered or the session closed,
// and the session must end when the shell does. Seeds run in go test.
func FuzzSession(f *testing.F) {
	dir := f.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { site.Close() })
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{}); err != nil {
		f.Fatal(err)
	}
	testsite.Mutate(data)
	if _, err := site.Run(ctx, "20250608010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: 1}}, testsite.RunOptions{HoldingOnly: true}); err != nil {
		f.Fatal(err)
	}
	_, rcpt := testKey(f, dir, "key.txt")
	tarb, _ := bigTar(f, 6, 40<<10)
	addEncrypted(f, site, "20250609010000", "web1", "/enc", 0, image.CompZstd, 32<<10, tarb, []string{rcpt})
	srv := &indexd.Server{Catalog: site.Catalog, Volumes: &indexd.DiskVolumes{Changer: site.Changer, Catalog: site.Catalog},
		Holding: []string{site.Holding}, Log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })

	for _, reqs := range []string{
		`{"op":"hello"}` + "\n" + `{"op":"listhost"}` + "\n" + `{"op":"listdisk","host":"web1"}`,
		`{"op":"history","host":"web1","dle":"/srv"}` + "\n" + `{"op":"view","host":"web1","dle":"/srv","date":"20250607"}`,
		`{"op":"ls","host":"web1","dle":"/srv","path":"home"}` + "\n" + `{"op":"stat","host":"web1","dle":"/srv","path":"/etc/passwd"}`,
		`{"op":"find","host":"web1","dle":"/srv","pattern":"*.txt","limit":2}`,
		`{"op":"plan","host":"web1","dle":"/srv","paths":["etc","home/carol/hello.txt","etc/passwd"]}`,
		`{"op":"restore","host":"web1","dle":"/srv","paths":["etc/passwd","home/carol/hello.txt"]}` + "\n" + `{"op":"hello"}`,
		`{"op":"restore","host":"web1","dle":"/srv","paths":["/"]}`,
		`{"op":"ls","host":"web2","dle":"/srv"}` + "\n" + `{"op":"ls","host":"web1","dle":"/srv","path":"../x"}`,
		`{"op":"plan","host":"web1","dle":"/srv","paths":["nosuch"]}` + "\n" + `{"op":"nosuch"}`,
		`{"op":"hello","extra":1}`,
		`{"op":"history","host":"web1","dle":"/enc"}` + "\n" + `{"op":"plan","host":"web1","dle":"/enc","paths":["data/f002"]}`,
		`{"op":"restore","host":"web1","dle":"/enc","paths":["data/f001","data/f002"]}` + "\n" + `{"op":"restore","host":"web1","dle":"/enc","paths":["/"]}`,
	} {
		f.Add(byte(0), []byte(reqs))
		f.Add(byte(1), []byte(reqs))
	}
	for _, reqs := range []string{
		`{"op":"fetch","host":"web1","dle":"/srv","dump":1,"ranges":[{"off":0,"len":100},{"off":50,"len":5000}]}` + "\n" + `{"op":"hello"}`,
		`{"op":"fetch","host":"web1","dle":"/srv","dump":2,"ranges":[{"off":10,"len":1}]}` + "\n" + `{"op":"fetch","host":"web1","dle":"/enc","dump":3,"ranges":[{"off":0,"len":70000}]}`,
		`{"op":"fetch","host":"web1","dle":"/srv","dump":1,"ranges":[{"off":-1,"len":1}]}` + "\n" + `{"op":"fetch","host":"web1","dle":"/srv","dump":1,"ranges":[{"off":0,"len":99999999}]}`,
		`{"op":"fetch","host":"web2","dle":"/srv","dump":1,"ranges":[{"off":0,"len":1}]}` + "\n" + `{"op":"fetch","dump":1}`,
	} {
		f.Add(byte(4), []byte(reqs))
		f.Add(byte(0), []byte(reqs))
	}
	var hello bytes.Buffer
	wire.NewConn(&hello).WriteMsg(wire.IndexRequest{Op: wire.IdxHello})
	f.Add(byte(2), hello.Bytes())
	f.Add(byte(2), append(bytes.Clone(hello.Bytes()), hello.Bytes()[:7]...))
	f.Add(byte(2), []byte("M\x00\x10\x00\x01{\"op\":"))           // a request over the limit
	f.Add(byte(2), []byte("Z\x00\x00\x00\x01x"))                  // an unknown frame type
	f.Add(byte(2), []byte("I\x00\x00\x00\x02\x01a"))              // entries, not a request
	f.Add(byte(3), []byte("M\x00\x00\x00\x0f{\"op\":\"hello\"}")) // admin, raw

	f.Fuzz(func(t *testing.T, mode byte, in []byte) {
		peer := wire.Peer{Host: "web1", Roles: []string{wire.RoleClient}}
		if mode&1 != 0 {
			peer = wire.Peer{Host: "ops", Roles: []string{wire.RoleAdmin}}
		}
		if mode&4 != 0 {
			peer = wire.Peer{Host: "backup2", Roles: []string{wire.RoleServer}}
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}()
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		sc, ok := <-accepted
		if !ok {
			t.Fatal("accept failed")
		}
		ended := make(chan struct{})
		go func() {
			indexd.ServeConn(context.Background(), srv, sc, peer)
			close(ended)
		}()
		c := wire.NewConn(cc)
		if mode&2 != 0 {
			go func() {
				cc.Write(in)
				cc.(*net.TCPConn).CloseWrite()
			}()
			for {
				typ, b, err := c.ReadFrame()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("reading what the server sent: %v", err)
					}
					break
				}
				checkFrame(t, typ, b)
			}
		} else {
			converse(t, c, in)
			cc.Close()
		}
		<-ended
	})
}

// converse sends each line of in as a request and reads its answer as a
// shell would, checking every frame; it stops when the server closes the
// session (after a malformed request).
func converse(t *testing.T, c *wire.Conn, in []byte) {
	for i, line := range bytes.Split(in, []byte("\n")) {
		if i == 8 {
			return
		}
		var req wire.IndexRequest
		malformed := wire.DecodeMsg(line, &req) != nil
		if err := c.WriteFrame(wire.FrameMsg, line, true); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		typ, b, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("request %d (%q): no reply: %v", i, line, err)
		}
		if typ != wire.FrameMsg {
			t.Fatalf("request %d: reply is a frame %q", i, typ)
		}
		var r wire.IndexReply
		if err := wire.DecodeMsg(b, &r); err != nil {
			t.Fatalf("request %d: reply %q does not decode: %v", i, b, err)
		}
		if r.OK == (r.Error != "") {
			t.Fatalf("request %d: reply %+v is both or neither ok and an error", i, r)
		}
		if malformed {
			if r.OK {
				t.Fatalf("malformed request %q answered ok", line)
			}
			if _, _, err := c.ReadFrame(); !errors.Is(err, io.EOF) {
				t.Fatalf("after a malformed request the session goes on: %v", err)
			}
			return
		}
		if !r.OK {
			continue
		}
		switch req.Op {
		case wire.IdxLs, wire.IdxFind, wire.IdxRestore:
			if err := c.ReadEntries(r.Count, func(e wire.EntryInfo) error {
				if e.Image < 0 || (req.Op == wire.IdxRestore && e.Image >= len(r.Images)) {
					t.Fatalf("entry %+v names image %d of %d", e, e.Image, len(r.Images))
				}
				return nil
			}); err != nil {
				t.Fatalf("request %d: entries: %v", i, err)
			}
		}
		if req.Op == wire.IdxFetch {
			readFetch(t, c, req)
			continue
		}
		if req.Op != wire.IdxRestore {
			continue
		}
		for {
			typ, b, err := c.ReadFrame()
			if err != nil {
				t.Fatalf("restore stream: %v", err)
			}
			checkFrame(t, typ, b)
			if typ != wire.FrameMsg {
				continue
			}
			var m wire.RestoreMsg
			if err := wire.DecodeMsg(b, &m); err != nil {
				t.Fatalf("restore stream message %q: %v", b, err)
			}
			if s := m.Sealed; s != nil && (s.Image >= len(r.Images) || !r.Images[s.Image].Encrypted() || s.Cipher < 0) {
				t.Fatalf("sealed frame %+v of a plan of images %+v", s, r.Images)
			}
			if m.End != nil {
				break
			}
		}
	}
}

// readFetch reads a fetch stream: messages that decode strictly, no more
// data than announced, no more than the ranges asked for, and an end or
// an error.
func readFetch(t *testing.T, c *wire.Conn, req wire.IndexRequest) {
	var asked, got int64
	for _, r := range req.Ranges {
		asked += r.Len
	}
	for {
		typ, b, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("fetch stream: %v", err)
		}
		if typ != wire.FrameMsg {
			t.Fatalf("fetch stream: a frame %q where a message belongs", typ)
		}
		var m wire.FetchMsg
		if err := wire.DecodeMsg(b, &m); err != nil {
			t.Fatalf("fetch stream message %q: %v", b, err)
		}
		switch {
		case m.End:
			if got != asked {
				t.Fatalf("fetch stream ended after %d of the %d bytes asked for", got, asked)
			}
			return
		case m.Error != "":
			return
		case m.Data > 0:
			if m.Data > wire.FetchPiece || got+m.Data > asked {
				t.Fatalf("fetch stream announces %d bytes after %d of %d", m.Data, got, asked)
			}
			for want := got + m.Data; got < want; {
				typ, b, err := c.ReadFrame()
				if err != nil || typ != wire.FrameData || int64(len(b)) > want-got {
					t.Fatalf("fetch data: frame %q of %d bytes, %v", typ, len(b), err)
				}
				got += int64(len(b))
			}
		}
	}
}

// checkFrame checks one frame from the server on its own: messages decode
// strictly as a reply or a restore message, entry batches decode.
func checkFrame(t *testing.T, typ byte, b []byte) {
	switch typ {
	case wire.FrameMsg:
		var r wire.IndexReply
		var m wire.RestoreMsg
		var fm wire.FetchMsg
		if wire.DecodeMsg(b, &r) != nil && wire.DecodeMsg(b, &m) != nil && wire.DecodeMsg(b, &fm) != nil {
			t.Fatalf("message %q is neither a reply, a restore message nor a fetch message", b)
		}
	case wire.FrameIndex:
		if err := wire.DecodeEntries(b, func(wire.EntryInfo) error { return nil }); err != nil {
			t.Fatalf("entry batch: %v", err)
		}
	case wire.FrameData:
	default:
		t.Fatalf("the server sent a frame %q", typ)
	}
}
