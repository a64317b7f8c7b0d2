package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/report"
)

// leftovers looks at what earlier runs left on the holding disks and
// returns the images that may go to a volume (for host and path; "" means
// all): complete images the catalog knows as waiting ("holding"), each
// checked end to end (header, size, SHA-256) first. Along the way it
// finishes the commit of an image a crash interrupted between its catalog
// record and its rename, removes the partial files of dumps that never
// finished, removes the copies of images a killed run had already taped
// (the catalog has them as good, their parts cover the payload and the
// SHA-256 agrees), and puts in the report everything it found wrong: a
// damaged image is kept for inspection and never taped, a vanished one is
// marked failed, an image the catalog does not know is named. Nothing is
// left on a holding disk without a line in the report.
func (r *run) leftovers(ctx context.Context, host, path string) ([]*tapeItem, error) {
	dumps, err := r.cat.DumpsWithStatus(ctx, catalog.DumpHolding)
	if err != nil {
		return nil, err
	}
	byPath := map[string]catalog.Dump{}
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
				r.problem(l.Path, fmt.Sprintf("the uncommitted holding image of a dump the catalog knows cannot be completed (%v); it is kept: examine it, then delete it with `tapir admin holding delete -c %s --file %s`", err, r.cfg.File, final))
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
		r.note(fmt.Sprintf("holding: cleaned up: removed partial holding file %s (%s) left by a dump that did not finish", l.Path, bytesize.Format(l.Bytes)))
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
		if _, ok := byPath[f.Path]; ok {
			continue
		}
		r.stray(ctx, f)
	}
	var items []*tapeItem
	for _, d := range dumps {
		if (host != "" && d.Host != host) || (path != "" && d.Path != path) {
			continue
		}
		what := fmt.Sprintf("%s:%s level %d of run %s", d.Host, d.Path, d.Level, d.Datestamp)
		f, ok := onDisk[d.HoldingPath]
		if disk := r.missingDiskOf(d.HoldingPath); disk != "" {
			// Not lost: its disk is not there tonight (not mounted?).
			r.note(fmt.Sprintf("holding: %s waits in %s on holding disk %s, which does not exist now; it stays waiting until the disk is back", what, d.HoldingPath, disk))
			continue
		}
		if d.HoldingPath == "" || !ok {
			reason := "holding file " + d.HoldingPath + " vanished before it was taped"
			where := d.HoldingPath
			if d.HoldingPath == "" {
				reason = "it was being written straight to a volume when the run ended, and was not recorded there"
				where = "holding"
			}
			// A copy made by tapir vault before any flush keeps it.
			on, err := r.cat.KeepOnCopy(ctx, d.ID)
			if err != nil {
				// Never failed for a catalog that could not say: it
				// stays waiting, and the next run looks again.
				r.problem(where, fmt.Sprintf("%s: %s; whether a copy (tapir vault) keeps it could not be recorded (%v): it stays in the catalog as waiting, and the next run tries again", what, reason, err))
				continue
			}
			if len(on) > 0 {
				r.problem(where, fmt.Sprintf("%s: %s; it is kept on its copy (tapir vault) on %s, which is now where it is read from", what, reason, strings.Join(on, ", ")))
				continue
			}
			r.problem(where, fmt.Sprintf("%s: %s; the image is lost (marked failed)", what, reason))
			r.lost++
			r.cat.FailDump(ctx, d.ID, reason)
			continue
		}
		h, err := holding.Verify(d.HoldingPath, r.disks)
		if err == nil && (h.SHA256 != d.SHA256 || h.Datestamp != d.Datestamp || h.Host != d.Host || h.Path != d.Path || h.Level != d.Level) {
			err = fmt.Errorf("its header (%s %s:%s level %d, sha256 %s) does not match the catalog", h.Datestamp, h.Host, h.Path, h.Level, h.SHA256)
		}
		if err != nil {
			r.problem(d.HoldingPath, fmt.Sprintf("%s is damaged (%v); it is NOT taped and is kept for inspection: delete it with `tapir admin holding delete -c %s --file %s` once examined", what, err, r.cfg.File, d.HoldingPath))
			r.lost++
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

// stray deals with a file on the holding disks that the catalog does not
// list as waiting for a volume: the copy of an image a killed run had
// already taped is removed (and named); anything else is kept and is a
// problem of the report, with what to do.
func (r *run) stray(ctx context.Context, f holding.Found) {
	if f.Header != nil {
		tc, err := alreadyTaped(ctx, r.cat, f.Header)
		switch {
		case err != nil:
			r.problem(f.Path, fmt.Sprintf("%s; it is kept: examine it, then delete it with `tapir admin holding delete -c %s --file %s`", err, r.cfg.File, f.Path))
			return
		case tc != nil:
			if err := holding.Remove(f.Path, r.disks); err != nil {
				r.problem(f.Path, fmt.Sprintf("a copy of %s, which is already on %s, but it could not be removed: %v", tc.what(), tc.where(), err))
				return
			}
			r.pool.Release(f.Path, f.Bytes, holding.Incremental)
			r.note(fmt.Sprintf("holding: removed %s (%s), already on volume(s) %s since %s, dumped by run %s (a run was killed after taping it, before deleting the copy)",
				f.Path, bytesize.Format(f.Bytes), tc.where(), tc.dump.Taped.In(r.clock.Now().Location()).Format("2006-01-02 15:04"), tc.dump.Datestamp))
			r.log.Warn("removed a holding copy of an image already on a volume", "path", f.Path, "volumes", tc.where())
			return
		}
	}
	what := "an image"
	if f.Header != nil {
		what = fmt.Sprintf("%s:%s level %d of run %s", f.Header.Host, f.Header.Path, f.Header.Level, f.Header.Datestamp)
	}
	if f.Err != nil {
		r.problem(f.Path, fmt.Sprintf("damaged, and the catalog does not list it as waiting for a volume (%v); it is kept: examine it, then delete it with `tapir admin holding delete -c %s --file %s`", f.Err, r.cfg.File, f.Path))
		return
	}
	r.problem(f.Path, fmt.Sprintf("holds %s that the catalog does not know; it is left alone: delete it with `tapir admin holding delete -c %s --file %s` if it is not needed, or rebuild the catalog (tapir admin rebuild)", what, r.cfg.File, f.Path))
}

// tapedCopy is the catalog's record of an image a holding file is a
// redundant copy of.
type tapedCopy struct {
	dump  catalog.Dump
	parts []catalog.Part
}

func (tc *tapedCopy) what() string {
	return fmt.Sprintf("%s:%s level %d of run %s", tc.dump.Host, tc.dump.Path, tc.dump.Level, tc.dump.Datestamp)
}

// where is "T-001 file 3" or "T-001 file 9, T-002 file 1".
func (tc *tapedCopy) where() string {
	var ws []string
	for _, p := range tc.parts {
		ws = append(ws, fmt.Sprintf("%s file %d", p.Volume, p.FileNo))
	}
	return strings.Join(ws, ", ")
}

// alreadyTaped finds the dump of the catalog that the holding image with
// header h is a copy of: good (every part on a volume and committed), of
// the same run, host, path and level. It returns nil, nil when there is
// none. It returns an error, and no copy, when there is one but the
// holding file cannot be proven redundant: the parts do not cover the
// whole payload contiguously, or the sizes or SHA-256 differ.
func alreadyTaped(ctx context.Context, cat *catalog.Catalog, h *image.Header) (*tapedCopy, error) {
	dumps, err := cat.Dumps(ctx, h.Host, h.Path)
	if err != nil {
		return nil, err
	}
	for _, d := range dumps {
		if d.Status != catalog.DumpGood || d.Datestamp != h.Datestamp || d.Level != h.Level {
			continue
		}
		tc := &tapedCopy{dump: d}
		if tc.parts, err = cat.Parts(ctx, d.ID); err != nil {
			return nil, err
		}
		var end int64
		for _, p := range tc.parts {
			if p.Offset != end || p.Length <= 0 {
				return nil, fmt.Errorf("a copy of %s, which the catalog has as good, but its parts are not contiguous (part %d at payload offset %d, expected %d)", tc.what(), p.Part, p.Offset, end)
			}
			end += p.Length
		}
		switch {
		case len(tc.parts) == 0 || end != d.PayloadSize:
			return nil, fmt.Errorf("a copy of %s, which the catalog has as good, but its parts on volumes cover %d of its %d payload bytes", tc.what(), end, d.PayloadSize)
		case h.PayloadSize != d.PayloadSize || h.SHA256 != d.SHA256:
			return nil, fmt.Errorf("named like %s, which the catalog has as good on %s, but it is another image: %d payload bytes with SHA-256 %s, the catalog's has %d bytes with SHA-256 %s",
				tc.what(), tc.where(), h.PayloadSize, h.SHA256, d.PayloadSize, d.SHA256)
		}
		return tc, nil
	}
	return nil, nil
}

// FlushOptions narrows a flush to one host or one DLE.
type FlushOptions struct {
	Host, Path string
}

// Flush puts the images that earlier runs left on the holding disk onto
// volumes (amflush), and reports like a run. It returns nil only when
// every such image is now on a volume.
func Flush(ctx context.Context, cfg *config.Config, opt FlushOptions, deps Deps) (*report.Run, error) {
	sess, err := begin(ctx, cfg, deps)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	sess.rep.Kind = report.KindFlush
	r, err := setup(ctx, sess, cfg)
	if err != nil {
		return finish(ctx, sess.cat, sess.runID, sess.rep, sess.deps, cfg, err)
	}
	var jobs []*job
	pub := r.publish(func() []*job { return jobs })
	pub.setPhase("taping")
	items, err := r.leftovers(ctx, opt.Host, opt.Path)
	if err != nil {
		return r.end(ctx, sess, nil, pub, err)
	}
	if len(items) == 0 {
		r.note("holding: no image on the holding disk waits for a volume")
	}
	for _, it := range items {
		jobs = append(jobs, it.j)
		r.tp.enqueue(it)
	}
	return r.end(ctx, sess, jobs, pub, nil)
}
