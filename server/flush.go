package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/report"
)

// leftovers returns the images earlier runs left on the holding disk
// (catalog status "holding"), each checked end to end (header, size,
// SHA-256) before it may go to a volume. A damaged one is kept for
// inspection, never taped, and named in the notes; so is one whose file
// is gone.
func leftovers(cat *index.Catalog, host, path string, log *slog.Logger) ([]*job, []string, error) {
	dumps, err := cat.DumpsWithStatus(index.DumpHolding)
	if err != nil {
		return nil, nil, err
	}
	var jobs []*job
	var notes []string
	for _, d := range dumps {
		if (host != "" && d.Host != host) || (path != "" && d.Path != path) {
			continue
		}
		what := fmt.Sprintf("%s:%s level %d of run %s", d.Host, d.Path, d.Level, d.Datestamp)
		h, err := holding.Verify(d.HoldingPath)
		if errors.Is(err, os.ErrNotExist) {
			notes = append(notes, fmt.Sprintf("%s: holding file %s is gone; the image is lost (marked failed)", what, d.HoldingPath))
			cat.FailDump(d.ID, "holding file "+d.HoldingPath+" vanished before it was taped")
			continue
		}
		if err == nil && (h.SHA256 != d.SHA256 || h.Datestamp != d.Datestamp || h.Host != d.Host || h.Path != d.Path || h.Level != d.Level) {
			err = fmt.Errorf("its header (%s %s:%s level %d, sha256 %s) does not match the catalog", h.Datestamp, h.Host, h.Path, h.Level, h.SHA256)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: holding file %s is damaged (%v); it is NOT taped and is kept for inspection — delete it once examined", what, d.HoldingPath, err))
			log.Error("damaged holding image", "file", d.HoldingPath, "err", err)
			continue
		}
		jobs = append(jobs, &job{
			dle:     config.DLE{Host: d.Host, Path: d.Path},
			dumpID:  d.ID,
			holding: d.HoldingPath,
			header:  h,
			flushed: d.Datestamp,
			res: report.DLE{Host: d.Host, Path: d.Path, Level: d.Level, Files: d.Files,
				OrigSize: d.OrigSize, OutSize: d.PayloadSize, Flushed: d.Datestamp},
		})
	}
	return jobs, notes, nil
}

// FlushOptions narrows a flush to one host or one DLE.
type FlushOptions struct {
	Host, Path string
}

// Flush puts the images that earlier runs left on the holding disk onto
// a volume (amflush), and reports like a run. It returns nil only when
// every such image is now on a volume.
func Flush(ctx context.Context, cfg *config.Config, opt FlushOptions, deps Deps) (*report.Run, error) {
	sess, err := begin(cfg, deps)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	cat, rep, log := sess.cat, sess.rep, sess.log
	jobs, notes, err := leftovers(cat, opt.Host, opt.Path, log)
	if err != nil {
		return finish(cat, sess.runID, rep, sess.deps, cfg, err)
	}
	rep.Notes = append(rep.Notes, notes...)
	if len(jobs) == 0 {
		rep.Notes = append(rep.Notes, "flush: no image on the holding disk waits for a volume")
	}
	t := &taping{cat: cat, cfg: cfg, datestamp: rep.Datestamp, clock: sess.deps.Clock, log: log, rep: rep}
	t.run(ctx, jobs)
	for _, j := range jobs {
		rep.DLEs = append(rep.DLEs, j.res)
	}
	var damaged error
	if len(notes) > 0 {
		damaged = fmt.Errorf("%w: %d holding image(s) could not be flushed (see the report)", ErrRunFailed, len(notes))
	}
	rep2, err := finish(cat, sess.runID, rep, sess.deps, cfg, nil)
	return rep2, errors.Join(err, damaged)
}
