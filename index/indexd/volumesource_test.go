package indexd_test

import (
	"testing"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/indexd/volumetest"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/taper/taptest"
)

// diskVolumesFixture is DiskVolumes over a disk changer whose slot 2
// holds VS-001 (slot 1 is blank: the source must look beyond it).
func diskVolumesFixture(t *testing.T) *volumetest.Fixture {
	ch, err := taper.NewDiskChanger(t.TempDir(), 3, 64<<20, 32<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	volumetest.LabelSlot(t, ch, 2, "VS-001", true)
	return &volumetest.Fixture{Source: &indexd.DiskVolumes{Changer: ch}, Present: "VS-001", Missing: "VS-404",
		Swap: func(t *testing.T, other string) { volumetest.LabelSlot(t, ch, 2, other, false) }}
}

func TestVolumeSourceConformance(t *testing.T) {
	t.Run("disk", func(t *testing.T) { volumetest.Run(t, diskVolumesFixture) })
	// DiskVolumes over a disk changer seen through taptest.Changer.
	t.Run("taptest-disk", func(t *testing.T) {
		volumetest.Run(t, func(t *testing.T) *volumetest.Fixture {
			f := diskVolumesFixture(t)
			dv := f.Source.(*indexd.DiskVolumes)
			dv.Changer = taptest.Wrap(dv.Changer)
			return f
		})
	})
	// A wrapper: the test source whose drives read by records only.
	t.Run("records-only", func(t *testing.T) {
		volumetest.Run(t, func(t *testing.T) *volumetest.Fixture {
			f := diskVolumesFixture(t)
			f.Source = tapeVolumes{f.Source, new(int)}
			return f
		})
	})
}
