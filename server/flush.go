package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/report"
)

// leftovers looks at what earlier runs left on the holding disks and
// returns the images that may go to a volume (for host and path; "" means
// all): complete images the catalog knows as waiting ("holding"), each
// checked end to end (header, size, SHA-256) first. Along the way it
// finishes the commit of an image a crash interrupted between its catalog
// record and its rename, removes the partial files of dumps that never
// finished, and notes in the report everything it found wrong: a damaged
// image is kept for inspection and never taped, a vanished one is marked
// failed, an image the catalog does not know is named.
func (r *run) leftovers(host, path string) ([]*tapeItem, error) {
	dumps, err := r.cat.DumpsWithStatus(index.DumpHolding)
	if err != nil {
		return nil, err
	}
	byPath := map[string]index.Dump{}
	for _, d := range dumps {
		if d.HoldingPath != "" {
			byPath[d.HoldingPath] = d
		}
	}
	found, left, err := holding.Scan(r.disks)
	if err != nil {
		return nil, err
	}
	for _, l := range left {
		final := strings.TrimSuffix(l.Path, holding.TmpSuffix)
		if _, ok := byPath[final]; ok {
			if err := holding.Salvage(final, r.disks); err != nil {
				r.note(fmt.Sprintf("holding: cleaned up: %s is the uncommitted holding image of a dump the catalog knows, but it cannot be completed (%v)", l.Path, err))
			} else {
				r.note(fmt.Sprintf("holding: cleaned up: completed the commit of holding image %s, interrupted by a crash", final))
			}
			continue
		}
		if _, err := os.Stat(l.Path); errors.Is(err, os.ErrNotExist) {
			continue // a chunk salvaged above
		}
		if err := holding.RemoveLeftover(l.Path); err != nil {
			return nil, err
		}
		r.pool.Release(l.Path, l.Bytes, holding.Incremental)
		r.note(fmt.Sprintf("holding: cleaned up: removed partial holding file %s (%s) left by a dump that did not finish", l.Path, report.HumanSize(l.Bytes)))
		r.log.Warn("removed partial holding file", "path", l.Path)
	}
	if len(left) > 0 {
		if found, _, err = holding.Scan(r.disks); err != nil {
			return nil, err
		}
	}
	onDisk := map[string]holding.Found{}
	for _, f := range found {
		onDisk[f.Path] = f
		if _, ok := byPath[f.Path]; !ok {
			what := "an image"
			if f.Header != nil {
				what = fmt.Sprintf("%s:%s level %d of run %s", f.Header.Host, f.Header.Path, f.Header.Level, f.Header.Datestamp)
			}
			r.note(fmt.Sprintf("holding: %s holds %s that the catalog does not list as waiting for a volume; it is left alone (delete it with `tapir admin holding delete`, or rebuild the catalog)", f.Path, what))
		}
	}
	var items []*tapeItem
	for _, d := range dumps {
		if (host != "" && d.Host != host) || (path != "" && d.Path != path) {
			continue
		}
		what := fmt.Sprintf("%s:%s level %d of run %s", d.Host, d.Path, d.Level, d.Datestamp)
		f, ok := onDisk[d.HoldingPath]
		if d.HoldingPath == "" || !ok {
			reason := "holding file " + d.HoldingPath + " vanished before it was taped"
			if d.HoldingPath == "" {
				reason = "it was being written straight to a volume when the run ended, and was not recorded there"
			}
			r.note(fmt.Sprintf("holding: %s: %s; the image is lost (marked failed)", what, reason))
			r.cat.FailDump(d.ID, reason)
			continue
		}
		h, err := holding.Verify(d.HoldingPath, r.disks)
		if err == nil && (h.SHA256 != d.SHA256 || h.Datestamp != d.Datestamp || h.Host != d.Host || h.Path != d.Path || h.Level != d.Level) {
			err = fmt.Errorf("its header (%s %s:%s level %d, sha256 %s) does not match the catalog", h.Datestamp, h.Host, h.Path, h.Level, h.SHA256)
		}
		if err != nil {
			r.note(fmt.Sprintf("holding: %s: holding file %s is damaged (%v); it is NOT taped and is kept for inspection — delete it with `tapir admin holding delete` once examined", what, d.HoldingPath, err))
			r.log.Error("damaged holding image", "file", d.HoldingPath, "err", err)
			continue
		}
		if d.Level == 0 {
			r.pool.AccountFull(f.Bytes)
		}
		j := &job{dle: config.DLE{Host: d.Host, Path: d.Path}, level: d.Level, dumpID: d.ID, holding: d.HoldingPath, flushed: d.Datestamp,
			res: report.DLE{Host: d.Host, Path: d.Path, Level: d.Level, Files: d.Files, OrigSize: d.OrigSize, OutSize: d.PayloadSize,
				Flushed: d.Datestamp, Status: report.StatusHolding, Reason: "on the holding disk, waiting for a volume"}}
		j.prog.level.Store(int64(d.Level))
		j.prog.mark("holding", "flushed from run "+d.Datestamp, r.clock.Now())
		items = append(items, &tapeItem{j: j, path: d.HoldingPath, bytes: f.Bytes, kind: kindOf(d.Level)})
	}
	return items, nil
}

// FlushOptions narrows a flush to one host or one DLE.
type FlushOptions struct {
	Host, Path string
}

// Flush puts the images that earlier runs left on the holding disk onto
// volumes (amflush), and reports like a run. It returns nil only when
// every such image is now on a volume.
func Flush(ctx context.Context, cfg *config.Config, opt FlushOptions, deps Deps) (*report.Run, error) {
	sess, err := begin(cfg, deps)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	sess.rep.Kind = report.KindFlush
	r, err := setup(ctx, sess, cfg)
	if err != nil {
		return finish(sess.cat, sess.runID, sess.rep, sess.deps, cfg, err)
	}
	var jobs []*job
	pub := r.publish(func() []*job { return jobs })
	pub.setPhase("taping")
	items, err := r.leftovers(opt.Host, opt.Path)
	if err != nil {
		return r.end(sess, nil, pub, err)
	}
	if len(items) == 0 {
		r.note("holding: no image on the holding disk waits for a volume")
	}
	for _, it := range items {
		jobs = append(jobs, it.j)
		r.tp.enqueue(it)
	}
	rep, err := r.end(sess, jobs, pub, nil)
	if n := strings.Count(strings.Join(rep.Notes, "\n"), "is damaged ("); n > 0 {
		err = errors.Join(err, fmt.Errorf("%w: %d holding image(s) could not be flushed because they are damaged (see the report)", ErrRunFailed, n))
	}
	return rep, err
}
