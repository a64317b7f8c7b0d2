package recover

import (
	"bytes"
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// TestShellReconnectsAfterAStall: a server that stops answering (not
// closing) ends the connection after Stall; the shell reconnects, says
// so, and does not run the command again by itself (it would stall
// again); the next command works on the new connection. A fake index
// server over real TLS: the first session never answers listhost, the
// second does.
func TestShellReconnectsAfterAStall(t *testing.T) {
	addr, cfg := fakeIndexServer(t, func(session int, c *wire.Conn, req wire.IndexRequest) {
		switch {
		case req.Op == wire.IdxHello:
			c.WriteMsg(wire.IndexReply{OK: true, Version: wire.IndexVersion, Peer: "web1", Roles: []string{wire.RoleClient}})
		case session == 0:
			// Silent: read on until the shell gives up.
		default:
			c.WriteMsg(wire.IndexReply{OK: true, Hosts: []string{"web1"}})
		}
	})
	cl, err := Dial(context.Background(), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Stall = 100 * time.Millisecond
	var out bytes.Buffer
	sh := &Shell{Client: cl, Out: &out}
	err = sh.Exec("listhost")
	if err == nil || !strings.Contains(err.Error(), "did not answer for 100ms") || !strings.Contains(err.Error(), "(type the command again)") {
		t.Errorf("listhost on a silent server: %v", err)
	}
	if got := out.String(); got != "the connection to the index server broke; reconnected.\n" {
		t.Errorf("output %q", got)
	}
	out.Reset()
	cl.Stall = 0 // the default: a busy machine may take its time now
	if err := sh.Exec("listhost"); err != nil || out.String() != "web1\n" {
		t.Errorf("listhost after reconnecting: %v %q", err, out.String())
	}
}

// TestDialHelloEndsWithItsContext: a server that takes the TLS handshake
// but never answers hello does not hold Dial (a TAB, a ^C at start-up)
// once its context ends.
func TestDialHelloEndsWithItsContext(t *testing.T) {
	got := make(chan struct{})
	addr, cfg := fakeIndexServer(t, func(_ int, _ *wire.Conn, req wire.IndexRequest) {
		if req.Op == wire.IdxHello {
			close(got)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, err := Dial(ctx, addr, cfg)
	if err == nil || !strings.Contains(err.Error(), "no hello before context canceled") {
		t.Errorf("Dial to a server that never says hello: %v", err)
	}
}

// fakeIndexServer serves index sessions over real TLS (a test CA) with
// handle called for each request (session counts connections from 0); it
// returns the address and the shell's TLS configuration.
func fakeIndexServer(t *testing.T, handle func(session int, c *wire.Conn, req wire.IndexRequest)) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := wire.InitCA(filepath.Join(dir, "ca"), "test", now)
	if err != nil {
		t.Fatal(err)
	}
	scrt, skey, _ := ca.Issue("localhost", []string{wire.RoleServer}, dir, now)
	ccrt, ckey, _ := ca.Issue("web1", []string{wire.RoleClient}, dir, now)
	caFile := filepath.Join(ca.Dir, wire.CACertFile)
	srvCfg, err := wire.ServerConfig(wire.Files{CA: caFile, Cert: scrt, Key: skey}, wire.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for session := 0; ; session++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func(session int) {
				defer nc.Close()
				c := wire.NewConn(nc)
				for {
					var req wire.IndexRequest
					if err := c.ReadMsg(&req); err != nil {
						return
					}
					handle(session, c, req)
				}
			}(session)
		}
	}()
	cfg, err := wire.ClientConfig(wire.Files{CA: caFile, Cert: ccrt, Key: ckey}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), cfg
}
