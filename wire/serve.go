package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Serve is the accept loop of tapir's TCP servers (the client agent, the
// index server). It accepts connections on ln until ctx is done, then
// closes ln, waits for the handlers to return and returns nil. Each
// connection is handed to handle in a goroutine of its own, with a context
// that ends with ctx or when Serve fails. admit, when not nil, is asked
// first, in the loop itself: a connection it refuses is closed at once,
// before it costs a goroutine. A timeout from Accept is tried again after
// a short pause; any other accept error stops the handlers and, once they
// have returned, is returned as "<who>: accept on <address>: <error>".
func Serve(ctx context.Context, ln net.Listener, who string, admit func(net.Conn) bool, handle func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("%s: accept on %s: %w", who, ln.Addr(), err)
		}
		if admit != nil && !admit(c) {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(ctx, c)
		}()
	}
}
