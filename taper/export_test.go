package taper

import (
	"testing"

	"github.com/tapir-backup/tapir/taper/fakest"
)

// For the conformance suite (package taper_test, which may import
// taper/changertest): the in-memory drive opened like a device, and the
// robot arm of the fake library for it.
var MemOpener = memOpener

func FollowingOpener(t *testing.T, lib *fakest.Library, d *fakest.Drive) DriveOpener {
	return followingOpener(t, lib, d)
}

// FollowingOpeners is the robot arm of the fake library for in-memory
// drives that share a shelf: drives[i], opened as paths[i], is the
// library's drive i.
func FollowingOpeners(t *testing.T, lib *fakest.Library, drives []*fakest.Drive, paths []string) DriveOpener {
	byPath := map[string]*fakest.Drive{}
	for i, d := range drives {
		byPath[paths[i]] = d
	}
	return followingOpeners(t, lib, byPath, paths...)
}
