package wire

import (
	"bytes"
	"crypto/tls"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the writes and reads that reach the connection.
type countConn struct {
	net.Conn
	writes, reads atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }
func (c *countConn) Read(p []byte) (int, error)  { c.reads.Add(1); return c.Conn.Read(p) }

// A dump over TLS on BatchConns: the sender's records reach the socket in
// BatchSize batches, not one write per 16 KiB record; a flushed message
// reaches the peer (which answers it), and every byte arrives in order.
func TestBatchConn(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := InitCA(dir, "t", now)
	if err != nil {
		t.Fatal(err)
	}
	for h, role := range map[string]string{"srv": RoleServer, "web1": RoleClient} {
		if _, _, err := ca.Issue(h, []string{role}, dir, now); err != nil {
			t.Fatal(err)
		}
	}
	files := func(h string) Files {
		return Files{CA: filepath.Join(dir, CACertFile), Cert: filepath.Join(dir, h+".crt"), Key: filepath.Join(dir, h+".key")}
	}
	scfg, err := ServerConfig(files("web1"), RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := ClientConfig(files("srv"), "web1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	const size = 4 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var sent *countConn
	var afterHandshake int64
	agent := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			agent <- err
			return
		}
		defer raw.Close()
		sent = &countConn{Conn: raw}
		bc := NewBatchConn(sent)
		tc := tls.Server(bc, scfg)
		if err := tc.Handshake(); err != nil {
			agent <- err
			return
		}
		c := NewBatchedConn(tc, bc)
		var req Request
		if err := c.ReadMsg(&req); err != nil {
			agent <- err
			return
		}
		afterHandshake = sent.writes.Load()
		if _, err := (DataWriter{C: c, Chunk: 1 << 20}).Write(data); err != nil {
			agent <- err
			return
		}
		if err := c.WriteMsg(Done{Files: 7}); err != nil {
			agent <- err
			return
		}
		var cf Confirm
		agent <- c.ReadMsg(&cf) // the server answered the flushed Done
	}()

	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bc := NewBatchConn(raw)
	tc := tls.Client(bc, ccfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := NewBatchedConn(tc, bc)
	if err := c.WriteMsg(Request{Op: OpDump, DLE: "/x"}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		typ, b, err := c.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if typ == FrameMsg {
			var d Done
			if err := DecodeMsg(b, &d); err != nil || d.Files != 7 {
				t.Fatalf("Done %+v, %v", d, err)
			}
			break
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(data))
	}
	if err := c.WriteMsg(Confirm{OK: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-agent; err != nil {
		t.Fatal(err)
	}
	// 4 MiB is 256 records of 16 KiB: without batching, 256 writes.
	if w := sent.writes.Load() - afterHandshake; w > size/BatchSize+4 {
		t.Errorf("the sender made %d writes for %d bytes; batched, at most %d", w, size, size/BatchSize+4)
	}
}
