package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/planner"
)

// markChainsAtRisk sets planner.DLE.ChainAtRisk on every DLE whose newest
// chain (chains, from catalog.Catalog.Chains) has an image on one of the
// volumes the next run must reuse (reuse: their labels), so that the
// planner gives it a full tonight and the volume is free when the next run
// needs it. The reason names the oldest image of the chain on those
// volumes: "its last full (2025-03-01) is on Daily-001, which the next run
// must reuse", or "its level 1 of 2025-03-03 (after the full of
// 2025-03-01) is on Daily-002, ...". It returns the DLEs it marked, as
// host:path.
func markChainsAtRisk(pdles []planner.DLE, chains []catalog.Chain, reuse []string) []string {
	if len(reuse) == 0 {
		return nil
	}
	byDLE := map[catalog.DLE]*catalog.Chain{}
	for i := range chains {
		byDLE[catalog.DLE{Host: chains[i].Host, Path: chains[i].Path}] = &chains[i]
	}
	var marked []string
	for i := range pdles {
		ch := byDLE[catalog.DLE{Host: pdles[i].Host, Path: pdles[i].Path}]
		if ch == nil || len(ch.Dumps) == 0 {
			continue
		}
		var on []string
		for _, l := range ch.Volumes {
			if slices.Contains(reuse, l) {
				on = append(on, l)
			}
		}
		if len(on) == 0 {
			continue
		}
		pdles[i].ChainAtRisk = chainRiskText(ch, on)
		marked = append(marked, pdles[i].Name())
	}
	return marked
}

// chainRiskText says what of the chain is on the volumes on (sorted
// labels, each holding a part of the chain).
func chainRiskText(ch *catalog.Chain, on []string) string {
	vols := on[0]
	if len(on) > 1 {
		vols = strings.Join(on[:len(on)-1], ", ") + " and " + on[len(on)-1]
	}
	full := stampDate(ch.Full().Datestamp)
	if n := len(ch.Dumps) - 1; n > 0 {
		incs := "1 incremental"
		if n > 1 {
			incs = fmt.Sprintf("%d incrementals", n)
		}
		return fmt.Sprintf("its newest chain (the full of %s and %s after it) has images on %s, which one of the next runs must reuse", full, incs, vols)
	}
	return fmt.Sprintf("its last full (%s) is on %s, which one of the next runs must reuse", full, vols)
}

// stampDate is the date of a datestamp, YYYY-MM-DD (the datestamp itself
// when it is not one).
func stampDate(ds string) string {
	if len(ds) < 8 {
		return ds
	}
	return ds[:4] + "-" + ds[4:6] + "-" + ds[6:8]
}
