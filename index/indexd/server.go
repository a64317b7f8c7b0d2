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
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/wire"
)

// Server is the index server. Its fields are its dependencies; set them
// before Serve and do not change them after.
type Server struct {
	Catalog *index.Catalog
	// TLS is the listening side's mutual-TLS configuration, normally
	// wire.ServerConfig(files, wire.RoleClient, wire.RoleAdmin,
	// wire.RoleServer). Serve refuses to run without one.
	TLS     *tls.Config
	Volumes VolumeSource // nil: only images on the holding disk can be read
	Holding []string     // the holding disk directories images may be read from
	Log     *slog.Logger // nil: discard
	// Idle is how long a session may stay silent before it is closed
	// (default 1 hour); a restore stream fails when the shell reads nothing
	// for Stall (default 10 minutes).
	Idle, Stall time.Duration
	// FindLimit caps find results (default 1000; a request may ask up to
	// 100,000).
	FindLimit int

	listMu sync.Mutex // one listings recovery at a time
}

// Serve accepts sessions on ln until ctx is done, then closes ln, waits for
// the sessions to end (they are cancelled) and returns nil. Other accept
// errors are returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.TLS == nil || s.Catalog == nil {
		return errors.New("index server: no TLS configuration or no catalog given")
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); ln.Close() }()
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("index server: accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ctx, conn)
		}()
	}
}

// session is one shell's connection.
type session struct {
	s     *Server
	ctx   context.Context
	c     *wire.Conn
	nc    net.Conn
	peer  wire.Peer
	admin bool
	log   *slog.Logger

	views map[viewKey]*index.View
}

type viewKey struct{ host, dle, date string }

func (s *Server) session(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	tc := tls.Server(raw, s.TLS)
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := tc.HandshakeContext(hctx)
	cancel()
	log := s.Log.With("remote", raw.RemoteAddr().String())
	if err != nil {
		log.Warn("index server: TLS handshake failed", "err", err)
		return
	}
	peer, err := wire.PeerOf(tc.ConnectionState())
	if err != nil {
		return
	}
	ss := &session{s: s, ctx: ctx, c: wire.NewConn(tc), nc: tc, peer: peer, log: log.With("peer", peer.Host), views: map[viewKey]*index.View{}}
	ss.admin = slices.Contains(peer.Roles, wire.RoleAdmin) || slices.Contains(peer.Roles, wire.RoleServer)
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Now()) })
	defer stop()
	ss.log.Info("index session started", "roles", peer.Roles)
	for {
		tc.SetReadDeadline(time.Now().Add(s.idle()))
		var req wire.IndexRequest
		if err := ss.c.ReadMsg(&req); err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				ss.log.Info("index session ended", "err", err)
				if errors.Is(err, wire.ErrProtocol) {
					ss.reply(wire.IndexReply{Error: "index server: " + err.Error()})
				}
			}
			return
		}
		tc.SetReadDeadline(time.Time{})
		if err := ss.handle(req); err != nil {
			ss.log.Info("index session ended", "op", req.Op, "err", err)
			return
		}
	}
}

func (s *Server) idle() time.Duration {
	if s.Idle > 0 {
		return s.Idle
	}
	return time.Hour
}

func (s *Server) stall() time.Duration {
	if s.Stall > 0 {
		return s.Stall
	}
	return 10 * time.Minute
}

// reply sends one reply; a write error ends the session.
func (ss *session) reply(r wire.IndexReply) error {
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
	return ss.c.WriteMsg(r)
}

// fail answers a request with an error sentence (the session goes on).
func (ss *session) fail(err error) error {
	return ss.reply(wire.IndexReply{Error: err.Error()})
}

// handle answers one request. A returned error ends the session (the
// connection broke); errors for the person are replies.
func (ss *session) handle(req wire.IndexRequest) error {
	switch req.Op {
	case wire.IdxHello:
		if !ss.admin && !slices.Contains(ss.peer.Roles, wire.RoleClient) {
			return ss.fail(fmt.Errorf("certificate %s has roles %v; the index server accepts client and admin certificates (tapir ca issue HOST [--admin])", ss.peer.Host, ss.peer.Roles))
		}
		return ss.reply(wire.IndexReply{OK: true, Version: wire.IndexVersion, Peer: ss.peer.Host, Roles: ss.peer.Roles, Admin: ss.admin})
	case wire.IdxListHost:
		if !ss.admin && !slices.Contains(ss.peer.Roles, wire.RoleClient) {
			return ss.fail(fmt.Errorf("certificate %s has roles %v; the index server accepts client and admin certificates (tapir ca issue HOST [--admin])", ss.peer.Host, ss.peer.Roles))
		}
		hosts, err := ss.s.Catalog.Hosts()
		if err != nil {
			return ss.fail(err)
		}
		if !ss.admin {
			hosts = slices.DeleteFunc(hosts, func(h string) bool { return !strings.EqualFold(h, ss.peer.Host) })
			if len(hosts) == 0 {
				return ss.fail(fmt.Errorf("no image of host %s is in the catalog", ss.peer.Host))
			}
		} else if len(hosts) == 0 {
			return ss.fail(errors.New("the catalog holds no image yet"))
		}
		return ss.reply(wire.IndexReply{OK: true, Hosts: hosts})
	}
	if err := ss.allowed(req.Host); err != nil {
		return ss.fail(err)
	}
	switch req.Op {
	case wire.IdxListDisk:
		dles, err := ss.s.Catalog.DLEPaths(req.Host)
		if err != nil {
			return ss.fail(err)
		}
		if len(dles) == 0 {
			return ss.fail(fmt.Errorf("no image of host %s is in the catalog (listhost shows the hosts that have some)", req.Host))
		}
		return ss.reply(wire.IndexReply{OK: true, DLEs: dles})
	case wire.IdxHistory:
		return ss.history(req)
	}
	if req.DLE == "" {
		return ss.fail(errors.New("no disk chosen: setdisk DLE first (listdisk shows them)"))
	}
	v, err := ss.view(req)
	if err != nil {
		return ss.fail(err)
	}
	switch req.Op {
	case wire.IdxView:
		return ss.reply(wire.IndexReply{OK: true, Images: ss.images(v.Chain, false)})
	case wire.IdxLs:
		ents, err := v.List(req.Path)
		if err != nil {
			return ss.fail(err)
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
		r, err := v.Stat(req.Path)
		if err != nil {
			return ss.fail(err)
		}
		e := entryOf(*r)
		if e.Path == "" {
			e.Path = "/"
		}
		return ss.reply(wire.IndexReply{OK: true, Entry: &e})
	case wire.IdxFind:
		limit := ss.s.FindLimit
		if limit <= 0 {
			limit = 1000
		}
		if req.Limit > 0 {
			limit = min(req.Limit, 100000)
		}
		found, more, err := v.Find(req.Pattern, limit)
		if err != nil {
			return ss.fail(err)
		}
		out := make([]wire.EntryInfo, len(found))
		for i, r := range found {
			out[i] = entryOf(r)
		}
		return ss.entries(wire.IndexReply{OK: true, Count: len(out), More: more}, out)
	case wire.IdxPlan, wire.IdxRestore:
		p, err := ss.s.plan(ss.ctx, v, req.Paths)
		if err != nil {
			return ss.fail(err)
		}
		if req.Op == wire.IdxPlan {
			return ss.reply(wire.IndexReply{OK: true, Images: p.images, Count: len(p.entries)})
		}
		return ss.restore(p)
	}
	return ss.fail(fmt.Errorf("unknown request %q (this index server speaks protocol version %d)", req.Op, wire.IndexVersion))
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
func (ss *session) entries(r wire.IndexReply, es []wire.EntryInfo) error {
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
	if err := ss.c.WriteMsg(r); err != nil {
		return err
	}
	if err := ss.c.WriteEntries(es); err != nil {
		return err
	}
	return ss.c.Flush()
}

func entryOf(r index.ViewRecord) wire.EntryInfo {
	var mt int64
	if !r.Mtime.IsZero() {
		mt = r.Mtime.UnixNano()
	}
	return wire.EntryInfo{Path: r.Path, Type: r.Type, Image: r.Dump, Size: r.Size, Mode: r.Mode, Mtime: mt,
		UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset, Span: r.Span}
}

// view returns the session's view for the request, recording the
// listings of incrementals that lack them (read from their images) first.
func (ss *session) view(req wire.IndexRequest) (*index.View, error) {
	k := viewKey{req.Host, req.DLE, req.Date}
	if v, ok := ss.views[k]; ok && req.Op != wire.IdxView {
		return v, nil
	}
	for tries := 0; ; tries++ {
		v, err := ss.s.Catalog.View(req.Host, req.DLE, req.Date)
		var nl *index.NoListingsError
		if errors.As(err, &nl) && tries < 100 {
			if err := ss.s.recordListings(ss.ctx, nl.Dump); err != nil {
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
func (s *Server) recordListings(ctx context.Context, d index.Dump) error {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if cur, err := s.Catalog.Dump(d.ID); err == nil && cur.Listed {
		return nil
	}
	start := time.Now()
	is, err := s.newImageSource(ctx, d)
	if err != nil {
		return err
	}
	defer is.close()
	// The whole image is read: check its SHA-256 on the way.
	sum := sha256.New()
	payload := io.TeeReader(is.Stream(), sum)
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
	if err := s.Catalog.SetListings(d.ID, lst); err != nil {
		return err
	}
	s.Log.Info("recorded the directory listings of an image", "host", d.Host, "path", d.Path, "datestamp", d.Datestamp,
		"level", d.Level, "dirs", len(lst), "from", strings.Join(is.where, ", "), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// images describes dumps for the shell; with where set it says where each
// volume is (Locate).
func (ss *session) images(ds []index.Dump, where bool) []wire.ImageInfo {
	out := make([]wire.ImageInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, ss.s.imageInfo(ss.ctx, d, where))
	}
	return out
}

func (s *Server) imageInfo(ctx context.Context, d index.Dump, where bool) wire.ImageInfo {
	ii := wire.ImageInfo{Datestamp: d.Datestamp, Level: d.Level, Status: d.Status, Comp: d.Comp, FrameSize: d.FrameSize,
		OrigSize: d.OrigSize, PayloadSize: d.PayloadSize, Files: d.Files}
	parts, err := s.Catalog.Parts(d.ID)
	if err != nil || len(parts) == 0 {
		ii.Holding = d.Status == index.DumpHolding
		return ii
	}
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Volume] {
			continue
		}
		seen[p.Volume] = true
		vn := wire.VolumeNeed{Label: p.Volume, Available: true}
		if where {
			if s.Volumes == nil {
				vn.Available, vn.Missing = false, "this index server has no changer to read volumes from"
			} else if w, err := s.Volumes.Locate(ctx, p.Volume); err != nil {
				vn.Available, vn.Missing = false, err.Error()
			} else {
				vn.Where = w
			}
		}
		ii.Volumes = append(ii.Volumes, vn)
	}
	return ii
}

// history lists the restorable images of a DLE, newest first.
func (ss *session) history(req wire.IndexRequest) error {
	if req.DLE == "" {
		return ss.fail(errors.New("no disk chosen: setdisk DLE first (listdisk shows them)"))
	}
	dumps, err := ss.s.Catalog.Dumps(req.Host, req.DLE)
	if err != nil {
		return ss.fail(err)
	}
	dumps = slices.DeleteFunc(dumps, func(d index.Dump) bool { return d.Status != index.DumpGood && d.Status != index.DumpHolding })
	if len(dumps) == 0 {
		return ss.fail(fmt.Errorf("no image of %s:%s is in the catalog", req.Host, req.DLE))
	}
	return ss.reply(wire.IndexReply{OK: true, Images: ss.images(dumps, false)})
}
