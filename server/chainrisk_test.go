package server

import (
	"slices"
	"testing"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/planner"
)

// The DLEs whose newest chain has an image on a volume the next run must
// reuse are marked, with the reason in words; the others are not.
func TestMarkChainsAtRisk(t *testing.T) {
	chains := []catalog.Chain{
		{Host: "a", Path: "/full", Dumps: []catalog.Dump{{Datestamp: "20250301010000"}}, Volumes: []string{"D-001"}},
		{Host: "a", Path: "/chain", Dumps: []catalog.Dump{{Datestamp: "20250301010000"}, {Datestamp: "20250302010000", Level: 1}, {Datestamp: "20250303010000", Level: 1}},
			Volumes: []string{"D-001", "D-002", "D-003"}},
		{Host: "b", Path: "/safe", Dumps: []catalog.Dump{{Datestamp: "20250303010000"}}, Volumes: []string{"D-003"}},
		{Host: "gone", Path: "/x", Dumps: []catalog.Dump{{Datestamp: "20250301010000"}}, Volumes: []string{"D-001"}},
	}
	pdles := []planner.DLE{{Host: "a", Path: "/full"}, {Host: "a", Path: "/chain"}, {Host: "b", Path: "/safe"}, {Host: "c", Path: "/new"}}
	marked := markChainsAtRisk(pdles, chains, []string{"D-001", "D-002"})
	if !slices.Equal(marked, []string{"a:/full", "a:/chain"}) {
		t.Errorf("marked %v", marked)
	}
	for i, want := range []string{
		"its last full (2025-03-01) is on D-001, which one of the next runs must reuse",
		"its newest chain (the full of 2025-03-01 and 2 incrementals after it) has images on D-001 and D-002, which one of the next runs must reuse",
		"", "",
	} {
		if pdles[i].ChainAtRisk != want {
			t.Errorf("%s: %q, want %q", pdles[i].Name(), pdles[i].ChainAtRisk, want)
		}
	}
	if m := markChainsAtRisk(pdles[2:], chains, nil); m != nil {
		t.Errorf("no volume to reuse marked %v", m)
	}
}
