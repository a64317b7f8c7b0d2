package wire

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// failListener fails its first Accept with err.
type failListener struct {
	net.Listener
	err error
}

func (l failListener) Accept() (net.Conn, error) { return nil, l.err }

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var handled, refused, done atomic.Int32
	served := make(chan error, 1)
	go func() {
		n := 0
		served <- Serve(ctx, ln, "test server", func(net.Conn) bool {
			n++
			if n == 1 {
				refused.Add(1)
				return false
			}
			return true
		}, func(hctx context.Context, c net.Conn) {
			defer c.Close()
			handled.Add(1)
			c.Write([]byte("x"))
			<-hctx.Done() // ends with Serve's context
			done.Add(1)
		})
	}()
	// The first connection is refused: closed without a byte.
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c1.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("refused connection: read %d, %v; want it closed", n, err)
	}
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c2.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Errorf("admitted connection: read %d, %v", n, err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
	if handled.Load() != 1 || refused.Load() != 1 || done.Load() != 1 {
		t.Errorf("handled %d, refused %d, handlers returned %d before Serve: want 1, 1, 1", handled.Load(), refused.Load(), done.Load())
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("the listener is still open after Serve returned")
	}

	// A broken listener: its error, named.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	err = Serve(context.Background(), failListener{ln2, errors.New("too many open files")}, "test server", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "test server: accept on 127.0.0.1:") || !strings.Contains(err.Error(), "too many open files") {
		t.Errorf("broken listener: %v", err)
	}
}
