package server

import (
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy sits between the server and a client agent on loopback, as a
// network would: it counts connections and bytes, and can stall or cut the
// agent's side of every connection.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   []*proxied
	stalled chan struct{} // non-nil: agent->server bytes wait until closed
	cutAt   int64         // > 0: cut a connection after this many agent->server bytes
	cutOne  chan struct{} // non-nil: the next cut is the only one, closed when it happens
	stallAt int64         // > 0: stall once a connection has carried this many agent->server bytes
	sentAt  int64         // > 0: close sent once a connection has carried this many agent->server bytes
	sent    chan struct{}
}

type proxied struct {
	start, end time.Time
	// last is when the newest bytes from the agent were about to be
	// forwarded: taken before the server can read them, so a connection
	// the server opens after reading the last bytes of another always
	// starts after that one's last.
	last      time.Time
	fromAgent atomic.Int64
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.resume() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(c net.Conn) {
	defer c.Close()
	a, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer a.Close()
	pc := &proxied{start: time.Now()}
	p.mu.Lock()
	p.conns = append(p.conns, pc)
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, c); a.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := a.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if p.stallAt > 0 && pc.fromAgent.Load()+int64(n) > p.stallAt && p.stalled == nil {
					p.stallAt = 0
					p.stalled = make(chan struct{})
				}
				if p.sent != nil && pc.fromAgent.Load()+int64(n) > p.sentAt {
					close(p.sent)
					p.sent = nil
				}
				st, cut := p.stalled, p.cutAt
				if cut > 0 && pc.fromAgent.Load()+int64(n) > cut && p.cutOne != nil {
					p.cutAt = 0 // decided under the lock: no later connection is cut
					close(p.cutOne)
					p.cutOne = nil
				}
				p.mu.Unlock()
				if st != nil {
					<-st
				}
				if cut > 0 && pc.fromAgent.Load()+int64(n) > cut {
					c.Close()
					a.Close()
					break
				}
				p.mu.Lock()
				pc.last = time.Now()
				p.mu.Unlock()
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
				pc.fromAgent.Add(int64(n))
			}
			if err != nil {
				break
			}
		}
		c.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
	p.mu.Lock()
	pc.end = time.Now()
	p.mu.Unlock()
}

func (p *proxy) stall() {
	p.mu.Lock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
	p.mu.Unlock()
}

func (p *proxy) resume() {
	p.mu.Lock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	p.mu.Unlock()
}

// stallAfter stalls the agent->server bytes of every connection once one
// connection has carried more than n of them (a dump has started, not
// only an estimate), until resume.
func (p *proxy) stallAfter(n int64) {
	p.mu.Lock()
	p.stallAt = n
	p.mu.Unlock()
}

// cutOnceAfter cuts the first connection that carries more than n
// agent->server bytes, and no other; the channel is closed at the cut.
func (p *proxy) cutOnceAfter(n int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAt = n
	p.cutOne = make(chan struct{})
	return p.cutOne
}

// whenSent returns a channel closed once a connection has carried more
// than n agent->server bytes from now on.
func (p *proxy) whenSent(n int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sentAt = n
	p.sent = make(chan struct{})
	return p.sent
}

func (p *proxy) cutAfter(n int64) {
	p.mu.Lock()
	p.cutAt = n
	p.mu.Unlock()
}

// peakDumps is the largest number of connections that overlapped in time
// among those that carried more than min bytes from the agent (dumps, not
// estimates). A connection spans from its start to the last bytes the
// agent sent on it (the server's Reply to its Confirm), not to its close:
// the close is seen whenever the proxy gets scheduled, possibly after the
// server started the next dump, which would count an overlap that never
// was.
func (p *proxy) peakDumps(min int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var big []*proxied
	for _, c := range p.conns {
		if c.fromAgent.Load() > min {
			big = append(big, c)
		}
	}
	peak := 0
	for _, a := range big {
		n := 0
		for _, b := range big {
			if !b.start.After(a.start) && (b.end.IsZero() || b.last.After(a.start)) {
				n++
			}
		}
		peak = max(peak, n)
	}
	return peak
}

// randomFiles writes n incompressible files of size bytes under dir.
func randomFiles(t *testing.T, dir string, n, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('0'+i/26))), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
