package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/taper"
)

// TapeSlot is one slot as `tapir tape inventory` shows it.
type TapeSlot struct {
	Slot    int
	Label   string
	Written string // datestamp of the newest run on it, "" never
	State   string // "empty", "blank", "foreign: ...", "unreadable: ...", "not read yet", or the label's state: "next" (the next run writes it), "reusable", "in tapecycle", "kept: holds the newest chain of …", "no-reuse"
}

// TapeInventory lists the slots of the changer of cfg with what the
// catalog knows of each volume and which one the next run writes. With
// scan, a robot loads every volume whose label it has not read yet.
func TapeInventory(ctx context.Context, cfg *config.Config, deps Deps, scan bool) ([]TapeSlot, string, error) {
	cat, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return nil, "", err
	}
	defer done()
	inv, err := ch.Inventory(ctx)
	if err != nil {
		return nil, "", err
	}
	if ch.Properties().NeedsScan && scan {
		if inv, err = ch.Scan(ctx); err != nil {
			return nil, "", err
		}
	}
	v := &volumes{cfg: cfg, cat: cat, ch: ch, clock: clock.Real}
	states, next, err := v.statesFrom(ctx, inv, true)
	if err != nil {
		return nil, "", err
	}
	choice, cerr := taper.ChooseVolume(states, cfg.Tapecycle, cfg.LabelRegexp(), next)
	nextRun := ""
	switch {
	case cerr != nil:
		nextRun = "no usable volume: " + cerr.Error()
	case choice.Relabel:
		nextRun = fmt.Sprintf("a new volume labelled %s in slot %d (autolabel)", choice.Label, choice.Slot)
	default:
		nextRun = fmt.Sprintf("volume %s in slot %d", choice.Label, choice.Slot)
	}
	vols, err := cat.Volumes(ctx)
	if err != nil {
		return nil, "", err
	}
	known := map[string]catalog.Volume{}
	for _, x := range vols {
		known[x.Label] = x
	}
	protected := newestWritten(states, cfg.Tapecycle)
	pinned := map[string][]string{}
	for _, st := range states {
		pinned[st.Label] = st.Pinned
	}
	var out []TapeSlot
	for _, s := range inv {
		ts := TapeSlot{Slot: s.Slot}
		switch {
		case s.Empty:
			ts.State = "empty"
		case errors.Is(s.Err, taper.ErrNotScanned):
			ts.State = "not read yet (tapir tape show loads it)"
		case s.Err != nil:
			ts.State = "unreadable: " + s.Err.Error()
		case s.Blank:
			ts.State = "blank"
		case s.Foreign != "":
			ts.State = "foreign: " + s.Foreign
		case s.Label != nil:
			ts.Label = s.Label.Label
			k, ok := known[ts.Label]
			ts.Written = k.Written
			switch {
			case s.Label.Org != cfg.Org:
				ts.State = fmt.Sprintf("another configuration's (%s)", s.Label.Org)
			case !ok:
				ts.State = "not in the catalog"
			case !k.Reuse:
				ts.State = "no-reuse"
			case protected[ts.Label]:
				ts.State = "in tapecycle"
			case len(pinned[ts.Label]) > 0:
				ts.State = "kept: holds the newest chain of " + strings.Join(pinned[ts.Label], ", ")
			default:
				ts.State = "reusable"
			}
		}
		if cerr == nil && choice.Slot == s.Slot {
			ts.State = "next: " + ts.State
		}
		out = append(out, ts)
	}
	return out, nextRun, nil
}

// ExplainNext says what the next run would write or overwrite and why
// that is safe (`tapir tape next --explain`): the volume ChooseVolume
// takes, the images that would leave the catalog with it and the newer
// chains that supersede them, every volume considered, and the DLEs whose
// chains the planner moves tonight (the look-ahead).
func ExplainNext(ctx context.Context, cfg *config.Config, deps Deps, w io.Writer) error {
	cat, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return err
	}
	defer done()
	v := &volumes{cfg: cfg, cat: cat, ch: ch, clock: clock.Or(deps.Clock), log: deps.Log, notes: func(n string) { fmt.Fprintln(w, n) }}
	states, next, err := v.states(ctx, true)
	if err != nil {
		return err
	}
	c, cerr := taper.ChooseVolume(states, cfg.Tapecycle, cfg.LabelRegexp(), next)
	switch {
	case cerr != nil:
		fmt.Fprintf(w, "The next run can write no volume: %v\n", cerr)
	case c.Relabel:
		fmt.Fprintf(w, "The next run writes a new volume: %s.\nNothing is overwritten.\n", c.Reason)
	default:
		fmt.Fprintf(w, "The next run writes %s.\n", c.Reason)
		dumps, err := cat.DumpsOnVolume(ctx, c.Label)
		if err != nil {
			return err
		}
		chains, err := cat.Chains(ctx)
		if err != nil {
			return err
		}
		newest := map[string]catalog.Chain{}
		for _, x := range chains {
			newest[x.Host+":"+x.Path] = x
		}
		copies, err := cat.AllCopies(ctx)
		if err != nil {
			return err
		}
		var leave []catalog.Dump
		var kept []string
		for _, d := range dumps {
			if on := copyOff(copies[d.ID], c.Label); on != nil {
				kept = append(kept, fmt.Sprintf("  %s:%s level %d of %s (copy on %s)", d.Host, d.Path, d.Level, d.Datestamp, strings.Join(on, ", ")))
			} else {
				leave = append(leave, d)
			}
		}
		if len(kept) > 0 {
			fmt.Fprintf(w, "These %d image(s) on it stay in the catalog, read from their copies (tapir vault) from then on:\n%s\n", len(kept), strings.Join(kept, "\n"))
		}
		if len(dumps) == 0 {
			fmt.Fprintln(w, "No image the catalog knows is on it.")
		} else if len(leave) > 0 {
			fmt.Fprintf(w, "These %d image(s) on it would leave the catalog; each is superseded by a newer chain on other volumes:\n", len(leave))
			for _, d := range leave {
				why := "no newer full: its DLE has no chain to restore from"
				if x, ok := newest[d.Host+":"+d.Path]; ok {
					why = fmt.Sprintf("newest chain: full of %s on %s", x.Full().Datestamp, strings.Join(x.Volumes, ", "))
				}
				fmt.Fprintf(w, "  %s:%s level %d of %s (%s)\n", d.Host, d.Path, d.Level, d.Datestamp, why)
			}
		}
	}
	fmt.Fprintln(w, "\nEvery volume, by the rules (a never-written volume, then a blank one, then the oldest written volume outside tapecycle that holds no newest chain):")
	for _, l := range c.Considered {
		fmt.Fprintf(w, "  %s\n", l)
	}
	pdles, err := plannerDLEs(ctx, cat, cfg)
	if err != nil {
		return err
	}
	marked, reuse, err := lookAhead(ctx, cat, v, pdles)
	if err != nil {
		return err
	}
	if len(marked) > 0 {
		fmt.Fprintf(w, "\nChains on volumes that the next %d runs would need to overwrite (%s): tonight's plan gives these DLEs a full, to move their chains:\n", taper.Lookahead, strings.Join(reuse, ", "))
		for _, d := range marked {
			fmt.Fprintf(w, "  %s: %s\n", d.Name(), d.ChainAtRisk)
		}
	}
	return nil
}

// newestWritten is the set of volumes inside tapecycle: the newest
// tapecycle written, reusable volumes of ours (those sharing the
// boundary datestamp included).
func newestWritten(states []taper.VolumeState, tapecycle int) map[string]bool {
	var ws []taper.VolumeState
	for _, s := range states {
		if s.Label != "" && s.Written != "" && s.Written != taper.NeverWritten && s.Reuse && s.Foreign == "" {
			ws = append(ws, s)
		}
	}
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].Written > ws[j-1].Written; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
	out := map[string]bool{}
	for i, s := range ws {
		if i < tapecycle || (i > 0 && s.Written == ws[tapecycle-1].Written) {
			out[s.Label] = true
		}
	}
	return out
}

// WriteTapeInventory prints an inventory for people.
func WriteTapeInventory(w io.Writer, slots []TapeSlot, next string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tLABEL\tWRITTEN\tSTATE")
	for _, s := range slots {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Slot, dash(s.Label), dash(s.Written), s.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "The next run writes %s.\n", next)
	return err
}

// TapeLoad loads a slot into the drive and reads its label (`tapir tape
// slot N`). The volume stays loaded for a robot.
func TapeLoad(ctx context.Context, cfg *config.Config, deps Deps, slot int) (string, error) {
	_, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return "", err
	}
	defer done()
	dev, err := ch.Load(ctx, slot)
	if err != nil {
		return "", err
	}
	l, err := taper.ReadLabel(dev)
	var fe *taper.ForeignError
	switch {
	case err == nil:
		return fmt.Sprintf("slot %d: volume %s (configuration %s, written %s, blocksize %d)", slot, l.Label, l.Org, l.Datestamp, l.Blocksize), nil
	case errors.Is(err, taper.ErrBlank):
		return fmt.Sprintf("slot %d: a blank volume", slot), nil
	case errors.As(err, &fe):
		return fmt.Sprintf("slot %d: not a tapir volume: %s", slot, fe.Found), nil
	case errors.Is(err, taper.ErrDamagedLabel):
		return fmt.Sprintf("slot %d: unreadable: %v", slot, err), nil
	}
	return "", err
}

// TapeEject unloads the drive (`tapir tape eject`).
func TapeEject(ctx context.Context, cfg *config.Config, deps Deps) error {
	_, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return err
	}
	defer done()
	return ch.Eject(ctx)
}

// TapeCurrent says what the drive holds (`tapir tape current`).
func TapeCurrent(ctx context.Context, cfg *config.Config, deps Deps) (string, error) {
	_, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return "", err
	}
	defer done()
	switch p := ch.Properties(); {
	case p.Kind == "disk":
		return "the disk changer holds no drive between runs: each run loads the slot it writes (tapir tape inventory shows which)", nil
	case p.KnowsDrive:
		d, err := ch.Drive(ctx)
		if err != nil {
			return "", err
		}
		if !d.Full {
			return fmt.Sprintf("drive %d (%s) is empty", cfg.Changer.Drive, cfg.Changer.Device), nil
		}
		return fmt.Sprintf("drive %d (%s) holds the volume of slot %d (barcode %s)", cfg.Changer.Drive, cfg.Changer.Device, d.Slot, dash(d.Barcode)), nil
	}
	inv, err := ch.Inventory(ctx)
	if err != nil {
		return "", err
	}
	s := inv[0]
	switch {
	case s.Empty:
		return fmt.Sprintf("the drive %s is empty", cfg.Changer.Device), nil
	case s.Label != nil:
		return fmt.Sprintf("the drive %s holds volume %s (written %s)", cfg.Changer.Device, s.Label.Label, s.Label.Datestamp), nil
	case s.Blank:
		return fmt.Sprintf("the drive %s holds a blank volume", cfg.Changer.Device), nil
	case s.Foreign != "":
		return fmt.Sprintf("the drive %s holds %s", cfg.Changer.Device, s.Foreign), nil
	case errors.Is(s.Err, taper.ErrDamagedLabel):
		return fmt.Sprintf("the drive %s holds an unreadable volume: %v", cfg.Changer.Device, s.Err), nil
	}
	return "", fmt.Errorf("the drive %s: %w", cfg.Changer.Device, s.Err)
}

// TapeNext loads the slot after the one in the drive (`tapir tape next`).
func TapeNext(ctx context.Context, cfg *config.Config, deps Deps) (string, error) {
	ch, err := openChanger(cfg, deps, deps.Log)
	if err != nil {
		return "", err
	}
	if !ch.Properties().KnowsDrive {
		closeChanger(ch)
		return "", fmt.Errorf("tapir tape next: the %s changer has no slots to step through (only a robot has)", cfg.Changer.Type)
	}
	d, err := ch.Drive(ctx)
	var inv []taper.SlotInfo
	if err == nil {
		inv, err = ch.Inventory(ctx) // the storage slots, import/export elements left out
	}
	closeChanger(ch)
	if err != nil {
		return "", err
	}
	cur := 0
	if d.Full {
		cur = d.Slot
	}
	var slots []int
	for _, s := range inv {
		slots = append(slots, s.Slot)
	}
	for _, s := range slots {
		if s > cur {
			return TapeLoad(ctx, cfg, deps, s)
		}
	}
	if len(slots) == 0 {
		return "", errors.New("tapir tape next: the library reports no storage slot")
	}
	return TapeLoad(ctx, cfg, deps, slots[0])
}

// TapeReset puts the changer in a known state (`tapir tape reset`): a
// robot's drive is unloaded to its slot, a single drive rewound; a disk
// changer has nothing to reset.
func TapeReset(ctx context.Context, cfg *config.Config, deps Deps) (string, error) {
	switch cfg.Changer.Type {
	case "disk":
		return "the disk changer has no state to reset", nil
	case "robot":
		if err := TapeEject(ctx, cfg, deps); err != nil {
			return "", err
		}
		return "the drive is unloaded to its slot", nil
	}
	_, ch, done, err := lockedChanger(cfg, deps)
	if err != nil {
		return "", err
	}
	defer done()
	dev, err := ch.Load(ctx, 1)
	if err != nil {
		return "", err
	}
	if err := dev.Rewind(); err != nil {
		return "", err
	}
	return "the drive is rewound", nil
}

// lockedChanger takes the run lock, opens the catalog and the changer;
// done releases all three.
func lockedChanger(cfg *config.Config, deps Deps) (*catalog.Catalog, taper.Changer, func(), error) {
	cat, unlock, err := openLocked(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ch, err := openChanger(cfg, deps, deps.Log)
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return cat, ch, func() { closeChanger(ch); unlock() }, nil
}
