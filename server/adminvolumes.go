package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/bytesize"
	"github.com/tapir-backup/tapir/taper"
)

// The volume commands of `tapir admin` (Amanda's amadmin no-reuse/reuse and
// amrmtape): they change what the catalog knows of a volume.

// ReuseChange is what `tapir admin reuse|no-reuse` did to one volume.
type ReuseChange struct {
	Label   string
	Written string // datestamp of the run that last wrote it, "" never
	Was     bool   // the reuse flag before
	Reuse   bool   // the reuse flag now
	// Chains lists, as host:path, the DLEs whose newest chain has an image
	// on the volume: a reusable volume is still not overwritten while it
	// holds one.
	Chains []string
}

// SetReuse sets the reuse flag of the volumes labels in the catalog of cfg
// (`tapir admin reuse` with true, `tapir admin no-reuse` with false): a
// volume marked not reusable is never overwritten, and is left out of
// tapecycle. Every label must be in the catalog; an unknown one is an error
// naming it, and then nothing is changed. A label given twice counts once.
// It returns what each volume was and is, in the order given.
func SetReuse(ctx context.Context, cfg *config.Config, labels []string, reuse bool) ([]ReuseChange, error) {
	if len(labels) == 0 {
		return nil, errors.New("no volume label given")
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	var out []ReuseChange
	var unknown []string
	seen := map[string]bool{}
	for _, l := range labels {
		if seen[l] {
			continue
		}
		seen[l] = true
		v, err := cat.Volume(ctx, l)
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			unknown = append(unknown, l)
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, ReuseChange{Label: l, Written: v.Written, Was: v.Reuse, Reuse: reuse})
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s not in the catalog %s; nothing was changed (tapir tape inventory -c %s lists the volumes in the changer)",
			volumesWord(unknown), cfg.Catalog, cfg.File)
	}
	chains, err := cat.Chains(ctx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Was != reuse {
			if err := cat.SetVolumeReuse(ctx, out[i].Label, reuse); err != nil {
				return out[:i], err
			}
		}
		out[i].Chains = chainsOn(chains, out[i].Label)
	}
	return out, nil
}

// volumesWord names unknown volumes: "volume X is", "volumes X, Y are".
func volumesWord(labels []string) string {
	if len(labels) == 1 {
		return "volume " + labels[0] + " is"
	}
	return "volumes " + strings.Join(labels, ", ") + " are"
}

// chainsOn lists, as host:path, the DLEs whose newest chain has an image
// on the volume label.
func chainsOn(chains []catalog.Chain, label string) []string {
	var out []string
	for _, c := range chains {
		if slices.Contains(c.Volumes, label) {
			out = append(out, c.Host+":"+c.Path)
		}
	}
	return out
}

// WriteReuse prints what SetReuse did, one line per volume.
func WriteReuse(w io.Writer, changes []ReuseChange) error {
	var b strings.Builder
	word := map[bool]string{true: "reusable", false: "not reusable (no-reuse)"}
	for _, c := range changes {
		written := "never written"
		if c.Written != "" {
			written = "last written by run " + c.Written
		}
		if c.Was == c.Reuse {
			fmt.Fprintf(&b, "%s: already %s (%s); unchanged\n", c.Label, word[c.Reuse], written)
		} else {
			fmt.Fprintf(&b, "%s: now %s, was %s (%s)\n", c.Label, word[c.Reuse], word[c.Was], written)
		}
		if c.Reuse && len(c.Chains) > 0 {
			fmt.Fprintf(&b, "  it holds the newest chain of %s: it is not overwritten before a newer full of each is on another volume\n", strings.Join(c.Chains, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RmVolumeOptions say what `tapir admin rmvolume` removes.
type RmVolumeOptions struct {
	Label string
	// Erase also erases the volume's media once the catalog has forgotten
	// it: the tape files of its slot (disk changer only). The slot must
	// hold the volume's label.
	Erase bool
	// Yes does it; without, RemoveVolume only says what would be lost.
	Yes bool
}

// RmDump is an image on the volume being removed.
type RmDump struct {
	catalog.Dump
	Volumes []string // every volume holding a part of it (all its parts leave the catalog)
	// CopyOn, when set, are the volumes of a whole copy of it elsewhere
	// (tapir vault): the image stays in the catalog, read from the copy.
	CopyOn []string
}

// BrokenChain is a DLE whose newest chain has an image on the volume being
// removed: once it is gone, the DLE's newest state cannot be restored.
type BrokenChain struct {
	Host, Path   string
	Full         catalog.Dump
	FullVolumes  []string // the volumes holding the full
	Incrementals int      // incrementals after the full in the chain
}

// RmVolumeResult says what removing a volume loses, and what was done.
type RmVolumeResult struct {
	Volume catalog.Volume
	Dumps  []RmDump      // the images with a part on the volume, oldest first
	Broken []BrokenChain // by host and path
	// Copies are the images a copy of which (tapir vault) is on the
	// volume: the copy goes, the image stays on its own volumes.
	Copies []catalog.Dump
	// Slot and SlotDir are, with Erase, the slot of the disk changer that
	// holds the volume (checked by its label).
	Slot    int
	SlotDir string
	Files   int // with Erase, the tape files in the slot
	Removed bool
	Dropped []catalog.Dump // what left the catalog
	Erased  bool           // the slot's tape files were removed
}

// RemoveVolume makes the catalog of cfg forget a volume and every image
// with a part on it (`tapir admin rmvolume`, Amanda's amrmtape). Without
// opt.Yes it changes nothing and returns what would be lost: the images on
// the volume and the DLEs whose newest chain it breaks. With opt.Yes it
// takes the run lock (never under a running night) and removes the volume
// from the catalog; with opt.Erase it then erases the media, after
// checking that the slot holds that label (a disk changer only: a
// cartridge is refused before anything is changed, with how to erase it).
// A label that is not in the catalog is an error.
func RemoveVolume(ctx context.Context, cfg *config.Config, opt RmVolumeOptions, deps Deps) (*RmVolumeResult, error) {
	if opt.Label == "" {
		return nil, errors.New("no volume label given")
	}
	if opt.Erase && cfg.Changer.Type != "disk" {
		dev := cfg.Changer.Device
		if dev == "" {
			dev = "/dev/nst0"
		}
		return nil, fmt.Errorf("--erase erases virtual tapes only, and the changer of %s is a %s; nothing was changed: "+
			"remove the volume without --erase, then erase the cartridge with mt -f %s erase", cfg.File, cfg.Changer.Type, dev)
	}
	var cat *catalog.Catalog
	done := func() {}
	var err error
	if opt.Yes {
		cat, done, err = openLocked(cfg)
	} else {
		cat, err = OpenCatalog(cfg)
		if err == nil {
			done = func() { cat.Close() }
		}
	}
	if err != nil {
		return nil, err
	}
	defer done()

	res, err := volumeLoss(ctx, cat, cfg, opt.Label)
	if err != nil {
		return nil, err
	}
	var dc taper.Changer // the changer that erases, with --erase
	if opt.Erase {
		ch, err := openChanger(cfg, deps, deps.Log)
		if err != nil {
			return nil, err
		}
		defer closeChanger(ch)
		if !ch.Properties().CanErase {
			return nil, fmt.Errorf("--erase: the changer of %s is not a disk changer; nothing was changed", cfg.File)
		}
		dc = ch
		if err := findVolumeSlot(ctx, dc, cfg, res); err != nil {
			return res, err
		}
	}
	if !opt.Yes {
		return res, nil
	}
	// The catalog first: a crash before the erase leaves a volume the
	// catalog does not know, whose images a rebuild finds again; never a
	// catalog that lists images whose media is gone.
	if res.Dropped, err = cat.RemoveVolume(ctx, opt.Label); err != nil {
		return res, err
	}
	res.Removed = true
	if dc != nil {
		n, err := dc.Erase(ctx, res.Slot, cfg.Org, opt.Label)
		if err != nil {
			return res, fmt.Errorf("the catalog forgot volume %s, but its media was not erased: %w", opt.Label, err)
		}
		res.Files, res.Erased = n, true
	}
	return res, nil
}

// volumeLoss reads what removing the volume label would lose.
func volumeLoss(ctx context.Context, cat *catalog.Catalog, cfg *config.Config, label string) (*RmVolumeResult, error) {
	v, err := cat.Volume(ctx, label)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, fmt.Errorf("volume %s is not in the catalog %s; nothing was changed (tapir tape inventory -c %s lists the volumes in the changer)", label, config.MaskDSN(cfg.Catalog), cfg.File)
	}
	if err != nil {
		return nil, err
	}
	res := &RmVolumeResult{Volume: *v}
	dumps, err := cat.DumpsOnVolume(ctx, label)
	if err != nil {
		return nil, err
	}
	copies, err := cat.AllCopies(ctx)
	if err != nil {
		return nil, err
	}
	lost := map[int64]bool{} // images that leave the catalog
	for _, d := range dumps {
		vols, err := dumpVolumes(ctx, cat, d.ID)
		if err != nil {
			return nil, err
		}
		rd := RmDump{Dump: d, Volumes: vols, CopyOn: copyOff(copies[d.ID], label)}
		lost[d.ID] = rd.CopyOn == nil
		res.Dumps = append(res.Dumps, rd)
	}
	if res.Copies, err = cat.DumpsCopiedOnVolume(ctx, label); err != nil {
		return nil, err
	}
	chains, err := cat.Chains(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range chains {
		broken := false
		for _, d := range c.Dumps {
			broken = broken || lost[d.ID]
		}
		if !broken {
			continue
		}
		fv, err := dumpVolumes(ctx, cat, c.Full().ID)
		if err != nil {
			return nil, err
		}
		res.Broken = append(res.Broken, BrokenChain{Host: c.Host, Path: c.Path, Full: c.Full(), FullVolumes: fv, Incrementals: len(c.Dumps) - 1})
	}
	return res, nil
}

// copyOff returns the volumes of the first whole copy (of an image's
// copies) that has no part on label: what the image is read from once
// label is gone. nil when every copy is on label too, or there is none.
func copyOff(copies []catalog.ImageCopy, label string) []string {
	for _, c := range copies {
		if vols := c.Volumes(); !slices.Contains(vols, label) {
			return vols
		}
	}
	return nil
}

// dumpVolumes lists the volumes holding the parts of a dump, in part order.
func dumpVolumes(ctx context.Context, cat *catalog.Catalog, id int64) ([]string, error) {
	parts, err := cat.Parts(ctx, id)
	if err != nil {
		return nil, err
	}
	var vols []string
	for _, p := range parts {
		if !slices.Contains(vols, p.Volume) {
			vols = append(vols, p.Volume)
		}
	}
	return vols, nil
}

// findVolumeSlot finds the one slot of the disk changer whose label is
// res.Volume's (this configuration's), and counts its tape files.
func findVolumeSlot(ctx context.Context, dc taper.Changer, cfg *config.Config, res *RmVolumeResult) error {
	label := res.Volume.Label
	inv, err := dc.Inventory(ctx)
	if err != nil {
		return err
	}
	var slots []int
	for _, s := range inv {
		if s.Label != nil && s.Label.Label == label && s.Label.Org == cfg.Org {
			slots = append(slots, s.Slot)
		}
	}
	switch {
	case len(slots) > 1:
		return fmt.Errorf("--erase: slots %s all carry the label %s; nothing was changed: find out which one is the volume, and erase by hand", joinInts(slots), label)
	case len(slots) == 0:
		held := ""
		if n := res.Volume.Slot; n >= 1 && n <= len(inv) {
			held = fmt.Sprintf(" (slot %d, where the catalog last saw it, holds %s)", n, slotWords(inv[n-1]))
		}
		return fmt.Errorf("--erase: no slot of the disk changer %s holds volume %s%s; nothing was changed: remove it without --erase, the other volumes are never erased", cfg.Changer.Path, label, held)
	}
	res.Slot, res.SlotDir = slots[0], dc.Where(slots[0])
	dev, err := dc.Load(ctx, res.Slot)
	if err != nil {
		return err
	}
	if dev.Properties().RandomAccess { // count the files that open
		for ; ; res.Files++ {
			f, err := dev.OpenFile(res.Files)
			if err != nil {
				break
			}
			f.Close()
		}
	}
	return dc.Eject(ctx)
}

// slotWords says what a slot holds, for a message.
func slotWords(s taper.SlotInfo) string {
	switch {
	case s.Empty:
		return "nothing"
	case s.Blank:
		return "a blank volume"
	case s.Foreign != "":
		return s.Foreign
	case s.Label != nil && s.Label.Org != "":
		return fmt.Sprintf("volume %s of configuration %q", s.Label.Label, s.Label.Org)
	case s.Err != nil:
		return "an unreadable volume (" + s.Err.Error() + ")"
	}
	return "an unknown volume"
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// WriteRemoveVolume prints what RemoveVolume found and did: the volume,
// its images, the newest chains it breaks, and what was removed and
// erased (or, without Yes, what would be).
func WriteRemoveVolume(w io.Writer, r *RmVolumeResult) error {
	var b strings.Builder
	v := r.Volume
	written := "never written"
	if v.Written != "" {
		written = "written by run " + v.Written
	}
	reuse := "reusable"
	if !v.Reuse {
		reuse = "no-reuse"
	}
	fmt.Fprintf(&b, "volume %s (%s, %s of images, %s)\n", v.Label, written, bytesize.Format(v.Bytes), reuse)
	var leave, kept []RmDump
	for _, d := range r.Dumps {
		if d.CopyOn != nil {
			kept = append(kept, d)
		} else {
			leave = append(leave, d)
		}
	}
	images := func(n int) string { return map[bool]string{true: "image", false: "images"}[n == 1] }
	line := func(d RmDump, extra string) {
		also := ""
		if len(d.Volumes) > 1 {
			also = fmt.Sprintf(", parts on %s", strings.Join(d.Volumes, ", "))
		}
		fmt.Fprintf(&b, "  %s %s:%s level %d (%s, %s%s)%s\n", d.Datestamp, d.Host, d.Path, d.Level, d.Status, bytesize.Format(d.PayloadSize), also, extra)
	}
	if len(r.Dumps) == 0 && len(r.Copies) == 0 {
		b.WriteString("it holds no image the catalog knows\n")
	}
	if len(leave) > 0 {
		verb := "would leave"
		if r.Removed {
			verb = "left"
		}
		fmt.Fprintf(&b, "%d %s %s the catalog:\n", len(leave), images(len(leave)), verb)
		for _, d := range leave {
			line(d, "")
		}
	}
	if len(kept) > 0 {
		verb := "stay"
		if r.Removed {
			verb = "stayed"
		}
		fmt.Fprintf(&b, "%d %s on it %s in the catalog, read from their copies from now on:\n", len(kept), images(len(kept)), verb)
		for _, d := range kept {
			line(d, ": copy on "+strings.Join(d.CopyOn, ", "))
		}
	}
	if len(r.Copies) > 0 {
		verb := "would be dropped"
		if r.Removed {
			verb = "were dropped"
		}
		fmt.Fprintf(&b, "the copies (tapir vault) of %d %s on it %s; the images stay on their own volumes:\n", len(r.Copies), images(len(r.Copies)), verb)
		for _, d := range r.Copies {
			fmt.Fprintf(&b, "  %s %s:%s level %d (%s)\n", d.Datestamp, d.Host, d.Path, d.Level, bytesize.Format(d.PayloadSize))
		}
	}
	for _, c := range r.Broken {
		incs := ""
		switch c.Incrementals {
		case 0:
		case 1:
			incs = " and 1 incremental"
		default:
			incs = fmt.Sprintf(" and %d incrementals", c.Incrementals)
		}
		verb := "breaks"
		if r.Removed {
			verb = "broke"
		}
		fmt.Fprintf(&b, "%s the newest chain of %s:%s (full of %s on %s%s): nothing newer can restore it\n",
			verb, c.Host, c.Path, stampDate(c.Full.Datestamp), strings.Join(c.FullVolumes, ", "), incs)
	}
	switch {
	case r.Removed:
		fmt.Fprintf(&b, "removed volume %s from the catalog\n", v.Label)
	case r.SlotDir != "":
		fmt.Fprintf(&b, "would erase slot %d (%s): %d tape files\n", r.Slot, r.SlotDir, r.Files)
	}
	switch {
	case r.Erased:
		fmt.Fprintf(&b, "erased slot %d (%s): %d tape files; it holds a blank volume now (autolabel or tapir label may take it)\n", r.Slot, r.SlotDir, r.Files)
	case r.Removed:
		fmt.Fprintf(&b, "the volume itself is untouched: its images still restore with dd, and tapir admin rebuild would find them again; tapir label --force reuses it\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
