package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// Version is reported by selfcheck.
var Version = "0.1.0"

// Features lists what this agent can do, for selfcheck.
var Features = []string{"levels-0-9", "gnu-dumpdir", "sparse-1.0", "xattrs", "acls", "zstd-frames", "gzip-frames", "seek-table", "index", "confirm", "bandwidth", FeatureAge, FeatureListings, FeatureResume, FeatureResumeAge,
	FeatureHooks, FeatureCommand, FeatureSnapshotBtrfs, FeatureSnapshotLVM, FeatureSnapshotZFS, FeatureSnapshotCommand}

// FeatureAge is the feature of an agent that encrypts payloads with age
// (wire.Request.Encrypt "age"): the server refuses to ask an agent
// without it for a client-side encrypted dump.
const FeatureAge = "age"

// FeatureListings is the feature of an agent that sends the directory
// listings of a dump when asked (wire.Request.Listings): the server asks
// only an agent with it, since an older one refuses the field.
const FeatureListings = "listings"

// MaxRecipients bounds the age recipients of one dump request.
const MaxRecipients = 64

// Agent serves the agent protocol on a listener.
type Agent struct {
	Log *slog.Logger
	// TLS must come from wire.ServerConfig(files, wire.RoleServer): only the
	// backup server may ask for data.
	TLS *tls.Config
	// Allow lists the directories this agent may read: each DLE and each
	// exclude list must be one of them or below one, and is opened beneath
	// the most specific one without following a symlink out of it (see
	// beneath.go). Symlinks in an entry's own path are followed: it is the
	// administrator's configuration. Empty allows any absolute path.
	Allow []string
	// HandshakeTimeout bounds the TLS handshake and the request read.
	HandshakeTimeout time.Duration
	// StateDir keeps the incremental state of every DLE (GNU tar's
	// snapshot files, in our format). Empty: level 0 only.
	StateDir string
	// ConfirmTimeout bounds the wait for the server's Confirm after a dump.
	ConfirmTimeout time.Duration
	// AllowExec lists the executables the server may have this agent run
	// (pre and post hooks, command DLEs, command snapshots): absolute
	// directories (any executable below one) or files, resolved through
	// symlinks when a request names a command (exec.go). Empty: the agent
	// runs no command at all; unlike Allow, empty is not "any".
	AllowExec []string
	// Mountinfo is the mount table read to find the ZFS dataset or the
	// logical volume of a DLE; empty: /proc/self/mountinfo.
	Mountinfo string

	snapMu   sync.Mutex
	snapBusy map[string]bool // snapshot ids this agent is making, reading or removing

	mu      sync.Mutex
	running map[string]*runningDump // dumps with a token, by token
	reached map[string]int64        // payload offset a dump's last connection reached, by token
}

// runningDump is a dump with a token being served: a resume of it stops
// this one first (the server has given up its connection), so that two
// connections never write one resume state.
type runningDump struct {
	stop func()
	done chan struct{}
	sent atomic.Int64 // payload offset its connection reached
}

// own makes the connection the only one serving token: an older one is
// stopped and waited for. release gives it up.
func (a *Agent) own(ctx context.Context, token string, raw net.Conn) (context.Context, *runningDump, int64, func()) {
	ctx, cancel := context.WithCancel(ctx)
	me := &runningDump{stop: func() { cancel(); raw.SetDeadline(time.Now()) }, done: make(chan struct{})}
	prev := int64(-1)
	for {
		a.mu.Lock()
		old := a.running[token]
		if old == nil {
			if a.running == nil {
				a.running = map[string]*runningDump{}
			}
			a.running[token] = me
			a.mu.Unlock()
			break
		}
		a.mu.Unlock()
		old.stop()
		<-old.done
	}
	a.mu.Lock()
	if n, ok := a.reached[token]; ok {
		prev = n
		delete(a.reached, token)
	}
	a.mu.Unlock()
	return ctx, me, prev, func() {
		a.mu.Lock()
		if a.running[token] == me {
			delete(a.running, token)
			if a.reached == nil {
				a.reached = map[string]int64{}
			}
			if len(a.reached) >= 1024 {
				clear(a.reached) // figures for the report only: bounded
			}
			a.reached[token] = me.sent.Load()
		}
		a.mu.Unlock()
		cancel()
		close(me.done)
	}
}

func (a *Agent) states() *StateStore {
	if a.StateDir == "" {
		return nil
	}
	return &StateStore{Dir: a.StateDir}
}

// Serve accepts connections until ctx is cancelled or ln fails
// (wire.Serve).
//
// Before it serves, it removes the snapshots an earlier agent left (one
// killed while it dumped from them), as the ledger in StateDir names
// them (snapshot.go).
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	a.cleanupSnapshots("", nil)
	return wire.Serve(ctx, ln, "client agent", nil, a.handle)
}

func (a *Agent) handle(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	log := a.Log.With("remote", raw.RemoteAddr().String())
	to := a.HandshakeTimeout
	if to <= 0 {
		to = 30 * time.Second
	}
	// TLS over a BatchConn: a dump's records go out 256 KiB at a time,
	// not one write(2) per 16 KiB record.
	bc := wire.NewBatchConn(raw)
	tc := tls.Server(bc, a.TLS)
	raw.SetDeadline(time.Now().Add(to))
	if err := tc.HandshakeContext(ctx); err != nil {
		log.Warn("refused connection: TLS handshake failed", "err", err)
		return
	}
	peer, _ := wire.PeerOf(tc.ConnectionState())
	log = log.With("peer", peer.Host)
	c := wire.NewBatchedConn(tc, bc)
	var req wire.Request
	if err := c.ReadMsg(&req); err != nil {
		log.Warn("bad request", "err", err)
		c.WriteMsg(errReply("bad request: " + err.Error()))
		return
	}
	raw.SetDeadline(time.Time{})
	log = log.With("op", req.Op, "dle", req.DLE)
	opt, err := a.check(req)
	if err != nil {
		log.Warn("request refused", "err", err)
		c.WriteMsg(errReply(err.Error()))
		return
	}
	switch req.Op {
	case wire.OpConfirm:
		c.WriteMsg(a.confirmLate(req))
	case wire.OpSelfcheck:
		c.WriteMsg(a.selfcheck(req))
	case wire.OpEstimate:
		est, err := Estimate(ctx, req.DLE, opt, req.Levels)
		if err != nil {
			log.Warn("estimate failed", "err", err)
			c.WriteMsg(errReply(err.Error()))
			return
		}
		c.WriteMsg(wire.Reply{OK: true, Estimates: est})
		debug.FreeOSMemory() // the walk's garbage, before the dump that follows (see below)
	case wire.OpDump:
		var rd *runningDump
		prev := int64(-1)
		if req.Token != "" {
			var release func()
			ctx, rd, prev, release = a.own(ctx, req.Token, raw)
			defer release()
		}
		start := time.Now()
		done, held := a.dump(ctx, c, raw, req, opt, rd, prev)
		if done.Error != "" {
			log.Error("dump failed", "err", done.Error)
		} else {
			log.Info("dump sent", "files", done.Files, "bytes", done.PayloadSize, "elapsed", time.Since(start).Round(time.Millisecond))
		}
		if held > 0 {
			log.Warn("warnings held back", "count", held, "limit", MaxWarnings, "limit_bytes", MaxWarningBytes)
		}
		// A dump leaves tens of MiB of garbage (its frame buffers and
		// compressors, the walk's incremental state); the Go collector
		// would let the next dump grow the heap on top of it, so the
		// agent's peak RSS rose from night to night (62 MiB after the
		// first dump of bench/night.sh's 512 MiB tree, 80 MiB after the
		// second). Collect it and give it back now, between dumps.
		debug.FreeOSMemory()
	}
}

// check validates a request; every refusal is a message for the server's report.
func (a *Agent) check(req wire.Request) (DumpOptions, error) {
	switch req.Op {
	case wire.OpSelfcheck:
		if req.DLE == "" {
			return DumpOptions{}, nil
		}
	case wire.OpEstimate, wire.OpDump:
	case wire.OpConfirm:
		if !tokenRE.MatchString(req.Token) || req.SHA256 == "" || !datestampRE.MatchString(req.Datestamp) {
			return DumpOptions{}, errors.New("a confirm request needs the dump's token, datestamp and SHA-256")
		}
	default:
		return DumpOptions{}, fmt.Errorf("unknown operation %q", req.Op)
	}
	if req.Command != nil && req.Op == wire.OpEstimate {
		return DumpOptions{}, errors.New("a command DLE has no estimate: the server uses its last size")
	}
	if !path.IsAbs(req.DLE) || path.Clean(req.DLE) != req.DLE {
		return DumpOptions{}, fmt.Errorf("DLE %q: must be an absolute, clean path", req.DLE)
	}
	// A command DLE's name is only a name: it is not read, so --allow
	// does not apply to it (--allow-exec does, to its command).
	if len(a.Allow) > 0 && req.Command == nil {
		if _, _, ok := allowEntry(req.DLE, a.Allow); !ok {
			return DumpOptions{}, fmt.Errorf("DLE %s is outside the directories this agent may dump (%s); add it with --allow on the client", req.DLE, strings.Join(a.Allow, ", "))
		}
	}
	if req.Level < 0 || req.Level > MaxLevel {
		return DumpOptions{}, fmt.Errorf("level %d out of range 0..%d", req.Level, MaxLevel)
	}
	for _, l := range req.Levels {
		if l < 0 || l > MaxLevel {
			return DumpOptions{}, fmt.Errorf("estimate level %d out of range 0..%d", l, MaxLevel)
		}
	}
	if len(req.Levels) > MaxLevel+1 {
		return DumpOptions{}, fmt.Errorf("%d estimate levels asked; at most %d", len(req.Levels), MaxLevel+1)
	}
	if req.Op == wire.OpDump && req.Datestamp != "" && !datestampRE.MatchString(req.Datestamp) {
		return DumpOptions{}, fmt.Errorf("datestamp %q: want YYYYMMDD[hhmmss]", req.Datestamp)
	}
	if req.Bandwidth < 0 {
		return DumpOptions{}, fmt.Errorf("bandwidth %d is negative", req.Bandwidth)
	}
	for _, l := range req.ExcludeList {
		if !path.IsAbs(l) || path.Clean(l) != l {
			return DumpOptions{}, fmt.Errorf("exclude list %q: must be an absolute, clean path on the client", l)
		}
		if len(a.Allow) > 0 {
			if _, _, ok := allowEntry(l, a.Allow); !ok {
				return DumpOptions{}, fmt.Errorf("exclude list %s is outside the directories this agent may read (%s); move it below one of them, or add its directory with --allow on the client", l, strings.Join(a.Allow, ", "))
			}
		}
	}
	opt := DumpOptions{Level: req.Level, CompressLevel: req.CompressLevel, FrameSize: req.FrameSize, Exclude: req.Exclude,
		ExcludeLists: req.ExcludeList, OneFilesystem: req.OneFilesystem, Bandwidth: req.Bandwidth, Datestamp: req.Datestamp, State: a.states(),
		Allow: a.Allow}
	if opt.Datestamp == "" && opt.State != nil && req.Op == wire.OpDump {
		return DumpOptions{}, fmt.Errorf("a dump request needs a datestamp (it names the incremental state)")
	}
	switch image.Comp(req.Compress) {
	case image.CompZstd, image.CompGzip, image.CompNone:
		opt.Comp = image.Comp(req.Compress)
	case "":
		opt.Comp = image.CompZstd
	default:
		return DumpOptions{}, fmt.Errorf("compression %q unknown (zst, gz, none)", req.Compress)
	}
	if req.FrameSize != 0 && (req.FrameSize < 64<<10 || req.FrameSize > 64<<20) {
		return DumpOptions{}, fmt.Errorf("frame size %d out of range 64 KiB..64 MiB", req.FrameSize)
	}
	for _, p := range req.Exclude {
		if err := checkPattern(p); err != nil {
			return DumpOptions{}, fmt.Errorf("exclude pattern %q: %v", p, err)
		}
	}
	if err := checkEncrypt(req); err != nil {
		return DumpOptions{}, err
	}
	if req.Token != "" && !tokenRE.MatchString(req.Token) {
		return DumpOptions{}, fmt.Errorf("dump token %q: want 16 to 64 characters 0-9a-f", oneLine(req.Token, 80))
	}
	if req.Resume != nil && req.Token == "" {
		return DumpOptions{}, errors.New("a resume request needs the token of the dump it continues")
	}
	if req.Op != wire.OpDump && req.Op != wire.OpConfirm && (req.Token != "" || req.Resume != nil) {
		return DumpOptions{}, fmt.Errorf("a token or resume in a %s request", req.Op)
	}
	if req.HookTimeout < 0 || time.Duration(req.HookTimeout)*time.Second > MaxHookTimeout {
		return DumpOptions{}, fmt.Errorf("hook timeout %d seconds out of range 0..%d", req.HookTimeout, int(MaxHookTimeout/time.Second))
	}
	if req.Op == wire.OpDump {
		if err := a.checkExec(req); err != nil {
			return DumpOptions{}, err
		}
	}
	return opt, nil
}

// checkExec validates what a dump request asks the agent to run: its
// hooks, its command, its snapshot (problems of a selfcheck are the same
// sentences).
func (a *Agent) checkExec(req wire.Request) error {
	if req.Command != nil {
		if req.Level != 0 {
			return fmt.Errorf("a command DLE dumps level 0 only (level %d asked for %s)", req.Level, req.DLE)
		}
		if _, err := checkArgv("command", req.Command, a.AllowExec); err != nil {
			return err
		}
	}
	if req.Pre != nil {
		if _, err := checkArgv("pre hook", req.Pre, a.AllowExec); err != nil {
			return err
		}
	}
	if req.Post != nil {
		if _, err := checkArgv("post hook", req.Post, a.AllowExec); err != nil {
			return err
		}
	}
	if req.Snapshot != nil {
		if err := a.checkSnapshot(req.Snapshot); err != nil {
			return fmt.Errorf("DLE %s: %w", req.DLE, err)
		}
	}
	return nil
}

// checkEncrypt validates the encryption a request asks for: none, or age
// to at most MaxRecipients recipients that each parse.
func checkEncrypt(req wire.Request) error {
	switch req.Encrypt {
	case "":
		if len(req.Recipients) > 0 {
			return fmt.Errorf("%d recipients given without encrypt = \"age\"", len(req.Recipients))
		}
		return nil
	case crypt.Name:
	default:
		return fmt.Errorf("encryption %q unknown (this agent knows age)", oneLine(req.Encrypt, 64))
	}
	if req.Op != wire.OpDump {
		return nil
	}
	if len(req.Recipients) == 0 {
		return errors.New("encryption age asked without recipients")
	}
	if len(req.Recipients) > MaxRecipients {
		return fmt.Errorf("%d age recipients: at most %d", len(req.Recipients), MaxRecipients)
	}
	if _, err := crypt.ParseRecipients(req.Recipients, nil); err != nil {
		return fmt.Errorf("age recipients: %v", err)
	}
	return nil
}

// dump streams one dump; it returns the Done sent and how many warnings
// were held back (see warnCap).
//
// rd, for a dump with a token, tracks the payload bytes sent; prevSent is
// where the connection it replaces had reached (-1: unknown, as after a
// restart), for the Resumed reply.
func (a *Agent) dump(ctx context.Context, c *wire.Conn, raw net.Conn, req wire.Request, opt DumpOptions, rd *runningDump, prevSent int64) (wire.Done, int) {
	warns := &warnCap{send: func(line string) {
		c.WriteFrame(wire.FrameWarn, []byte(line), false)
	}}
	warns.hold() // until the Reply is sent
	// sess, once the stream started, holds the hooks run and the
	// snapshot made: whatever ends the dump removes the snapshot and
	// runs the post hook before Done (hooks.go).
	var sess *session
	fail := func(err error) (wire.Done, int) {
		d := wire.Done{Error: oneLine(err.Error(), MaxTextLen)}
		if sess != nil {
			sess.end(false)
			sess.done(&d)
		}
		warns.finish()
		c.WriteMsg(d)
		return d, warns.dropped
	}
	// Resume state (resume.go, resume_crypt.go): kept for a dump sent
	// with a token, by an agent with a state directory.
	var jr *journal
	var resumed *wire.Resumed
	var cres *cryptResume
	keep := req.Token != "" && a.StateDir != ""
	// A dump from a snapshot, or a command's output, cannot continue
	// after a cut: a new snapshot would not match the walk before it,
	// and a command cannot be resumed. They keep no resume state.
	if req.Snapshot != nil || req.Command != nil {
		if req.Resume != nil {
			what := "from a snapshot"
			if req.Command != nil {
				what = "of a command DLE"
			}
			e := fmt.Sprintf("%v dump %s of %s: a dump %s is never resumed; the server starts it over", errNoResume, req.Token, req.DLE, what)
			c.WriteMsg(errReply(e))
			return wire.Done{Error: e}, 0
		}
		keep = false
	}
	if req.Resume != nil {
		if !keep {
			e := fmt.Sprintf("%v dump %s of %s: this agent keeps no resume state for it (no --state-dir); the server starts it over", errNoResume, req.Token, req.DLE)
			c.WriteMsg(errReply(e))
			return wire.Done{Error: e}, 0
		}
		rp, err := loadResume(a.StateDir, req)
		if err == nil && req.Encrypt != "" {
			cres, err = loadCryptResume(resumeDir(a.StateDir, req.Token), req.FrameSize, req.Resume.Frames, req.Resume.PayloadOffset, req.Resume.CipherOffset)
			if err != nil {
				err = fmt.Errorf("%w dump %s of %s: %v; the server starts it over", errNoResume, req.Token, req.DLE, err)
			}
		} else if err == nil && req.Resume.CipherOffset != 0 {
			err = fmt.Errorf("%w dump %s of %s: a ciphertext offset for a payload this agent does not encrypt; the server starts it over", errNoResume, req.Token, req.DLE)
		}
		if err == nil {
			jr, err = openJournal(resumeDir(a.StateDir, req.Token), req, rp)
			if err != nil {
				err = fmt.Errorf("%w dump %s of %s: its state in %s cannot be opened (%v); the server starts it over", errNoResume, req.Token, req.DLE, resumeDir(a.StateDir, req.Token), err)
			}
		}
		if err != nil {
			c.WriteMsg(errReply(err.Error()))
			return wire.Done{Error: err.Error()}, 0
		}
		opt.resume = rp
		resumed = &wire.Resumed{Frames: int64(len(rp.frames)), TarOffset: rp.tarOff, PayloadOffset: req.Resume.PayloadOffset, CipherOffset: req.Resume.CipherOffset, Resent: -1}
		if prevSent >= 0 {
			// What went on the wire: ciphertext when encrypted.
			at := req.Resume.PayloadOffset
			if cres != nil {
				at = req.Resume.CipherOffset
			}
			resumed.Resent = max(0, prevSent-at)
		}
		a.Log.Info("resuming dump", "dle", req.DLE, "token", req.Token, "frames", resumed.Frames, "tar_offset", rp.tarOff, "payload_offset", resumed.PayloadOffset, "cipher_offset", resumed.CipherOffset)
	} else if keep {
		removeStaleResume(a.StateDir, req.DLE, req.Token, time.Now())
		var err error
		if jr, err = openJournal(resumeDir(a.StateDir, req.Token), req, nil); err != nil {
			os.RemoveAll(resumeDir(a.StateDir, req.Token))
			warns.warn(fmt.Sprintf("%s: the resume state of this dump cannot be kept in %s (%v): a cut stream starts it over", req.DLE, resumeDir(a.StateDir, req.Token), err))
			jr = nil
		}
	}
	if jr != nil {
		opt.journal = jr
		defer jr.close()
	}
	// The features tell the server, before any payload, that this agent
	// honours Encrypt (an older agent would send plaintext).
	if err := c.WriteMsg(wire.Reply{OK: true, Version: Version, Features: Features, Resumed: resumed}); err != nil {
		return wire.Done{Error: err.Error()}, 0
	}
	warns.release()
	// The pre hook, then the snapshot, right before the walk.
	sess = a.newSession(req, warns.warn)
	if err := sess.pre(ctx); err != nil {
		return fail(err)
	}
	if err := sess.snapshot(ctx); err != nil {
		return fail(err)
	}
	if sess.snap != nil {
		opt.snap = sess.snap
	}
	var batch []byte
	flushIndex := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.WriteFrame(wire.FrameIndex, batch, false)
		batch = batch[:0]
		return err
	}
	// The directory listings, when the server asks for them (it cannot
	// read them from an image encrypted here): batched into L frames of
	// about 256 KiB, as the index records are.
	var lbatch []byte
	flushListings := func() error {
		if len(lbatch) == 0 {
			return nil
		}
		err := c.WriteFrame(wire.FrameListing, lbatch, false)
		lbatch = lbatch[:0]
		return err
	}
	var listing func(dir, dumpdir string) error
	if req.Listings {
		listing = func(dir, dumpdir string) error {
			if len(dumpdir) > wire.MaxDumpdirLen || len(dir) > wire.MaxPathLen {
				warns.warn(fmt.Sprintf("%s: its listing (%d bytes) is too long to send to the server (at most %d): views of dates after this dump may show entries deleted from it",
					path.Join(req.DLE, dir), len(dumpdir), wire.MaxDumpdirLen))
				return nil
			}
			if len(lbatch)+len(dir)+len(dumpdir)+20 > wire.MaxFrame {
				if err := flushListings(); err != nil {
					return err
				}
			}
			lbatch = wire.AppendListing(lbatch, dir, dumpdir)
			if len(lbatch) >= 256<<10 {
				return flushListings()
			}
			return nil
		}
	}
	var payload io.Writer = wire.DataWriter{C: c, Chunk: 1 << 20, Flush: opt.Bandwidth > 0}
	if rd != nil {
		// The payload offset this connection reached, for the resume
		// that may replace it (wire.Resumed.Resent).
		if resumed != nil {
			if cres != nil {
				rd.sent.Store(resumed.CipherOffset)
			} else {
				rd.sent.Store(resumed.PayloadOffset)
			}
		}
		payload = &sentCounter{w: payload, n: &rd.sent}
	}
	// Client-side encryption: the framed payload goes through age on its
	// way to the wire (the frame records stay in its plaintext); the
	// sizes and SHA-256 of Done are of the ciphertext sent. The age
	// chunks (64 KiB) are gathered into data frames of 1 MiB. With a
	// resume state, the key and the encryptor's state at each frame end
	// are saved and the frame ends announced (resume_crypt.go); a resume
	// continues the same age file.
	var enc *crypt.Encryptor
	var buf *bufio.Writer
	if req.Encrypt == crypt.Name {
		if opt.Bandwidth > 0 {
			buf = bufio.NewWriterSize(payload, 64<<10+crypt.TagSize)
		} else {
			buf = bufio.NewWriterSize(payload, 1<<20)
		}
		var err error
		if cres != nil {
			enc, err = crypt.ResumeEncryptor(buf, cres.fileKey, cres.hdr, cres.st)
		} else {
			enc, err = crypt.NewEncryptor(buf, req.Recipients)
		}
		if err != nil {
			return fail(err)
		}
		payload = enc
		if jr != nil {
			if cres == nil {
				jr.saveCryptKey(enc.FileKey(), enc.Header())
			}
			cw := &checkpointWriter{enc: enc, buf: buf, j: jr, send: func(ck wire.Checkpoint) error {
				return c.WriteFrame(wire.FrameCheckpoint, wire.AppendCheckpoint(nil, ck), false)
			}}
			jr.afterCheckpoint = cw.frame
			payload = cw
		}
	}
	sink := Sink{
		Payload: payload,
		Index: func(r wire.IndexRecord) error {
			batch = wire.AppendIndex(batch, r)
			if len(batch) >= 256<<10 {
				return flushIndex()
			}
			return nil
		},
		Warn:    warns.warn,
		Listing: listing,
	}
	var res Result
	var err error
	if req.Command != nil {
		res, err = a.runCommandDLE(ctx, req, opt, sess, payload, warns.warn)
	} else {
		res, err = Dump(ctx, req.DLE, opt, sink)
	}
	if err != nil && opt.resume != nil && ctx.Err() == nil {
		err = fmt.Errorf("resuming the dump after frame %d: %w (this attempt fails; retries start the dump over)", len(opt.resume.frames), err)
	}
	if jr != nil && jr.failed != nil {
		warns.warn(fmt.Sprintf("%s: the resume state of this dump could not be saved (%v): a cut stream would have started it over", req.DLE, jr.failed))
	}
	if err == nil && enc != nil {
		if err = enc.Close(); err == nil {
			err = buf.Flush()
		}
		if err != nil {
			err = fmt.Errorf("encrypting the payload: %w", err)
		}
	}
	if err == nil {
		err = flushIndex()
	}
	if err == nil {
		err = flushListings()
	}
	if err != nil {
		return fail(err)
	}
	var fb []byte
	for _, f := range res.Summary.Frames {
		fb = wire.AppendFrameInfo(fb, f)
		if len(fb) >= 256<<10 {
			if err := c.WriteFrame(wire.FrameFrame, fb, false); err != nil {
				return fail(err)
			}
			fb = fb[:0]
		}
	}
	if len(fb) > 0 {
		if err := c.WriteFrame(wire.FrameFrame, fb, false); err != nil {
			return fail(err)
		}
	}
	sess.end(true)
	warns.finish()
	d := wire.Done{
		OrigSize:    res.Summary.OriginalSize,
		PayloadSize: res.Summary.PayloadSize,
		SHA256:      res.Summary.SHA256,
		Files:       res.Files,
		Frames:      int64(len(res.Summary.Frames)),
	}
	sess.done(&d)
	if enc != nil {
		d.PayloadSize, d.SHA256 = enc.Size(), enc.SHA256()
	}
	if err := c.WriteMsg(d); err != nil {
		return wire.Done{Error: err.Error()}, warns.dropped
	}
	over := true
	switch {
	case res.Pending && (req.Snapshot != nil || req.Command != nil):
		// No resume state: a Confirm that does not come is not waited
		// for (the state is discarded; the next incremental holds more).
		creq := req
		creq.Token = ""
		a.confirm(c, raw, creq, d)
	case res.Pending:
		over = a.confirm(c, raw, req, d)
	case req.Command != nil && a.StateDir != "":
		// Nothing to promote, but the server sends its Confirm to an
		// agent with state: answer it, so that it is not taken for a
		// lost one.
		a.confirmNothing(c, raw)
	}
	if jr != nil {
		jr.close()
		if over {
			// The dump is over: it is never resumed again.
			os.RemoveAll(jr.dir)
		} else if ctx.Err() == nil {
			// The server may come back to resume it (a cut after Done
			// reached this side but not the server) or to confirm it
			// (OpConfirm).
			writeFileSync(filepath.Join(jr.dir, "done"), []byte(d.SHA256))
		}
	}
	return d, warns.dropped
}

// sentCounter counts the payload bytes written through it.
type sentCounter struct {
	w io.Writer
	n *atomic.Int64
}

func (s *sentCounter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n.Add(int64(n))
	return n, err
}

// errReply is a refusal, its text one bounded line.
func errReply(msg string) wire.Reply {
	return wire.Reply{Error: oneLine(msg, MaxTextLen)}
}

func (a *Agent) confirmTimeout() time.Duration {
	if a.ConfirmTimeout <= 0 {
		return 30 * time.Minute
	}
	return a.ConfirmTimeout
}

// confirm waits for the server's verdict on a dump and promotes the
// pending incremental state only when the image is safe. It returns false
// when no verdict came (the connection went): a dump with a token keeps
// its pending state then, for a resume or a late Confirm (OpConfirm).
func (a *Agent) confirm(c *wire.Conn, raw net.Conn, req wire.Request, d wire.Done) bool {
	st := a.states()
	raw.SetReadDeadline(time.Now().Add(a.confirmTimeout()))
	var cf wire.Confirm
	err := c.ReadMsg(&cf)
	switch {
	case err != nil && req.Token != "" && a.StateDir != "":
		a.Log.Warn("no confirmation from the server: the incremental state waits for a resume or a late confirmation", "dle", req.DLE, "level", req.Level, "token", req.Token, "err", err)
		return false
	case err != nil:
		err = fmt.Errorf("no confirmation from the server (%v): the incremental state of %s level %d is not advanced", err, req.DLE, req.Level)
	case !cf.OK:
		err = fmt.Errorf("the server rejected the image (%s): the incremental state of %s level %d is not advanced", cf.Error, req.DLE, req.Level)
	case cf.SHA256 != d.SHA256:
		err = fmt.Errorf("the server confirmed SHA-256 %s but the image has %s: the incremental state is not advanced", cf.SHA256, d.SHA256)
	default:
		err = st.Promote(req.DLE, req.Level, req.Datestamp)
	}
	if err != nil {
		st.discardPending(req.DLE)
		a.Log.Warn("dump not confirmed", "dle", req.DLE, "level", req.Level, "err", err)
		c.WriteMsg(errReply(err.Error()))
		return true
	}
	a.Log.Info("incremental state advanced", "dle", req.DLE, "level", req.Level, "datestamp", req.Datestamp)
	c.WriteMsg(wire.Reply{OK: true})
	return true
}

// confirmNothing answers the Confirm of a dump that advances no state
// (a command DLE's).
func (a *Agent) confirmNothing(c *wire.Conn, raw net.Conn) {
	raw.SetReadDeadline(time.Now().Add(a.confirmTimeout()))
	var cf wire.Confirm
	if err := c.ReadMsg(&cf); err != nil {
		return
	}
	c.WriteMsg(wire.Reply{OK: true})
}

// confirmLate is the Confirm of a dump whose connection went after Done
// (OpConfirm): the dump's resume state says which image it sent.
func (a *Agent) confirmLate(req wire.Request) wire.Reply {
	if a.StateDir == "" {
		return errReply("this agent keeps no state (--state-dir): nothing to confirm")
	}
	dir := resumeDir(a.StateDir, req.Token)
	done, err := os.ReadFile(filepath.Join(dir, "done"))
	if err != nil {
		return errReply(fmt.Sprintf("dump %s of %s is not waiting for a confirmation on this agent (%v): the incremental state of level %d is not advanced; the next incremental holds more", req.Token, req.DLE, unwrapPath(err), req.Level))
	}
	b, err := os.ReadFile(filepath.Join(dir, "request.json"))
	var saved wire.Request
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	switch {
	case err != nil:
		return errReply(fmt.Sprintf("dump %s: its saved request is damaged (%v)", req.Token, err))
	case saved.DLE != req.DLE || saved.Level != req.Level || saved.Datestamp != req.Datestamp:
		return errReply(fmt.Sprintf("dump %s is of %s level %d (%s), not of %s level %d (%s)", req.Token, saved.DLE, saved.Level, saved.Datestamp, req.DLE, req.Level, req.Datestamp))
	case string(done) != req.SHA256:
		return errReply(fmt.Sprintf("the server confirmed SHA-256 %s but the image sent had %s: the incremental state is not advanced", oneLine(req.SHA256, 80), done))
	}
	if err := a.states().Promote(req.DLE, req.Level, req.Datestamp); err != nil {
		return errReply(err.Error())
	}
	os.RemoveAll(dir)
	a.Log.Info("incremental state advanced (late confirmation)", "dle", req.DLE, "level", req.Level, "datestamp", req.Datestamp)
	return wire.Reply{OK: true}
}

// selfcheck tells the server what works: the agent's version and
// features, and for a DLE whether it can be read and its state kept.
func (a *Agent) selfcheck(req wire.Request) wire.Reply {
	rep := wire.Reply{OK: true, Version: Version, Features: Features}
	if st := a.states(); st != nil {
		if err := st.Check(); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
	} else {
		rep.Problems = append(rep.Problems, "no --state-dir: only level-0 dumps are possible")
	}
	if req.DLE == "" {
		return rep
	}
	problem := func(format string, args ...any) {
		rep.Problems = append(rep.Problems, oneLine(fmt.Sprintf(format, args...), MaxTextLen))
	}
	if err := a.checkExec(req); err != nil {
		problem("%v", err)
	} else if req.Snapshot != nil {
		// Proved by making one and removing it.
		var runs []wire.HookRun
		record := func(r wire.HookRun) { runs = append(runs, r) }
		sn, err := a.makeSnapshot(context.Background(), req, hookTimeout(req), record, func(w string) { problem("%s", w) })
		if err != nil {
			problem("%v", err)
		} else if err := a.dropSnapshot(sn, hookTimeout(req), record); err != nil {
			problem("%v", err)
		}
	}
	if req.Command != nil {
		// A command DLE's name is not read.
		return rep
	}
	if d, err := openDLE(req.DLE, a.Allow); err != nil {
		problem("%v", err)
	} else {
		if _, err := d.Readdirnames(1); err != nil && err != io.EOF {
			problem("DLE %s cannot be listed: %v", req.DLE, unwrapPath(err))
		}
		d.Close()
	}
	for _, l := range req.ExcludeList {
		if _, err := newExcluder(nil, []string{l}, a.Allow, problem); err != nil {
			problem("%v", err)
		}
	}
	if st := a.states(); st != nil {
		rep.StateLevels = st.Levels(req.DLE)
	}
	return rep
}
