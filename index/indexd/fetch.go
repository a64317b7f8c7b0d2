package indexd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// fetch answers another tapir server of the catalog (a certificate with
// the server role) that restores an image held here: it reads the payload
// ranges asked for from this server's volumes or holding disk, checking
// each image header on the way as a restore does, and streams them back
// (wire.FetchMsg). What it reads here is never fetched from a third server: a volume that
// is not in this server's changer is an error.
func (ss *session) fetch(ctx context.Context, req wire.IndexRequest) error {
	fail := func(err error) error { return ss.fail(ctx, req.Op, err) }
	if !slices.Contains(ss.peer.Roles, wire.RoleServer) {
		return fail(fmt.Errorf("certificate %s has roles %v; only another tapir server (a certificate with the role %s) may fetch the frames of an image", ss.peer.Host, ss.peer.Roles, wire.RoleServer))
	}
	if err := checkRanges(req.Ranges); err != nil {
		return fail(err)
	}
	d, err := ss.s.Catalog.Dump(ctx, req.Dump)
	if err == nil && (d.Host != req.Host || d.Path != req.DLE) {
		err = fmt.Errorf("image %d of the catalog is of %s:%s, not of %s:%s", req.Dump, d.Host, d.Path, req.Host, req.DLE)
	}
	if err != nil {
		return fail(err)
	}
	for _, r := range req.Ranges {
		if r.Off > d.PayloadSize-r.Len { // r.Off+r.Len could overflow
			return fail(fmt.Errorf("payload bytes %d..%d are outside the %d bytes of level %d image %s of %s:%s", r.Off, r.Off+r.Len, d.PayloadSize, d.Level, d.Datestamp, d.Host, d.Path))
		}
	}
	parts, err := partsToRead(ctx, ss.s.Catalog, ss.s.Volumes, *d)
	if err != nil {
		return fail(err)
	}
	if err := ss.reply(wire.IndexReply{OK: true}); err != nil {
		return err
	}
	send := func(m wire.FetchMsg) error {
		ss.nc.SetWriteDeadline(time.Now().Add(ss.s.stall()))
		return ss.c.WriteMsg(m)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The volume is loaded once for all the ranges, read forward, and
	// given back when the fetch ends: a drive is never held between two
	// fetches, so that two servers restoring from each other never wait
	// for each other's drives.
	var vols VolumeSource
	if ss.s.Volumes != nil {
		pass := &Pass{Source: ss.s.Volumes}
		defer pass.Close()
		vols = pass
	}
	is := NewImageReader(ctx, vols, ss.s.Holding, *d, parts)
	defer is.close()
	if ss.s.Volumes != nil && ss.s.Volumes.Properties().WaitsForPerson {
		is.Ask = func(msg string) {
			ss.log.Info("fetch: asking the other server for a volume", "ask", msg)
			if err := send(wire.FetchMsg{Ask: msg}); err != nil {
				cancel(fmt.Errorf("%w: asking it for a volume (%s): %v", errPeerGone, msg, err))
				return
			}
			ss.nc.SetWriteDeadline(time.Time{})
		}
	}
	buf := make([]byte, wire.FetchPiece)
	announced := 0
	var sent int64
	for _, r := range req.Ranges {
		for off, end := r.Off, r.Off+r.Len; off < end; {
			b := buf[:min(int64(len(buf)), end-off)]
			if err := is.readAt(b, off); err != nil {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				ss.log.Warn("fetch: image not read", "datestamp", d.Datestamp, "level", d.Level, "host", d.Host, "path", d.Path, "err", err)
				msg, _ := ss.s.explain(err)
				return errors.Join(send(wire.FetchMsg{Error: msg}), ss.c.Flush())
			}
			for ; announced < len(is.where); announced++ {
				if err := send(wire.FetchMsg{Where: is.where[announced]}); err != nil {
					return err
				}
			}
			if err := send(wire.FetchMsg{Data: int64(len(b))}); err != nil {
				return err
			}
			if _, err := (wire.DataWriter{C: ss.c, Chunk: wire.FetchPiece}).Write(b); err != nil {
				return err
			}
			off += int64(len(b))
			sent += int64(len(b))
		}
	}
	if err := send(wire.FetchMsg{End: true}); err != nil {
		return err
	}
	ss.log.Debug("fetch sent", "host", d.Host, "path", d.Path, "datestamp", d.Datestamp, "ranges", len(req.Ranges), "bytes", sent)
	return ss.c.Flush()
}

// checkRanges refuses a fetch whose ranges are empty, too many, negative
// or too long.
func checkRanges(rs []wire.Range) error {
	if len(rs) == 0 {
		return errors.New("a fetch names no payload range")
	}
	if len(rs) > wire.MaxFetchRanges {
		return fmt.Errorf("a fetch names %d payload ranges; at most %d may be asked at once", len(rs), wire.MaxFetchRanges)
	}
	for _, r := range rs {
		if r.Off < 0 || r.Len <= 0 || r.Len > wire.MaxFetchRange {
			return fmt.Errorf("payload range %d+%d: an offset must be at least 0 and a length 1 to %d bytes", r.Off, r.Len, wire.MaxFetchRange)
		}
	}
	return nil
}
