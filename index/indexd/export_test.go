package indexd

import (
	"context"
	"net"

	"github.com/tapir-backup/tapir/wire"
)

// Test seams: hooks that report what a session does, so that tests wait
// for events instead of sleeping.

// ErrPeerGone is the cause of a request's context when the shell went away.
var ErrPeerGone = errPeerGone

// SetReadHook calls f before each read of a session's connection with the
// bytes received on it so far.
func SetReadHook(s *Server, f func(remote string, got int64)) { s.hooks.read = f }

// SetPlanHook calls f at each step of a plan with the request's context.
func SetPlanHook(s *Server, f func(ctx context.Context)) { s.hooks.planStep = f }

// SetDoneHook calls f when a request has been handled, with the cause of
// its context's end (nil: it was answered).
func SetDoneHook(s *Server, f func(op string, err error)) { s.hooks.done = f }

// ServeConn serves one session on conn as if its TLS handshake had named
// peer (no TLS: the fuzz target drives sessions over plain TCP).
func ServeConn(ctx context.Context, s *Server, conn net.Conn, peer wire.Peer) {
	s.prepare()
	defer conn.Close()
	s.serveConn(ctx, conn, peer, s.Log.With("remote", conn.RemoteAddr().String()), func() {})
}
