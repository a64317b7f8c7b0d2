package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// Remote is the server's handle on one client agent.
type Remote struct {
	Host string      // the DLE host, as the agent's certificate must name it
	Addr string      // host:port to dial
	TLS  *tls.Config // from wire.ClientConfig(files, Host)
	// Timeout is the progress timeout: a call fails when no byte arrives
	// for this long. It is not a limit on the total time of a dump.
	Timeout time.Duration
}

func (r *Remote) what() string { return fmt.Sprintf("client agent %s at %s", r.Host, r.Addr) }

func (r *Remote) timeout() time.Duration {
	if r.Timeout <= 0 {
		return 30 * time.Minute
	}
	return r.Timeout
}

// TransportError is a failure of the connection to an agent, not a
// decision of either side: a dial that failed, a stream cut, reset,
// corrupted (TLS rejects a changed record) or stalled past the progress
// timeout. A dump that ends with one can resume (wire.Resume).
type TransportError struct {
	Err error
	// Partial is how many payload bytes of a data frame had arrived when
	// the stream was cut (they are dropped).
	Partial int64
}

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

func transport(err error) error { return &TransportError{Err: err} }

// call dials, handshakes, sends req and reads the Reply.
func (r *Remote) call(ctx context.Context, req wire.Request) (*wire.Conn, net.Conn, *wire.Reply, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, nil, nil, transport(fmt.Errorf("%s: cannot connect: %w (is `tapir client` running there and port open?)", r.what(), errors.Unwrap(err)))
	}
	// TLS over a BatchConn: a dump's records are read 256 KiB at a time
	// when that much has arrived, not one read(2) per 16 KiB record.
	bc := wire.NewBatchConn(raw)
	tc := tls.Client(bc, r.TLS)
	raw.SetDeadline(time.Now().Add(min(30*time.Second, r.timeout())))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if connLost(err) {
			// Not a certificate: the connection went (an agent
			// restarting, a network still cut).
			return nil, nil, nil, transport(wire.ExplainTLS(r.what(), err))
		}
		return nil, nil, nil, wire.ExplainTLS(r.what(), err)
	}
	c := wire.NewBatchedConn(tc, bc)
	if err := c.WriteMsg(req); err != nil {
		raw.Close()
		return nil, nil, nil, transport(fmt.Errorf("%s: send %s request: %w", r.what(), req.Op, err))
	}
	raw.SetDeadline(time.Now().Add(r.timeout()))
	var rep wire.Reply
	if err := c.ReadMsg(&rep); err != nil {
		raw.Close()
		if isTLSAlert(err) {
			return nil, nil, nil, wire.ExplainTLS(r.what(), err)
		}
		return nil, nil, nil, transport(fmt.Errorf("%s: read reply to %s: %w", r.what(), req.Op, err))
	}
	if !rep.OK {
		raw.Close()
		return nil, nil, nil, fmt.Errorf("%s refused %s: %s", r.what(), req.Op, rep.Error)
	}
	return c, raw, &rep, nil
}

// connLost says that err is the connection going away, not a refusal.
func connLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded)
}

// isTLSAlert: with TLS 1.3 a server's rejection of our certificate arrives
// with the first read, not during the handshake.
func isTLSAlert(err error) bool {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return true
	}
	var re *net.OpError
	return errors.As(err, &re) && re.Op == "remote error"
}

// Selfcheck asks the agent for its version and features and, when dle is
// not empty, whether it can dump it (Reply.Problems).
func (r *Remote) Selfcheck(ctx context.Context, dle string) (*wire.Reply, error) {
	_, raw, rep, err := r.call(ctx, wire.Request{Op: wire.OpSelfcheck, DLE: dle})
	if err != nil {
		return nil, err
	}
	raw.Close()
	return rep, nil
}

// Estimate asks for the sizes of the given levels of dle.
func (r *Remote) Estimate(ctx context.Context, req wire.Request) ([]wire.Estimate, error) {
	req.Op = wire.OpEstimate
	_, raw, rep, err := r.call(ctx, req)
	if err != nil {
		return nil, err
	}
	raw.Close()
	return rep.Estimates, nil
}

// DumpHandler receives a dump stream. Data gets payload bytes in order;
// the slices are only valid during the call.
type DumpHandler struct {
	// Reply, when set, sees the agent's reply to the dump request (its
	// version and features) before any payload; an error ends the dump.
	Reply func(*wire.Reply) error
	Data  func([]byte) error
	Index func(wire.IndexRecord) error
	Frame func(image.Frame) error
	Warn  func(string)
	// Listing gets the directory listings the agent sends (FrameListing)
	// when the request asked for them (wire.Request.Listings): the
	// record's directory and dumpdir are the agent's word, unchecked. An
	// error ends the dump. Nil: listing frames are read and dropped.
	Listing func(wire.ListingRecord) error
	// Checkpoint gets the resume points of a client-side encrypted dump
	// (FrameCheckpoint), the agent's word: the handler checks them. An
	// error ends the dump; nil: a checkpoint is a protocol error.
	Checkpoint func(wire.Checkpoint) error
	// Safe is called with the agent's Done once the stream is complete; it
	// returns nil when the image is safe on the holding disk. The agent is
	// told the verdict and advances its incremental state only on nil.
	Safe func(*wire.Done) error
}

// Dump runs a dump and feeds the stream to h. It returns the agent's Done
// message, or an error that says what went wrong and where; when the
// agent gave up (Done with an error) its Done is returned with the error,
// for the commands it ran (Done.Hooks).
func (r *Remote) Dump(ctx context.Context, req wire.Request, h DumpHandler) (*wire.Done, error) {
	req.Op = wire.OpDump
	c, raw, rep, err := r.call(ctx, req)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	if h.Reply != nil {
		if err := h.Reply(rep); err != nil {
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()
	warnings, dropped := 0, 0
	warn := func(b []byte) {
		if h.Warn == nil {
			return
		}
		if warnings >= wire.MaxWarnings {
			dropped++
			return
		}
		warnings++
		if len(b) > wire.MaxWarningLen {
			cut := wire.MaxWarningLen
			for cut > 0 && !utf8.RuneStart(b[cut]) {
				cut--
			}
			b = append(b[:cut:cut], " [cut]"...)
		}
		h.Warn(string(b))
	}
	for {
		raw.SetReadDeadline(time.Now().Add(r.timeout()))
		typ, b, err := c.ReadFrame()
		if err != nil {
			err = r.dumpReadErr(ctx, req, err)
			var te *TransportError
			if errors.As(err, &te) {
				te.Partial = int64(c.PartialData())
			}
			return nil, err
		}
		switch typ {
		case wire.FrameData:
			if err := h.Data(b); err != nil {
				return nil, err
			}
		case wire.FrameIndex:
			if err := wire.DecodeIndex(b, h.Index); err != nil {
				return nil, fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
			}
		case wire.FrameFrame:
			if err := wire.DecodeFrameInfo(b, h.Frame); err != nil {
				return nil, fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
			}
		case wire.FrameListing:
			if h.Listing == nil {
				break
			}
			if err := wire.DecodeListings(b, h.Listing); err != nil {
				return nil, fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
			}
		case wire.FrameCheckpoint:
			if h.Checkpoint == nil {
				return nil, fmt.Errorf("%s: dump of %s: %w: a checkpoint record in a stream that was not asked for one", r.what(), req.DLE, wire.ErrProtocol)
			}
			ck, err := wire.DecodeCheckpoint(b)
			if err == nil {
				err = h.Checkpoint(ck)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
			}
		case wire.FrameWarn:
			warn(b)
		case wire.FrameMsg:
			if dropped > 0 {
				h.Warn(fmt.Sprintf("%s sent %d more warnings for %s, not kept: the server keeps at most %d warnings of one dump", r.what(), dropped, req.DLE, wire.MaxWarnings))
			}
			var d wire.Done
			if err := wire.DecodeMsg(b, &d); err != nil {
				return nil, fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
			}
			if d.Error != "" {
				// The Done comes with the error: its Hooks say what ran.
				return &d, fmt.Errorf("%s: dump of %s failed on the client: %s", r.what(), req.DLE, d.Error)
			}
			return &d, r.confirm(ctx, c, raw, req, &d, h)
		}
	}
}

// dumpReadErr is the error of a failed read of a dump stream.
func (r *Remote) dumpReadErr(ctx context.Context, req wire.Request, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: dump of %s cancelled: %w", r.what(), req.DLE, ctx.Err())
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return transport(fmt.Errorf("%s: dump of %s made no progress for %s (dtimeout); giving up", r.what(), req.DLE, r.timeout()))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return transport(fmt.Errorf("%s: connection closed in the middle of the dump of %s (agent killed or network cut)", r.what(), req.DLE))
	}
	if errors.Is(err, wire.ErrProtocol) {
		return fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err)
	}
	return transport(fmt.Errorf("%s: dump of %s: %w", r.what(), req.DLE, err))
}

// confirm runs h.Safe and tells the agent its verdict. An agent without
// incremental state closes the connection after Done; that is not an
// error, only a warning when the image was meant to advance a state.
func (r *Remote) confirm(ctx context.Context, c *wire.Conn, raw net.Conn, req wire.Request, d *wire.Done, h DumpHandler) error {
	var safe error
	if h.Safe != nil {
		safe = h.Safe(d)
	}
	cf := wire.Confirm{OK: safe == nil, SHA256: d.SHA256}
	if safe != nil {
		cf.Error = safe.Error()
	}
	raw.SetDeadline(time.Now().Add(time.Minute))
	err := c.WriteMsg(cf)
	var rep wire.Reply
	if err == nil {
		err = c.ReadMsg(&rep)
	}
	if err != nil && safe == nil && req.Token != "" {
		// The connection went with the verdict: told again on a new
		// one (the agent keeps the dump's state for it).
		raw.Close()
		var late *wire.Reply
		var lraw net.Conn
		_, lraw, late, err = r.call(ctx, wire.Request{Op: wire.OpConfirm, DLE: req.DLE, Level: req.Level, Datestamp: req.Datestamp, Token: req.Token, SHA256: d.SHA256})
		if err == nil {
			lraw.Close()
			rep = *late
		} else if h.Warn != nil {
			h.Warn(fmt.Sprintf("%s could not be told that the image of %s is safe (%v): its incremental state is not advanced (the next incremental will hold more)", r.what(), req.DLE, err))
		}
	}
	if err == nil && !rep.OK && safe == nil && h.Warn != nil {
		h.Warn(fmt.Sprintf("%s could not advance the incremental state of %s: %s (the next incremental will hold more)", r.what(), req.DLE, rep.Error))
	}
	return safe
}
