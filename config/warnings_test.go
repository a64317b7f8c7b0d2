package config

import (
	"strings"
	"testing"
)

// The rules of ChainWarnings, each with the smallest value that works.
func TestChainWarnings(t *testing.T) {
	robot := "[changer]\ntype = \"robot\"\nchanger_device = \"/dev/sg3\"\ndevice = \"/dev/nst0\"\n"
	for _, tc := range []struct {
		name, src string
		want      []string // one part of each warning, in order; nil = none
	}{
		{"enough slots", "tapecycle = 8\n[changer]\nslots = 10\n", nil},
		{"the defaults", "", nil},
		{"10 slots cannot rotate tapecycle 10", "[changer]\nslots = 10\n",
			[]string{"with tapecycle 10 and runtapes 1, the changer needs at least 12 slots (it has 10): the newest 10 volumes are never overwritten and a run needs 1 more, so no volume ever leaves tapecycle to be reused; add slots or lower tapecycle"}},
		{"no spare night", "tapecycle = 8\n[changer]\nslots = 9\n",
			[]string{"needs at least 10 slots (it has 9): the newest 8 volumes, a run's 1 and a spare run's 1"}},
		{"runtapes counts", "tapecycle = 14\nruntapes = 2\n[changer]\nslots = 20\n", nil},
		{"runtapes counts twice", "tapecycle = 14\nruntapes = 2\n[changer]\nslots = 17\n",
			[]string{"needs at least 18 slots (it has 17)", "17 slots at runtapes 2 rotate every 8 runs"}},
		{"a robot's slots are unknown unless written", "tapecycle = 30\n" + robot, nil},
		{"a robot's written slots count", "tapecycle = 30\n" + robot + "slots = 24\n",
			[]string{"the changer needs at least 32 slots (it has 24)"}},
		{"a single drive has no slots: tapecycle rules", "tapecycle = 10\n[changer]\ntype = \"single\"\ndevice = \"/dev/nst0\"\nslots = 2\n", nil},
		{"a single drive, tapecycle shorter than a dumpcycle of runs", "tapecycle = 5\n[changer]\ntype = \"single\"\ndevice = \"/dev/nst0\"\n",
			[]string{"tapecycle 5 is less than runspercycle × runtapes (7 × 1 = 7): the chain of one dumpcycle (7 days, 7 runs) does not fit in the rotation, " +
				"so tapir must promote fulls to keep each DLE restorable: a full of every DLE every 5 runs instead of every 7; set tapecycle to at least 8"}},
		{"a rotation shorter than a dumpcycle and the look-ahead", "tapecycle = 3\n[changer]\nslots = 6\n",
			[]string{"6 slots at runtapes 1 rotate every 6 runs, shorter than one dumpcycle's chain (7 runs) plus the 2 runs the planner looks ahead: tapir promotes fulls to keep each DLE restorable, a full of every DLE every 4 runs instead of every 7; set slots to at least 9 for fulls every dumpcycle"}},
		{"runspercycle and runtapes", "dumpcycle = 7\nrunspercycle = 5\nruntapes = 2\ntapecycle = 4\n[changer]\nslots = 10\n",
			[]string{"10 slots at runtapes 2 rotate every 5 runs, shorter than one dumpcycle's chain (5 runs) plus the 2 runs the planner looks ahead: tapir promotes fulls to keep each DLE restorable, a full of every DLE every 3 runs instead of every 5; set slots to at least 14"}},
		{"both", "dumpcycle = 1\ntapecycle = 1\nruntapes = 2\n[changer]\nslots = 2\n",
			[]string{"needs at least 5 slots (it has 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("/etc/tapir/t.toml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			got := ChainWarnings(c)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q lacks %q", got[i], w)
				}
			}
		})
	}
}
