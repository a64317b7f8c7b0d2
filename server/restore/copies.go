package restore

import (
	"context"
	"fmt"
	"strings"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
)

// available returns the parts a restore reads image d from: its own
// (parts) when every volume of them is there (VolumeSource.Locate moves
// nothing), else those of the first copy (tapir vault) whose volumes all
// are. When no location is whole, a source that waits for a person gets
// the image's own parts (the person is asked for them, and told of the
// copy); any other source fails, naming every location, so that a person
// brings one.
func available(ctx context.Context, cat *catalog.Catalog, vols indexd.VolumeSource, ask indexd.Ask, d catalog.Dump, parts []catalog.Part) ([]catalog.Part, error) {
	if vols != nil && len(parts) == 0 && indexd.HoldingGone(d) {
		// Its holding file is gone before any flush: a copy (tapir
		// vault) that is there, else the holding disk's error.
		cp, err := indexd.CopyThere(ctx, cat, vols, d)
		if err != nil {
			return nil, fmt.Errorf("recover: %w", err)
		}
		return cp, nil
	}
	if vols == nil || len(parts) == 0 {
		return parts, nil
	}
	copies, err := cat.Copies(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	cands := [][]catalog.Part{parts}
	for _, c := range copies {
		cands = append(cands, c.Parts)
	}
	var missing []string
	for i, ps := range cands {
		var why []string
		for _, l := range catalog.PartVolumes(ps) {
			if _, err := vols.Locate(ctx, l); err != nil {
				why = append(why, l)
			}
		}
		if len(why) == 0 {
			return ps, nil
		}
		what := "its volume(s) " + strings.Join(catalog.PartVolumes(ps), ", ")
		if i > 0 {
			what = fmt.Sprintf("copy %d on %s", copies[i-1].Copy, strings.Join(catalog.PartVolumes(ps), ", "))
		}
		missing = append(missing, fmt.Sprintf("%s (not there: %s)", what, strings.Join(why, ", ")))
	}
	if len(cands) == 1 {
		return parts, nil // no copy: the reader asks, or says what is missing
	}
	msg := fmt.Sprintf("level %d image %s of %s:%s is on %s", d.Level, d.Datestamp, d.Host, d.Path, strings.Join(missing, ", or "))
	if vols.Properties().WaitsForPerson {
		if ask != nil {
			ask(msg + "; insert " + strings.Join(catalog.PartVolumes(parts), ", ") + " (or stop and bring a copy)")
		}
		return parts, nil
	}
	return nil, fmt.Errorf("recover: %s: put the volumes of one of them in a changer and try again", msg)
}
