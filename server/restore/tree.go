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
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/wire"
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
	// Identities open the encrypted images of the chain, as in Request.
	Identities *crypt.Identities
	// Peers reads the images other servers hold, as in Request.
	Peers *indexd.Peers
	// Pipe, for a command DLE, pipes its image into its dumptype's
	// restore_command instead of writing it to To (a file, or a directory
	// to hold one); Output takes that command's output (nil: ours).
	Pipe   bool
	Output io.Writer
}

// TreeResult lists the images applied, oldest first.
type TreeResult struct {
	Chain   []catalog.Dump
	Entries int64
	Removed []string        // paths deleted because a later image's listing lacks them
	Dropped recover.Dropped // entries whose privileged parts were left out
	// Command is set when the DLE is a command DLE: its one image was
	// written to a file or piped into its restore_command.
	Command *CommandResult
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
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	chain, err := Chain(ctx, cat, req.Host, req.Path, req.AsOf)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if last := chain[len(chain)-1]; last.IsCommand() {
		// A command's output, not files: one image, to a file or a pipe.
		cr, err := commandImage(ctx, cfg, cat, req, last, log)
		if err != nil {
			return nil, err
		}
		return &TreeResult{Chain: chain[len(chain)-1:], Command: cr}, nil
	}
	if req.Pipe {
		return nil, fmt.Errorf("recover: %s:%s is not a command DLE (its images hold files): --pipe is for command DLEs; restore it into a directory with --to DIR", req.Host, req.Path)
	}
	if req.To == "" {
		return nil, errors.New("recover: no target directory given (--to DIR)")
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
	// Parts and frame lists are read now, once per image: nothing is
	// asked of the catalog per file.
	partsOf := make([][]catalog.Part, len(chain))
	framesOf := make([][]image.Frame, len(chain))
	for i, d := range chain {
		if partsOf[i], err = cat.Parts(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
		// The image's own volumes, or a copy's (tapir vault).
		if partsOf[i], err = available(ctx, cat, req.Volumes, req.Ask, d, partsOf[i]); err != nil {
			return nil, err
		}
		if framesOf[i], err = cat.Frames(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
	}
	// Every encrypted image of the chain is opened (its key unwrapped
	// from the catalog's age header) before anything is written: a
	// missing or wrong key restores nothing.
	keys := make([]*crypt.Key, len(chain))
	for i, d := range chain {
		if d.Encrypted() {
			if keys[i], err = unwrapKey(d, nil, req.Identities); err != nil {
				return nil, err
			}
		}
	}
	tellNeeded(req.Ask, log, partsOf)
	vols, closeVols := passFor(req)
	defer closeVols()
	links := req.Peers.Links(cat)
	defer links.Close()
	res := &TreeResult{Chain: chain}
	x := &recover.Extractor{Dir: req.To, Incremental: true, Overwrite: true, SamePrivileges: req.SamePrivileges, TargetMeta: req.TargetMeta}
	defer func() { res.Dropped = x.Dropped }()
	for i, d := range chain {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		src, closeSrc, where, err := openImage(ctx, cfg, vols, links, req.Ask, &catalog.Location{Dump: d, Parts: partsOf[i]}, log)
		if err != nil {
			return res, err
		}
		if ir, ok := src.(*indexd.ImageReader); ok {
			// The whole payload, in order: another server holding it
			// sends it in one fetch.
			ir.Expect([]wire.Range{{Off: 0, Len: d.PayloadSize}})
		}
		if d.Encrypted() {
			key := keys[i]
			if key == nil { // the catalog lacks its age header: read it
				if key, err = unwrapKey(d, src, req.Identities); err != nil {
					closeSrc()
					return res, err
				}
			}
			src = crypt.NewReaderAt(src, key)
		}
		removed := len(x.Removed)
		n, err := applyImage(src, d, framesOf[i], x, log)
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

// applyImage extracts the whole tar stream of an image. Its frames are
// decompressed several at once, ahead of the Extractor
// (image.NewParallelReader), when the catalog's frame list covers the
// payload; otherwise the payload is decompressed as one stream, which
// needs no list.
//
// For an encrypted image src is the plaintext (crypt.ReaderAt): its size
// is the payload's plaintext size.
func applyImage(src io.ReaderAt, d catalog.Dump, frames []image.Frame, x *recover.Extractor, log *slog.Logger) (int64, error) {
	if pr, ok := src.(*crypt.ReaderAt); ok {
		d.PayloadSize = pr.Size()
	}
	payload := io.NewSectionReader(src, 0, d.PayloadSize)
	var r io.ReadCloser
	var err error
	if why := framesCover(d, frames); why == "" {
		r, err = image.NewParallelReader(payload, image.Comp(d.Comp), frames, image.ParallelOptions{})
	} else {
		log.Warn("decompressing the image as one stream, one frame at a time", "datestamp", d.Datestamp, "level", d.Level, "why", why)
		r, err = image.NewStreamReader(payload, image.Comp(d.Comp))
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return x.All(tar.NewReader(r))
}

// framesCover says why the frame list cannot drive a parallel read of the
// whole payload, or "" when it can: it must start at the payload's first
// byte and hold all of its tar bytes, within the payload.
func framesCover(d catalog.Dump, frames []image.Frame) string {
	if len(frames) == 0 {
		return "the catalog has no frame list for it"
	}
	first, last := frames[0], frames[len(frames)-1]
	switch {
	case first.Offset != 0 || first.TarOffset != 0:
		return fmt.Sprintf("its frame list starts at payload offset %d, tar offset %d, not 0", first.Offset, first.TarOffset)
	case last.TarOffset+last.TarSize != d.OrigSize:
		return fmt.Sprintf("its frame list holds %d tar bytes, the catalog says the image holds %d", last.TarOffset+last.TarSize, d.OrigSize)
	case last.Offset+last.Size > d.PayloadSize:
		return fmt.Sprintf("its frame list ends at payload offset %d, past the payload's %d bytes", last.Offset+last.Size, d.PayloadSize)
	}
	return ""
}

// passFor is what a restore of req reads volumes through: one Pass over
// req.Volumes (a drive kept loaded from one image to the next), or nil
// when there is none; release frees it.
func passFor(req TreeRequest) (vols indexd.VolumeSource, release func()) {
	if req.Volumes == nil {
		return nil, func() {}
	}
	pass := &indexd.Pass{Source: req.Volumes, Ask: req.Ask}
	return pass, func() { pass.Close() }
}
