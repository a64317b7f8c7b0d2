package server

import (
	"testing"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/indexd"
)

// mustVolumes is the volume source of cfg's changer, as tapir recover -c
// gets it.
func mustVolumes(t *testing.T, cfg *config.Config) indexd.VolumeSource {
	t.Helper()
	vols, err := VolumeSource(cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return vols
}
