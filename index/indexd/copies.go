package indexd

import (
	"context"
	"os"

	"github.com/tapir-backup/tapir/index/catalog"
)

// partsToRead returns the parts an image is read from: its own, unless
// one of their volumes is not in vols (Locate, which moves nothing) and a
// whole copy of the image (tapir vault) is; then that copy's. Without a
// copy that is wholly there, its own parts (read from another server, or
// asked for, as before).
func partsToRead(ctx context.Context, cat *catalog.Catalog, vols VolumeSource, d catalog.Dump) ([]catalog.Part, error) {
	parts, err := cat.Parts(ctx, d.ID)
	if err == nil && len(parts) == 0 && vols != nil && HoldingGone(d) {
		// Waiting on a holding disk that no longer has it (the next
		// flush keeps it on its copy): a whole copy that is there.
		return CopyThere(ctx, cat, vols, d)
	}
	if err != nil || vols == nil || len(parts) == 0 {
		return parts, err
	}
	// The catalog first: an image without a copy asks nothing of the
	// changer here.
	copies, err := cat.Copies(ctx, d.ID)
	if err != nil || len(copies) == 0 || allThere(ctx, vols, parts) {
		return parts, err
	}
	for _, c := range copies {
		if allThere(ctx, vols, c.Parts) {
			return c.Parts, nil
		}
	}
	return parts, nil
}

func allThere(ctx context.Context, vols VolumeSource, parts []catalog.Part) bool {
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Volume] {
			continue
		}
		seen[p.Volume] = true
		if _, err := vols.Locate(ctx, p.Volume); err != nil {
			return false
		}
	}
	return true
}

// HoldingGone reports whether d waits on a holding disk (status holding)
// whose file is not on this machine: vanished, deleted, or another
// server's holding disk.
func HoldingGone(d catalog.Dump) bool {
	if d.Status != catalog.DumpHolding || d.HoldingPath == "" {
		return false
	}
	_, err := os.Stat(d.HoldingPath)
	return err != nil
}

// CopyThere returns the parts of the first copy of d whose volumes are
// all there; none when no copy is.
func CopyThere(ctx context.Context, cat *catalog.Catalog, vols VolumeSource, d catalog.Dump) ([]catalog.Part, error) {
	copies, err := cat.Copies(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range copies {
		if allThere(ctx, vols, c.Parts) {
			return c.Parts, nil
		}
	}
	return nil, nil
}
