package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// TestDumpKeepsBoundedWarnings: an agent that sends more warnings than
// the server keeps, some of them huge, costs the server MaxWarnings
// warnings of at most MaxWarningLen bytes (plus a mark) and one line that
// counts the rest.
func TestDumpKeepsBoundedWarnings(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := wire.InitCA(dir, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	files := func(host string, role string) wire.Files {
		if _, _, err := ca.Issue(host, []string{role}, dir, now); err != nil {
			t.Fatal(err)
		}
		return wire.Files{CA: filepath.Join(dir, wire.CACertFile), Cert: filepath.Join(dir, host+".crt"), Key: filepath.Join(dir, host+".key")}
	}
	scfg, err := wire.ServerConfig(files("web1", wire.RoleClient), wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := wire.ClientConfig(files("backup", wire.RoleServer), "web1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const sent = wire.MaxWarnings + 500
	go func() { // the agent
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		c := wire.NewConn(conn)
		var req wire.Request
		if c.ReadMsg(&req) != nil {
			return
		}
		c.WriteMsg(wire.Reply{OK: true})
		for i := range sent {
			msg := fmt.Sprintf("file %d changed while it was read", i)
			if i == 0 {
				msg = strings.Repeat("é", wire.MaxWarningLen) // cut inside a character
			}
			c.WriteFrame(wire.FrameWarn, []byte(msg), false)
		}
		c.WriteMsg(wire.Done{})
	}()
	r := &Remote{Host: "web1", Addr: ln.Addr().String(), TLS: ccfg}
	var got []string
	_, err = r.Dump(context.Background(), wire.Request{DLE: "/srv"}, DumpHandler{
		Data:  func([]byte) error { return nil },
		Index: func(wire.IndexRecord) error { return nil },
		Frame: func(image.Frame) error { return nil },
		Warn:  func(s string) { got = append(got, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != wire.MaxWarnings+1 {
		t.Fatalf("%d warnings kept, want %d and one that counts the rest", len(got), wire.MaxWarnings+1)
	}
	if first := got[0]; len(first) > wire.MaxWarningLen+len(" [cut]") || !strings.HasSuffix(first, "é [cut]") {
		t.Errorf("a long warning is kept as %d bytes ending %q", len(first), first[max(0, len(first)-12):])
	}
	if last := got[len(got)-1]; !strings.Contains(last, "sent 500 more warnings") {
		t.Errorf("last warning %q does not count the dropped ones", last)
	}
}
