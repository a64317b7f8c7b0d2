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
	// Log is told each connection to another server (nil: discard).
	Log *slog.Logger
}

// Links opens the peers for the reads of one restore (or one listing
// recovery) against cat: it keeps one connection per server, which the
// restore's fetches share. Close closes them. A nil Peers gives nil Links, which read nothing
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
	owners  map[string]owner // Owner's answer by volume label
}

type owner struct {
	srv    catalog.Server
	remote bool
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

// server returns the registration of the server name; one without it
// (or a catalog that cannot say) has no address, which unreachable
// explains.
func (l *Links) server(ctx context.Context, name string) catalog.Server {
	if l.servers == nil {
		l.servers = map[string]catalog.Server{}
		all, err := l.cat.Servers(ctx)
		if err != nil {
			l.log().Warn("restore: the catalog's list of servers could not be read", "err", err)
		}
		for _, s := range all {
			l.servers[s.Name] = s
		}
	}
	if s, ok := l.servers[name]; ok {
		return s
	}
	return catalog.Server{Name: name}
}

func (l *Links) log() *slog.Logger {
	if l.p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.p.Log
}

// Owner says which other server to read volume label from: the server
// that owns it, when that is not this one and the volume is not in this
// server's changer (vols; nil: none). ok is false when the volume is read
// here.
func (l *Links) Owner(ctx context.Context, vols VolumeSource, label string) (srv catalog.Server, ok bool) {
	if l == nil {
		return catalog.Server{}, false
	}
	// Asked for each part and for the plan: the answer (a look into
	// this server's changer) is kept for the restore.
	if o, ok := l.owners[label]; ok {
		return o.srv, o.remote
	}
	var o owner
	v, err := l.cat.Volume(ctx, label)
	if err == nil && v.Server != "" && v.Server != l.p.Self {
		o.remote = true
		if vols != nil {
			if _, err := vols.Locate(ctx, label); err == nil {
				o.remote = false // brought to this server's changer
			}
		}
		if o.remote {
			o.srv = l.server(ctx, v.Server)
		}
	}
	if l.owners == nil {
		l.owners = map[string]owner{}
	}
	l.owners[label] = o
	return o.srv, o.remote
}

// holdingOwner says which other server holds image d on its holding disk
// (ok false: this one, or no server recorded).
func (l *Links) holdingOwner(ctx context.Context, d catalog.Dump) (catalog.Server, bool) {
	if l == nil || d.Server == "" || d.Server == l.p.Self {
		return catalog.Server{}, false
	}
	return l.server(ctx, d.Server), true
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
	nc net.Conn
	c  *wire.Conn
}

func (pc *peerConn) close() { pc.nc.Close() }

func (l *Links) conn(ctx context.Context, srv catalog.Server) (*peerConn, error) {
	if pc := l.conns[srv.Name]; pc != nil {
		return pc, nil
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
	l.log().Info("restore: connected to another tapir server to read what it holds", "server", srv.Name, "addr", srv.IndexAddr)
	return pc, nil
}

func (l *Links) stall() time.Duration {
	if l.p.Stall > 0 {
		return l.p.Stall
	}
	return DefaultStall
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
	rep, err := l.roundTrip(ctx, srv.Name, pc, wire.IndexRequest{Op: wire.IdxHello})
	if err != nil {
		return fmt.Errorf("tapir server %s at %s: %w", srv.Name, srv.IndexAddr, err)
	}
	if !rep.OK {
		return fmt.Errorf("tapir server %s at %s: %s", srv.Name, srv.IndexAddr, rep.Error)
	}
	return nil
}

// roundTrip sends req on pc and reads the reply, within the stall bound
// and until ctx ends. A connection that fails is closed and forgotten.
func (l *Links) roundTrip(ctx context.Context, name string, pc *peerConn, req wire.IndexRequest) (wire.IndexReply, error) {
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(time.Now()) })
	defer stop()
	pc.nc.SetDeadline(time.Now().Add(l.stall()))
	var rep wire.IndexReply
	err := pc.c.WriteMsg(req)
	if err == nil {
		err = pc.c.Flush()
	}
	if err == nil {
		err = pc.c.ReadMsg(&rep)
	}
	if err != nil {
		l.drop(name, pc)
	}
	return rep, err
}

// peerError is what the other server answered: asking again does not help.
type peerError struct{ msg string }

func (e *peerError) Error() string { return e.msg }

// peerReader reads the payload of a part (or a holding image) from the
// server that holds it. The reads the image reader expects
// (ImageReader.Expect) are asked for in one fetch and taken from its
// stream as they come, so that the other server loads the volume once for
// them all and reads it forward. A read the stream does not hold next
// (unexpected, or after a jump) abandons it and asks again from there.
type peerReader struct {
	ctx    context.Context
	l      *Links
	srv    catalog.Server
	d      catalog.Dump
	ask    Ask
	label  string
	expect []wire.Range // the reads expected, in order, within the part

	st *fetchStream
}

// fetchStream is one fetch being read.
type fetchStream struct {
	pc      *peerConn
	ranges  []wire.Range // asked for and not read yet; ranges[0] starts at the next byte
	left    int64        // bytes asked for and not announced yet
	piece   int64        // bytes of the announced piece not received yet
	pending []byte       // received and not read yet
	asked   bool         // the other server waits for a person: no deadline
}

func (r *peerReader) close()       { r.abandon() }
func (r *peerReader) name() string { return r.label }

// abandon drops the stream; a connection with bytes still to come cannot
// carry another request, and is closed.
func (r *peerReader) abandon() {
	if r.st == nil {
		return
	}
	r.l.drop(r.srv.Name, r.st.pc)
	r.st = nil
}

// drop closes a connection of server name that cannot carry another
// request, and forgets it.
func (l *Links) drop(name string, pc *peerConn) {
	if l.conns[name] == pc {
		delete(l.conns, name)
	}
	pc.close()
}

func (r *peerReader) readAt(p []byte, off int64) error {
	for len(p) > 0 {
		if r.st == nil || r.st.ranges[0].Off != off {
			r.abandon()
			if err := r.start(off, int64(len(p))); err != nil {
				return err
			}
		}
		pc := r.st.pc
		stop := context.AfterFunc(r.ctx, func() { pc.nc.SetDeadline(time.Now()) })
		n := min(int64(len(p)), r.st.ranges[0].Len)
		err := r.take(p[:n])
		stop()
		if err != nil {
			r.abandon()
			if r.ctx.Err() != nil {
				return context.Cause(r.ctx)
			}
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// start sends a fetch for the bytes from off: n of them, or through the
// end of the expected read that holds off when that is more, then the
// expected reads after it. A connection the other server closed while
// idle fails before the reply: once more on a new one.
func (r *peerReader) start(off, n int64) error {
	ranges := []wire.Range{{Off: off, Len: n}}
	for i, e := range r.expect {
		if off < e.Off || off >= e.Off+e.Len {
			continue
		}
		// A read that runs past the expected one takes the expected
		// reads it covers along.
		end := max(off+n, e.Off+e.Len)
		ranges[0].Len = end - off
		for _, f := range r.expect[i+1:] {
			if len(ranges) == wire.MaxFetchRanges {
				break
			}
			if end == e.Off+e.Len || f.Off >= end {
				ranges = append(ranges, f)
			}
		}
		break
	}
	req := wire.IndexRequest{Op: wire.IdxFetch, Host: r.d.Host, DLE: r.d.Path, Dump: r.d.ID, Ranges: ranges}
	for try := 0; ; try++ {
		pc, err := r.l.conn(r.ctx, r.srv)
		if err != nil {
			return err
		}
		err = r.request(pc, req)
		var pe *peerError
		if err == nil || errors.As(err, &pe) || try > 0 || r.ctx.Err() != nil {
			return err
		}
	}
}

// request sends the fetch and reads its reply; the stream's bytes are
// read as they are wanted (take).
func (r *peerReader) request(pc *peerConn, req wire.IndexRequest) error {
	rep, err := r.l.roundTrip(r.ctx, r.srv.Name, pc, req)
	if err != nil {
		return r.wrap(err)
	}
	if !rep.OK {
		return &peerError{fmt.Sprintf("tapir server %s: %s", r.srv.Name, rep.Error)}
	}
	var total int64
	for _, g := range req.Ranges {
		total += g.Len
	}
	r.st = &fetchStream{pc: pc, ranges: req.Ranges, left: total}
	return nil
}

func (r *peerReader) wrap(err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	return fmt.Errorf("tapir server %s at %s: the connection failed while fetching level %d image %s of %s:%s: %w", r.srv.Name, r.srv.IndexAddr, r.d.Level, r.d.Datestamp, r.d.Host, r.d.Path, err)
}

// take reads len(p) bytes of the stream, all within its first range.
func (r *peerReader) take(p []byte) error {
	st := r.st
	for k := 0; k < len(p); {
		if len(st.pending) > 0 {
			n := copy(p[k:], st.pending)
			st.pending, k = st.pending[n:], k+n
			continue
		}
		r.deadline()
		if st.piece > 0 {
			typ, b, err := st.pc.c.ReadFrame()
			if err != nil {
				return r.wrap(err)
			}
			if typ != wire.FrameData || int64(len(b)) > st.piece {
				return r.wrap(fmt.Errorf("%w: %d payload bytes still announced, got a frame %q of %d bytes", wire.ErrProtocol, st.piece, typ, len(b)))
			}
			st.piece -= int64(len(b))
			st.pending = b
			continue
		}
		m, err := r.next()
		if err != nil {
			return err
		}
		if m.End {
			return r.wrap(fmt.Errorf("%w: the stream ended with %d of the bytes asked for not sent", wire.ErrProtocol, st.left))
		}
		if m.Data <= 0 || m.Data > wire.FetchPiece || m.Data > st.left {
			return r.wrap(fmt.Errorf("%w: a fetch message %+v out of place (%d bytes asked for are still to come)", wire.ErrProtocol, m, st.left))
		}
		st.piece, st.left = m.Data, st.left-m.Data
	}
	st.ranges[0].Off += int64(len(p))
	if st.ranges[0].Len -= int64(len(p)); st.ranges[0].Len > 0 {
		return nil
	}
	if st.ranges = st.ranges[1:]; len(st.ranges) > 0 {
		return nil
	}
	// Every byte asked for is read: the stream must end here, and the
	// connection is ready for the next fetch.
	r.deadline()
	m, err := r.next()
	if err != nil {
		return err
	}
	if !m.End || len(st.pending) > 0 || st.piece > 0 {
		return r.wrap(fmt.Errorf("%w: a fetch message %+v after the last byte asked for", wire.ErrProtocol, m))
	}
	r.st = nil
	return nil
}

// next reads the next message of the stream that is not an ask or a
// where: asks go to the person, an error ends the stream.
func (r *peerReader) next() (wire.FetchMsg, error) {
	st := r.st
	for {
		var m wire.FetchMsg
		if err := st.pc.c.ReadMsg(&m); err != nil {
			return m, r.wrap(err)
		}
		st.asked = false
		switch {
		case m.Ask != "":
			if r.ask != nil {
				r.ask(fmt.Sprintf("tapir server %s: %s", r.srv.Name, m.Ask))
			}
			st.asked = true // a person may take long
		case m.Where != "":
			// What the other server reads from: the part's name says it.
		case m.Error != "":
			return m, &peerError{fmt.Sprintf("tapir server %s: %s", r.srv.Name, m.Error)}
		default:
			return m, nil
		}
		r.deadline()
	}
}

// deadline bounds the next read, unless a person is being asked.
func (r *peerReader) deadline() {
	if r.st.asked {
		r.st.pc.nc.SetDeadline(time.Time{})
	} else {
		r.st.pc.nc.SetDeadline(time.Now().Add(r.l.stall()))
	}
}

// remotePart returns a reader of part pt (nil pt: the holding image) from
// the server that holds it, or ok false when it is read here.
func (l *Links) remotePart(ctx context.Context, vols VolumeSource, d catalog.Dump, pt *catalog.Part, ask Ask, expect []wire.Range) (pr partReader, ok bool, err error) {
	var srv catalog.Server
	var label, what string
	lo, hi := int64(0), d.PayloadSize
	if pt != nil {
		if srv, ok = l.Owner(ctx, vols, pt.Volume); !ok {
			return nil, false, nil
		}
		label = fmt.Sprintf("volume %s file %d at tapir server %s", pt.Volume, pt.FileNo, srv.Name)
		lo, hi = pt.Offset, pt.Offset+pt.Length
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
	return &peerReader{ctx: ctx, l: l, srv: srv, d: d, ask: ask, label: label, expect: clip(expect, lo, hi)}, true, nil
}

// clip returns the parts of rs within [lo, hi), in order, none longer
// than a fetch range may be.
func clip(rs []wire.Range, lo, hi int64) []wire.Range {
	var out []wire.Range
	for _, r := range rs {
		a, b := max(r.Off, lo), min(r.Off+r.Len, hi)
		for ; a < b; a += wire.MaxFetchRange {
			out = append(out, wire.Range{Off: a, Len: min(b-a, wire.MaxFetchRange)})
		}
	}
	return out
}
