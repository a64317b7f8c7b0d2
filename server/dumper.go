package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// finalError is a decision, not an accident: trying again would decide
// the same, so the dump is not retried.
type finalError struct{ msg string }

func (e *finalError) Error() string { return e.msg }

func final(format string, a ...any) error { return &finalError{fmt.Sprintf(format, a...)} }

// target is where a dumper sends an image: a reservation on the holding
// disk, or the taper (straight to a volume).
type target struct {
	space  *holding.Space
	pw     *io.PipeWriter
	direct <-chan directResult
	stream *streamItem // the holding image, offered to the taper while it grows
}

// need is the holding space to reserve for a dump at level: the estimate
// times the DLE's compression ratio, plus the header; at least what an
// earlier attempt of this run wrote before the holding disk ran out.
func (j *job) need(level int) int64 {
	n := j.estimated(level) + image.HeaderSize + 64<<10
	if level == j.level && j.outgrew > 0 {
		n = max(n, j.outgrew+image.HeaderSize+64<<10)
	}
	return n
}

// estimated is the payload the estimate of level promises: the agent's
// tar bytes times the DLE's compression ratio.
func (j *job) estimated(level int) int64 {
	return int64(float64(j.est[level].Bytes) * j.ratio)
}

// size is the image's size at level in words for a reason: what an
// earlier attempt proved, else the estimate.
func (j *job) size(level int) string {
	if level == j.level && j.outgrew > 0 {
		return fmt.Sprintf("at least %s, what an earlier attempt wrote before the holding disk ran out", bytesize.Format(j.outgrew))
	}
	return "about " + bytesize.Format(j.need(level))
}

// place decides where the image of j goes and waits until it can go
// there: the holding disk when the image fits (in degraded mode within
// the reserve, demoting a full to its fallback incremental when it does
// not), otherwise straight to the taper while it is idle. It fails only
// when nothing could ever change: no space, no volume, nothing draining.
func (r *run) place(ctx context.Context, j *job, hdr *image.Header, pr *io.PipeReader, pw *io.PipeWriter) (*target, error) {
	useHolding := j.dt.Holding != "never" && !j.forceDirect
	canDirect := j.dt.Holding != "required"
	if r.degraded && kindOf(j.level) == holding.Full && (!useHolding || j.need(0) > r.pool.FullRoom()) {
		if j.fallback < 0 {
			return nil, final("not dumped: its full (%s) is more than the holding space left to fulls (see NOTES), and there is no incremental to fall back to", j.size(0))
		}
		if _, ok := j.est[j.fallback]; !ok {
			return nil, final("not dumped: no usable volume, its full does not fit the holding reserve, and the agent sent no estimate for the fallback level %d", j.fallback)
		}
		j.res.Demoted = fmt.Sprintf("its full (%s) is more than the holding space left to fulls (see NOTES): demoted to level %d", j.size(0), j.fallback)
		j.level = j.fallback
		j.res.Level = j.level
		hdr.Level = j.level
		// The incremental goes to the holding disk, the only place
		// tonight; what the full wrote says nothing of its size.
		j.forceDirect, j.outgrew = false, 0
		useHolding = j.dt.Holding != "never"
	}
	need := j.need(j.level)
	// Without history the compression ratio is a guess: an image that
	// would not fit uncompressed goes straight to the taper rather than
	// risk being cut short when the holding disk runs out.
	worst := j.est[j.level].Bytes + image.HeaderSize
	if useHolding && (!r.pool.Fits(need, kindOf(j.level)) || (!j.ratioKnown && !r.degraded && canDirect && !r.pool.Fits(worst, kindOf(j.level)))) {
		useHolding = false
		if !canDirect {
			if len(r.missing) > 0 {
				return nil, final("the image (%s) does not fit on the holding disks that exist (%s; missing: %s) and its dumptype says holding = \"required\"; mount the missing disk(s)", j.size(j.level), bytesize.Format(r.pool.Total()), strings.Join(r.missing, ", "))
			}
			return nil, final("the image (%s) does not fit on the holding disks (%s) and its dumptype says holding = \"required\"", j.size(j.level), bytesize.Format(r.pool.Total()))
		}
	}
	for {
		// Taken before looking, so that no change between the look and
		// the wait is missed; the timer is only a safety net.
		poolChanged, taperChanged := r.pool.Changed(), r.tp.Changed()
		if useHolding {
			if s, ok := r.pool.TryReserve(need, kindOf(j.level)); ok {
				return &target{space: s}, nil
			}
		}
		if canDirect {
			if ch, ok := r.tp.tryDirect(j, *hdr, pr); ok {
				return &target{pw: pw, direct: ch}, nil
			}
		}
		taperLater := canDirect && r.tp.usable()
		if !taperLater && !(useHolding && (r.pool.Writers() > 0 || r.tp.draining())) {
			switch {
			case !useHolding && !r.tp.usable():
				return nil, fmt.Errorf("no volume can be written and the image (%s) cannot go to the holding disk (%s in all)", j.size(j.level), bytesize.Format(r.pool.Total()))
			default:
				return nil, fmt.Errorf("the holding disks are full (%s free of %s, the image needs %s) and no volume can be written", bytesize.Format(r.pool.Free()), bytesize.Format(r.pool.Total()), j.size(j.level))
			}
		}
		j.prog.mark("waiting", r.waitingFor(j, useHolding, canDirect), r.clock.Now())
		tm := r.clock.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil, ctx.Err()
		case <-poolChanged:
		case <-taperChanged:
		case <-tm.C():
		}
		tm.Stop()
	}
}

// holdingFull is a dump the holding disk could not take, said for a
// person; the holding package's error stays underneath for errors.Is and
// the log.
type holdingFull struct {
	cause error
	msg   string
}

func (e *holdingFull) Error() string { return e.msg }
func (e *holdingFull) Unwrap() error { return e.cause }

// holdingFullWhy is why the holding disk took no more of an image at
// level, in words: which limit, with its size.
func (r *run) holdingFullWhy(err error, level int) string {
	switch {
	case errors.Is(err, holding.ErrHoldingFull):
		return "every dump was waiting for holding space and nothing was being taped"
	case errors.Is(err, holding.ErrDiskFull):
		return "the holding filesystem is full although tapir had reserved the space: something else filled it; free space there or lower its use"
	case r.degraded && kindOf(level) == holding.Full:
		return fmt.Sprintf("without a volume, fulls may use %s of it (reserve = %d%%)", bytesize.Format(holding.FullLimit(r.pool.Total(), r.cfg.Reserve)), r.cfg.Reserve)
	}
	return fmt.Sprintf("the holding disks hold %s in all", bytesize.Format(r.pool.Total()))
}

// waitingFor says what a dump that place holds back waits for, for
// `tapir status`: holding space (how much is free, how much it needs), a
// drive, or either.
func (r *run) waitingFor(j *job, useHolding, canDirect bool) string {
	space := fmt.Sprintf("holding space (%s free of %s, it needs %s)", bytesize.Format(r.pool.Free()), bytesize.Format(r.pool.Total()), j.size(j.level))
	switch {
	case useHolding && canDirect:
		return "waiting for " + space + " or an idle drive"
	case useHolding:
		return "waiting for " + space + " (holding = \"required\")"
	}
	return "waiting for an idle drive (it goes straight to a volume)"
}

// attempt dumps j once: it places the image, streams it from the agent
// into holding or the taper, and records it. The error says why the
// attempt failed; the catalog marks the attempt failed.
func (r *run) attempt(ctx context.Context, j *job) error {
	log := r.log.With("host", j.dle.Host, "path", j.dle.Path)
	serverZstd := j.dt.Compress == "server-zstd"
	comp := image.Comp(compOf(j.dt))
	if serverZstd {
		comp = image.CompZstd
	}
	hdr := &image.Header{Datestamp: r.datestamp, Host: j.dle.Host, Path: j.dle.Path, Level: j.level, Part: 1, Parts: 1,
		Comp: comp, FrameSize: int64(j.dt.FrameSize), Encryption: "none",
		OriginalSize: image.Unknown, PayloadSize: image.Unknown, Frames: image.Unknown, Files: image.Unknown}
	// Encryption (docs/format/image.md, "Encryption"): client-side, the
	// agent sends an age file and the server never sees the plaintext;
	// server-side, the agent sends the usual payload, which is checked as
	// always and encrypted on its way to the holding disk or the taper.
	clientEnc := j.dt.Encrypt == config.EncryptClient
	serverEnc := j.dt.Encrypt == config.EncryptServer
	if clientEnc || serverEnc {
		hdr.Encryption, hdr.Recipients = image.EncAge, crypt.Fingerprints(j.dt.AgeRecipients)
	}
	if j.dt.IsCommand() {
		hdr.Payload = image.PayloadCommand
	}
	pr, pw := io.Pipe()
	tg, err := r.place(ctx, j, hdr, pr, pw)
	if err != nil {
		return err
	}
	j.prog.level.Store(int64(j.level))
	if tg.space != nil {
		j.prog.target.Store("holding")
	} else {
		j.prog.target.Store("tape")
	}
	j.prog.bytes.Store(0)
	if serverZstd {
		j.prog.est.Store(j.est[j.level].Bytes) // the agent sends plain tar
	} else {
		j.prog.est.Store(j.estimated(j.level))
	}
	j.prog.mark("dumping", "", r.clock.Now())
	remote, err := newRemote(r.cfg, r.files, j.dle.Host, time.Duration(r.cfg.Dtimeout))
	if err != nil {
		r.release(tg, err)
		return err
	}
	started := r.clock.Now()
	id, err := r.cat.CreateDump(ctx, &catalog.Dump{RunID: r.runID, Host: j.dle.Host, Path: j.dle.Path, Level: j.level, Datestamp: r.datestamp,
		Comp: string(hdr.Comp), FrameSize: hdr.FrameSize, Started: started, Encryption: hdr.Encryption, Recipients: hdr.Recipients, Payload: hdr.Payload})
	if err != nil {
		r.release(tg, err)
		return err
	}
	j.dumpID = id
	var w *holding.Writer
	var out io.Writer = pw
	if tg.space != nil {
		w, err = holding.Create(ctx, tg.space, r.datestamp, hdr.Name())
		if err != nil {
			tg.space.Free()
			r.cat.FailDump(context.WithoutCancel(ctx), id, err.Error())
			return err
		}
		// The taper may start the image while it is written: every write
		// is published to it (holding.Growing), the end only once the
		// image is recorded.
		g := holding.Follow(w, r.clock)
		out = g
		if est := j.streamEstimate(); est > 0 && !r.cfg.TapeWholeImages && r.tp.usable() {
			tg.stream = &streamItem{j: j, g: g, hdr: *hdr, dumpID: id, est: est, space: tg.space}
			r.tp.offer(tg.stream)
		}
	}
	fw, err := r.cat.NewFileWriter(ctx, id, hdr.FrameSize)
	if err != nil {
		r.abort(ctx, tg, w, nil, id, err)
		return err
	}
	// server-side encryption: what goes to the holding disk or the taper
	// is the age file of the payload (compressed by the server with
	// server-zstd); the agent's SHA-256 is checked on what it sent.
	var senc *crypt.Writer
	dst := out
	if serverEnc {
		// The age header and nonce are written at once: into the
		// holding file, or the pipe the taper reads.
		// On the holding disk its writer hashes the ciphertext: once is
		// enough (SHA-256 was a third of a server-side night's CPU).
		senc, err = crypt.NewWriterWith(out, j.dt.AgeRecipients, crypt.WriterOptions{NoSum: w != nil})
		if err != nil {
			r.abort(ctx, tg, w, fw, id, err)
			return err
		}
		dst = senc
	}
	// server-zstd: the agent sends the plain tar stream (its SHA-256 is of
	// those bytes) and the server cuts and compresses the frames.
	var spw *image.PayloadWriter
	var rawSum hash.Hash
	sink := dst
	if serverZstd {
		spw, err = image.NewPayloadWriter(dst, image.WriterOptions{Comp: image.CompZstd, Level: j.dt.CompressLevel, FrameSize: int(j.dt.FrameSize)})
		if err != nil {
			r.abort(ctx, tg, w, fw, id, err)
			return err
		}
		sink = spw
	}
	// Encrypting (and hashing the ciphertext twice: the writer's sum and
	// the holding file's) runs in its own goroutine, beside the reader of
	// the connection, which hashes the plaintext.
	var aw *asyncWriter
	if serverEnc {
		aw = newAsyncWriter(sink, 4)
		sink = aw
	}
	if serverZstd || serverEnc {
		rawSum = sha256.New()
		sink = io.MultiWriter(rawSum, sink)
	}
	// The stream is checked as it flows: clean relative names, matching
	// the agent's index (promise 8). server-zstd streams arrive as plain tar.
	streamComp := comp
	if serverZstd {
		streamComp = image.CompNone
	}
	// A client-side encrypted stream is ciphertext: the server cannot
	// check its names nor match it with the index (the agent's word; the
	// restore refuses unsafe names itself). The stream must be an age
	// file, whose header the catalog keeps.
	var chk *ingest
	var ah *ageHead
	if clientEnc {
		ah = &ageHead{}
	} else {
		if j.dt.IsCommand() {
			chk = newCommandIngest(streamComp)
		} else {
			chk = newIngest(streamComp)
		}
		defer chk.Abort()
	}
	// The directory listings of an encrypted incremental, which the
	// server cannot read from the image once written: server-side, the
	// scan of the plaintext collects them; client-side, the agent sends
	// them when it can (FeatureListings). They are recorded once the
	// image is safe.
	var lst *listingSet
	var listingWarn string // why the dump is recorded unlisted
	askListings := clientEnc && j.level > 0
	if serverEnc && j.level > 0 {
		lst = newListingSet()
		chk.listings = lst
	}
	if askListings {
		lst = newListingSet()
	}
	var warns warnings
	var frames []image.Frame
	var dumped int64
	// Resume (docs/format/agent-protocol.md, "Resuming a cut dump"): only
	// whole frames go downstream (gate), and the index records of the
	// frames not yet whole wait (held), so that a stream cut for a
	// transport reason continues after the last whole frame and nothing
	// downstream takes a byte back. A client-side encrypted stream's
	// frames are inside the age file: the agent announces where they
	// end (wire.Checkpoint). Not for gzip members (their lengths cannot
	// be read as they come): those start over.
	var gate *frameGate
	var held []wire.IndexRecord
	var kept, listingsGot int64 // index records passed on, listing records received
	frameSize := int64(j.dt.FrameSize)
	if frameSize <= 0 {
		frameSize = image.DefaultFrameSize
	}
	token := ""
	// A snapshot's dump and a command's output are not resumed: the
	// snapshot is gone with the cut connection and a command cannot be
	// continued; a cut starts them over.
	resumable := j.dt.Snapshot == config.SnapshotNone && !j.dt.IsCommand()
	if resumable && r.cfg.ResumeAttempts > 0 && (streamComp == image.CompZstd || streamComp == image.CompNone) {
		token = newToken()
	}
	// deliver hands payload bytes to the check, the holding disk or the
	// taper.
	deliver := func(b []byte) error {
		if chk != nil {
			if _, err := chk.Write(b); err != nil {
				return final("refused: %v", err)
			}
		} else if !ah.done {
			if err := ah.add(b); err != nil {
				return final("refused: %s:%s level %d: %v", j.dle.Host, j.dle.Path, j.level, err)
			}
		}
		_, err := sink.Write(b)
		dumped += int64(len(b))
		j.prog.bytes.Add(int64(len(b)))
		return err
	}
	passRecord := func(rec wire.IndexRecord) error {
		if chk != nil {
			if err := chk.Record(rec); err != nil {
				return final("refused: %v", err)
			}
		}
		kept++
		return fw.Add(ctx, catalog.FileRecord{Path: rec.Path, Type: rec.Type, Size: rec.Size, Mode: rec.Mode, Mtime: rec.Mtime,
			UID: rec.UID, GID: rec.GID, Link: rec.Link, TarOffset: rec.TarOffset})
	}
	// release passes on the held records whose entry starts in a frame
	// already passed (all of them when all is set).
	release := func(all bool) error {
		n := 0
		for ; n < len(held); n++ {
			if !all && gate != nil && held[n].TarOffset >= gate.frames*frameSize {
				break
			}
			if err := passRecord(held[n]); err != nil {
				return err
			}
		}
		held = append(held[:0], held[n:]...)
		return nil
	}
	if token != "" && clientEnc {
		gate = newCipherGate(frameSize, deliver)
	} else if token != "" {
		gate = newFrameGate(streamComp == image.CompZstd, frameSize, deliver)
	}
	// safe makes the image safe (on the holding disk, or on a volume) and
	// records it in the catalog; only then is the agent told to advance its
	// incremental state.
	safe := func(done *wire.Done) error {
		// The image arrived whole: it is recorded even when the run is
		// being stopped (catalog writes honour a cancelled ctx).
		ctx := context.WithoutCancel(ctx)
		if gate != nil {
			if err := gate.Flush(); err != nil {
				return err
			}
			if err := release(true); err != nil {
				return err
			}
		}
		if chk != nil {
			if err := chk.Finish(); err != nil {
				return final("refused: %v", err)
			}
		}
		if int64(len(frames)) != done.Frames {
			return fmt.Errorf("client agent %s sent %d frame records but announced %d", j.dle.Host, len(frames), done.Frames)
		}
		if gate != nil && gate.cipher && gate.frames > 0 {
			// The last resume point it announced ends a frame.
			if n := gate.frames; n > int64(len(frames)) || frames[n-1].Offset+frames[n-1].Size != gate.plain {
				return final("refused: %s:%s level %d: the agent announced that frame %d ends at plaintext offset %d, but its frame records say otherwise", j.dle.Host, j.dle.Path, j.level, n-1, gate.plain)
			}
		}
		hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files = done.OrigSize, done.PayloadSize, done.SHA256, done.Files
		if j.dt.IsCommand() && done.Files != 0 {
			return final("refused: the agent on %s announced %d files for the command DLE %s, which holds none", j.dle.Host, done.Files, j.dle.Path)
		}
		if aw != nil {
			if err := aw.Close(); err != nil {
				return err
			}
		}
		if rawSum != nil {
			if done.PayloadSize != dumped {
				return fmt.Errorf("the agent on %s announced %d payload bytes of %s but sent %d: corrupted in transit", j.dle.Host, done.PayloadSize, j.dle.Path, dumped)
			}
			if got := hex.EncodeToString(rawSum.Sum(nil)); got != done.SHA256 {
				return fmt.Errorf("the stream from %s has SHA-256 %s but the agent sent %s: corrupted in transit", j.dle.Host, got, done.SHA256)
			}
		}
		if serverZstd {
			if err := spw.Close(); err != nil {
				return fmt.Errorf("server-side compression: %w", err)
			}
			sum := spw.Sum()
			hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256 = sum.OriginalSize, sum.PayloadSize, sum.SHA256
			frames = sum.Frames
		}
		var cryptHdr []byte
		if senc != nil {
			if err := senc.Close(); err != nil {
				return fmt.Errorf("server-side encryption: %w", err)
			}
			hdr.PayloadSize, hdr.SHA256 = senc.Size(), senc.SHA256()
			if w != nil {
				hdr.SHA256 = w.SHA256()
			}
			cryptHdr = senc.Header()
		}
		if ah != nil {
			if !ah.done {
				return final("refused: %s:%s level %d: %s", j.dle.Host, j.dle.Path, j.level, ah.endErr())
			}
			cryptHdr = ah.hdr
		}
		if cryptHdr != nil {
			if err := checkAgeLayout(cryptHdr, hdr.PayloadSize, frames); err != nil {
				return final("refused: the encrypted image of %s:%s level %d: %v", j.dle.Host, j.dle.Path, j.level, err)
			}
			if err := r.cat.SetDumpCryptHeader(ctx, id, cryptHdr); err != nil {
				return err
			}
		}
		hdr.Frames = int64(len(frames))
		if w != nil {
			p, err := w.Prepare(hdr)
			if err != nil {
				return err
			}
			if err := fw.Commit(ctx); err != nil {
				return err
			}
			if err := r.cat.SetDumpHolding(ctx, id, hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, p, frames, r.clock.Now()); err != nil {
				return err
			}
			if err := w.Commit(); err != nil {
				return err
			}
			j.holding = p
			if j.level == 0 {
				// A full safe on the holding disk ends a forced full (the
				// catalog clears the flag on tape too).
				if err := r.cat.SetForce(ctx, j.dle.Host, j.dle.Path, false); err != nil {
					r.log.Warn("clear force flag", "err", err)
				}
			}
			return nil
		}
		pw.Close()
		dr := <-tg.direct
		tg.direct = nil
		if dr.err != nil {
			return fmt.Errorf("straight to a volume: %w", dr.err)
		}
		// Written whole but not recorded: its tape files are failed files.
		unrecorded := func(err error) error {
			r.tp.unrecorded(ctx, j, hdr.Level, dr.res, err.Error())
			return err
		}
		if dr.res.SHA256 != hdr.SHA256 || dr.res.Bytes != hdr.PayloadSize {
			return unrecorded(fmt.Errorf("the taper wrote %d bytes with SHA-256 %s, the agent announced %d bytes with %s", dr.res.Bytes, dr.res.SHA256, hdr.PayloadSize, hdr.SHA256))
		}
		if err := fw.Commit(ctx); err != nil {
			return unrecorded(err)
		}
		if err := r.cat.SetDumpHolding(ctx, id, hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, "", frames, r.clock.Now()); err != nil {
			return unrecorded(err)
		}
		if err := r.tp.commit(ctx, j, dr.res); err != nil {
			return unrecorded(err)
		}
		j.res.TapeTime = r.clock.Now().Sub(started)
		r.tp.starved(j, dr.res, dr.starved, "the dumper")
		return nil
	}
	j.res.Strange, j.res.Resumes, j.res.Hooks, j.res.Snapshot = nil, nil, nil, ""
	req := dumpRequest(r.datestamp, j.dle, j.dt, j.level)
	req.Listings = askListings
	req.Token = token
	replied := false
	canResume := false // the agent keeps the resume state (FeatureResume)
	var seen map[string]bool
	h := client.DumpHandler{
		Reply: func(rep *wire.Reply) error {
			replied = true
			canResume = slices.Contains(rep.Features, client.FeatureResume)
			if rs := req.Resume; rs != nil {
				// The agent must continue exactly after what the server
				// holds: anything else points elsewhere.
				got := rep.Resumed
				if got == nil || got.Frames != rs.Frames || got.PayloadOffset != rs.PayloadOffset || got.CipherOffset != rs.CipherOffset ||
					got.TarOffset <= (rs.Frames-1)*frameSize || got.TarOffset > rs.Frames*frameSize {
					at := fmt.Sprintf("payload offset %d", rs.PayloadOffset)
					if rs.CipherOffset > 0 {
						at += fmt.Sprintf(", ciphertext offset %d", rs.CipherOffset)
					}
					return fmt.Errorf("the agent on %s answered the resume of %s after frame %d (%s) with %+v: it points elsewhere; the dump starts over",
						j.dle.Host, j.dle.Path, rs.Frames, at, got)
				}
				// What the agent had written past the resume point (the
				// agent's word, for the report only).
				j.res.Resumes[len(j.res.Resumes)-1].AgentSent = max(-1, got.Resent)
			}
			if clientEnc && !slices.Contains(rep.Features, client.FeatureAge) {
				return final("%s", noAgeFeature(j.dle, rep.Version))
			}
			if clientEnc && req.Resume == nil && !slices.Contains(rep.Features, client.FeatureResumeAge) {
				// It keeps no state for what it encrypts: no checkpoints
				// come, and a cut starts over.
				gate = nil
			}
			if req.Listings && !slices.Contains(rep.Features, client.FeatureListings) {
				// It took the request but does not say it sends them.
				lst, listingWarn = nil, noListingsFeature(j.dle, rep.Version)
			}
			return nil
		},
		Listing: func(l wire.ListingRecord) error {
			listingsGot++
			if req.Listings && lst != nil {
				lst.add(l.Dir, l.Dumpdir)
			}
			return nil
		},
		Data: func(b []byte) error {
			if err := r.net.Wait(ctx, len(b)); err != nil {
				return err
			}
			if gate != nil {
				return gate.Write(b)
			}
			return deliver(b)
		},
		Index: func(rec wire.IndexRecord) error {
			if j.dt.IsCommand() {
				return final("refused: the agent on %s sent an index record (%s) for the command DLE %s, which holds no files", j.dle.Host, quoteCut(rec.Path), j.dle.Path)
			}
			if gate == nil || gate.off {
				if err := release(true); err != nil {
					return err
				}
				return passRecord(rec)
			}
			if len(held) > 0 || rec.TarOffset >= gate.frames*frameSize {
				if len(held) >= maxLag {
					return final("refused: the agent on %s sent more than %d index records ahead of its payload", j.dle.Host, maxLag)
				}
				held = append(held, rec)
				return nil
			}
			return passRecord(rec)
		},
		Checkpoint: func(ck wire.Checkpoint) error {
			if gate == nil || !gate.cipher {
				return fmt.Errorf("%w: the agent on %s sent a checkpoint record in a stream that was not asked for one", wire.ErrProtocol, j.dle.Host)
			}
			if err := gate.Checkpoint(ck); err != nil {
				return fmt.Errorf("the agent on %s sent, for the encrypted image of %s, %v: the dump fails", j.dle.Host, j.dle.Path, err)
			}
			return nil
		},
		Frame: func(f image.Frame) error {
			f.Index = len(frames)
			frames = append(frames, f)
			return nil
		},
		Warn: func(w string) {
			if seen != nil {
				// Resumed: what the stream before the cut warned about
				// the entries it sends again is not repeated.
				if seen[w] {
					return
				}
				seen[w] = true
			}
			warns.add(w)
		},
		Safe: safe,
	}
	if gate != nil {
		gate.onFrame = func() {
			if len(held) > 0 {
				// An error here comes back with the next record or at
				// the end: the check keeps it.
				if err := release(false); err != nil {
					gate.err = err
				}
			}
		}
	}
	var cutAt time.Time
	for wait := time.Second; ; {
		replied = false
		var done *wire.Done
		done, err = remote.Dump(ctx, req, h)
		if done != nil {
			j.res.Hooks, j.res.Snapshot = reportHooks(done.Hooks), done.Snapshot
		}
		if err == nil && gate != nil && gate.err != nil {
			err = gate.err
		}
		if err != nil && req.Listings && !replied && strings.Contains(err.Error(), `unknown field "listings"`) {
			// An agent from before listings refuses the field, before any
			// of the dump: asked again without it, its image is recorded
			// unlisted.
			req.Listings = false
			lst, listingWarn = nil, noListingsFeature(j.dle, "")
			continue
		}
		if err != nil && req.Token != "" && req.Resume == nil && !replied && strings.Contains(err.Error(), `unknown field "token"`) {
			// An agent from before resume refuses the token: asked again
			// without it, a cut starts the dump over.
			req.Token, gate = "", nil
			continue
		}
		var te *client.TransportError
		if err == nil || gate == nil || req.Token == "" || !canResume || ctx.Err() != nil || !errors.As(err, &te) {
			break
		}
		if req.Resume != nil && !replied {
			// The agent could not be reached again (restarting, or the
			// network still down): tried again until resume_window.
			window := time.Duration(r.cfg.ResumeWindow)
			if r.clock.Now().Sub(cutAt) >= window {
				err = fmt.Errorf("%w; could not resume within resume_window (%s): the dump starts over", err, window)
				break
			}
			tm := r.clock.NewTimer(min(wait, window-r.clock.Now().Sub(cutAt)))
			select {
			case <-ctx.Done():
			case <-tm.C():
			}
			tm.Stop()
			wait = min(2*wait, 30*time.Second)
			continue
		}
		if len(j.res.Resumes) >= r.cfg.ResumeAttempts {
			err = fmt.Errorf("%w (the stream was cut %d times; resume_attempts = %d: the dump starts over)", err, len(j.res.Resumes)+1, r.cfg.ResumeAttempts)
			break
		}
		if gate.frames == 0 {
			break // nothing to continue: it starts over, as before
		}
		resent, cerr := gate.Cut()
		if cerr != nil {
			err = fmt.Errorf("%w; it cannot resume (%v): the dump starts over", err, cerr)
			break
		}
		resent += te.Partial
		// Records of entries past the last whole frame come again.
		held = held[:0]
		frames = nil
		if seen == nil {
			seen = map[string]bool{}
			for _, w := range warns.lines {
				seen[w] = true
			}
		}
		req.Resume = &wire.Resume{Frames: gate.frames, PayloadOffset: gate.payload, Index: kept, Listings: listingsGot}
		if gate.cipher {
			req.Resume.PayloadOffset, req.Resume.CipherOffset = gate.plain, gate.payload
		}
		j.res.Resumes = append(j.res.Resumes, report.Resume{Level: j.level, Frames: gate.frames, Bytes: gate.payload, Resent: resent, AgentSent: -1, Reason: capReason(err.Error())})
		log.Warn("dump stream cut; resuming after the last whole frame", "frames", gate.frames, "payload_offset", req.Resume.PayloadOffset, "cipher_offset", req.Resume.CipherOffset, "dropped", resent, "err", err)
		cutAt, wait = r.clock.Now(), time.Second
	}
	j.res.Strange = warns.list()
	if err != nil && clientEnc && strings.Contains(err.Error(), `unknown field "encrypt"`) {
		// An agent from before encryption refuses the request's fields.
		err = final("%s", noAgeFeature(j.dle, ""))
	}
	if err != nil {
		if aw != nil {
			// Its goroutine may be writing into the taper's pipe: closed
			// first, the write returns; then nothing writes any more.
			if tg.pw != nil {
				tg.pw.CloseWithError(err)
			}
			aw.Abort()
		}
		if spw != nil {
			spw.Close()
		}
		if (errors.Is(err, holding.ErrNoSpace) || errors.Is(err, holding.ErrDiskFull)) && tg.space != nil {
			// Quote what the holding disk really took, not the estimate
			// the image outgrew; later attempts plan with it (need).
			written := tg.space.Written()
			j.outgrew = max(j.outgrew, written)
			log.Warn("the holding disk took no more of the image", "written", written, "err", err)
			err = &holdingFull{cause: err, msg: fmt.Sprintf("the holding disk ran out after %s of the image had been written (the estimate was about %s): %s",
				bytesize.Format(written), bytesize.Format(j.estimated(j.level)), r.holdingFullWhy(err, j.level))}
			full := kindOf(j.level) == holding.Full
			switch {
			case j.forceDirect || j.dt.Holding == "required":
			case r.degraded && full && j.fallback >= 0:
				// place demotes it to its fallback incremental.
				j.forceDirect = true
				j.extra++
				err = fmt.Errorf("%w; without a volume it is dumped again at its fallback level %d", err, j.fallback)
			case !r.tp.usable() && full && j.fallback < 0:
				err = final("%v, no volume can be written tonight, and there is no incremental to fall back to", err)
			case !r.tp.usable():
				err = final("%v, and no volume can be written tonight", err)
			default:
				j.forceDirect = true
				j.extra++
				err = fmt.Errorf("%w; it will be dumped again straight to a volume", err)
			}
		}
		if len(err.Error()) > maxReason {
			var fe *finalError
			if errors.As(err, &fe) {
				err = final("%s", capReason(err.Error()))
			} else {
				err = errors.New(capReason(err.Error()))
			}
		}
		r.abort(ctx, tg, w, fw, id, err)
		log.Error("dump failed", "err", err)
		return err
	}
	if hdr.Encryption == image.EncAge && j.level > 0 {
		r.recordListings(ctx, j, id, lst, listingWarn)
	}
	j.res.DumpTime = r.clock.Now().Sub(started)
	j.res.OrigSize, j.res.OutSize, j.res.Files = hdr.OriginalSize, hdr.PayloadSize, hdr.Files
	if w != nil {
		log.Info("dumped to holding", "file", j.holding, "level", j.level, "bytes", hdr.PayloadSize, "files", hdr.Files)
		if j.level > 0 && hdr.Encryption != image.EncAge {
			// The directory listings of an incremental, so that a view at a
			// date never has to read the image from a volume. Those of an
			// encrypted image cannot be read without its key, which the
			// server never holds.
			if err := tarscan.RecordListings(ctx, r.cat, id, j.holding, r.disks); err != nil {
				log.Warn("could not record the directory listings; the index server reads them from the image when first needed", "err", err)
			}
		}
		j.res.Status = report.StatusHolding
		if st := tg.stream; st != nil && r.tp.streamDone(st, j.holding) {
			// The taper is writing it: it sees the end now, commits it
			// on tape and deletes the holding file (j is the taper's).
			j.prog.mark("taping", "taped while it was dumped", r.clock.Now())
			st.g.Finish(*hdr)
			return nil
		}
		if tg.stream != nil {
			tg.stream.g.Finish(*hdr)
		}
		j.prog.mark("holding", "on the holding disk, waiting for the taper", r.clock.Now())
		r.tp.enqueue(&tapeItem{j: j, path: j.holding, space: tg.space, kind: kindOf(j.level)})
	} else {
		log.Info("dumped straight to a volume", "level", j.level, "bytes", hdr.PayloadSize, "files", hdr.Files, "volume", j.res.Parts[0].Volume)
	}
	return nil
}

// asyncWriter writes to w in its own goroutine what Write hands it
// (copied, at most depth chunks waiting). A failed write is returned by a
// later Write and by Close; the goroutine drops what follows.
type asyncWriter struct {
	q    chan []byte
	free chan []byte
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	err  error
	end  sync.Once
}

func newAsyncWriter(w io.Writer, depth int) *asyncWriter {
	a := &asyncWriter{q: make(chan []byte, depth), free: make(chan []byte, depth+1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for b := range a.q {
			if a.failed() == nil {
				select {
				case <-a.stop:
					a.fail(errors.New("aborted"))
				default:
					if _, err := w.Write(b); err != nil {
						a.fail(err)
					}
				}
			}
			select {
			case a.free <- b[:0]:
			default:
			}
		}
	}()
	return a
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	var b []byte
	select {
	case b = <-a.free:
	default:
	}
	a.q <- append(b, p...)
	return len(p), nil
}

// Close waits until everything handed over is written and returns the
// first error.
func (a *asyncWriter) Close() error {
	a.end.Do(func() { close(a.q) })
	<-a.done
	return a.failed()
}

// Abort drops what was not written yet and waits for the goroutine.
func (a *asyncWriter) Abort() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.Close()
}

// ageHead gathers the first bytes of a client-side encrypted stream until
// they hold the age header and nonce (at most crypt.MaxHeader +
// crypt.NonceSize bytes), refusing a stream that is not an age file.
type ageHead struct {
	buf  []byte
	hdr  []byte // the age header and nonce, once done
	done bool
}

var agePrefix = []byte("age-encryption.org/v1\n")

func (a *ageHead) add(b []byte) error {
	room := crypt.MaxHeader + crypt.NonceSize - len(a.buf)
	a.buf = append(a.buf, b[:min(len(b), room)]...)
	n := min(len(a.buf), len(agePrefix))
	if !bytes.Equal(a.buf[:n], agePrefix[:n]) {
		// Its bytes are not shown: they may be the plaintext that was
		// meant to be encrypted.
		return errors.New("the agent was asked to encrypt with age but sent a stream that is not an age file (it does not start with age's header line); an agent that ignores encrypt must not be trusted with this DLE")
	}
	if hl, err := crypt.HeaderLen(a.buf); err == nil {
		a.hdr, a.done, a.buf = bytes.Clone(a.buf[:hl]), true, nil
		return nil
	} else if len(a.buf) >= crypt.MaxHeader+crypt.NonceSize {
		return fmt.Errorf("the agent's stream is not a valid age file: %v", err)
	}
	return nil
}

// endErr says why a stream that ended before its age header was whole is
// refused.
func (a *ageHead) endErr() string {
	if len(a.buf) == 0 {
		return "the agent was asked to encrypt with age but sent an empty stream"
	}
	return fmt.Sprintf("the agent's stream ended after %d bytes, inside its age header: it is not a whole age file", len(a.buf))
}

// checkAgeLayout checks that an age payload of size bytes with header hdr
// is whole (every chunk full but the last) and holds the frames (offsets
// in its plaintext).
func checkAgeLayout(hdr []byte, size int64, frames []image.Frame) error {
	l, err := crypt.NewLayout(int64(len(hdr)), size)
	if err != nil {
		return err
	}
	if n := len(frames); n > 0 {
		if end := frames[n-1].Offset + frames[n-1].Size; end > l.PlainSize() {
			return fmt.Errorf("its frames end at plaintext offset %d, past the %d bytes its %d-byte age file holds", end, l.PlainSize(), size)
		}
	}
	return nil
}

// recordListings records the directory listings of the encrypted
// incremental id, safe on the holding disk or a volume. An image without
// them (an older agent, listings refused or over the bounds) stays good
// but unlisted, and the report warns once for the DLE.
func (r *run) recordListings(ctx context.Context, j *job, id int64, lst *listingSet, why string) {
	ctx = context.WithoutCancel(ctx)
	warn := func(w string) {
		r.log.Warn("directory listings not recorded", "host", j.dle.Host, "path", j.dle.Path, "level", j.level, "reason", w)
		if !slices.Contains(j.res.Warnings, w) {
			j.res.Warnings = append(j.res.Warnings, w)
		}
	}
	switch {
	case why != "":
		warn(why)
		return
	case lst == nil:
		return
	case lst.dropped == "" && lst.m[""] == "":
		lst.drop("no listing of the DLE root was sent")
		fallthrough
	case lst.dropped != "":
		warn(fmt.Sprintf("the directory listings of %s:%s level %d were refused (%s): the image is kept, but views of dates after this incremental may show deleted files",
			j.dle.Host, j.dle.Path, j.level, lst.dropped))
		return
	}
	if err := r.cat.SetListings(ctx, id, lst.m); err != nil {
		warn(fmt.Sprintf("the directory listings of %s:%s level %d could not be recorded (%v): the image is kept, but views of dates after this incremental may show deleted files",
			j.dle.Host, j.dle.Path, j.level, err))
	}
}

// noListingsFeature says that the agent of dle does not send the
// directory listings of the client-side encrypted incremental.
func noListingsFeature(dle config.DLE, version string) string {
	if version == "" {
		version = "an older version"
	} else if q := strconv.Quote(version); len(q) > 66 || q[1:len(q)-1] != version {
		// The agent's word in the report: one short line.
		version = strings.ToValidUTF8(q[:min(len(q), 66)], "") + "…"
	}
	return fmt.Sprintf("the agent on %s (%s) does not send directory listings, and the server cannot read them from the client-side encrypted image of %s: views of dates after this incremental may show deleted files: upgrade the agent on %s",
		dle.Host, version, dle.Path, dle.Host)
}

// noAgeFeature says that the agent of dle cannot encrypt.
func noAgeFeature(dle config.DLE, version string) string {
	if version == "" {
		version = "an older version"
	}
	return fmt.Sprintf("the dumptype of %s:%s says encrypt = \"client\", but the agent on %s (%s) cannot encrypt with age: upgrade tapir on %s, or set encrypt = \"server\" in the dumptype", dle.Host, dle.Path, dle.Host, version, dle.Host)
}

// newToken names one attempt of a dump for the agent's resume state.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func kindOf(level int) holding.Kind {
	if level == 0 {
		return holding.Full
	}
	return holding.Incremental
}

// release gives a target back before anything was written.
func (r *run) release(tg *target, err error) {
	if tg.space != nil {
		tg.space.Free()
	}
	if tg.pw != nil {
		tg.pw.CloseWithError(err)
		if tg.direct != nil {
			<-tg.direct
		}
	}
}

// abort undoes a failed attempt: the partial holding file goes, the taper
// gives up the stream, the index rows go and the catalog marks the dump
// failed with the reason.
func (r *run) abort(ctx context.Context, tg *target, w *holding.Writer, fw *catalog.FileWriter, id int64, err error) {
	if tg.stream != nil {
		// Before the files go: a taper writing the image gets the error
		// and cuts its tape file.
		r.tp.streamFailed(tg.stream, err)
	}
	if w != nil {
		if aerr := w.Abort(); aerr != nil {
			r.note("holding: " + aerr.Error())
		}
	}
	if tg.pw != nil {
		tg.pw.CloseWithError(err)
		if tg.direct != nil {
			<-tg.direct
		}
	}
	if fw != nil {
		fw.Abort()
	}
	r.cat.FailDump(context.WithoutCancel(ctx), id, err.Error())
}

// reportHooks is what the report shows of the commands an agent ran for a
// dump: at most wire.MaxHookRuns, each output cut to wire.MaxHookOutput
// bytes (an agent is not trusted to keep its own bounds).
func reportHooks(runs []wire.HookRun) []report.Hook {
	var out []report.Hook
	for _, h := range runs[:min(len(runs), wire.MaxHookRuns)] {
		out = append(out, report.Hook{Name: capLine(h.Name, 64), Command: capLine(h.Command, maxWarningLine), Exit: max(h.Exit, -1),
			Seconds: max(h.Seconds, 0), Output: tail(h.Output, wire.MaxHookOutput), Error: capLine(h.Error, maxWarningLine)})
	}
	return out
}

// capLine cuts s to n bytes.
func capLine(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// tail keeps the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
