package server

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/taper"
)

// missingVolumes is what the catalog knows that the changer does not hold.
type missingVolumes struct {
	// WithImages are the labels of volumes that hold images of the
	// catalog (dumps with parts on them) and are in no slot: restores and
	// chains need them.
	WithImages []string
	// Retired are volumes with images that are in no slot but were
	// retired (tapir admin no-reuse): kept out of the changer on purpose,
	// in a vault for example.
	Retired []string
	// Empty are the labels of known volumes in no slot that hold no image
	// of the catalog.
	Empty []string
	// Unread is the number of slots whose label could not be read: a
	// missing volume may be in one of them.
	Unread int
}

// findMissingVolumes compares the volumes of the catalog with a changer's
// inventory and returns the ones that are in no slot, sorted by label. A
// slot that could not be read (or a robot's slot not scanned yet) counts
// in Unread.
func findMissingVolumes(ctx context.Context, cat *catalog.Catalog, inv []taper.SlotInfo) (missingVolumes, error) {
	var m missingVolumes
	inSlot := map[string]bool{}
	for _, s := range inv {
		switch {
		case s.Label != nil:
			inSlot[s.Label.Label] = true
		case s.Err != nil:
			m.Unread++
		}
	}
	vols, err := cat.Volumes(ctx)
	if err != nil {
		return m, err
	}
	for _, v := range vols {
		if inSlot[v.Label] {
			continue
		}
		dumps, err := cat.DumpsOnVolume(ctx, v.Label)
		if err != nil {
			return m, err
		}
		switch {
		case len(dumps) > 0 && !v.Reuse && v.Written != "":
			m.Retired = append(m.Retired, v.Label)
		case len(dumps) > 0:
			m.WithImages = append(m.WithImages, v.Label)
		default:
			m.Empty = append(m.Empty, v.Label)
		}
	}
	sort.Strings(m.WithImages)
	sort.Strings(m.Retired)
	sort.Strings(m.Empty)
	return m, nil
}

// problem is the line for a person about the volumes with images that are
// in no slot; "" when there are none.
func (m missingVolumes) problem(cfgFile string) string {
	if len(m.WithImages) == 0 {
		return ""
	}
	s := fmt.Sprintf("volume(s) %s are in the catalog but in no slot of the changer: insert them, or run `tapir admin rmvolume -c %s LABEL` if they are lost",
		strings.Join(m.WithImages, ", "), cfgFile)
	if m.Unread > 0 {
		s += fmt.Sprintf(" (%d slot(s) could not be read; a volume there is not seen)", m.Unread)
	}
	return s
}

// info is the lines about the known volumes in no slot that need no
// action: retired ones and ones without images.
func (m missingVolumes) info() []string {
	var out []string
	if len(m.Retired) > 0 {
		out = append(out, fmt.Sprintf("Retired volume(s) %s (no-reuse) hold images and are in no slot of the changer; insert one when a restore needs it.", strings.Join(m.Retired, ", ")))
	}
	if len(m.Empty) > 0 {
		out = append(out, fmt.Sprintf("Volume(s) %s are in the catalog, hold no image of it, and are in no slot of the changer.", strings.Join(m.Empty, ", ")))
	}
	return out
}

// lookForMissingVolumes reads the inventory of ch and finds the volumes of
// the catalog that are in no slot. A changer with one drive and a person
// who changes cartridges (single) holds one volume at a time: every other
// volume is elsewhere by design, so it is not looked at (ok false).
//
// The copy volumes of [vault] (vaultRe, nil when none) live in another
// changer: they are never missing from this one.
func lookForMissingVolumes(ctx context.Context, cat *catalog.Catalog, ch taper.Changer, vaultRe *regexp.Regexp) (m missingVolumes, ok bool, err error) {
	if ch.Properties().WaitsForPerson {
		return m, false, nil
	}
	inv, err := ch.Inventory(ctx)
	if err != nil {
		return m, false, err
	}
	for _, s := range inv {
		if errors.Is(s.Err, taper.ErrNotScanned) {
			// A robot that has not learned every label yet: the run's
			// volume choice scans it; until then nothing can be said.
			return m, false, nil
		}
	}
	m, err = findMissingVolumes(ctx, cat, inv)
	if vaultRe != nil {
		keep := func(ls []string) []string {
			var out []string
			for _, l := range ls {
				if !vaultRe.MatchString(l) {
					out = append(out, l)
				}
			}
			return out
		}
		m.WithImages, m.Retired, m.Empty = keep(m.WithImages), keep(m.Retired), keep(m.Empty)
	}
	return m, err == nil, err
}

// vaultLabels matches the labels of every vault's copy volumes; nil
// without a vault.
func vaultLabels(cfg *config.Config) *regexp.Regexp {
	var alt []string
	for i := range cfg.Vaults {
		alt = append(alt, "(?:"+cfg.Vaults[i].LabelRegexp().String()+")")
	}
	if len(alt) == 0 {
		return nil
	}
	return regexp.MustCompile(strings.Join(alt, "|"))
}

// noteMissingVolumes puts the volumes of the catalog that are in no slot
// of the run's changer in the report's notes.
func (r *run) noteMissingVolumes(ctx context.Context, ch taper.Changer) {
	m, ok, err := lookForMissingVolumes(ctx, r.cat, ch, vaultLabels(r.cfg))
	switch {
	case err != nil:
		r.log.Warn("could not compare the catalog's volumes with the changer", "err", err)
	case !ok:
	default:
		if p := m.problem(r.cfg.File); p != "" {
			r.note("taper: " + p)
		}
		for _, i := range m.info() {
			r.note("taper: " + i)
		}
	}
}
