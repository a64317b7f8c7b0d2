package taper

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func vol(label string, slot int, day int) VolumeState {
	v := VolumeState{Label: label, Slot: slot, Reuse: true}
	if day > 0 {
		v.Written = fmt.Sprintf("202401%02d020000", day)
	}
	return v
}

func noReuse(v VolumeState) VolumeState { v.Reuse = false; return v }
func blank(slot int) VolumeState        { return VolumeState{Slot: slot, Blank: true} }

func pin(v VolumeState, chains ...string) VolumeState { v.Pinned = chains; return v }

func TestChooseVolume(t *testing.T) {
	cases := []struct {
		name      string
		vols      []VolumeState
		tapecycle int
		labelstr  string // "" = nil
		next      string
		slot      int
		label     string
		relabel   bool
		nextExp   string
		wantErr   error // ErrNoVolume or errAny
		errHas    []string
	}{
		{
			name:      "oldest outside tapecycle",
			vols:      []VolumeState{vol("S-002", 2, 2), vol("S-003", 3, 3), vol("S-001", 1, 1)},
			tapecycle: 2, labelstr: `S-\d+`,
			slot: 1, label: "S-001", nextExp: "S-002",
		},
		{
			// Amanda 3.5's lexical taperscan (issue #160) took the lowest
			// label whatever its age and overwrote an active tape: here
			// S-001 was written last night and must not be chosen.
			name:      "the lowest label is the newest: never overwritten (Amanda #160)",
			vols:      []VolumeState{vol("S-001", 1, 9), vol("S-002", 2, 3), vol("S-003", 3, 5), vol("S-004", 4, 7)},
			tapecycle: 3, labelstr: `S-\d+`,
			slot: 2, label: "S-002", nextExp: "S-003",
		},
		{
			// Amanda's "oldest" taperscan counted volumes it had not seen
			// in the changer out of the rotation; tapir counts every written
			// volume it knows, in the changer or not.
			name:      "volumes out of the changer still count in tapecycle",
			vols:      []VolumeState{vol("S-001", 0, 4), vol("S-002", 0, 5), vol("S-003", 3, 3), vol("S-004", 4, 1)},
			tapecycle: 3, labelstr: `S-\d+`,
			slot: 4, label: "S-004", nextExp: "S-003",
		},
		{
			name: "inside tapecycle even as the only volume in the changer",
			vols: []VolumeState{vol("S-004", 1, 4), vol("S-001", 0, 1), vol("S-002", 0, 2), vol("S-003", 0, 3)},
			// S-001 is reusable but not loaded: the loaded S-004 must not be taken instead.
			tapecycle: 3, labelstr: `S-\d+`, next: "S-005",
			wantErr: ErrNoVolume, nextExp: "S-001",
			errHas: []string{"the only volume in the changer is within tapecycle 3 (newest: S-004 written 20240104020000",
				"reusable but not in the changer: S-001 (load one)", "lower tapecycle"},
		},
		{
			name:      "fewer volumes than tapecycle: a new label",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2), vol("S-003", 3, 3), blank(4)},
			tapecycle: 5, labelstr: `S-\d+`, next: "S-004",
			slot: 4, label: "S-004", relabel: true, nextExp: "a new volume",
		},
		{
			name:      "fewer volumes than tapecycle and no blank",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2), vol("S-003", 3, 3)},
			tapecycle: 5, labelstr: `S-\d+`, next: "S-004",
			wantErr: ErrNoVolume, nextExp: "a new volume",
			errHas: []string{"all 3 volumes in the changer are within tapecycle 5 (newest: S-003 written 20240103020000; oldest: S-001 written 20240101020000)",
				"3 volumes have been written, a volume may be reused only once more than 5 have",
				"label a new volume with `tapir label`, or lower tapecycle"},
		},
		{
			name:      "blank but autolabel off",
			vols:      []VolumeState{vol("S-001", 1, 1), blank(2), blank(3)},
			tapecycle: 5, labelstr: `S-\d+`,
			wantErr: ErrNoVolume, nextExp: "a new volume",
			errHas: []string{"2 blank volumes but autolabel is off", "or turn on autolabel"},
		},
		{
			name:      "exactly tapecycle volumes: all protected",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2)},
			tapecycle: 2, labelstr: `S-\d+`,
			wantErr: ErrNoVolume, nextExp: "a new volume",
		},
		{
			name:      "never-written labelled volume first",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2), vol("S-003", 3, 0), {Label: "S-004", Slot: 4, Written: "X", Reuse: true}},
			tapecycle: 1, labelstr: `S-\d+`,
			slot: 3, label: "S-003", nextExp: "S-004",
		},
		{
			name:      "never-written but no-reuse is not chosen",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2), noReuse(vol("S-003", 3, 0))},
			tapecycle: 1, labelstr: `S-\d+`,
			slot: 1, label: "S-001", nextExp: "S-002",
		},
		{
			name:      "ties go to the lower label in natural order",
			vols:      []VolumeState{vol("S-10", 1, 1), vol("S-9", 2, 1), vol("S-11", 3, 5)},
			tapecycle: 1, labelstr: `S-\d+`,
			slot: 2, label: "S-9", nextExp: "S-10",
		},
		{
			name:      "equal stamps: S-1 sorts before S-01",
			vols:      []VolumeState{vol("S-1", 7, 1), vol("S-01", 3, 1), vol("S-11", 1, 5)},
			tapecycle: 1, labelstr: `S-\d+`,
			slot: 7, label: "S-1", nextExp: "S-01",
		},
		{
			name:      "ties at the tapecycle boundary are all protected",
			vols:      []VolumeState{vol("A", 1, 3), vol("B", 2, 2), vol("C", 3, 2), vol("D", 4, 1)},
			tapecycle: 2,
			slot:      4, label: "D", nextExp: "B",
		},
		{
			name:      "ties at the boundary, nothing older",
			vols:      []VolumeState{vol("A", 1, 3), vol("B", 2, 2), vol("C", 3, 2)},
			tapecycle: 2,
			wantErr:   ErrNoVolume, nextExp: "a new volume",
			errHas: []string{"all 3 volumes in the changer are within tapecycle 2"},
		},
		{
			name:      "no-reuse volumes are not counted in tapecycle",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-002", 2, 2), noReuse(vol("S-003", 3, 3))},
			tapecycle: 2, labelstr: `S-\d+`,
			wantErr: ErrNoVolume, nextExp: "a new volume",
			errHas: []string{"1 marked no-reuse (S-003)", "2 of the 3 volumes in the changer are within tapecycle 2"},
		},
		{
			name: "foreign and other labels are never chosen",
			vols: []VolumeState{{Slot: 1, Foreign: "an Amanda volume"}, vol("Other-1", 2, 1), vol("S-001", 3, 5)},
			// Other-1 is the oldest, S-001 inside tapecycle.
			tapecycle: 1, labelstr: `S-\d+`, next: "",
			wantErr: ErrNoVolume, nextExp: "a new volume",
			errHas: []string{"slot 1 holds a foreign volume (an Amanda volume)", `slot 2 holds Other-1, which labelstr "S-\\d+" does not match`},
		},
		{
			name:      "labelstr must match the whole label",
			vols:      []VolumeState{vol("XS-1", 1, 1), vol("S-1", 2, 2), vol("S-2", 3, 3), vol("S-3", 4, 4)},
			tapecycle: 2, labelstr: `S-\d`,
			slot: 2, label: "S-1", nextExp: "S-2",
		},
		{
			name:      "blank volume before any reuse",
			vols:      []VolumeState{blank(1), vol("S-001", 2, 1), vol("S-002", 3, 2)},
			tapecycle: 1, labelstr: `S-\d+`, next: "S-003",
			slot: 1, label: "S-003", relabel: true, nextExp: "S-001",
		},
		{
			name:      "a volume holding a newest chain is never reused",
			vols:      []VolumeState{pin(vol("S-001", 1, 1), "a:/home (full of 2024-01-01)"), vol("S-002", 2, 2), vol("S-003", 3, 3), vol("S-004", 4, 4)},
			tapecycle: 2, labelstr: `S-\d+`,
			slot: 2, label: "S-002", nextExp: "S-003",
		},
		{
			name:      "only chain-holding volumes outside tapecycle: refused",
			vols:      []VolumeState{pin(vol("S-001", 1, 1), "a:/home (full of 2024-01-01)"), vol("S-002", 2, 2), vol("S-003", 3, 3)},
			tapecycle: 2, labelstr: `S-\d+`,
			wantErr: ErrChainsProtected, nextExp: "a new volume", errHas: []string{"S-001", "newest restorable chain of a:/home (full of 2024-01-01)", "tapir admin force"},
		},
		{
			name:      "lowest blank slot",
			vols:      []VolumeState{blank(5), blank(2), blank(0)},
			tapecycle: 3, labelstr: `S-\d+`, next: "S-001",
			slot: 2, label: "S-001", relabel: true, nextExp: "a new volume",
		},
		{
			name:      "autolabel not matching labelstr",
			vols:      []VolumeState{blank(1)},
			tapecycle: 3, labelstr: `S-\d+`, next: "T-001",
			wantErr: ErrNoVolume, errHas: []string{`autolabel gives T-001, which labelstr "S-\\d+" does not match`},
			nextExp: "a new volume",
		},
		{
			name:      "autolabel label already in use",
			vols:      []VolumeState{blank(1), vol("S-001", 0, 1)},
			tapecycle: 3, labelstr: `S-\d+`, next: "S-001",
			wantErr: ErrNoVolume, errHas: []string{"autolabel gives S-001, but a volume not in the changer already has that label"},
			nextExp: "a new volume",
		},
		{
			name:      "autolabel gives an invalid label",
			vols:      []VolumeState{blank(1)},
			tapecycle: 3, next: "S 1",
			wantErr: ErrNoVolume, errHas: []string{"unusable label"}, nextExp: "a new volume",
		},
		{
			name: "empty changer", tapecycle: 3, next: "S-001",
			wantErr: ErrNoVolume, errHas: []string{"the changer holds no volumes"}, nextExp: "a new volume",
		},
		{
			name:      "one label on two volumes",
			vols:      []VolumeState{vol("S-001", 1, 1), vol("S-001", 2, 2)},
			tapecycle: 1, wantErr: ErrNoVolume, errHas: []string{"the label S-001 is on two volumes (in slot 1 and in slot 2)"},
		},
		{name: "tapecycle 0", vols: []VolumeState{vol("S-1", 1, 1)}, tapecycle: 0, wantErr: errAny, errHas: []string{"tapecycle 0"}},
		{name: "bad datestamp", vols: []VolumeState{{Label: "S-1", Slot: 1, Written: "2024", Reuse: true}}, tapecycle: 1, wantErr: errAny, errHas: []string{"S-1", `"2024"`}},
		{name: "no label no state", vols: []VolumeState{{Slot: 3}}, tapecycle: 1, wantErr: errAny, errHas: []string{"in slot 3 has no label"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var re *regexp.Regexp
			if c.labelstr != "" {
				re = regexp.MustCompile(c.labelstr)
			}
			got, err := ChooseVolume(c.vols, c.tapecycle, re, c.next)
			if c.wantErr != nil {
				if err == nil || c.wantErr == ErrNoVolume && !errors.Is(err, ErrNoVolume) {
					t.Fatalf("got %+v, %v; want error %v", got, err, c.wantErr)
				}
				if c.wantErr == errAny && errors.Is(err, ErrNoVolume) {
					t.Fatalf("bad input reported as no volume: %v", err)
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q\n does not contain %q", err, s)
					}
				}
				if got.NextExpected != c.nextExp {
					t.Errorf("NextExpected = %q, want %q", got.NextExpected, c.nextExp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Slot != c.slot || got.Label != c.label || got.Relabel != c.relabel || got.NextExpected != c.nextExp {
				t.Fatalf("got %+v, want slot %d label %s relabel %v next %q", got, c.slot, c.label, c.relabel, c.nextExp)
			}
			if got.Reason == "" || !strings.Contains(got.Reason, c.label) {
				t.Errorf("reason %q does not name the volume", got.Reason)
			}
		})
	}
}

// TestChooseVolumeNeverInsideTapecycle checks promise 4 over many runs: a
// rotation where each run writes the chosen volume never overwrites one of
// the newest tapecycle written volumes.
func TestChooseVolumeNeverInsideTapecycle(t *testing.T) {
	re := regexp.MustCompile(`^S-\d{3}$`)
	for tapecycle := 1; tapecycle <= 6; tapecycle++ {
		for slots := 1; slots <= 8; slots++ {
			vols := make([]VolumeState, slots)
			for i := range vols {
				vols[i] = blank(i + 1)
			}
			labelled := 0
			var history []string // labels in the order written
			for run := 1; run <= 40; run++ {
				next := fmt.Sprintf("S-%03d", labelled+1)
				c, err := ChooseVolume(vols, tapecycle, re, next)
				if err != nil {
					if !errors.Is(err, ErrNoVolume) {
						t.Fatal(err)
					}
					if slots > tapecycle {
						t.Fatalf("tapecycle %d, %d slots, run %d: no volume: %v", tapecycle, slots, run, err)
					}
					break
				}
				// The newest tapecycle distinct volumes written must not include it.
				seen := map[string]bool{}
				for i := len(history) - 1; i >= 0 && len(seen) < tapecycle; i-- {
					seen[history[i]] = true
				}
				if seen[c.Label] {
					t.Fatalf("tapecycle %d, %d slots, run %d: chose %s, written within the newest %d (%v)", tapecycle, slots, run, c.Label, tapecycle, history)
				}
				if c.Relabel {
					labelled++
				}
				vols[c.Slot-1] = VolumeState{Label: c.Label, Slot: c.Slot, Written: testTime.AddDate(0, 0, run).Format("20060102150405"), Reuse: true}
				history = append(history, c.Label)
			}
			if slots > tapecycle && len(history) != 40 {
				t.Fatalf("tapecycle %d, %d slots: only %d runs", tapecycle, slots, len(history))
			}
		}
	}
}

func TestNaturalLess(t *testing.T) {
	want := []string{"", "A", "S-1", "S-01", "S-2", "S-9", "S-10", "S-10a", "S-11", "S-100", "T", "a"}
	got := append([]string(nil), want...)
	sort.Slice(got, func(i, j int) bool { return naturalLess(got[j], got[i]) }) // reverse first
	sort.SliceStable(got, func(i, j int) bool { return naturalLess(got[i], got[j]) })
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("natural order %v, want %v", got, want)
	}
}
