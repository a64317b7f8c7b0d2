package taper

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrNoVolume is wrapped by ChooseVolume when no volume may be written.
var ErrNoVolume = errors.New("no usable volume")

// ErrChainsProtected is wrapped too (with ErrNoVolume) when a volume could
// have been reused by tapecycle but holds images of a DLE's newest
// restorable chain: the run refused to destroy them.
var ErrChainsProtected = errors.New("a volume that could be reused holds the newest chain of a DLE")

// VolumeState is what ChooseVolume knows of one volume: from the changer's
// inventory and the catalog. List each volume once.
type VolumeState struct {
	Label   string // the label; empty for blank and foreign volumes
	Slot    int    // slot in the changer; 0 = not in the changer (known from the catalog only)
	Written string // datestamp of the newest run on it; "" or "X" = never written. Use the label's datestamp when the catalog does not know the volume.
	Reuse   bool   // false = marked no-reuse: never overwritten, not counted in tapecycle
	Foreign string // non-empty: not ours (what was found); never chosen
	Blank   bool   // nothing on it; may get a new label from autolabel
	// Pinned names the chains whose images are on the volume: each a DLE
	// whose newest restorable chain (newest good full and the incrementals
	// after it) has a part here, e.g. "web1:/home (full of 2025-03-01)".
	// A pinned volume is never overwritten.
	Pinned []string
}

// Choice is the volume a run writes.
type Choice struct {
	Slot    int
	Label   string
	Relabel bool   // write a new label first (a blank volume labelled by autolabel)
	Reason  string // why this volume, for the report
	// NextExpected is what the next run would write if this one writes
	// the chosen volume: a label, or "a new volume". It is also set when
	// ChooseVolume fails (what this run would have liked).
	NextExpected string
	// Considered says, volume by volume in the order of the rules, why
	// each was or was not taken (tapir tape next --explain).
	Considered []string
	// Refused is set when ChooseVolume fails: the volumes that tapecycle
	// would have let it overwrite but that hold a newest chain, with the
	// chains, for the report's FAIL lines.
	Refused []string
}

// newestStamp marks the volume this run writes when predicting the next run.
const newestStamp = "99999999999999"

// ChooseVolume picks the volume a run writes. The rules, in order:
//
//   - Only our volumes may be written: labelled, label matching the whole
//     of labelstr (nil matches any), Reuse set, in the changer (Slot > 0).
//     Foreign volumes and other labels are never chosen.
//   - A labelled but never-written volume goes first (lowest label in
//     natural order: Set-9 before Set-10, then the lower slot).
//   - Then the lowest blank slot, which gets nextLabel (autolabel; "" =
//     off): it must match labelstr and be unused. A blank volume is always
//     taken before any written one is overwritten.
//   - Then a written volume may be overwritten only if it is outside the
//     newest tapecycle written volumes (only written, reusable, matching
//     volumes are counted: no-reuse volumes are not part of the rotation;
//     volumes sharing the datestamp of the tapecycle-th newest are all
//     protected; fewer written volumes than tapecycle protects them all)
//     and no image on it belongs to a DLE's newest restorable chain
//     (Pinned). Among those, the least recently written; ties go to the
//     lower label, then the lower slot.
//
// If nothing may be written it returns an error wrapping ErrNoVolume (and
// ErrChainsProtected when a volume was refused only for the chains on
// it) that says why and what a person can do. Bad input (tapecycle < 1, a
// malformed datestamp, a volume with neither label nor state, one label on
// two volumes) is an error too.
func ChooseVolume(vols []VolumeState, tapecycle int, labelstr *regexp.Regexp, nextLabel string) (Choice, error) {
	if tapecycle < 1 {
		return Choice{}, fmt.Errorf("choose volume: tapecycle %d: must be at least 1", tapecycle)
	}
	var full *regexp.Regexp
	if labelstr != nil {
		var err error
		if full, err = regexp.Compile(`^(?:` + labelstr.String() + `)$`); err != nil {
			return Choice{}, fmt.Errorf("choose volume: labelstr %q: %w", labelstr.String(), err)
		}
	}
	var ours, mismatch, foreign, blanks []VolumeState
	seen := map[string]int{}
	for _, v := range vols {
		switch {
		case v.Foreign != "":
			foreign = append(foreign, v)
			continue
		case v.Blank:
			if v.Slot > 0 {
				blanks = append(blanks, v)
			}
			continue
		case v.Label == "":
			return Choice{}, fmt.Errorf("choose volume: the volume %s has no label and is neither blank nor foreign", slotName(v.Slot))
		}
		if v.Written == NeverWritten {
			v.Written = ""
		}
		if v.Written != "" {
			if err := checkDatestamp(v.Written); err != nil {
				return Choice{}, fmt.Errorf("choose volume: volume %s: written %w", v.Label, err)
			}
		}
		if prev, dup := seen[v.Label]; dup {
			return Choice{}, fmt.Errorf("%w: the label %s is on two volumes (%s and %s); two volumes with one label confuse the catalog: relabel one of them",
				ErrNoVolume, v.Label, slotName(prev), slotName(v.Slot))
		}
		seen[v.Label] = v.Slot
		if full != nil && !full.MatchString(v.Label) {
			mismatch = append(mismatch, v)
			continue
		}
		ours = append(ours, v)
	}
	sort.SliceStable(blanks, func(i, j int) bool { return blanks[i].Slot < blanks[j].Slot })

	prot := protectedSet(ours, tapecycle)
	considered := consider(ours, prot, tapecycle)
	labelErr := checkNewLabel(nextLabel, labelstr, full, seen)
	var c Choice
	switch fresh, reuse := best(ours, prot, true, false), best(ours, prot, true, true); {
	case fresh != nil:
		c = Choice{Slot: fresh.Slot, Label: fresh.Label,
			Reason: fmt.Sprintf("%s in slot %d: labelled and never written", fresh.Label, fresh.Slot)}
	case len(blanks) > 0 && labelErr == nil:
		c = Choice{Slot: blanks[0].Slot, Label: nextLabel, Relabel: true,
			Reason: fmt.Sprintf("blank volume in slot %d, labelled %s by autolabel (a blank volume goes before any reuse)", blanks[0].Slot, nextLabel)}
	case reuse != nil:
		c = Choice{Slot: reuse.Slot, Label: reuse.Label,
			Reason: fmt.Sprintf("%s in slot %d: the least recently written reusable volume (written %s), outside the newest %d written volumes (tapecycle), and no image on it belongs to a newest chain",
				reuse.Label, reuse.Slot, reuse.Written, tapecycle)}
	default:
		var refused []string
		for _, v := range ours {
			if v.Slot > 0 && v.Reuse && v.Written != "" && !prot[v.Label] && len(v.Pinned) > 0 {
				refused = append(refused, fmt.Sprintf("%s (written %s) holds the newest restorable chain of %s", v.Label, v.Written, strings.Join(v.Pinned, ", ")))
			}
		}
		sort.Strings(refused)
		return Choice{NextExpected: nextExpected(ours, tapecycle, nil), Considered: considered, Refused: refused},
			noVolumeError(ours, mismatch, foreign, blanks, prot, tapecycle, labelstr, nextLabel, labelErr)
	}
	c.NextExpected = nextExpected(ours, tapecycle, &c)
	c.Considered = considered
	for _, b := range blanks {
		what := "blank: autolabel labels it " + nextLabel
		if labelErr != nil {
			what = fmt.Sprintf("blank, but %v", labelErr)
		}
		c.Considered = append(c.Considered, fmt.Sprintf("slot %d: %s", b.Slot, what))
	}
	return c, nil
}

// consider says why each of our volumes is or is not writable.
func consider(ours []VolumeState, prot map[string]bool, tapecycle int) []string {
	var out []string
	for _, v := range ours {
		var what string
		switch {
		case v.Slot <= 0:
			what = "not in the changer"
		case !v.Reuse:
			what = "marked no-reuse (tapir admin reuse to allow it)"
		case v.Written == "":
			what = "labelled, never written: may be written"
		case prot[v.Label]:
			what = fmt.Sprintf("written %s: inside tapecycle %d, kept", v.Written, tapecycle)
		case len(v.Pinned) > 0:
			what = fmt.Sprintf("written %s: outside tapecycle, but kept: it holds the newest chain of %s", v.Written, strings.Join(capList(v.Pinned), ", "))
		default:
			what = fmt.Sprintf("written %s: outside tapecycle, every image on it superseded: may be overwritten", v.Written)
		}
		out = append(out, fmt.Sprintf("%s (%s): %s", v.Label, slotName(v.Slot), what))
	}
	sort.Strings(out)
	return out
}
func slotName(slot int) string {
	if slot <= 0 {
		return "not in the changer"
	}
	return fmt.Sprintf("in slot %d", slot)
}

// protectedSet returns the labels inside tapecycle.
func protectedSet(ours []VolumeState, tapecycle int) map[string]bool {
	var rot []VolumeState
	for _, v := range ours {
		if v.Written != "" && v.Reuse {
			rot = append(rot, v)
		}
	}
	sort.SliceStable(rot, func(i, j int) bool { return rot[i].Written > rot[j].Written })
	prot := map[string]bool{}
	cutoff := ""
	if len(rot) > tapecycle {
		cutoff = rot[tapecycle-1].Written
	}
	for _, v := range rot {
		if v.Written >= cutoff {
			prot[v.Label] = true
		}
	}
	return prot
}

// best returns the never-written volume to write (written false) or the
// written volume to overwrite (written true), or nil.
func best(ours []VolumeState, prot map[string]bool, inChanger, written bool) *VolumeState {
	var c []VolumeState
	for _, v := range ours {
		if v.Reuse && !prot[v.Label] && (!inChanger || v.Slot > 0) && (v.Written != "") == written && len(v.Pinned) == 0 {
			c = append(c, v)
		}
	}
	if len(c) == 0 {
		return nil
	}
	sort.SliceStable(c, func(i, j int) bool {
		a, b := c[i], c[j]
		if a.Written != b.Written {
			return a.Written < b.Written // "" (never written) first
		}
		if a.Label != b.Label {
			return naturalLess(a.Label, b.Label)
		}
		return a.Slot < b.Slot
	})
	return &c[0]
}

func checkNewLabel(next string, labelstr, full *regexp.Regexp, seen map[string]int) error {
	if next == "" {
		return errors.New("autolabel is off")
	}
	if err := CheckLabelName(next); err != nil {
		return fmt.Errorf("autolabel gives an unusable label: %w", err)
	}
	if full != nil && !full.MatchString(next) {
		return fmt.Errorf("autolabel gives %s, which labelstr %q does not match", next, labelstr.String())
	}
	if slot, used := seen[next]; used {
		return fmt.Errorf("autolabel gives %s, but a volume %s already has that label", next, slotName(slot))
	}
	return nil
}

// nextExpected predicts the volume of the next run, after this run wrote
// the chosen volume (c may be nil: nothing written).
func nextExpected(ours []VolumeState, tapecycle int, c *Choice) string {
	sim := append([]VolumeState(nil), ours...)
	if c != nil {
		if c.Relabel {
			sim = append(sim, VolumeState{Label: c.Label, Slot: c.Slot, Written: newestStamp, Reuse: true})
		}
		for i := range sim {
			if sim[i].Label == c.Label {
				sim[i].Written = newestStamp
			}
		}
	}
	if c != nil {
		for i := range sim {
			if sim[i].Label == c.Label {
				sim[i].Pinned = nil // its old images are gone
			}
		}
	}
	prot := protectedSet(sim, tapecycle)
	if b := best(sim, prot, false, false); b != nil {
		return b.Label
	}
	if b := best(sim, prot, false, true); b != nil {
		return b.Label
	}
	return "a new volume"
}

func noVolumeError(ours, mismatch, foreign, blanks []VolumeState, prot map[string]bool, tapecycle int,
	labelstr *regexp.Regexp, nextLabel string, labelErr error) error {
	var why []string
	var inChanger, protIn, noReuse, pinned []VolumeState
	var elsewhere []string
	written := 0
	for _, v := range ours {
		if v.Written != "" && v.Reuse {
			written++
		}
		switch {
		case v.Slot <= 0:
			if v.Reuse && !prot[v.Label] && len(v.Pinned) == 0 {
				elsewhere = append(elsewhere, v.Label)
			}
			continue
		case !v.Reuse:
			noReuse = append(noReuse, v)
		case prot[v.Label]:
			protIn = append(protIn, v)
		case len(v.Pinned) > 0:
			pinned = append(pinned, v)
		}
		inChanger = append(inChanger, v)
	}
	if len(inChanger)+len(mismatch)+len(foreign)+len(blanks) == 0 {
		why = append(why, "the changer holds no volumes")
	}
	if len(protIn) > 0 {
		sort.SliceStable(protIn, func(i, j int) bool { return protIn[i].Written > protIn[j].Written })
		n := fmt.Sprintf("%d of the %d volumes in the changer are", len(protIn), len(inChanger))
		if len(protIn) == len(inChanger) {
			n = fmt.Sprintf("all %d volumes in the changer are", len(protIn))
			if len(protIn) == 1 {
				n = "the only volume in the changer is"
			}
		}
		s := fmt.Sprintf("%s within tapecycle %d (newest: %s written %s; oldest: %s written %s)", n, tapecycle,
			protIn[0].Label, protIn[0].Written, protIn[len(protIn)-1].Label, protIn[len(protIn)-1].Written)
		if written <= tapecycle {
			s += fmt.Sprintf("; %d volumes have been written, a volume may be reused only once more than %d have", written, tapecycle)
		}
		why = append(why, s)
	}
	if len(noReuse) > 0 {
		why = append(why, fmt.Sprintf("%d marked no-reuse (%s)", len(noReuse), labelList(noReuse)))
	}
	for _, v := range pinned {
		why = append(why, fmt.Sprintf("%s (slot %d, written %s) is outside tapecycle but holds the newest restorable chain of %s: overwriting it would leave nothing to restore, so it is kept",
			v.Label, v.Slot, v.Written, strings.Join(capList(v.Pinned), ", ")))
	}
	if len(elsewhere) > 0 {
		sort.Slice(elsewhere, func(i, j int) bool { return naturalLess(elsewhere[i], elsewhere[j]) })
		why = append(why, fmt.Sprintf("reusable but not in the changer: %s (load one)", strings.Join(capList(elsewhere), ", ")))
	}
	var other []string
	for _, v := range foreign {
		other = append(other, fmt.Sprintf("slot %d holds a foreign volume (%s)", v.Slot, v.Foreign))
	}
	for _, v := range mismatch {
		if v.Slot > 0 {
			other = append(other, fmt.Sprintf("slot %d holds %s, which labelstr %q does not match", v.Slot, v.Label, labelstr.String()))
		}
	}
	why = append(why, capList(other)...)
	if len(blanks) > 0 {
		why = append(why, fmt.Sprintf("%d blank %s but %v", len(blanks), plural(len(blanks), "volume"), labelErr))
	}
	action := "label a new volume with `tapir label`"
	if len(blanks) > 0 && nextLabel == "" {
		action += " or turn on autolabel"
	}
	if len(protIn) > 0 {
		action += ", or lower tapecycle"
	}
	if len(pinned) > 0 {
		action += "; the chains move off a volume once their DLEs have a newer full on another volume (tapir admin force HOST PATH asks for one; tapir admin rmvolume LABEL gives a volume up, with its chains)"
		return fmt.Errorf("%w: %w: %s; %s", ErrNoVolume, ErrChainsProtected, strings.Join(why, "; "), action)
	}
	return fmt.Errorf("%w: %s; %s", ErrNoVolume, strings.Join(why, "; "), action)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func labelList(vs []VolumeState) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Label
	}
	return strings.Join(capList(s), ", ")
}

func capList(s []string) []string {
	if len(s) > 5 {
		return append(s[:5:5], fmt.Sprintf("and %d more", len(s)-5))
	}
	return s
}

// naturalLess orders labels with digit runs compared as numbers.
func naturalLess(a, b string) bool {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	run := func(s string) (string, string) {
		i := 0
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return s[:i], s[i:]
	}
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			da, ra := run(a)
			db, rb := run(b)
			ta, tb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			if len(da) != len(db) {
				return len(da) < len(db)
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}
