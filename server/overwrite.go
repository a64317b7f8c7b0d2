package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// relabelled is what writeLabel did to the catalog.
type relabelled struct {
	Dropped []catalog.Dump // images that were on the volume and left the catalog
}

// writeLabel writes l over the volume in dev in two phases (promise 7:
// the catalog forgets a volume's images only after the new label is on
// it). old is the label the catalog knows the volume by, "" for a blank
// or foreign volume. Phase 1 marks old as being overwritten; the label is
// written and read back; phase 2 drops the old images (LabelVolume for a
// new label; for a run reusing a volume under its label, the caller's
// StartVolumeWrite is phase 2). When the label cannot be written, what
// the volume carries afterwards decides: its old label still there keeps
// the images known; a volume erased by the attempt loses them, and the
// error says so. The device is left at the end of the label, ready for
// the first image.
func writeLabel(ctx context.Context, cat *catalog.Catalog, dev taper.Device, old string, l taper.Label, slot int, created time.Time) (*relabelled, error) {
	return writeLabelSteps(ctx, cat, dev, old, l, slot, created, nil)
}

// errKilled is what a test's step hook returns to stop writeLabelSteps
// dead, as kill -9 would: nothing after that step runs.
var errKilled = errors.New("killed")

// writeLabelSteps is writeLabel with a hook called after each step
// ("begun", "written", "read back", "done"); a hook error stops it there,
// as if the process died (tests of the crash points). hook may be nil.
func writeLabelSteps(ctx context.Context, cat *catalog.Catalog, dev taper.Device, old string, l taper.Label, slot int, created time.Time, hook func(step string) error) (*relabelled, error) {
	if hook == nil {
		hook = func(string) error { return nil }
	}
	stamp := l.Datestamp
	if l.Label != old {
		// Refused before the volume is touched: labels are unique.
		if _, err := cat.Volume(ctx, l.Label); err == nil {
			return nil, fmt.Errorf("a volume labelled %q is already in the catalog; labels are unique, choose another (or relabel that volume): %w", l.Label, catalog.ErrExists)
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return nil, err
		}
	}
	if old != "" {
		err := cat.BeginOverwrite(ctx, old, stamp, l.Label)
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			old = "" // the catalog knows nothing on it: nothing to protect
		case err != nil:
			return nil, err
		}
	}
	if err := hook("begun"); err != nil {
		return nil, err
	}
	// From here on the catalog records what the volume holds: those writes
	// are made even when ctx is cancelled.
	ctx = context.WithoutCancel(ctx)
	werr := taper.WriteLabel(dev, l)
	if werr == nil {
		if err := hook("written"); err != nil {
			return nil, err
		}
		werr = readBack(dev, l)
	}
	if werr != nil {
		if old == "" {
			return nil, werr
		}
		now, rerr := taper.ReadLabel(dev)
		var fe *taper.ForeignError
		switch {
		case rerr == nil && now.Label == old && now.Datestamp != stamp:
			if _, err := cat.EndOverwrite(ctx, old, true); err != nil {
				return nil, errors.Join(werr, err)
			}
			return nil, fmt.Errorf("%w; the volume still carries its label %s, and the images on it stay in the catalog", werr, old)
		case rerr == nil && now.Label == l.Label && now.Datestamp == stamp:
			// The label is on it after all (the error came later).
		case rerr == nil || errors.Is(rerr, taper.ErrBlank) || errors.As(rerr, &fe):
			lost, err := cat.EndOverwrite(ctx, old, false)
			if err != nil {
				return nil, errors.Join(werr, err)
			}
			return nil, fmt.Errorf("%w; the attempt erased volume %s: %d image(s) that were on it are gone and left the catalog (%s)", werr, old, len(lost), dumpNames(lost, 5))
		default:
			return nil, fmt.Errorf("%w; what volume %s holds now cannot be read (%v): the catalog keeps its images, marked as being overwritten, until tapir sees the volume again", werr, old, rerr)
		}
	}
	if err := hook("read back"); err != nil {
		return nil, err
	}
	if err := dev.SeekToEnd(); err != nil {
		return nil, fmt.Errorf("position %s after its new label %s: %w", dev.Name(), l.Label, err)
	}
	res := &relabelled{}
	if old == l.Label {
		return res, nil // the caller's StartVolumeWrite drops the old images
	}
	dropped, err := cat.LabelVolume(ctx, old, l.Label, slot, l.Blocksize, created)
	if err != nil {
		return nil, err
	}
	res.Dropped = dropped
	return res, hook("done")
}

// readBack checks that the volume carries the label just written.
func readBack(dev taper.Device, l taper.Label) error {
	got, err := taper.ReadLabel(dev)
	if err != nil {
		return fmt.Errorf("read back the label %s just written on %s: %w", l.Label, dev.Name(), err)
	}
	if got.Label != l.Label || got.Datestamp != l.Datestamp || got.Org != l.Org {
		return fmt.Errorf("read back the label just written on %s: it says %s of %s (configuration %q), not %s of %s", dev.Name(), got.Label, got.Datestamp, got.Org, l.Label, l.Datestamp)
	}
	return nil
}

// resolveOverwrites finishes or undoes, from what the changer's slots
// carry, the overwrites that a killed process left marked in the catalog.
// A volume marked but seen nowhere stays marked (it may be out of the
// changer). It returns notes for the report.
func resolveOverwrites(ctx context.Context, cat *catalog.Catalog, inv []taper.SlotInfo, blocksize int64, now time.Time) ([]string, error) {
	vols, err := cat.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	found := map[string]taper.SlotInfo{}
	for _, s := range inv {
		if s.Label != nil {
			found[s.Label.Label] = s
		}
	}
	var notes []string
	for _, v := range vols {
		if v.Overwriting == "" {
			continue
		}
		as, okAs := found[v.OverwritingAs]
		was, okWas := found[v.Label]
		switch {
		case okAs && v.OverwritingAs != v.Label:
			dropped, err := cat.LabelVolume(ctx, v.Label, v.OverwritingAs, as.Slot, blocksize, now)
			if err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("taper: volume %s was relabelled %s by a process that was interrupted before it told the catalog; %d image(s) that were on it left the catalog (%s)",
				v.Label, v.OverwritingAs, len(dropped), dumpNames(dropped, 5)))
		case okAs && as.Label.Datestamp == v.Overwriting:
			// Reused under its own label.
			stamp := v.Overwriting
			if stamp == catalog.NeverWrittenStamp {
				if _, err := cat.LabelVolume(ctx, v.Label, v.Label, as.Slot, blocksize, now); err != nil {
					return notes, err
				}
				notes = append(notes, fmt.Sprintf("taper: volume %s was relabelled by a process that was interrupted before it told the catalog; its images left the catalog", v.Label))
				continue
			}
			dropped, err := cat.StartVolumeWrite(ctx, v.Label, as.Slot, blocksize, stamp)
			if err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("taper: volume %s was overwritten by run %s, which was interrupted before it told the catalog; %d image(s) that were on it left the catalog (%s)",
				v.Label, stamp, len(dropped), dumpNames(dropped, 5)))
		case okWas:
			if _, err := cat.EndOverwrite(ctx, v.Label, true); err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("taper: an interrupted overwrite of volume %s never reached it: it still carries its label of %s, and its images stay in the catalog", v.Label, was.Label.Datestamp))
		}
	}
	return notes, nil
}
