package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/wire"
)

// Deps are what a run needs from outside.
type Deps struct {
	Log   *slog.Logger
	Clock Clock
	Out   io.Writer // the text report is also printed here (nil: not printed)
}

// ErrRunFailed is returned (wrapped) when the run completed but at least
// one DLE failed or was left on the holding disk.
var ErrRunFailed = errors.New("run finished with failures")

// job is one DLE's way through the run.
type job struct {
	dle     config.DLE
	dt      config.Dumptype
	res     report.DLE
	dumpID  int64
	holding string // final holding path once dumped
	header  *image.Header
	flushed string // datestamp of the earlier run that dumped it (autoflush)
}

// Dump runs one backup night for cfg: leftovers of earlier runs first
// (with autoflush), then every DLE at the level chosen by chooseLevel,
// onto the holding disk, then onto a volume. The report is written to the
// report directory and to deps.Out. The returned error is nil only when
// every DLE is safe on a volume.
func Dump(ctx context.Context, cfg *config.Config, deps Deps) (*report.Run, error) {
	sess, err := begin(cfg, deps)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	cat, runID, rep, log, deps := sess.cat, sess.runID, sess.rep, sess.log, sess.deps
	datestamp := rep.Datestamp
	log.Info("run started", "config", cfg.File, "dles", len(cfg.DLEs))
	flush, notes, err := leftovers(cat, "", "", log)
	if err != nil {
		return finish(cat, runID, rep, deps, cfg, err)
	}
	rep.Notes = append(rep.Notes, notes...)
	if len(flush) > 0 && !cfg.Autoflush {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d image(s) from earlier runs wait on the holding disk; run `tapir flush -c %s` or set autoflush = true", len(flush), cfg.File))
		flush = nil
	}

	if len(cfg.Holding) == 0 {
		return finish(cat, runID, rep, deps, cfg, fmt.Errorf("configuration %s has no [[holding]] disk; this version dumps through a holding disk only", cfg.File))
	}
	hold := cfg.Holding[0].Path

	jobs := make([]*job, 0, len(cfg.DLEs))
	for _, d := range cfg.DLEs {
		jobs = append(jobs, &job{dle: d, dt: cfg.Dumptype(d), res: report.DLE{Host: d.Host, Path: d.Path, Level: 0}})
	}

	files := wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			j.fail("run cancelled before this DLE was dumped")
			continue
		}
		dumpOne(ctx, cat, cfg, files, hold, datestamp, runID, j, deps.Clock, log)
	}

	// Leftovers of earlier runs go to the volume first (autoflush).
	all := append(flush, jobs...)
	t := &taping{cat: cat, cfg: cfg, datestamp: datestamp, clock: deps.Clock, log: log, rep: rep}
	t.run(ctx, all)

	for _, j := range all {
		rep.DLEs = append(rep.DLEs, j.res)
	}
	return finish(cat, runID, rep, deps, cfg, nil)
}

// freeDatestamp names the run; two runs in the same second get distinct names.
func freeDatestamp(cat *index.Catalog, t time.Time) (string, error) {
	for i := 0; i < 120; i++ {
		ds := t.Add(time.Duration(i) * time.Second).Format("20060102150405")
		if _, err := cat.Run(ds); errors.Is(err, index.ErrNotFound) {
			return ds, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("catalog %s: no free datestamp near %s", cat.Path(), t.Format(time.RFC3339))
}

func (j *job) fail(reason string) {
	j.res.Status = report.StatusFailed
	j.res.Reason = reason
}

// dumpOne estimates and dumps one DLE into the holding disk and records
// it in the catalog with status holding.
func dumpOne(ctx context.Context, cat *index.Catalog, cfg *config.Config, files wire.Files, hold, datestamp string, runID int64, j *job, clock Clock, log *slog.Logger) {
	log = log.With("host", j.dle.Host, "path", j.dle.Path)
	tlsCfg, err := wire.ClientConfig(files, j.dle.Host)
	if err != nil {
		j.fail(err.Error())
		return
	}
	remote := &client.Remote{Host: j.dle.Host, Addr: cfg.HostAddress(j.dle.Host), TLS: tlsCfg, Timeout: time.Duration(cfg.Dtimeout)}
	level, why, err := chooseLevel(cat, cfg, j.dle, j.dt, clock.Now())
	if err != nil {
		j.fail(err.Error())
		return
	}
	j.res.Level = level
	// Sizes of a full, tonight's level and the next one, for the report
	// now and for the planner's bump decisions.
	levels := []int{0}
	for _, l := range []int{level, level + 1} {
		if l > 0 && l <= client.MaxLevel && l != levels[len(levels)-1] {
			levels = append(levels, l)
		}
	}
	req := wire.Request{
		DLE:           j.dle.Path,
		Level:         level,
		Levels:        levels,
		Datestamp:     datestamp,
		Compress:      compOf(j.dt),
		CompressLevel: j.dt.CompressLevel,
		FrameSize:     int(j.dt.FrameSize),
		Exclude:       j.dt.Exclude,
		ExcludeList:   j.dt.ExcludeList,
		OneFilesystem: j.dt.OneFS(),
		Bandwidth:     int64(j.dt.Bandwidth),
	}
	est, err := remote.Estimate(ctx, req)
	if err != nil {
		j.fail(err.Error())
		log.Error("estimate failed", "err", err)
		return
	}
	for _, e := range est {
		log.Info("estimate", "level", e.Level, "bytes", e.Bytes, "files", e.Files)
	}
	log.Info("level chosen", "level", level, "why", why)

	started := clock.Now()
	serverZstd := j.dt.Compress == "server-zstd"
	comp := image.Comp(req.Compress)
	if serverZstd {
		comp = image.CompZstd
	}
	hdr := &image.Header{Datestamp: datestamp, Host: j.dle.Host, Path: j.dle.Path, Level: level, Part: 1, Parts: 1,
		Comp: comp, FrameSize: int64(j.dt.FrameSize), Encryption: "none"}
	id, err := cat.CreateDump(&index.Dump{RunID: runID, Host: j.dle.Host, Path: j.dle.Path, Level: level, Datestamp: datestamp,
		Comp: string(hdr.Comp), FrameSize: hdr.FrameSize, Started: started})
	if err != nil {
		j.fail(err.Error())
		return
	}
	j.dumpID = id
	w, err := holding.Create(hold, datestamp, hdr.Name())
	if err != nil {
		cat.FailDump(id, err.Error())
		j.fail(err.Error())
		return
	}
	fw, err := cat.NewFileWriter(id, hdr.FrameSize)
	if err != nil {
		w.Abort()
		cat.FailDump(id, err.Error())
		j.fail(err.Error())
		return
	}
	var frames []index.Frame
	// server-zstd: the agent sends the plain tar stream (its SHA-256 is of
	// those bytes) and the server cuts and compresses the frames.
	var spw *image.PayloadWriter
	rawSum := sha256.New()
	sink := io.Writer(w)
	if serverZstd {
		spw, err = image.NewPayloadWriter(w, image.WriterOptions{Comp: image.CompZstd, Level: j.dt.CompressLevel, FrameSize: int(j.dt.FrameSize)})
		if err != nil {
			w.Abort()
			fw.Abort()
			cat.FailDump(id, err.Error())
			j.fail(err.Error())
			return
		}
		sink = io.MultiWriter(rawSum, spw)
	}
	// safe makes the image safe on the holding disk and in the catalog;
	// only then is the agent told to advance its incremental state.
	safe := func(done *wire.Done) error {
		if int64(len(frames)) != done.Frames {
			return fmt.Errorf("client agent %s sent %d frame records but announced %d", j.dle.Host, len(frames), done.Frames)
		}
		hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files = done.OrigSize, done.PayloadSize, done.SHA256, done.Files
		if serverZstd {
			if err := spw.Close(); err != nil {
				return fmt.Errorf("server-side compression: %w", err)
			}
			if got := hex.EncodeToString(rawSum.Sum(nil)); got != done.SHA256 {
				return fmt.Errorf("the tar stream from %s has SHA-256 %s but the agent sent %s: corrupted in transit", j.dle.Host, got, done.SHA256)
			}
			sum := spw.Sum()
			hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256 = sum.OriginalSize, sum.PayloadSize, sum.SHA256
			frames = frames[:0]
			for _, f := range sum.Frames {
				frames = append(frames, index.Frame{Index: f.Index, TarOffset: f.TarOffset, TarSize: f.TarSize, Offset: f.Offset, Size: f.Size})
			}
		}
		hdr.Frames = int64(len(frames))
		p, err := w.Finish(hdr)
		if err != nil {
			return err
		}
		j.holding = p
		if err := fw.Commit(); err != nil {
			return err
		}
		return cat.SetDumpHolding(id, hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, j.holding, frames, clock.Now())
	}
	_, err = remote.Dump(ctx, req, client.DumpHandler{
		Data: func(b []byte) error { _, err := sink.Write(b); return err },
		Index: func(r wire.IndexRecord) error {
			return fw.Add(index.FileRecord{Path: r.Path, Type: r.Type, Size: r.Size, Mode: r.Mode, Mtime: r.Mtime,
				UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset})
		},
		Frame: func(f wire.FrameInfo) error {
			frames = append(frames, index.Frame{Index: len(frames), TarOffset: f.TarOffset, TarSize: f.TarSize, Offset: f.Offset, Size: f.Size})
			return nil
		},
		Warn: func(msg string) { j.res.Strange = append(j.res.Strange, msg) },
		Safe: safe,
	})
	if err != nil {
		if spw != nil {
			spw.Close()
		}
		if j.holding != "" {
			holding.Remove(j.holding)
			j.holding = ""
		} else {
			w.Abort()
		}
		fw.Abort()
		cat.FailDump(id, err.Error())
		j.fail(err.Error())
		log.Error("dump failed", "err", err)
		return
	}
	j.header = hdr
	j.res.DumpTime = clock.Now().Sub(started)
	j.res.OrigSize, j.res.OutSize, j.res.Files = hdr.OriginalSize, hdr.PayloadSize, hdr.Files
	log.Info("dumped to holding", "file", j.holding, "level", level, "bytes", hdr.PayloadSize, "files", hdr.Files)
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
func finish(cat *index.Catalog, runID int64, rep *report.Run, deps Deps, cfg *config.Config, fatal error) (*report.Run, error) {
	rep.End = deps.Clock.Now()
	if fatal != nil {
		rep.Notes = append(rep.Notes, "RUN ABORTED: "+fatal.Error())
	}
	text := rep.Text()
	status := "ok"
	switch {
	case fatal != nil || rep.Failed():
		status = "failed"
	case rep.Strange():
		status = "strange"
	}
	var errs []error
	if fatal != nil {
		errs = append(errs, fatal)
	}
	if err := cat.FinishRun(runID, status, rep.End, text); err != nil {
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
