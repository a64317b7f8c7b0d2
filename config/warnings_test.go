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
		{"enough slots and tapecycle", "tapecycle = 8\n[changer]\nslots = 9\n", nil},
		{"the defaults: 10 slots cannot rotate tapecycle 10", "",
			[]string{"with tapecycle 10 and runtapes 1, the changer needs at least 11 slots (it has 10): the newest 10 volumes are never overwritten and a run needs 1 more, so no volume ever leaves tapecycle to be reused; add slots or lower tapecycle"}},
		{"runtapes counts", "tapecycle = 14\nruntapes = 2\n[changer]\nslots = 15\n",
			[]string{"the changer needs at least 16 slots (it has 15)"}},
		{"a robot's slots are unknown unless written", "tapecycle = 30\n" + robot, nil},
		{"a robot's written slots count", "tapecycle = 30\n" + robot + "slots = 24\n",
			[]string{"the changer needs at least 31 slots (it has 24)"}},
		{"a single drive has no slots", "tapecycle = 10\n[changer]\ntype = \"single\"\ndevice = \"/dev/nst0\"\nslots = 2\n", nil},
		{"tapecycle exactly runspercycle x runtapes fits", "tapecycle = 7\n[changer]\nslots = 8\n", nil},
		{"tapecycle shorter than a dumpcycle of runs", "tapecycle = 5\n[changer]\nslots = 20\n",
			[]string{"tapecycle 5 is less than runspercycle × runtapes (7 × 1 = 7): the chain of one dumpcycle (7 days, 7 runs) does not fit in the rotation, " +
				"so tapir must promote fulls to keep each DLE restorable: a full of every DLE every 5 runs instead of every 7; set tapecycle to at least 8"}},
		{"runspercycle and runtapes", "dumpcycle = 7\nrunspercycle = 5\nruntapes = 2\ntapecycle = 9\n[changer]\nslots = 20\n",
			[]string{"(5 × 2 = 10): the chain of one dumpcycle (7 days, 5 runs) does not fit in the rotation, so tapir must promote fulls to keep each DLE restorable: a full of every DLE every 4 runs instead of every 5; set tapecycle to at least 11"}},
		{"one run's worth", "runtapes = 2\ntapecycle = 3\n[changer]\nslots = 20\n", []string{"every run instead of every 7; set tapecycle to at least 15"}},
		{"less than one run's worth", "runtapes = 3\ntapecycle = 2\n[changer]\nslots = 20\n", []string{"which cannot be done; set tapecycle to at least 22"}},
		{"both", "dumpcycle = 1\ntapecycle = 1\nruntapes = 2\n[changer]\nslots = 2\n",
			[]string{"needs at least 3 slots (it has 2)", "tapecycle 1 is less than runspercycle × runtapes (1 × 2 = 2): the chain of one dumpcycle (1 day, 1 run)"}},
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
