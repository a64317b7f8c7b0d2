package recover

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// Client is a session with the index server (docs/format/index-protocol.md).
// It is not safe for concurrent use: one request at a time.
type Client struct {
	Addr  string
	Peer  string   // the host our certificate names, as the server saw it
	Roles []string // our certificate's roles
	Admin bool     // the server lets us browse every host
	// Stall is how long a reply may take before the session is given up
	// (default 10 minutes: a volume being loaded by a robot takes a while).
	Stall time.Duration

	nc  net.Conn
	c   *wire.Conn
	tls *tls.Config // to dial again (Reconnect)
	// lost is set when the connection failed: the session is out of step
	// with the server and every request fails until Reconnect.
	lost *LostError
}

// ServerError is an error sentence from the index server; the shell prints
// it as it is.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return e.Msg }

// Dial connects to the index server at addr (host:port) with mutual TLS
// and says hello. Errors say what to check: the address, the server, the
// certificates.
func Dial(ctx context.Context, addr string, cfg *tls.Config) (*Client, error) {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		port := "10082"
		if _, p, err := net.SplitHostPort(addr); err == nil {
			port = p
		}
		return nil, fmt.Errorf("index server %s is unreachable: %v (is `tapir server` running there, and port %s open?)", addr, unwrapNet(err), port)
	}
	tc := tls.Client(&bufConn{Conn: raw, r: bufio.NewReaderSize(raw, 256<<10)}, cfg)
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, explainHandshake(addr, cfg, err)
	}
	cl := &Client{Addr: addr, nc: tc, c: wire.NewConn(tc), tls: cfg}
	// The hello ends with ctx too (an interrupt, a TAB's patience).
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	r, err := cl.do(wire.IndexRequest{Op: wire.IdxHello})
	stop()
	if err != nil {
		tc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("index server %s: no hello before %w", addr, ctx.Err())
		}
		var se *ServerError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, explainHandshake(addr, cfg, err)
	}
	cl.Peer, cl.Roles, cl.Admin = r.Peer, r.Roles, r.Admin
	return cl, nil
}

// bufConn reads the connection through a 256 KiB buffer: a restore
// stream arrives in TLS records of 16 KiB, which TLS alone reads with a
// system call every 32 KiB or so (11,000 for a 345 MiB image, 1,400
// through the buffer). Deadlines and Close are the connection's.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func unwrapNet(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// Close ends the session.
func (cl *Client) Close() error { return cl.nc.Close() }

func (cl *Client) stall() time.Duration {
	if cl.Stall > 0 {
		return cl.Stall
	}
	return 10 * time.Minute
}

// send writes a request. One the server would refuse for its size (too
// many paths, too many bytes) is not sent: the session stays usable.
func (cl *Client) send(req wire.IndexRequest) error {
	if len(req.Paths) > wire.MaxRequestPaths {
		return fmt.Errorf("the extraction list holds %d paths; the index server takes at most %d at a time: add their directories instead, or extract in several steps", len(req.Paths), wire.MaxRequestPaths)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode the %s request: %w", req.Op, err)
	}
	if len(b) > wire.MaxIndexRequest {
		return fmt.Errorf("the %s request would be %d bytes, more than the %d the index server reads: name fewer paths at a time (a directory counts as one)", req.Op, len(b), wire.MaxIndexRequest)
	}
	if cl.lost != nil {
		return cl.lost
	}
	cl.nc.SetDeadline(time.Now().Add(cl.stall()))
	if err := cl.c.WriteFrame(wire.FrameMsg, b, true); err != nil {
		return cl.broken(err)
	}
	return nil
}

// broken turns a connection failure into a sentence, and marks the
// session lost: what the server sends next would not be what the next
// request expects.
func (cl *Client) broken(err error) error {
	var ne net.Error
	var le *LostError
	switch {
	case errors.As(err, &le):
		return le
	case errors.As(err, &ne) && ne.Timeout():
		le = &LostError{Addr: cl.Addr, Err: fmt.Errorf("index server %s did not answer for %v; the session is closed", cl.Addr, cl.stall())}
	case errors.Is(err, wire.ErrProtocol):
		le = &LostError{Addr: cl.Addr, Err: fmt.Errorf("index server %s: %w", cl.Addr, err)}
	default:
		le = &LostError{Addr: cl.Addr, Closed: closedConn(err), Err: fmt.Errorf("lost the connection to index server %s: %v", cl.Addr, unwrapNet(err))}
	}
	cl.lost = le
	cl.nc.Close()
	return le
}

// reply reads one reply; a reply with OK false becomes a *ServerError.
//
// A reply's images say how they are encrypted (wire.IndexReply: the
// index protocol's reply with the fields of encrypted images).
func (cl *Client) reply() (wire.IndexReply, error) {
	var r wire.IndexReply
	cl.nc.SetDeadline(time.Now().Add(cl.stall()))
	if err := cl.c.ReadMsg(&r); err != nil {
		return r, cl.broken(err)
	}
	if !r.OK {
		if r.Error == "" {
			r.Error = "the index server refused the request without saying why"
		}
		return r, &ServerError{r.Error}
	}
	return r, nil
}

func (cl *Client) do(req wire.IndexRequest) (wire.IndexReply, error) {
	if err := cl.send(req); err != nil {
		return wire.IndexReply{}, err
	}
	r, err := cl.reply()
	var se *ServerError
	if errors.As(err, &se) {
		se.Msg = tidyServerMessage(se.Msg, append([]string{req.Host, req.DLE, req.Path, req.Pattern}, req.Paths...)...)
	}
	return r, err
}

// Query selects a view: a DLE of a host at a date (a datestamp prefix,
// "" for the newest).
type Query struct {
	Host, DLE, Date string
}

func (q Query) req(op string) wire.IndexRequest {
	return wire.IndexRequest{Op: op, Host: q.Host, DLE: q.DLE, Date: q.Date}
}

// Hosts lists the hosts with images that we may browse.
func (cl *Client) Hosts() ([]string, error) {
	r, err := cl.do(wire.IndexRequest{Op: wire.IdxListHost})
	return r.Hosts, err
}

// DLEs lists the DLEs of a host.
func (cl *Client) DLEs(host string) ([]string, error) {
	r, err := cl.do(wire.IndexRequest{Op: wire.IdxListDisk, Host: host})
	return r.DLEs, err
}

// History lists the images of a DLE, newest first.
func (cl *Client) History(q Query) ([]wire.ImageInfo, error) {
	r, err := cl.do(q.req(wire.IdxHistory))
	return r.Images, err
}

// View returns the chain of images of the view, the full first.
func (cl *Client) View(q Query) ([]wire.ImageInfo, error) {
	r, err := cl.do(q.req(wire.IdxView))
	return r.Images, err
}

// List returns the entries of a directory of the view (Path is the name).
func (cl *Client) List(q Query, dir string) ([]wire.EntryInfo, error) {
	req := q.req(wire.IdxLs)
	req.Path = dir
	r, err := cl.do(req)
	if err != nil {
		return nil, err
	}
	// Allocated once for a directory of up to 131,072 entries (ReadEntries
	// checks Count; a server that announces more than it sends costs at
	// most this much).
	out := make([]wire.EntryInfo, 0, min(max(r.Count, 0), 1<<17))
	if err := cl.c.ReadEntries(r.Count, func(e wire.EntryInfo) error { out = append(out, e); return nil }); err != nil {
		return nil, cl.broken(err)
	}
	return out, nil
}

// Stat returns one entry of the view.
func (cl *Client) Stat(q Query, p string) (*wire.EntryInfo, error) {
	req := q.req(wire.IdxStat)
	req.Path = p
	r, err := cl.do(req)
	if err != nil {
		return nil, err
	}
	if r.Entry == nil {
		return nil, fmt.Errorf("index server %s answered stat without an entry", cl.Addr)
	}
	return r.Entry, nil
}

// Find returns the paths of the view matching a pattern; more is true when
// the server's limit cut the list.
func (cl *Client) Find(q Query, pattern string, limit int) (found []wire.EntryInfo, more bool, err error) {
	req := q.req(wire.IdxFind)
	req.Pattern, req.Limit = pattern, limit
	r, err := cl.do(req)
	if err != nil {
		return nil, false, err
	}
	if err := cl.c.ReadEntries(r.Count, func(e wire.EntryInfo) error { found = append(found, e); return nil }); err != nil {
		return nil, false, cl.broken(err)
	}
	return found, r.More, nil
}

// Plan says what restoring paths needs: the images, their volumes and
// where those are.
func (cl *Client) Plan(q Query, paths []string) ([]wire.ImageInfo, int, error) {
	p, err := cl.PlanNeeds(q, paths)
	return p.Images, p.Entries, err
}

// PlanResult is what a restore of a selection reads.
type PlanResult struct {
	Images  []wire.ImageInfo // in the order the restore reads them
	Entries int
	Needed  []string // the volumes the restore loads, in order
}

// PlanNeeds asks what a restore of paths would read, as Plan does, and
// which volumes it loads in what order.
func (cl *Client) PlanNeeds(q Query, paths []string) (PlanResult, error) {
	req := q.req(wire.IdxPlan)
	req.Paths = paths
	r, err := cl.do(req)
	return PlanResult{Images: r.Images, Entries: r.Count, Needed: r.Needed}, err
}
