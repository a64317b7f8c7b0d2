package rebuild

import (
	"testing"

	"github.com/tapir-backup/tapir/index/indexd/volumetest"
	"github.com/tapir-backup/tapir/taper"
)

// The rebuild's source of volumes passes the VolumeSource suite: the
// volumes found by the scan, by changer and slot, over disk changers (the
// volume in the configuration's changer, or in a vault's).
func TestVolumeSourceConformance(t *testing.T) {
	for set, name := range []string{"changer", "vault"} {
		t.Run(name, func(t *testing.T) {
			volumetest.Run(t, func(t *testing.T) *volumetest.Fixture {
				var chs []taper.Changer
				for range 2 {
					ch, err := taper.NewDiskChanger(t.TempDir(), 3, 64<<20, 32<<10, nil)
					if err != nil {
						t.Fatal(err)
					}
					chs = append(chs, ch)
				}
				ch := chs[set]
				volumetest.LabelSlot(t, ch, 2, "VS-001", true)
				src := &slotVolumes{chs: chs, at: map[string]vol{"VS-001": {set: set, slot: 2}}}
				return &volumetest.Fixture{Source: src, Present: "VS-001", Missing: "VS-404",
					Swap: func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 2, other, false) }}
			})
		})
	}
}
