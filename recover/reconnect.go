package recover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// LostError is a failure of the connection to the index server: it
// closed (restarted, a network cut), it stalled, or it sent what the
// protocol does not allow. The session cannot go on over that
// connection; Client.Reconnect dials a new one.
type LostError struct {
	Addr string
	// Closed: the server went away (end of file, reset, broken pipe);
	// the request that failed may be sent again on a new connection.
	Closed bool
	Err    error
}

func (e *LostError) Error() string { return e.Err.Error() }
func (e *LostError) Unwrap() error { return e.Err }

// closedConn reports whether err says the other side went away.
func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed)
}

// Lost returns the failure that ended the connection, nil while it
// works.
func (cl *Client) Lost() error {
	if cl.lost == nil {
		return nil
	}
	return cl.lost
}

// Reconnect dials the same index server with the same TLS configuration
// and says hello again; the session goes on over the new connection. On
// failure the client stays lost and the error says why (Dial's sentences).
func (cl *Client) Reconnect(ctx context.Context) error {
	n, err := Dial(ctx, cl.Addr, cl.tls)
	if err != nil {
		return err
	}
	if cl.nc != nil {
		cl.nc.Close()
	}
	cl.nc, cl.c, cl.lost = n.nc, n.c, nil
	cl.Peer, cl.Roles, cl.Admin = n.Peer, n.Roles, n.Admin
	return nil
}

// tabReconnectWait bounds the reconnection a TAB may try.
const tabReconnectWait = 3 * time.Second

// noRetry marks a connection failure after which the command must not
// run again by itself (an extract that had begun writing files).
type noRetry struct{ err error }

func (e noRetry) Error() string { return e.err.Error() }
func (e noRetry) Unwrap() error { return e.err }

// runCommand runs a command; when it fails because the connection to the
// index server was lost, the shell dials the server again, says so in
// one line, reloads the view (host, disk, date, directory and extraction
// list are the shell's and stay as they were) and runs the command once
// more, unless it had begun an extract, or the connection failed in a way
// that retrying would repeat (a stall). When the server cannot be
// reached, the error says so and what to do; the next command that needs
// the server tries again. Commands that do not need it (pwd, list, lcd,
// help, quit) work while it is away.
func (sh *Shell) runCommand(c command, args []word) error {
	stale := sh.Client.Lost() != nil // lost by an earlier command: nothing of this one was sent
	err := c.run(sh, args)
	var le *LostError
	if !errors.As(err, &le) {
		return err
	}
	var nr noRetry
	retry := stale || le.Closed && !errors.As(err, &nr)
	if rerr := sh.reconnect(); rerr != nil {
		return rerr // it says what broke, and what to do
	}
	if !retry {
		if c.name == "extract" {
			return fmt.Errorf("%w\nThe extract was cut short; type extract again (extract -o replaces what was restored without asking)", err)
		}
		return fmt.Errorf("%w\n(type the command again)", err)
	}
	return c.run(sh, args)
}

// reconnect dials the index server again and reloads the view.
func (sh *Shell) reconnect() error {
	ctx := sh.ctx()
	lost := sh.Client.Lost()
	what := "the connection to the index server broke"
	var le *LostError
	if errors.As(lost, &le) && le.Closed {
		what = "the index server closed the connection"
	}
	if err := sh.Client.Reconnect(ctx); err != nil {
		return fmt.Errorf("%s and it cannot be reached again: %w; once it runs, type the command again (the shell keeps host, disk, date, directory and extraction list)", what, err)
	}
	sh.printf("%s; reconnected.\n", what)
	if err := sh.reloadView(); err != nil {
		return fmt.Errorf("reconnected, but the view of %s:%s at %s cannot be loaded again: %w", Escape(sh.Host), Escape(sh.DLE), showDate(sh.Date), err)
	}
	return nil
}

// ctx is the shell's context (Ctx), Background when none is set.
func (sh *Shell) ctx() context.Context {
	if sh.Ctx == nil {
		return context.Background()
	}
	return sh.Ctx
}

// reloadView forgets what the old connection listed and asks the new one
// for the chain of the view the shell is in (none chosen: nothing).
func (sh *Shell) reloadView() error {
	sh.cache = nil
	if sh.Host == "" || sh.DLE == "" || sh.chain == nil {
		return nil
	}
	chain, err := sh.Client.View(sh.q())
	if err != nil {
		return err
	}
	sh.chain = chain
	return nil
}

// quietReconnect is reconnect for TAB completion: nothing is printed
// (the line being edited stays as it is), the view is reloaded, and a
// server that does not answer within a few seconds leaves the TAB without
// completions rather than the person waiting (the next command tries with
// the full patience of Dial).
func (sh *Shell) quietReconnect() bool {
	ctx := sh.ctx()
	ctx, cancel := context.WithTimeout(ctx, tabReconnectWait)
	defer cancel()
	return sh.Client.Reconnect(ctx) == nil && sh.reloadView() == nil
}
