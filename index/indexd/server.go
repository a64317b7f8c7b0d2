package indexd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/wire"
)

// Server is the index server. Its fields are its dependencies; set them
// before Serve and do not change them after.
type Server struct {
	Catalog *catalog.Catalog
	// TLS is the listening side's mutual-TLS configuration, normally
	// wire.ServerConfig(files, wire.RoleClient, wire.RoleAdmin,
	// wire.RoleServer). Serve refuses to run without one.
	TLS     *tls.Config
	Volumes VolumeSource // nil: only images on the holding disk can be read
	Holding []string     // the holding disk directories images may be read from
	// Peers, when set, reads the images held by the other tapir servers
	// of a shared catalog from them (restore from anywhere, peers.go); a
	// session with a certificate of the server role may fetch from this
	// one (fetch.go) whether or not it is set.
	Peers *Peers
	Log   *slog.Logger // nil: discard
	// HandshakeTimeout bounds the TLS handshake of a new connection
	// (default 30 s). Idle is how long a session may stay silent between
	// requests before it is closed (default 30 minutes: a person reading,
	// not a program). A reply or restore stream fails when the shell reads
	// nothing for Stall (default 10 minutes).
	HandshakeTimeout, Idle, Stall time.Duration
	// MaxSessions caps the sessions open at once (default 64) and
	// MaxSessionsPerHost those of one certificate name (default 8); a
	// session over either is refused with a reply saying so. At most
	// 2*MaxSessions connections may be in the TLS handshake at once; more
	// are closed at once.
	MaxSessions, MaxSessionsPerHost int
	// FindLimit caps find results (default 1000; a request may ask up to
	// wire.MaxFindLimit).
	FindLimit int
	// PrivateDirs are more directories of the server whose names never
	// reach a shell; the catalog's directory, the holding disks and a
	// DiskVolumes changer's root always count. Error replies name what
	// failed in the shell's terms (a volume label, an image, a path in the
	// backup); the whole error goes to Log.
	PrivateDirs []string

	listMu sync.Mutex // one listings recovery at a time

	once     sync.Once
	mu       sync.Mutex
	sessions int            // sessions admitted
	perHost  map[string]int // by lower-case certificate name
	private  []privateDir   // what scrub replaces, longest first

	hooks hooks // tests only (export_test.go)
}

// hooks let tests observe a session without sleeping. Every hook may be nil.
type hooks struct {
	// read is called before each read from a session's connection (after
	// the handshake) with the plaintext bytes received on it so far.
	read func(remote string, got int64)
	// planStep is called at each step of a plan: each directory of paths
	// looked up, each path walked, and every 1024 entries selected.
	planStep func(ctx context.Context)
	// done is called when a request has been handled: err is why its work
	// stopped (nil when it was answered).
	done func(op string, err error)
}

// SessionMemory bounds the memory one session holds while it waits for a
// request or receives one (its connection's buffers, TLS state, goroutine
// stacks), besides the request's bytes received so far (at most
// wire.MaxIndexRequest): frames are read as their bytes arrive, never
// allocated at their announced length.
const SessionMemory = 256 << 10

// Defaults of the Server's limits (docs/format/index-protocol.md, "Limits").
const (
	DefaultHandshakeTimeout   = 30 * time.Second
	DefaultIdle               = 30 * time.Minute
	DefaultStall              = 10 * time.Minute
	DefaultMaxSessions        = 64
	DefaultMaxSessionsPerHost = 8
	DefaultFindLimit          = 1000
)

// Serve accepts sessions on ln until ctx is done, then closes ln, waits for
// the sessions to end (they are cancelled) and returns nil. Other accept
// errors are returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.TLS == nil || s.Catalog == nil {
		return errors.New("index server: no TLS configuration or no catalog given")
	}
	s.prepare()
	handshakes := make(chan struct{}, 2*s.maxSessions())
	admit := func(conn net.Conn) bool {
		select {
		case handshakes <- struct{}{}:
			return true
		default:
			s.Log.Warn("index server: too many connections in the TLS handshake; closed a new one", "remote", conn.RemoteAddr().String(), "limit", cap(handshakes))
			return false
		}
	}
	return wire.Serve(ctx, ln, "index server", admit, func(ctx context.Context, conn net.Conn) {
		s.session(ctx, conn, func() { <-handshakes })
	})
}

func (s *Server) maxSessions() int {
	if s.MaxSessions > 0 {
		return s.MaxSessions
	}
	return DefaultMaxSessions
}

func (s *Server) maxPerHost() int {
	if s.MaxSessionsPerHost > 0 {
		return s.MaxSessionsPerHost
	}
	return DefaultMaxSessionsPerHost
}

// admit counts a session of host in, or says why not.
func (s *Server) admit(host string) (release func(), refusal string) {
	key := strings.ToLower(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perHost == nil {
		s.perHost = map[string]int{}
	}
	if n := s.maxPerHost(); s.perHost[key] >= n {
		return nil, fmt.Sprintf("too many sessions from %s (limit %d): close another recover shell of %s and try again", host, n, host)
	}
	if n := s.maxSessions(); s.sessions >= n {
		return nil, fmt.Sprintf("the index server is serving its limit of %d sessions: try again when another recover shell has closed", n)
	}
	s.perHost[key]++
	s.sessions++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.sessions--
			if s.perHost[key]--; s.perHost[key] <= 0 {
				delete(s.perHost, key)
			}
		})
	}, ""
}

// session is one shell's connection.
type session struct {
	s     *Server
	c     *wire.Conn
	nc    net.Conn
	peer  wire.Peer
	admin bool
	log   *slog.Logger

	views map[viewKey]*catalog.View
}

type viewKey struct{ host, dle, date string }

// errPeerGone is the cause of a request's context when the shell closed
// the connection (or it broke) while the server worked on the request.
var errPeerGone = errors.New("the recover shell closed the connection")

func (s *Server) session(ctx context.Context, raw net.Conn, handshakeDone func()) {
	defer raw.Close()
	released := false
	release := func() {
		if !released {
			released = true
			handshakeDone()
		}
	}
	defer release()
	log := s.Log.With("remote", raw.RemoteAddr().String())
	tc := tls.Server(raw, s.TLS)
	hctx, cancel := context.WithTimeout(ctx, s.handshakeTimeout())
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		log.Warn("index server: TLS handshake failed", "err", err)
		return
	}
	peer, err := wire.PeerOf(tc.ConnectionState())
	if err != nil {
		return
	}
	s.serveConn(ctx, tc, peer, log, release)
}

// serveConn serves one shell whose certificate named peer on conn (a TLS
// connection after its handshake): it admits the session or refuses it,
// then answers requests until the shell closes, stays silent for Idle, a
// write stalls, or ctx ends. admitted is called once the session counts
// against the limits (or has been refused).
func (s *Server) serveConn(ctx context.Context, conn net.Conn, peer wire.Peer, log *slog.Logger, admitted func()) {
	log = log.With("peer", peer.Host)
	var rw io.ReadWriter = conn
	if s.hooks.read != nil {
		rw = &hookedConn{Conn: conn, hook: s.hooks.read, remote: conn.RemoteAddr().String()}
	}
	ss := &session{s: s, c: wire.NewConn(rw), nc: conn, peer: peer, log: log, views: map[viewKey]*catalog.View{}}
	ss.c.SetReadLimit(wire.MaxIndexRequest)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	defer func() {
		// A request cut short (the shell half-closed, the server stops)
		// still leaves whole frames behind.
		conn.SetWriteDeadline(time.Now().Add(s.stall()))
		ss.c.Flush()
	}()
	leave, refusal := s.admit(peer.Host)
	if refusal != "" {
		ss.refuse(refusal, s.handshakeTimeout())
		admitted()
		return
	}
	defer leave()
	admitted()
	ss.admin = slices.Contains(peer.Roles, wire.RoleAdmin) || slices.Contains(peer.Roles, wire.RoleServer)
	ss.log.Info("index session started", "roles", peer.Roles)
	for {
		conn.SetReadDeadline(time.Now().Add(s.idle()))
		var req wire.IndexRequest
		if err := ss.c.ReadMsg(&req); err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				ss.log.Info("index session ended", "err", err)
				var tl *wire.FrameTooLargeError
				switch {
				case errors.As(err, &tl):
					ss.reply(wire.IndexReply{Error: fmt.Sprintf("index server: a request of %d bytes is longer than the %d bytes a request may hold; extract fewer paths at a time (a directory counts as one path)", tl.Size, tl.Limit)})
					// Take in (and drop) what the shell is still sending, up
					// to a bound, so that closing does not reset the
					// connection before it has read the reply.
					conn.SetReadDeadline(time.Now().Add(s.handshakeTimeout()))
					io.CopyN(io.Discard, conn, min(tl.Size, 2*wire.MaxFrame))
				case errors.Is(err, wire.ErrProtocol):
					ss.reply(wire.IndexReply{Error: "index server: " + err.Error()})
				}
			}
			return
		}
		conn.SetReadDeadline(time.Time{})
		rctx, cancel := context.WithCancelCause(ctx)
		unwatch := ss.watch(cancel)
		err := ss.handle(rctx, req)
		unwatch()
		gone := context.Cause(rctx)
		cancel(nil)
		if s.hooks.done != nil {
			s.hooks.done(req.Op, gone)
		}
		if err != nil || gone != nil {
			ss.log.Info("index session ended", "op", req.Op, "err", errors.Join(err, gone))
			return
		}
	}
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

// prepare fills in what Serve needs: the logger and the directories scrub
// hides.
func (s *Server) prepare() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		s.private = s.privateDirs()
	})
}

// refuse answers the shell's first request (its hello) with why it is not
// served, and ends the session. The request is read first so that closing
// the connection does not throw away the reply.
func (ss *session) refuse(why string, wait time.Duration) {
	ss.log.Warn("index session refused", "why", why)
	ss.c.SetReadLimit(64 << 10)
	ss.nc.SetReadDeadline(time.Now().Add(wait))
	var req wire.IndexRequest
	if err := ss.c.ReadMsg(&req); err != nil {
		return
	}
	ss.reply(wire.IndexReply{Error: why})
}

// watch cancels the request's context with errPeerGone when the shell
// closes the connection (or it breaks) while the request is handled: the
// shell sends nothing until it has the reply, so anything the connection
// reports meanwhile is its end. The returned function stops watching; it
// must be called before the next read.
func (ss *session) watch(cancel context.CancelCauseFunc) (stop func()) {
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := ss.c.AwaitInput()
		if err == nil || stopping.Load() {
			return // the shell sent its next request early, or we stopped
		}
		cancel(fmt.Errorf("%w: %v", errPeerGone, err))
	}()
	return func() {
		stopping.Store(true)
		ss.nc.SetReadDeadline(time.Now())
		<-done
	}
}

// hookedConn calls the read hook before each read (tests).
type hookedConn struct {
	net.Conn
	hook   func(remote string, got int64)
	remote string
	got    atomic.Int64
}

func (h *hookedConn) Read(p []byte) (int, error) {
	h.hook(h.remote, h.got.Load())
	n, err := h.Conn.Read(p)
	h.got.Add(int64(n))
	return n, err
}

func (s *Server) idle() time.Duration {
	if s.Idle > 0 {
		return s.Idle
	}
	return DefaultIdle
}

func (s *Server) stall() time.Duration {
	if s.Stall > 0 {
		return s.Stall
	}
	return DefaultStall
}

// reply sends one reply; a write error ends the session.
func (ss *session) reply(r any) error {
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
	return ss.c.WriteMsg(r)
}

// fail answers a request with an error sentence for the person at the
// shell (the session goes on), after logging the whole error. When the
// shell has gone away there is nobody to tell: the cause is returned and
// the session ends.
func (ss *session) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	msg, internal := ss.s.explain(err)
	if internal {
		ss.log.Error("index request failed", "op", op, "err", err)
	} else {
		ss.log.Info("index request refused", "op", op, "err", err)
	}
	return ss.reply(wire.IndexReply{Error: msg})
}

// handle answers one request. A returned error ends the session (the
// connection broke); errors for the person are replies. ctx is cancelled
// when the shell goes away.
func (ss *session) handle(ctx context.Context, req wire.IndexRequest) error {
	fail := func(err error) error { return ss.fail(ctx, req.Op, err) }
	switch req.Op {
	case wire.IdxHello, wire.IdxListHost, wire.IdxListDisk, wire.IdxHistory, wire.IdxView, wire.IdxLs, wire.IdxStat, wire.IdxFind, wire.IdxPlan, wire.IdxRestore, wire.IdxFetch:
	default:
		return fail(fmt.Errorf("unknown request %q (this index server speaks protocol version %d)", req.Op, wire.IndexVersion))
	}
	switch req.Op {
	case wire.IdxHello:
		if !ss.admin && !slices.Contains(ss.peer.Roles, wire.RoleClient) {
			return fail(fmt.Errorf("certificate %s has roles %v; the index server accepts client and admin certificates (tapir ca issue HOST [--admin])", ss.peer.Host, ss.peer.Roles))
		}
		return ss.reply(wire.IndexReply{OK: true, Version: wire.IndexVersion, Peer: ss.peer.Host, Roles: ss.peer.Roles, Admin: ss.admin})
	case wire.IdxListHost:
		if !ss.admin && !slices.Contains(ss.peer.Roles, wire.RoleClient) {
			return fail(fmt.Errorf("certificate %s has roles %v; the index server accepts client and admin certificates (tapir ca issue HOST [--admin])", ss.peer.Host, ss.peer.Roles))
		}
		hosts, err := ss.s.Catalog.Hosts(ctx)
		if err != nil {
			return fail(err)
		}
		if !ss.admin {
			hosts = slices.DeleteFunc(hosts, func(h string) bool { return !strings.EqualFold(h, ss.peer.Host) })
			if len(hosts) == 0 {
				return fail(fmt.Errorf("no image of host %s is in the catalog", ss.peer.Host))
			}
		} else if len(hosts) == 0 {
			return fail(errors.New("the catalog holds no image yet"))
		}
		return ss.reply(wire.IndexReply{OK: true, Hosts: hosts})
	case wire.IdxFetch:
		return ss.fetch(ctx, req) // for servers only: it checks the role first
	}
	if err := ss.allowed(req.Host); err != nil {
		return fail(err)
	}
	switch req.Op {
	case wire.IdxListDisk:
		dles, err := ss.s.Catalog.DLEPaths(ctx, req.Host)
		if err != nil {
			return fail(err)
		}
		if len(dles) == 0 {
			return fail(fmt.Errorf("no image of host %s is in the catalog (listhost shows the hosts that have some)", req.Host))
		}
		return ss.reply(wire.IndexReply{OK: true, DLEs: dles})
	case wire.IdxHistory:
		return ss.history(ctx, req)
	}
	if req.DLE == "" {
		return fail(errors.New("no disk chosen: setdisk DLE first (listdisk shows them)"))
	}
	if err := checkRequest(req); err != nil {
		return fail(err)
	}
	v, err := ss.view(ctx, req)
	if err != nil {
		return fail(err)
	}
	switch req.Op {
	case wire.IdxView:
		return ss.reply(withCrypt(wire.IndexReply{OK: true, Images: ss.images(ctx, v.Chain, false)}, v.Chain, false))
	case wire.IdxLs:
		ents, err := v.List(ctx, req.Path)
		if err != nil {
			return fail(err)
		}
		if len(ents) > wire.MaxListEntries {
			return fail(fmt.Errorf("%s holds %d entries, more than the %d an ls shows: narrow it with find PATTERN, or add the directory as a whole", showDir(req.Path), len(ents), wire.MaxListEntries))
		}
		ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
		if err := ss.c.WriteMsg(wire.IndexReply{OK: true, Count: len(ents)}); err != nil {
			return err
		}
		if err := ss.c.WriteEntriesFunc(len(ents), func(i int) wire.EntryInfo {
			return wire.EntryInfo{Path: ents[i].Name, Type: ents[i].Type, Image: ents[i].Dump}
		}); err != nil {
			return err
		}
		return ss.c.Flush()
	case wire.IdxStat:
		r, err := v.Stat(ctx, req.Path)
		if err != nil {
			return fail(err)
		}
		e := entryOf(*r)
		if e.Path == "" {
			e.Path = "/"
		}
		return ss.reply(wire.IndexReply{OK: true, Entry: &e})
	case wire.IdxFind:
		limit := ss.s.FindLimit
		if limit <= 0 {
			limit = DefaultFindLimit
		}
		if req.Limit > 0 {
			limit = min(req.Limit, wire.MaxFindLimit)
		}
		found, more, err := v.Find(ctx, req.Pattern, limit)
		if err != nil {
			return fail(err)
		}
		out := make([]wire.EntryInfo, len(found))
		for i, r := range found {
			out[i] = entryOf(r)
		}
		return ss.entries(wire.IndexReply{OK: true, Count: len(out), More: more}, out)
	case wire.IdxPlan, wire.IdxRestore:
		p, err := ss.s.plan(ctx, v, req.Paths)
		if err != nil {
			return fail(err)
		}
		if req.Op == wire.IdxPlan {
			return ss.reply(withCrypt(wire.IndexReply{OK: true, Images: p.images, Count: len(p.entries), Needed: p.needed}, p.dumps, true))
		}
		return ss.restore(ctx, p)
	}
	return fail(fmt.Errorf("unknown request %q (this index server speaks protocol version %d)", req.Op, wire.IndexVersion))
}

func showDir(p string) string {
	if p == "" || p == "/" || p == "." {
		return "the DLE's root"
	}
	return p
}

// allowed says whether the peer may browse host.
func (ss *session) allowed(host string) error {
	if host == "" {
		return errors.New("no host chosen: sethost HOST first (listhost shows them)")
	}
	if ss.admin {
		return nil
	}
	if !slices.Contains(ss.peer.Roles, wire.RoleClient) {
		return fmt.Errorf("certificate %s has roles %v; the index server accepts client and admin certificates (tapir ca issue HOST [--admin])", ss.peer.Host, ss.peer.Roles)
	}
	if strings.EqualFold(host, ss.peer.Host) {
		return nil
	}
	return fmt.Errorf("host %s is not yours: the certificate of %s (role %s) may browse and restore only %s; an admin certificate (tapir ca issue NAME --admin) may browse every host",
		host, ss.peer.Host, strings.Join(ss.peer.Roles, ","), ss.peer.Host)
}

// entries sends a reply followed by entry records.
func (ss *session) entries(r any, es []wire.EntryInfo) error {
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
	if err := ss.c.WriteMsg(r); err != nil {
		return err
	}
	if err := ss.c.WriteEntries(es); err != nil {
		return err
	}
	return ss.c.Flush()
}

func entryOf(r catalog.ViewRecord) wire.EntryInfo {
	var mt int64
	if !r.Mtime.IsZero() {
		mt = r.Mtime.UnixNano()
	}
	return wire.EntryInfo{Path: r.Path, Type: r.Type, Image: r.Dump, Size: r.Size, Mode: r.Mode, Mtime: mt,
		UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset, Span: r.Span}
}

// view returns the session's view for the request, recording the
// listings of incrementals that lack them (read from their images) first.
func (ss *session) view(ctx context.Context, req wire.IndexRequest) (*catalog.View, error) {
	k := viewKey{req.Host, req.DLE, req.Date}
	if v, ok := ss.views[k]; ok && req.Op != wire.IdxView {
		return v, nil
	}
	for tries := 0; ; tries++ {
		v, err := ss.s.Catalog.View(ctx, req.Host, req.DLE, req.Date)
		var nl *catalog.NoListingsError
		if errors.As(err, &nl) && tries < 100 {
			if err := ss.s.recordListings(ctx, nl.Dump); err != nil {
				return nil, fmt.Errorf("%v, and reading them from the image failed: %w", nl, err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(ss.views) > 8 {
			clear(ss.views)
		}
		ss.views[k] = v
		return v, nil
	}
}

// recordListings reads an incremental image whose directory listings are
// not in the catalog and records them (once; they stay).
func (s *Server) recordListings(ctx context.Context, d catalog.Dump) error {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if cur, err := s.Catalog.Dump(ctx, d.ID); err == nil && cur.Listed {
		return nil
	}
	if d.Encrypted() {
		// The server holds no key: it cannot read an encrypted image.
		return fmt.Errorf("level %d image %s of %s:%s is encrypted and its directory listings are not in the catalog; the index server holds no key to read them: rebuild its file index with `tapir admin rebuild --identity FILE`, or restore on the backup server with `tapir recover -c CONFIG --all --identity FILE`", d.Level, d.Datestamp, d.Host, d.Path)
	}
	start := time.Now()
	is, err := s.newImageSource(ctx, d)
	if err != nil {
		return err
	}
	links := s.Peers.Links(s.Catalog)
	defer links.Close()
	is.Peers = links
	is.Expect([]wire.Range{{Off: 0, Len: d.PayloadSize}})
	defer is.close()
	// The whole image is read: check its SHA-256 on the way.
	sum := sha256.New()
	payload := io.TeeReader(ctxReader{ctx, is.Stream()}, sum)
	r, err := image.NewStreamReader(payload, image.Comp(d.Comp))
	if err != nil {
		return err
	}
	defer r.Close()
	lst, err := tarscan.Listings(r)
	if err == nil {
		// Drain through the decompressor first: it may still be reading the
		// payload ahead in its own goroutine. Once it has seen the end, what
		// is left (nothing, normally) is read here.
		if _, err = io.Copy(io.Discard, r); err == nil {
			_, err = io.Copy(io.Discard, payload)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", is.what(), err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); d.SHA256 != "" && got != d.SHA256 {
		return fmt.Errorf("%s read from %s has SHA-256 %s, the catalog says %s: the image is damaged (check the volume with tapir verify)", is.what(), strings.Join(is.where, ", "), got, d.SHA256)
	}
	if err := s.Catalog.SetListings(ctx, d.ID, lst); err != nil {
		return err
	}
	s.Log.Info("recorded the directory listings of an image", "host", d.Host, "path", d.Path, "datestamp", d.Datestamp,
		"level", d.Level, "dirs", len(lst), "from", strings.Join(is.where, ", "), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// images describes dumps for the shell; with where set it says where each
// volume is (Locate).
func (ss *session) images(ctx context.Context, ds []catalog.Dump, where bool) []wire.ImageInfo {
	out := make([]wire.ImageInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, ss.s.imageInfo(ctx, d, where))
	}
	return out
}

func (s *Server) imageInfo(ctx context.Context, d catalog.Dump, where bool) wire.ImageInfo {
	ii := wire.ImageInfo{Datestamp: d.Datestamp, Level: d.Level, Status: d.Status, Comp: d.Comp, FrameSize: d.FrameSize,
		OrigSize: d.OrigSize, PayloadSize: d.PayloadSize, Files: d.Files}
	if d.IsCommand() {
		ii.Payload = d.Payload
	}
	parts, err := partsToRead(ctx, s.Catalog, s.Volumes, d)
	if err != nil || len(parts) == 0 {
		ii.Holding = d.Status == catalog.DumpHolding
		return ii
	}
	links := s.Peers.Links(s.Catalog) // asks nothing of the network
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Volume] {
			continue
		}
		seen[p.Volume] = true
		vn := wire.VolumeNeed{Label: p.Volume, Available: true}
		if where {
			if srv, remote := links.Owner(ctx, s.Volumes, p.Volume); remote {
				if err := unreachable(srv, "volume "+p.Volume); err != nil {
					vn.Available, vn.Missing = false, err.Error()
				} else {
					vn.Where = Where(srv)
				}
			} else if s.Volumes == nil {
				vn.Available, vn.Missing = false, "this index server has no changer to read volumes from"
			} else if w, err := s.Volumes.Locate(ctx, p.Volume); err != nil && errors.Is(err, ErrVolumeMissing) && s.Volumes.Properties().WaitsForPerson {
				// A single drive: the restore asks for it when it gets there.
				vn.Where = "not in the drive now: you will be asked to insert it"
			} else if err != nil {
				vn.Available = false
				vn.Missing, _ = s.explain(err)
				s.Log.Info("volume not available", "label", p.Volume, "err", err)
			} else {
				vn.Where = w
			}
		}
		ii.Volumes = append(ii.Volumes, vn)
	}
	return ii
}

// history lists the restorable images of a DLE, newest first.
func (ss *session) history(ctx context.Context, req wire.IndexRequest) error {
	if req.DLE == "" {
		return ss.fail(ctx, req.Op, errors.New("no disk chosen: setdisk DLE first (listdisk shows them)"))
	}
	dumps, err := ss.s.Catalog.Dumps(ctx, req.Host, req.DLE)
	if err != nil {
		return ss.fail(ctx, req.Op, err)
	}
	dumps = slices.DeleteFunc(dumps, func(d catalog.Dump) bool { return d.Status != catalog.DumpGood && d.Status != catalog.DumpHolding })
	if len(dumps) == 0 {
		return ss.fail(ctx, req.Op, fmt.Errorf("no image of %s:%s is in the catalog", req.Host, req.DLE))
	}
	return ss.reply(withCrypt(wire.IndexReply{OK: true, Images: ss.images(ctx, dumps, false)}, dumps, false))
}

// ctxReader stops reading when ctx is done (the shell went away).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
