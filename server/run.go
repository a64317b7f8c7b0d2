package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/report/mail"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// Deps are what a run needs from outside.
type Deps struct {
	Log   *slog.Logger
	Clock clock.Clock
	Out   io.Writer // the text report is also printed here (nil: not printed)
	// Changer replaces the configuration's changer (tests inject devices
	// that stall or fail); nil uses the configuration.
	Changer taper.Changer
	// Changers, when set, replace the drives a run writes with (one
	// changer per drive, as [changer] tapers opens them); Changer is
	// still what restores, verify and the admin commands use.
	Changers []taper.Changer
	// VaultChangers replace the changers of the vaults' copy volumes,
	// by vault name (tests); a vault not named uses its [vault.changer].
	VaultChangers map[string]taper.Changer
	// Mailer sends the report to mailto; nil uses SMTP as [mail] says.
	Mailer mail.Mailer
	// Stop, when closed, asks the run to end early but cleanly (SIGTERM to
	// the server): no new dump starts, the dumps in flight finish onto the
	// holding disk, the taper finishes the image it writes, and the report
	// says what was left for the next run.
	Stop <-chan struct{}
	// Ask is the person at the terminal of a verify or a restore: it is
	// told the volumes needed ("The following tapes are needed: ...")
	// and, with a single drive, asked for each cartridge in turn
	// (indexd.Ask); the request also goes to the log and mail. Nil: nobody
	// is asked, and a volume that is not in the drive fails at once.
	Ask indexd.Ask
	// Subset is the note of a night that runs only some DLEs (the one
	// Subset returns with the reduced configuration); "" for a whole night.
	Subset string
}

// Mailer returns the SMTP mailer the configuration describes.
func Mailer(cfg *config.Config, log *slog.Logger) mail.Mailer {
	return &mail.SMTP{Addr: cfg.Mail.Server, StartTLS: mail.TLSPolicy(cfg.Mail.StartTLS), CAFile: cfg.Mail.CA,
		Username: cfg.Mail.Username, PasswordFile: cfg.Mail.PasswordFile, Timeout: time.Duration(cfg.Mail.Timeout), Log: log}
}

// mailOptions are the envelope of the reports of cfg.
func mailOptions(cfg *config.Config, host string) mail.Options {
	return mail.Options{From: cfg.Mail.From, To: cfg.Mailto, Hostname: host, AttachJSON: cfg.Mail.AttachJSON}
}

// ErrRunFailed is returned (wrapped) when the run completed but at least
// one DLE failed or was left on the holding disk.
var ErrRunFailed = errors.New("run finished with failures")

// job is one DLE's way through the run, or one image of an earlier run
// being flushed.
type job struct {
	dle        config.DLE
	dt         config.Dumptype
	level      int
	fallback   int    // the incremental to dump instead of a full in degraded mode; -1 none
	why        string // why this level
	prio       int
	est        map[int]wire.Estimate
	ratio      float64 // expected payload bytes per tar byte
	ratioKnown bool    // from the DLE's history, not a guess

	res         report.DLE
	noVolume    bool     // left on the holding disk for want of a volume: the reason is said once (sayOnce)
	attempts    []string // why earlier attempts failed
	forceDirect bool     // holding could not take it: straight to the volume
	outgrew     int64    // payload bytes an attempt wrote before the holding disk ran out (0: none did)
	extra       int      // attempts granted beyond retries (holding full)

	dumpID  int64
	holding string // final holding path once dumped
	flushed string // datestamp of the earlier run that dumped it (flush)

	prog progress // for `tapir status`
}

func (j *job) fail(reason string, now time.Time) {
	j.res.Status = report.StatusFailed
	j.res.Reason = reason
	j.prog.mark("failed", reason, now)
}

func (j *job) name() string { return fmt.Sprintf("%s:%s", j.dle.Host, j.dle.Path) }

// run is one night (or one flush) in progress.
type run struct {
	cfg       *config.Config
	cat       *catalog.Catalog
	log       *slog.Logger
	clock     clock.Clock
	datestamp string
	runID     int64
	files     wire.Files
	pool      *holding.Pool
	disks     []string
	tp        *taperLoop
	vols      *volumes
	net       *wire.Limiter // netusage: all dump streams of the run together
	degraded  bool
	stop      chan struct{} // closed by halt: Deps.Stop, or a CancelRequest
	haltOnce  sync.Once
	haltWhy   string         // why stop was closed; written before it is
	cancelled *CancelRequest // who cancelled the night (tapir status --cancel); nil: nobody
	done      chan struct{}  // closed when the run ends
	missing   []string       // configured holding disks that do not exist: not used tonight
	lost      int            // images of earlier runs found damaged or lost on the holding disks

	mu  sync.Mutex
	rep *report.Run
}

// problem puts something the run found wrong beyond its DLEs in the
// report (report.Run.Problems): the run is then at least strange.
func (r *run) problem(where, what string) {
	r.mu.Lock()
	r.rep.Problems = append(r.rep.Problems, report.Problem{Where: where, What: what})
	r.mu.Unlock()
}

// missingDiskOf returns the missing holding disk that path is on, "" when
// none.
func (r *run) missingDiskOf(path string) string {
	return holding.DiskOf(path, r.missing)
}

// whySIGTERM is why a run stops when the server is asked to (Deps.Stop).
const whySIGTERM = "the server was asked to stop (SIGTERM)"

// halt asks the run to end early but cleanly, as Deps.Stop does: no new
// dump starts, the dumps in flight finish onto the holding disk, the
// taper finishes the image it writes.
func (r *run) halt(why string) {
	r.haltOnce.Do(func() {
		r.haltWhy = why
		close(r.stop)
	})
}

// checkCancel halts the run when `tapir status --cancel` asked for it.
func (r *run) checkCancel() {
	if r.stopping() {
		return
	}
	if req := cancelRequested(r.cfg, r.datestamp); req != nil {
		r.mu.Lock()
		r.cancelled = req
		r.mu.Unlock()
		r.log.Warn("the night was cancelled", "by", req.By)
		r.halt("the night was cancelled by " + req.By)
	}
}

// stopErr is why the taper writes nothing more once the run halts.
func (r *run) stopErr() error {
	if r.haltWhy == whySIGTERM {
		return errStopping
	}
	return fmt.Errorf("%s; the next run flushes it", r.haltWhy)
}

// stopping reports whether the run was asked to end early (Deps.Stop, or
// a CancelRequest).
func (r *run) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *run) note(s string) {
	r.mu.Lock()
	r.rep.Notes = append(r.rep.Notes, s)
	r.mu.Unlock()
}

// setup opens the holding disks and the volumes of a session and starts
// the taper. A run without a usable volume goes degraded: it dumps to the
// holding disk only, honouring the reserve.
func setup(ctx context.Context, sess *session, cfg *config.Config) (*run, error) {
	r := &run{cfg: cfg, cat: sess.cat, log: sess.log, clock: sess.deps.Clock, datestamp: sess.rep.Datestamp,
		runID: sess.runID, rep: sess.rep, files: wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key},
		net: wire.NewLimiter(int64(cfg.Netusage)), stop: make(chan struct{}), done: make(chan struct{})}
	if stop := sess.deps.Stop; stop != nil {
		go func() {
			select {
			case <-stop:
				r.halt(whySIGTERM)
			case <-r.done:
			}
		}()
	}
	var disks []holding.Disk
	for _, h := range cfg.Holding {
		if err := holding.CheckDisk(h.Path); err != nil {
			// Never created here: an unmounted disk would fill the
			// filesystem under its mount point.
			r.missing = append(r.missing, h.Path)
			r.problem("", err.Error()+"; it is not used tonight")
			continue
		}
		disks = append(disks, holding.Disk{Path: h.Path, Use: int64(h.Use), Chunksize: int64(h.Chunksize)})
		r.disks = append(r.disks, h.Path)
	}
	if len(r.missing) > 0 && len(disks) == 0 {
		r.note("holding: no holding disk is usable tonight: images go straight to a volume, and DLEs whose dumptype says holding = \"required\" fail")
	}
	pool, err := holding.NewPool(disks, holding.PoolOptions{Reserve: cfg.Reserve, Draining: func() bool { return r.tp != nil && r.tp.draining() }})
	if err != nil {
		close(r.done)
		return nil, err
	}
	r.pool = pool
	r.vols = &volumes{cfg: cfg, cat: r.cat, datestamp: r.datestamp, clock: r.clock, log: r.log, notes: r.note, deps: sess.deps}
	r.tp = newTaperLoop(r, r.vols)
	chs, err := r.openDrives(sess.deps)
	if err == nil {
		r.vols.setDrives(chs)
		_, err = r.vols.probe(ctx)
		r.noteMissingVolumes(ctx, chs[0])
	}
	r.tp.setDrives()
	if err != nil {
		r.degraded = true
		r.pool.SetDegraded(true)
		r.tp.stop(err)
		d := &report.Degraded{Reason: noVolumeWhy(err), Expected: r.vols.expects}
		if d.Expected != "" {
			d.Insert = d.Expected
		}
		r.rep.Degraded = d
		if len(disks) == 0 {
			r.note("holding: there is no holding disk, so nothing can be dumped without a volume")
		} else {
			r.note(fmt.Sprintf("holding: degraded night, without a volume fulls may use %s of the %s holding disk (reserve = %d%% is kept for incrementals); a full larger than that becomes an incremental, or is not dumped when it has none; lower reserve to keep more fulls on such a night",
				bytesize.Format(holding.FullLimit(r.pool.Total(), cfg.Reserve)), bytesize.Format(r.pool.Total()), cfg.Reserve))
		}
		r.log.Warn("degraded mode: no usable volume", "err", err)
	}
	go r.tp.run(ctx)
	return r, nil
}

// openDrives opens the drives the run writes with: [changer] tapers of
// them, but no more than runtapes (each drive writes its own volume).
func (r *run) openDrives(deps Deps) ([]taper.Changer, error) {
	chs := deps.Changers
	if len(chs) == 0 {
		var err error
		if chs, err = openChangers(r.cfg, deps, r.log); err != nil {
			return nil, err
		}
	}
	if n := r.cfg.Runtapes; len(chs) > n {
		r.note(fmt.Sprintf("taper: [changer] tapers = %d, but runtapes = %d: the run writes with %d drive(s), as each drive writes its own volume; raise runtapes to use them all", len(chs), n, n))
		for _, ch := range chs[n:] {
			closeChanger(ch)
		}
		chs = chs[:n]
	}
	return chs, nil
}

// Dump runs one backup night for cfg: leftovers of earlier runs first
// (with autoflush), then every DLE at the level chosen by chooseLevel,
// onto the holding disk (or straight to a volume), then onto a volume.
// The report is written to the report directory and to deps.Out. The
// returned error is nil only when every DLE is safe on a volume.
func Dump(ctx context.Context, cfg *config.Config, deps Deps) (*report.Run, error) {
	sess, err := begin(ctx, cfg, deps)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	r, err := setup(ctx, sess, cfg)
	if err != nil {
		return finish(ctx, sess.cat, sess.runID, sess.rep, sess.deps, cfg, err)
	}
	r.log.Info("run started", "config", cfg.File, "dles", len(cfg.DLEs), "degraded", r.degraded)
	if sess.deps.Subset != "" {
		r.note(sess.deps.Subset)
	}
	// The server side of tapir check (the volumes were probed in setup).
	serverChecks(ctx, cfg, sess.deps, r.clock.Now(), false, func(where, format string, a ...any) {
		if r.missingDiskOf(strings.TrimPrefix(where, "holding disk ")) != "" {
			return // a problem of the run already (setup)
		}
		r.rep.Preflight = append(r.rep.Preflight, report.Problem{Where: where, What: fmt.Sprintf(format, a...)})
	}, func(string, ...any) {})

	var jobs []*job
	pub := r.publish(func() []*job { return jobs })
	flush, err := r.leftovers(ctx, "", "")
	if err != nil {
		return r.end(ctx, sess, nil, pub, err)
	}
	if len(flush) > 0 && !cfg.Autoflush {
		r.note(fmt.Sprintf("holding: %d image(s) from earlier runs wait on the holding disk; run `tapir flush -c %s` or set autoflush = true", len(flush), cfg.File))
		flush = nil
	}
	// Leftovers of earlier runs go to the volume first (autoflush).
	for _, it := range flush {
		jobs = append(jobs, it.j)
		r.tp.enqueue(it)
	}
	dles := make([]*job, 0, len(cfg.DLEs))
	for _, d := range cfg.DLEs {
		j := &job{dle: d, dt: cfg.Dumptype(d), fallback: -1, res: report.DLE{Host: d.Host, Path: d.Path}}
		j.prog.mark("estimating", "", r.clock.Now())
		dles = append(dles, j)
	}
	jobs = append(jobs, dles...)
	phase := r.clock.Now()
	if _, err := r.plan(ctx, dles); err != nil {
		return r.end(ctx, sess, jobs, pub, err)
	}
	r.rep.EstimateTime = r.clock.Now().Sub(phase)
	r.warnRecipients(ctx, dles)
	pub.setPhase("dumping")
	phase = r.clock.Now()
	r.dumpAll(ctx, dles)
	r.rep.DumpTime = r.clock.Now().Sub(phase)
	pub.setPhase("taping")
	return r.end(ctx, sess, jobs, pub, nil)
}

// end lets the taper finish what it has, ends the use of the volumes
// (ejecting when configured), publishes the final status and finishes the
// run with the outcome of every job.
func (r *run) end(ctx context.Context, sess *session, jobs []*job, pub *publisher, fatal error) (*report.Run, error) {
	// A stopped run is ended and recorded too: catalog reads and writes
	// would refuse a cancelled ctx.
	ctx = context.WithoutCancel(ctx)
	r.tp.close()
	<-r.tp.done
	close(r.done)
	r.mu.Lock()
	cancelled := r.cancelled
	r.mu.Unlock()
	if cancelled != nil && fatal == nil {
		r.rep.Aborted = fmt.Sprintf("cancelled by %s at %s (tapir status --cancel); what was dumped is kept, the rest waits for the next run",
			cancelled.By, cancelled.At.In(r.cfg.Location()).Format("15:04:05"))
	}
	dropCancel(r.cfg, r.datestamp)
	r.rep.TapeTime = r.tp.busyTime()
	used, next, notes := r.vols.finish(context.WithoutCancel(ctx), r.cfg.Eject) // ejects even when the run was stopped
	for _, n := range notes {
		r.note(n)
	}
	r.rep.Volumes = used
	r.rep.Refused = r.vols.refusals()
	for i := range r.cfg.Vaults {
		if v := &r.cfg.Vaults[i]; fatal == nil && cancelled == nil && r.rep.Kind == report.KindDump && v.AfterNight && !r.stopping() && ctx.Err() == nil {
			r.vaultAfterNight(ctx, sess, v)
		}
	}
	for _, j := range jobs {
		r.rep.DLEs = append(r.rep.DLEs, j.res)
	}
	if fatal != nil {
		r.rep.Aborted = fatal.Error()
	}
	r.degradedLate()
	r.sayOnce(jobs)
	// The next run's volume, unless it is the degraded night's own reason
	// again: the report says that once, with what to insert.
	if next != "" && (r.rep.Degraded == nil || noVolumeWhy(errors.New(next)) != r.rep.Degraded.Reason) {
		r.rep.NextVolumes = []string{next}
	}
	pub.end(r.rep.Status())
	rep, err := finish(ctx, r.cat, r.runID, r.rep, sess.deps, r.cfg, fatal)
	if r.lost > 0 {
		err = errors.Join(err, fmt.Errorf("%w: %d holding image(s) of earlier runs are damaged or lost (see the report)", ErrRunFailed, r.lost))
	}
	return rep, err
}

// degradedLate records a run that found no usable volume only when it
// tried to write one (the volume chosen at the start could not be loaded
// or labelled, none was inserted in time): no volume was written and
// images stay on the holding disk. That is a degraded night, like one
// that knew it from the start (docs/format/catalog.md), not merely a
// strange one.
func (r *run) degradedLate() {
	if r.rep.Degraded != nil || len(r.rep.Volumes) > 0 {
		return
	}
	r.tp.mu.Lock()
	dead := r.tp.dead
	r.tp.mu.Unlock()
	if dead == nil || !errors.Is(dead, taper.ErrNoVolume) {
		return
	}
	held := false
	for _, d := range r.rep.DLEs {
		held = held || d.Status == report.StatusHolding
	}
	if !held {
		return
	}
	d := &report.Degraded{Reason: noVolumeWhy(dead), Expected: r.vols.expects}
	if d.Expected != "" {
		d.Insert = d.Expected
	}
	r.rep.Degraded = d
}

// noVolumeWhy is why no volume could be written, without the "no usable
// volume: " the report's headline already says.
func noVolumeWhy(err error) string {
	return strings.TrimPrefix(err.Error(), taper.ErrNoVolume.Error()+": ")
}

// Reasons of the DLEs left on the holding disk for want of a volume.
const (
	reasonDegraded = "no usable volume (see above): kept on the holding disk"
	reasonNoVolume = "no further volume tonight (see NOTES): kept on the holding disk"
)

// sayOnce gives the DLEs left on the holding disk for want of a volume a
// short reason, and says the long one once: in the degraded section of the
// report, or as one note when the run wrote volumes before it ran out.
// Six DLEs repeating one 300-character sentence hide it rather than say
// it.
func (r *run) sayOnce(jobs []*job) {
	r.tp.mu.Lock()
	why := r.tp.noVolume
	r.tp.mu.Unlock()
	said := false
	base := len(r.rep.DLEs) - len(jobs) // the jobs' outcomes are the last DLEs of the report
	for i, j := range jobs {
		if !j.noVolume || j.res.Status != report.StatusHolding || base < 0 {
			continue
		}
		if r.rep.Degraded != nil {
			r.rep.DLEs[base+i].Reason = reasonDegraded
			continue
		}
		r.rep.DLEs[base+i].Reason = reasonNoVolume
		if !said && why != "" {
			said = true
			r.note("taper: no further volume could be written tonight: " + noVolumeWhy(errors.New(why)))
		}
	}
}

// warnRecipients warns in the report about every DLE to be dumped as an
// incremental whose encryption changed since its last full: restoring its
// chain needs the old keys too (recipientsChanged).
func (r *run) warnRecipients(ctx context.Context, jobs []*job) {
	for _, j := range jobs {
		if j.res.Status != "" || j.level == 0 {
			continue
		}
		w, err := recipientsChanged(ctx, r.cat, j.dle, j.dt)
		if err != nil {
			r.log.Warn("could not compare the recipients with the last full", "host", j.dle.Host, "path", j.dle.Path, "err", err)
			continue
		}
		if w != "" {
			j.res.Warnings = append(j.res.Warnings, w)
		}
	}
}

// newRemote is the server's handle on the agent of host, with the given
// progress timeout.
func newRemote(cfg *config.Config, files wire.Files, host string, timeout time.Duration) (*client.Remote, error) {
	tlsCfg, err := wire.ClientConfig(files, host)
	if err != nil {
		return nil, err
	}
	return &client.Remote{Host: host, Addr: cfg.HostAddress(host), TLS: tlsCfg, Timeout: timeout}, nil
}

// dumpRequest is what the agent is asked for a DLE at a level.
func dumpRequest(datestamp string, dle config.DLE, dt config.Dumptype, level int) wire.Request {
	req := wire.Request{
		DLE:           dle.Path,
		Level:         level,
		Datestamp:     datestamp,
		Compress:      compOf(dt),
		CompressLevel: dt.CompressLevel,
		FrameSize:     int(dt.FrameSize),
		Exclude:       dt.Exclude,
		ExcludeList:   dt.ExcludeList,
		OneFilesystem: dt.OneFS(),
		Bandwidth:     int64(dt.Bandwidth),
	}
	if dt.Encrypt == config.EncryptClient {
		req.Encrypt, req.Recipients = crypt.Name, dt.AgeRecipients
	}
	consistency(&req, dt)
	return req
}

// consistency puts the dumptype's snapshot, command and hooks into a
// request (only when set: an agent from before them refuses the fields).
func consistency(req *wire.Request, dt config.Dumptype) {
	switch dt.Snapshot {
	case "", config.SnapshotNone:
	default:
		req.Snapshot = &wire.Snapshot{Kind: dt.Snapshot, Size: dt.SnapshotSize, Create: dt.SnapshotCreate, Remove: dt.SnapshotRemove}
	}
	if dt.IsCommand() {
		req.Command = dt.Command
		req.Exclude, req.ExcludeList, req.OneFilesystem = nil, nil, false
	}
	req.Pre, req.Post = dt.Pre, dt.Post
	if len(dt.Pre) > 0 || len(dt.Post) > 0 || req.Snapshot != nil {
		req.HookTimeout = int(max(1, time.Duration(dt.HookTimeout).Round(time.Second)/time.Second))
	}
}

// dumpAll runs up to inparallel dumpers, at most maxdumps per host, in the
// order of the jobs (the planner's: priority, then estimated size, largest
// first). A failed dump is
// tried again at the end of the queue, up to retries times.
func (r *run) dumpAll(ctx context.Context, jobs []*job) {
	var pending []*job
	for _, j := range jobs {
		if j.res.Status == "" {
			pending = append(pending, j)
		}
	}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	active := map[string]int{}
	running := 0
	stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-r.stop:
			mu.Lock()
			cond.Broadcast()
			mu.Unlock()
		case <-done:
		}
	}()
	// What each dump still queued waits for, for `tapir status`: its
	// host's maxdumps, or a free dumper (inparallel).
	markWaiting := func() {
		now := r.clock.Now()
		for _, j := range pending {
			why := fmt.Sprintf("waiting for a dumper: all %d (inparallel) are busy", r.cfg.Inparallel)
			if n := active[j.dle.Host]; n >= r.cfg.Maxdumps {
				why = fmt.Sprintf("waiting for maxdumps: %s has %d dump(s) running (maxdumps = %d)", j.dle.Host, n, r.cfg.Maxdumps)
			}
			if st, _, reason := j.prog.get(); st != "waiting" || reason != why {
				j.prog.mark("waiting", why, now)
			}
		}
	}
	worker := func() {
		mu.Lock()
		defer mu.Unlock()
		for {
			r.checkCancel() // before any dump starts
			if ctx.Err() != nil || r.stopping() {
				why := "the run was cancelled before this DLE was dumped"
				if ctx.Err() == nil {
					why = r.haltWhy + " before this DLE was dumped; the next run dumps it"
				}
				for _, j := range pending {
					j.fail(why, r.clock.Now())
				}
				pending = nil
			}
			pick := -1
			for i, j := range pending {
				if active[j.dle.Host] < r.cfg.Maxdumps {
					pick = i
					break
				}
			}
			if pick < 0 {
				if len(pending) == 0 && running == 0 {
					cond.Broadcast()
					return
				}
				markWaiting()
				cond.Wait()
				continue
			}
			j := pending[pick]
			pending = append(pending[:pick:pick], pending[pick+1:]...)
			active[j.dle.Host]++
			running++
			markWaiting()
			mu.Unlock()
			err := r.attempt(ctx, j)
			mu.Lock()
			active[j.dle.Host]--
			running--
			if err != nil {
				j.attempts = append(j.attempts, err.Error())
				j.res.Retries = append(j.res.Retries, report.Attempt{Level: j.level, Reason: err.Error()})
				r.log.Error("dump failed", "host", j.dle.Host, "path", j.dle.Path, "attempt", len(j.attempts), "err", err)
				var fe *finalError
				if ctx.Err() == nil && !errors.As(err, &fe) && len(j.attempts) <= r.cfg.Retries+j.extra {
					pending = append(pending, j)
				} else {
					// The last attempt is the failure itself, not a retried one.
					j.res.Retries = j.res.Retries[:len(j.res.Retries)-1]
					j.fail(err.Error(), r.clock.Now())
				}
			}
			cond.Broadcast()
		}
	}
	var wg sync.WaitGroup
	for range min(r.cfg.Inparallel, max(len(pending), 1)) {
		wg.Go(worker)
	}
	wg.Wait()
}

// beginRun records the run under the first free datestamp from its start
// on: two runs in the same second, of one server or of two sharing the
// catalog, get distinct names (the catalog refuses a datestamp taken, also
// when another server took it a moment ago).
func beginRun(ctx context.Context, cat *catalog.Catalog, cfg *config.Config, start time.Time) (string, int64, error) {
	t := start.In(cfg.Location())
	for i := 0; i < 120; i++ {
		ds := t.Add(time.Duration(i) * time.Second).Format("20060102150405")
		id, err := cat.BeginRun(ctx, ds, cfg.Org, start)
		if errors.Is(err, catalog.ErrExists) {
			continue
		}
		return ds, id, err
	}
	return "", 0, fmt.Errorf("catalog %s: no free datestamp in the 2 minutes from %s: 120 runs are in the catalog there", cat.Path(), t.Format(time.RFC3339))
}

func compOf(dt config.Dumptype) string {
	switch dt.Compress {
	case "client-gzip":
		return string(image.CompGzip)
	case "none":
		return string(image.CompNone)
	case "server-zstd": // the agent sends plain tar; the server compresses
		return string(image.CompNone)
	default: // client-zstd
		return string(image.CompZstd)
	}
}

// finish closes the run in the catalog, writes the report and decides the
// result.
func finish(ctx context.Context, cat *catalog.Catalog, runID int64, rep *report.Run, deps Deps, cfg *config.Config, fatal error) (*report.Run, error) {
	ctx = context.WithoutCancel(ctx) // a stopped run is recorded too
	rep.End = deps.Clock.Now()
	if fatal != nil {
		rep.Aborted = fatal.Error()
	}
	text := rep.Text()
	var errs []error
	if fatal != nil {
		errs = append(errs, fatal)
	}
	stored, err := rep.JSON()
	if err != nil {
		errs = append(errs, fmt.Errorf("report as JSON: %w", err))
		stored = []byte(text)
	}
	if err := cat.FinishRun(ctx, runID, rep.Status(), rep.End, string(stored)); err != nil {
		errs = append(errs, err)
	}
	if err := os.MkdirAll(cfg.ReportDir, 0o750); err == nil {
		p := filepath.Join(cfg.ReportDir, rep.Datestamp+".txt")
		if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
			errs = append(errs, fmt.Errorf("write report: %w", err))
		}
	} else {
		errs = append(errs, fmt.Errorf("report directory: %w", err))
	}
	if deps.Out != nil {
		io.WriteString(deps.Out, text)
	}
	if len(cfg.Mailto) > 0 && mail.SendOn(cfg.Mail.SendOn).Wants(rep) {
		m := deps.Mailer
		if m == nil {
			m = Mailer(cfg, deps.Log)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Duration(cfg.Mail.Timeout)+time.Minute)
		err := mail.SendRun(ctx, m, rep, mailOptions(cfg, rep.Hostname))
		cancel()
		if err != nil {
			deps.Log.Error("the report was not mailed", "err", err)
			errs = append(errs, fmt.Errorf("the report was written to %s but not mailed: %w", filepath.Join(cfg.ReportDir, rep.Datestamp+".txt"), err))
		}
	}
	n := 0
	for _, d := range rep.DLEs {
		if d.Status == report.StatusFailed || d.Status == report.StatusHolding {
			n++
		}
	}
	if fatal == nil && n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d DLEs not safe on a volume (see the report)", ErrRunFailed, n, len(rep.DLEs)))
	}
	return rep, errors.Join(errs...)
}

// vaultAfterNight runs a vault after the night (its after_night), under
// the night's lock, and puts what it did in the night's report: a note
// per image copied, a problem per image it could not copy.
func (r *run) vaultAfterNight(ctx context.Context, sess *session, v *config.Vault) {
	res, err := vaultLocked(ctx, r.cfg, r.cat, v, VaultOptions{}, sess.deps)
	if res != nil {
		for _, it := range res.Copied {
			r.note(fmt.Sprintf("vault %s: copied %s onto %s", res.Vault, it.what(), strings.Join(it.To, ", ")))
		}
		for _, it := range res.Failed {
			r.problem("vault "+res.Vault, fmt.Sprintf("%s NOT copied: %s", it.what(), it.Why))
		}
		for _, n := range res.Notes {
			r.note("vault " + res.Vault + ": " + n)
		}
	}
	if err != nil && (res == nil || len(res.Failed) == 0) {
		r.problem("vault "+v.Name, err.Error()+"; run `tapir vault -c "+r.cfg.File+" --to "+v.Name+"` once it is fixed")
	}
}
