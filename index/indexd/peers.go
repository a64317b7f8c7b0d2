package indexd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/wire"
)

// Peers reaches the other tapir servers of a shared catalog: an image on a
// volume another server owns (catalog.Volume.Server), which is not in this
// server's changer, or on another server's holding disk, is read from that
// server's index server (the address it registered, catalog.Server.IndexAddr)
// with the fetch request, over mutual TLS with this server's certificate
// (role tapir-server). A Peers is configuration only; the connections of
// one restore belong to its Links.
type Peers struct {
	// Self is this server's name ([server] name): its own volumes and
	// holding images are never fetched.
	Self string
	// TLS returns the client configuration for a server whose certificate
	// must name serverName (the host of its address), with this server's
	// certificate: wire.ClientConfig(files, serverName).
	TLS func(serverName string) (*tls.Config, error)
	// Dial opens the TCP connection (nil: a net.Dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Stall bounds how long a fetch waits for the other server's next
	// bytes (default DefaultStall), except while it waits for a person to
	// bring a volume (it asked).
	Stall time.Duration
	Log   *slog.Logger // nil: discard
}

// Links opens the peers for the reads of one restore (or one listing
// recovery) against cat: it keeps one connection per server, so that the
// other server keeps the volume it loaded from one fetch to the next.
// Close closes them. A nil Peers gives nil Links, which read nothing
// remotely.
func (p *Peers) Links(cat *catalog.Catalog) *Links {
	if p == nil {
		return nil
	}
	return &Links{p: p, cat: cat, conns: map[string]*peerConn{}}
}

// Links are the connections of one restore to the other servers. Not safe
// for concurrent use.
type Links struct {
	p       *Peers
	cat     *catalog.Catalog
	conns   map[string]*peerConn
	servers map[string]catalog.Server
}

// Close closes every connection.
func (l *Links) Close() {
	if l == nil {
		return
	}
	for k, c := range l.conns {
		c.close()
		delete(l.conns, k)
	}
}

// server returns the registration of the server name.
func (l *Links) server(ctx context.Context, name string) (catalog.Server, error) {
	if s, ok := l.servers[name]; ok {
		return s, nil
	}
	all, err := l.cat.Servers(ctx)
	if err != nil {
		return catalog.Server{}, err
	}
	l.servers = map[string]catalog.Server{}
	for _, s := range all {
		l.servers[s.Name] = s
	}
	s, ok := l.servers[name]
	if !ok {
		s = catalog.Server{Name: name}
	}
	return s, nil
}

// Owner says which other server to read volume label from: the server
// that owns it, when that is not this one and the volume is not in this
// server's changer (vols; nil: none). ok is false when the volume is read
// here.
func (l *Links) Owner(ctx context.Context, vols VolumeSource, label string) (srv catalog.Server, ok bool) {
	if l == nil {
		return catalog.Server{}, false
	}
	v, err := l.cat.Volume(ctx, label)
	if err != nil || v.Server == "" || v.Server == l.p.Self {
		return catalog.Server{}, false
	}
	if vols != nil {
		if _, err := vols.Locate(ctx, label); err == nil {
			return catalog.Server{}, false // brought to this server's changer
		}
	}
	srv, err = l.server(ctx, v.Server)
	if err != nil {
		srv = catalog.Server{Name: v.Server}
	}
	return srv, true
}

// holdingOwner says which other server holds image d on its holding disk
// (ok false: this one, or no server recorded).
func (l *Links) holdingOwner(ctx context.Context, d catalog.Dump) (catalog.Server, bool) {
	if l == nil || d.Server == "" || d.Server == l.p.Self {
		return catalog.Server{}, false
	}
	srv, err := l.server(ctx, d.Server)
	if err != nil {
		srv = catalog.Server{Name: d.Server}
	}
	return srv, true
}

// Where describes, for a person, where a volume of srv is read from.
func Where(srv catalog.Server) string {
	return fmt.Sprintf("tapir server %s at %s", srv.Name, srv.IndexAddr)
}

// unreachable says why srv cannot be asked, or nil.
func unreachable(srv catalog.Server, what string) error {
	if srv.IndexAddr != "" {
		return nil
	}
	return &missingError{fmt.Sprintf("%s belongs to tapir server %s, which has registered no index server address: start `tapir server` there (with [server] index_listen, or advertise when the address it listens on is not the one others reach), or restore on %s itself", what, srv.Name, srv.Name)}
}

// peerConn is one session with another server's index server.
type peerConn struct {
	nc     net.Conn
	c      *wire.Conn
	broken bool
}

func (pc *peerConn) close() { pc.nc.Close() }

func (l *Links) conn(ctx context.Context, srv catalog.Server) (*peerConn, error) {
	if pc := l.conns[srv.Name]; pc != nil && !pc.broken {
		return pc, nil
	} else if pc != nil {
		pc.close()
		delete(l.conns, srv.Name)
	}
	host, _, err := net.SplitHostPort(srv.IndexAddr)
	if err != nil {
		return nil, fmt.Errorf("tapir server %s registered the index address %q, which is not host:port: fix [server] advertise in its configuration", srv.Name, srv.IndexAddr)
	}
	if l.p.TLS == nil {
		return nil, fmt.Errorf("tapir server %s: this server has no TLS configuration to reach it with", srv.Name)
	}
	cfg, err := l.p.TLS(host)
	if err != nil {
		return nil, fmt.Errorf("tapir server %s: %w", srv.Name, err)
	}
	dial := l.p.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultHandshakeTimeout)
	defer cancel()
	raw, err := dial(dctx, srv.IndexAddr)
	if err != nil {
		return nil, &missingError{fmt.Sprintf("tapir server %s, whose index server is at %s, cannot be reached (%v): start it (tapir server -c FILE there), or bring the cartridge to this server's changer", srv.Name, srv.IndexAddr, err)}
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tapir server %s at %s: %w", srv.Name, srv.IndexAddr, wire.ExplainTLS("the index server of tapir server "+srv.Name, err))
	}
	// Only a tapir server may answer for one: not a client host's
	// certificate of the same CA at a hijacked address.
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) == 0 || !wire.HasRole(cs.PeerCertificates[0], wire.RoleServer) {
		tc.Close()
		return nil, fmt.Errorf("tapir server %s at %s: the certificate there does not have the role %s: that address is not a tapir server's index server; check [server] advertise in its configuration", srv.Name, srv.IndexAddr, wire.RoleServer)
	}
	pc := &peerConn{nc: tc, c: wire.NewConn(tc)}
	pc.c.SetReadLimit(wire.FetchPiece + 64<<10)
	l.conns[srv.Name] = pc
	return pc, nil
}

func (l *Links) stall() time.Duration {
	if l.p.Stall > 0 {
		return l.p.Stall
	}
	return DefaultStall
}

// fetch fills p with the payload bytes of d from off, read by srv. ask,
// when not nil, is told what a person must do there for the read to go on.
func (l *Links) fetch(ctx context.Context, srv catalog.Server, d catalog.Dump, p []byte, off int64, ask Ask) error {
	for try := 0; ; try++ {
		pc, err := l.conn(ctx, srv)
		if err != nil {
			return err
		}
		got, err := l.fetchOn(ctx, pc, srv, d, p, off, ask)
		if err == nil {
			return nil
		}
		pc.broken = true
		var pe *peerError
		// A connection the other server closed while idle fails before
		// any byte: once on a new connection.
		if errors.As(err, &pe) || got > 0 || try > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// Hello proves that srv's index server can be reached and accepts this
// server's certificate (tapir check): the address it registered answers,
// the TLS handshake both ways succeeds, and the session is admitted.
func (l *Links) Hello(ctx context.Context, srv catalog.Server) error {
	if srv.IndexAddr == "" {
		return fmt.Errorf("tapir server %s has registered no index server address", srv.Name)
	}
	pc, err := l.conn(ctx, srv)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(time.Now()) })
	defer stop()
	pc.nc.SetDeadline(time.Now().Add(l.stall()))
	var rep wire.IndexReply
	err = pc.c.WriteMsg(wire.IndexRequest{Op: wire.IdxHello})
	if err == nil {
		err = pc.c.Flush()
	}
	if err == nil {
		err = pc.c.ReadMsg(&rep)
	}
	if err != nil {
		pc.broken = true
		return fmt.Errorf("tapir server %s at %s: %w", srv.Name, srv.IndexAddr, err)
	}
	if !rep.OK {
		return fmt.Errorf("tapir server %s at %s: %s", srv.Name, srv.IndexAddr, rep.Error)
	}
	pc.nc.SetDeadline(time.Time{})
	return nil
}

// peerError is what the other server answered: asking again does not help.
type peerError struct{ msg string }

func (e *peerError) Error() string { return e.msg }

func (l *Links) fetchOn(ctx context.Context, pc *peerConn, srv catalog.Server, d catalog.Dump, p []byte, off int64, ask Ask) (got int, err error) {
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(time.Now()) })
	defer stop()
	wrap := func(err error) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("tapir server %s at %s: the connection failed while fetching level %d image %s of %s:%s: %w", srv.Name, srv.IndexAddr, d.Level, d.Datestamp, d.Host, d.Path, err)
	}
	pc.nc.SetDeadline(time.Now().Add(l.stall()))
	req := wire.IndexRequest{Op: wire.IdxFetch, Host: d.Host, DLE: d.Path, Dump: d.ID, Ranges: []wire.Range{{Off: off, Len: int64(len(p))}}}
	if err := pc.c.WriteMsg(req); err != nil {
		return 0, wrap(err)
	}
	if err := pc.c.Flush(); err != nil {
		return 0, wrap(err)
	}
	var rep wire.IndexReply
	if err := pc.c.ReadMsg(&rep); err != nil {
		return 0, wrap(err)
	}
	if !rep.OK {
		pc.broken = false // a refusal leaves the session usable
		return 0, &peerError{fmt.Sprintf("tapir server %s: %s", srv.Name, rep.Error)}
	}
	for {
		var m wire.FetchMsg
		if err := pc.c.ReadMsg(&m); err != nil {
			return got, wrap(err)
		}
		switch {
		case m.Ask != "":
			if ask != nil {
				ask(fmt.Sprintf("tapir server %s: %s", srv.Name, m.Ask))
			}
			pc.nc.SetDeadline(time.Time{}) // a person may take long
			continue
		case m.Where != "":
			// What the other server reads from: the part's name says it.
		case m.Error != "":
			// The stream ended cleanly: the session stays usable.
			return got, &peerError{fmt.Sprintf("tapir server %s: %s", srv.Name, m.Error)}
		case m.End:
			if got != len(p) {
				return got, wrap(fmt.Errorf("%w: the stream ended after %d of the %d bytes asked for", wire.ErrProtocol, got, len(p)))
			}
			pc.broken = false
			return got, nil
		case m.Data > 0 && m.Data <= wire.FetchPiece && int64(got)+m.Data <= int64(len(p)):
			want := got + int(m.Data)
			for got < want {
				typ, b, err := pc.c.ReadFrame()
				if err != nil {
					return got, wrap(err)
				}
				if typ != wire.FrameData || len(b) > want-got {
					return got, wrap(fmt.Errorf("%w: %d payload bytes announced, got a frame %q of %d bytes after %d", wire.ErrProtocol, m.Data, typ, len(b), got-(want-int(m.Data))))
				}
				got += copy(p[got:], b)
			}
		default:
			return got, wrap(fmt.Errorf("%w: a fetch message %+v out of place (%d of %d bytes read)", wire.ErrProtocol, m, got, len(p)))
		}
		pc.nc.SetDeadline(time.Now().Add(l.stall()))
	}
}

// peerReader reads the payload of a part (or a holding image) from the
// server that holds it.
type peerReader struct {
	ctx   context.Context
	l     *Links
	srv   catalog.Server
	d     catalog.Dump
	ask   Ask
	label string
}

func (r *peerReader) readAt(p []byte, off int64) error {
	return r.l.fetch(r.ctx, r.srv, r.d, p, off, r.ask)
}

func (r *peerReader) close()       {}
func (r *peerReader) name() string { return r.label }

// remotePart returns a reader of part pt (nil pt: the holding image) from
// the server that holds it, or ok false when it is read here.
func (l *Links) remotePart(ctx context.Context, vols VolumeSource, d catalog.Dump, pt *catalog.Part, ask Ask) (pr partReader, ok bool, err error) {
	var srv catalog.Server
	var label, what string
	if pt != nil {
		if srv, ok = l.Owner(ctx, vols, pt.Volume); !ok {
			return nil, false, nil
		}
		label = fmt.Sprintf("volume %s file %d at tapir server %s", pt.Volume, pt.FileNo, srv.Name)
		what = "volume " + pt.Volume
	} else {
		if srv, ok = l.holdingOwner(ctx, d); !ok {
			return nil, false, nil
		}
		label = "the holding disk of tapir server " + srv.Name
		what = fmt.Sprintf("level %d image %s of %s:%s, on its holding disk,", d.Level, d.Datestamp, d.Host, d.Path)
	}
	if err := unreachable(srv, what); err != nil {
		return nil, true, err
	}
	return &peerReader{ctx: ctx, l: l, srv: srv, d: d, ask: ask, label: label}, true, nil
}
