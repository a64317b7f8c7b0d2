package rebuild

import (
	"testing"

	"github.com/tapir-backup/tapir/index/indexd/volumetest"
	"github.com/tapir-backup/tapir/taper"
)

// The rebuild's source of volumes passes the VolumeSource suite: the
// volumes found by the scan, by slot, over a disk changer.
func TestVolumeSourceConformance(t *testing.T) {
	volumetest.Run(t, func(t *testing.T) *volumetest.Fixture {
		ch, err := taper.NewDiskChanger(t.TempDir(), 3, 64<<20, 32<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		volumetest.LabelSlot(t, ch, 2, "VS-001", true)
		src := &slotVolumes{ch: ch, slots: map[string]int{"VS-001": 2}}
		return &volumetest.Fixture{Source: src, Present: "VS-001", Missing: "VS-404",
			Swap: func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 2, other, false) }}
	})
}
