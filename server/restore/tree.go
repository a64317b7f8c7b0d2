package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/recover"
)

// TreeRequest names a DLE to restore whole, as it was at a date.
type TreeRequest struct {
	Host, Path string // the DLE
	To         string // target directory: becomes the DLE's root
	AsOf       string // datestamp limit, "" for the newest
	// Overwrite allows a target that is not empty: what the DLE held
	// replaces what is there, and what the DLE's listings do not name is
	// deleted. Without it Tree refuses a target with anything in it.
	Overwrite bool
	// SamePrivileges recreates device nodes, setuid and setgid bits and
	// trusted.* and security.* xattrs from the images (Extractor); without
	// it they are left out and listed in TreeResult.Dropped.
	SamePrivileges bool
	// TargetMeta gives To the owner, mode, attributes and mtime of the
	// DLE's root; without it To keeps its own.
	TargetMeta bool
	// Volumes reaches the volumes (server.VolumeSource); nil restores only
	// from the holding disk.
	Volumes indexd.VolumeSource
	// Ask is the person at the terminal, as in Request.
	Ask indexd.Ask
}

// TreeResult lists the images applied, oldest first.
type TreeResult struct {
	Chain   []catalog.Dump
	Entries int64
	Removed []string        // paths deleted because a later image's listing lacks them
	Dropped recover.Dropped // entries whose privileged parts were left out
}

// Chain returns the images that restore a DLE as of a datestamp: the
// newest good image at or before it, then, walking back, the newest image
// of a lower level before each, down to a full. Oldest first.
func Chain(ctx context.Context, cat *catalog.Catalog, host, dle, asOf string) ([]catalog.Dump, error) {
	return cat.Chain(ctx, host, dle, asOf)
}

// Tree restores a whole DLE by applying its chain of images in order, the
// way `tar --listed-incremental=/dev/null -x` does: each directory's
// listing removes what was deleted or renamed since the previous image.
// Every write stays inside req.To (Extractor).
func Tree(ctx context.Context, cfg *config.Config, req TreeRequest, log *slog.Logger) (*TreeResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if req.To == "" {
		return nil, errors.New("recover: no target directory given (--to DIR)")
	}
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	chain, err := Chain(ctx, cat, req.Host, req.Path, req.AsOf)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if err := os.MkdirAll(req.To, 0o700); err != nil {
		return nil, fmt.Errorf("recover: target %s: %w", req.To, err)
	}
	if !req.Overwrite {
		if err := checkEmpty(req.To, req.Host, req.Path); err != nil {
			return nil, err
		}
	}
	// The images apply in their chain's order; the volumes are read in
	// that order, each image's parts in turn, through one pass that keeps
	// a volume loaded while the next image is on it too.
	partsOf := make([][]catalog.Part, len(chain))
	for i, d := range chain {
		if partsOf[i], err = cat.Parts(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
	}
	tellNeeded(req.Ask, log, partsOf)
	var vols indexd.VolumeSource
	if req.Volumes != nil {
		pass := &indexd.Pass{Source: req.Volumes, Ask: req.Ask}
		defer pass.Close()
		vols = pass
	}
	res := &TreeResult{Chain: chain}
	x := &recover.Extractor{Dir: req.To, Incremental: true, Overwrite: true, SamePrivileges: req.SamePrivileges, TargetMeta: req.TargetMeta}
	defer func() { res.Dropped = x.Dropped }()
	for i, d := range chain {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		src, closeSrc, where, err := openImage(ctx, cfg, vols, req.Ask, &catalog.Location{Dump: d, Parts: partsOf[i]}, log)
		if err != nil {
			return res, err
		}
		removed := len(x.Removed)
		n, err := applyImage(src, d, x)
		closeSrc()
		res.Entries += n
		res.Removed = x.Removed
		if err != nil {
			return res, fmt.Errorf("recover: level %d image %s from %s: %w", d.Level, d.Datestamp, where.where(), err)
		}
		log.Info("applied image", "level", d.Level, "datestamp", d.Datestamp, "entries", n, "removed", len(x.Removed)-removed)
	}
	return res, nil
}

// checkEmpty refuses a target that holds anything: restoring a whole DLE
// there would replace it and delete what the DLE's listings do not name.
func checkEmpty(dir, host, dle string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("recover: target %s: %w", dir, err)
	}
	names, err := f.Readdirnames(4)
	f.Close()
	if err != nil && err != io.EOF {
		return fmt.Errorf("recover: target %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	what := strings.Join(names, ", ")
	if len(names) == 4 {
		what = strings.Join(names[:3], ", ") + ", ..."
	}
	return fmt.Errorf("recover: the target %s is not empty (it holds %s): restoring all of %s:%s there would replace what it holds and delete whatever the backup does not list; restore into an empty or new directory, or add --overwrite", dir, what, host, dle)
}

func applyImage(src io.ReaderAt, d catalog.Dump, x *recover.Extractor) (int64, error) {
	payload := io.NewSectionReader(src, 0, d.PayloadSize)
	r, err := image.NewStreamReader(payload, image.Comp(d.Comp))
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return x.All(tar.NewReader(r))
}
