package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/taper"
)

// LabelOptions say what `tapir label` writes where.
type LabelOptions struct {
	Label string
	Slot  int  // the slot to label; 0 = the volume in the drive (single changer) or slot 1
	Force bool // overwrite a volume that holds images or is not ours
}

// LabelResult says what was labelled and what was lost doing it.
type LabelResult struct {
	Label   taper.Label
	Slot    int
	Was     string         // what the volume held before, in words
	Dropped []catalog.Dump // images that were on it and left the catalog
}

// Label writes a new label on a volume (amlabel). It refuses, unless
// Force, a volume that holds tapir images the catalog knows (relabelling
// erases them) or that is not this configuration's (another org, or
// another program's data): promise 4. It always refuses a label that does
// not match labelstr or that another volume carries. It takes the run
// lock, so that it never labels under a running night. The volume is
// ejected afterwards only when the configuration says eject = true.
func Label(ctx context.Context, cfg *config.Config, opt LabelOptions, deps Deps) (*LabelResult, error) {
	if deps.Clock == nil {
		deps.Clock = clock.Real
	}
	if err := taper.CheckLabelName(opt.Label); err != nil {
		return nil, err
	}
	if re := cfg.LabelRegexp(); !re.MatchString(opt.Label) {
		return nil, fmt.Errorf("label %s does not match labelstr %s of %s; tapir would never write a volume with that label", opt.Label, re, cfg.File)
	}
	cat, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return nil, err
	}
	defer done()
	slot := opt.Slot
	if slot == 0 {
		slot = 1
	}
	dev, err := ch.Load(ctx, slot)
	if err != nil {
		return nil, err
	}
	// The cartridge stays in the drive unless the configuration ejects
	// (eject = true): a single-drive operator labels in the afternoon for
	// the night, and must not have to reinsert it.
	defer func() {
		if cfg.Eject {
			ch.Eject(context.WithoutCancel(ctx))
		} else {
			ch.Close()
		}
	}()
	res := &LabelResult{Slot: slot}
	old := ""
	l, err := taper.ReadLabel(dev)
	var fe *taper.ForeignError
	switch {
	case err == nil && l.Org != cfg.Org:
		res.Was = fmt.Sprintf("a tapir volume labelled %s by configuration %q", l.Label, l.Org)
		if !opt.Force {
			return nil, fmt.Errorf("slot %d holds %s; it is not this configuration's: use --force to overwrite it", slot, res.Was)
		}
	case err == nil:
		old = l.Label
		res.Was = "volume " + l.Label
		if v, verr := cat.Volume(ctx, l.Label); verr == nil && v.Written != "" {
			res.Was = fmt.Sprintf("volume %s, written by run %s", l.Label, v.Written)
			dumps, _ := cat.DumpsOnVolume(ctx, l.Label)
			if len(dumps) > 0 && !opt.Force {
				return nil, fmt.Errorf("slot %d holds %s with %d image(s) the catalog still knows (%s); relabelling erases them: use --force", slot, res.Was, len(dumps), dumpNames(dumps, 5))
			}
		}
	case errors.Is(err, taper.ErrBlank):
		res.Was = "a blank volume"
	case errors.As(err, &fe):
		res.Was = fe.Found
		if !opt.Force {
			return nil, fmt.Errorf("slot %d holds %s, not a tapir volume; use --force to overwrite it", slot, fe.Found)
		}
	case errors.Is(err, taper.ErrDamagedLabel):
		res.Was = "a volume with a damaged tapir label"
		if !opt.Force {
			return nil, fmt.Errorf("slot %d holds a volume whose tapir label is damaged, so which volume it is cannot be told (%v); relabelling erases its images: use --force to overwrite it", slot, err)
		}
	default:
		return nil, fmt.Errorf("read the volume in slot %d: %w", slot, err)
	}
	tt := cfg.Tapetype()
	// Two phases: the catalog forgets what was on the volume only once the
	// new label is on it and read back; a failed write (a write-protected
	// cartridge) leaves the catalog as it was.
	res.Label = taper.Label{Datestamp: taper.NeverWritten, Label: opt.Label, Org: cfg.Org, Blocksize: int64(tt.Blocksize), Created: deps.Clock.Now()}
	rl, err := writeLabel(ctx, cat, dev, old, res.Label, slot, deps.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("label the volume in slot %d as %s: %w", slot, opt.Label, err)
	}
	res.Dropped = rl.Dropped
	if old == opt.Label {
		// The same label again: forget its images now that the new label is on it.
		if res.Dropped, err = cat.LabelVolume(context.WithoutCancel(ctx), old, opt.Label, slot, int64(tt.Blocksize), deps.Clock.Now()); err != nil {
			return nil, err
		}
	}
	if err := ch.Labelled(ctx, &res.Label); err != nil {
		return res, fmt.Errorf("volume %s is labelled, but the changer could not note it: %w", opt.Label, err)
	}
	return res, nil
}

func dumpNames(ds []catalog.Dump, n int) string {
	var out []string
	for i, d := range ds {
		if i == n {
			out = append(out, fmt.Sprintf("and %d more", len(ds)-n))
			break
		}
		out = append(out, fmt.Sprintf("%s:%s level %d of %s", d.Host, d.Path, d.Level, d.Datestamp))
	}
	return strings.Join(out, ", ")
}
