package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/bytesize"
)

// HoldingImage is one image (or partial file) on the holding disks, as
// `tapir admin holding list` shows it.
type HoldingImage struct {
	Path      string
	Datestamp string
	Host, DLE string
	Level     int
	Bytes     int64
	State     string // "waiting" (complete, in the catalog), "taped" (a copy of an image already on volumes), "damaged", "partial" (.tmp), "unknown" (not in the catalog)
	Detail    string
	DumpID    int64 // 0 when the catalog does not know it
	// CopyOn, for a waiting image, names the volumes of its copy (tapir
	// vault copies images waiting here): deleted here, it lives on there.
	CopyOn []string
}

// HoldingList lists what is on the holding disks of cfg, matched against
// the catalog. It only reads.
func HoldingList(ctx context.Context, cfg *config.Config) ([]HoldingImage, error) {
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	return holdingList(ctx, cfg, cat)
}

func holdingDisks(cfg *config.Config) []string {
	var ds []string
	for _, h := range cfg.Holding {
		ds = append(ds, h.Path)
	}
	return ds
}

func holdingList(ctx context.Context, cfg *config.Config, cat *catalog.Catalog) ([]HoldingImage, error) {
	disks := holdingDisks(cfg)
	found, left, err := holding.Scan(disks)
	if err != nil {
		return nil, err
	}
	dumps, err := cat.DumpsWithStatus(ctx, catalog.DumpHolding)
	if err != nil {
		return nil, err
	}
	byPath := map[string]catalog.Dump{}
	for _, d := range dumps {
		byPath[d.HoldingPath] = d
	}
	copies, err := cat.AllCopies(ctx)
	if err != nil {
		return nil, err
	}
	var out []HoldingImage
	for _, f := range found {
		im := HoldingImage{Path: f.Path, Bytes: f.Bytes, State: "waiting"}
		if f.Header != nil {
			im.Datestamp, im.Host, im.DLE, im.Level = f.Header.Datestamp, f.Header.Host, f.Header.Path, f.Header.Level
		}
		d, known := byPath[f.Path]
		var tc *tapedCopy
		var terr error
		if !known && f.Header != nil {
			tc, terr = alreadyTaped(ctx, cat, f.Header)
		}
		switch {
		case tc != nil:
			// A run was killed between the catalog commit and the delete.
			im.State, im.Detail = "taped", fmt.Sprintf("already on volume(s) %s; the next run removes it", tc.where())
		case terr != nil:
			im.State, im.Detail = "unknown", terr.Error()
		case f.Err != nil:
			im.State, im.Detail = "damaged", f.Err.Error()
		case !known:
			im.State, im.Detail = "unknown", "not in the catalog as waiting for a volume"
		}
		if known {
			im.DumpID = d.ID
			if cs := copies[d.ID]; len(cs) > 0 {
				im.CopyOn = cs[0].Volumes()
				if im.State == "waiting" {
					im.Detail = fmt.Sprintf("copied to %s (tapir vault): deleted here, it is read from its copy", strings.Join(im.CopyOn, ", "))
				}
			}
		}
		out = append(out, im)
	}
	for _, l := range left {
		im := HoldingImage{Path: l.Path, Bytes: l.Bytes, State: "partial", Detail: "a dump that did not finish (the next run removes it)"}
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// WriteHoldingList prints a listing for people.
func WriteHoldingList(w io.Writer, ims []HoldingImage, usage []holding.DiskUsage) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tHOST\tDISK\tLEVEL\tSIZE\tSTATE\tFILE")
	for _, im := range ims {
		lvl := "-"
		if im.Host != "" {
			lvl = fmt.Sprint(im.Level)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(im.Datestamp), dash(im.Host), dash(im.DLE), lvl, bytesize.Format(im.Bytes), im.State, im.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, im := range ims {
		if im.Detail != "" {
			fmt.Fprintf(w, "%s: %s\n", im.Path, im.Detail)
		}
	}
	for _, u := range usage {
		if u.Missing {
			fmt.Fprintf(w, "holding disk %s does not exist: mount it, or create it with mkdir if it is new\n", u.Path)
			continue
		}
		fmt.Fprintf(w, "holding disk %s: %s used of %s\n", u.Path, bytesize.Format(u.Used), bytesize.Format(u.Capacity))
	}
	if len(ims) == 0 {
		fmt.Fprintln(w, "The holding disks hold no image.")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// HoldingSelect chooses images to delete: by host (and DLE path, and run
// datestamp), or by file.
type HoldingSelect struct {
	Host, Path, Datestamp string
	File                  string
}

func (s HoldingSelect) match(im HoldingImage) bool {
	if s.File != "" {
		return im.Path == s.File || strings.TrimSuffix(im.Path, holding.TmpSuffix) == s.File
	}
	return im.Host == s.Host && (s.Path == "" || im.DLE == s.Path) && (s.Datestamp == "" || im.Datestamp == s.Datestamp)
}

// HoldingDelete removes the selected images from the holding disks (every
// chunk) and marks their dumps failed in the catalog: they will never be on
// a volume. It takes the run lock, so that it never deletes under a running
// night. With dryRun it only returns what it would delete.
func HoldingDelete(ctx context.Context, cfg *config.Config, sel HoldingSelect, dryRun bool, log *slog.Logger) ([]HoldingImage, error) {
	if sel.File == "" && sel.Host == "" {
		return nil, errors.New("say which images to delete: HOST [PATH [DATESTAMP]] or --file FILE")
	}
	cat, unlock, err := openLocked(cfg)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := holdingList(ctx, cfg, cat)
	if err != nil {
		return nil, err
	}
	var chosen []HoldingImage
	for _, im := range all {
		if sel.match(im) {
			chosen = append(chosen, im)
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("no holding image matches; `tapir admin holding list -c %s` shows what is there", cfg.File)
	}
	if dryRun {
		return chosen, nil
	}
	disks := holdingDisks(cfg)
	for _, im := range chosen {
		var err error
		if im.State == "partial" {
			err = holding.RemoveLeftover(im.Path)
		} else {
			err = holding.Remove(im.Path, disks)
		}
		if err != nil {
			return chosen, err
		}
		if im.DumpID != 0 {
			// Copied by tapir vault before any flush: it lives on, on
			// its copy. Otherwise it is gone.
			on, err := cat.KeepOnCopy(context.WithoutCancel(ctx), im.DumpID)
			if err != nil {
				return chosen, err
			}
			if len(on) > 0 {
				log.Info("the deleted holding image lives on its copy", "host", im.Host, "disk", im.DLE, "level", im.Level, "run", im.Datestamp, "volumes", strings.Join(on, ","))
			} else if err := cat.FailDump(context.WithoutCancel(ctx), im.DumpID, "deleted from the holding disk by an administrator before it was on a volume"); err != nil {
				return chosen, err
			}
		}
		log.Info("deleted holding image", "file", im.Path, "host", im.Host, "disk", im.DLE, "level", im.Level, "run", im.Datestamp)
	}
	return chosen, nil
}

// HoldingUsage measures the holding disks; one that does not exist is
// listed as Missing.
func HoldingUsage(cfg *config.Config) ([]holding.DiskUsage, error) {
	var disks []holding.Disk
	var missing []string
	for _, h := range cfg.Holding {
		if err := holding.CheckDisk(h.Path); errors.Is(err, holding.ErrNoDisk) {
			missing = append(missing, h.Path)
			continue
		}
		disks = append(disks, holding.Disk{Path: h.Path, Use: int64(h.Use), Chunksize: int64(h.Chunksize)})
	}
	p, err := holding.NewPool(disks, holding.PoolOptions{Reserve: cfg.Reserve})
	if err != nil {
		return nil, err
	}
	out := p.Disks()
	for _, m := range missing {
		out = append(out, holding.DiskUsage{Path: m, Missing: true})
	}
	return out, nil
}
