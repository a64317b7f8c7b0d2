package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/server/restore"
)

// Retention counts copies on real nights: two volumes, tapecycle 1, one
// DLE, two nights (both fulls: the rotation is that short). Without a
// copy, the third night's look-ahead sees the newest chain block the next
// run's volume, so the planner gives the DLE a full (promise 7). With the
// chain vaulted, it is complete on the other set: the third night writes
// an incremental over the first full's volume, the catalog keeps that
// full on its copy, and with the second full's volume lost too the chain
// restores from the copy and the first set.
func TestVaultCopyFreesVolumeForReuse(t *testing.T) {
	for _, vaulted := range []bool{false, true} {
		s := newSite(t, "")
		withVault(t, s, 2, "")
		s.cfg.Tapecycle = 1
		s.cfg.DLEs = s.cfg.DLEs[:1]
		s.nights(t, 0, 2)
		if vaulted {
			if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
				t.Fatalf("vault: %v", err)
			}
		}
		rep, out, err := s.night(t, Deps{Clock: day(2)})
		if err != nil || len(rep.Volumes) != 1 || rep.Volumes[0].Label != "test-001" {
			t.Fatalf("night 2 (vaulted %v): %v %+v\n%s", vaulted, err, rep.Volumes, out)
		}
		level := rep.DLEs[0].Level
		if !vaulted {
			if level != 0 {
				t.Fatalf("without a copy, night 2 reused the full's volume for a level %d", level)
			}
			continue
		}
		if level == 0 {
			t.Fatalf("with the chain vaulted, night 2 still needed a full\n%s", out)
		}
		cat := s.catalog(t)
		fulls := goodDumps(t, cat, true)
		if len(fulls) != 2 {
			t.Fatalf("fulls after the reuse: %+v", fulls)
		}
		// The first full was on test-001, now reused: it lives on its copy.
		parts, err := cat.Parts(t.Context(), fulls[0].ID)
		if err != nil || len(parts) != 1 || !strings.HasPrefix(parts[0].Volume, "test-Offsite-") {
			t.Fatalf("the first full lives on %+v %v, want its copy", parts, err)
		}
		// The newest full's volume lost too: the chain restores with the
		// full from its copy and the incremental from test-001.
		files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot2", "*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		to := filepath.Join(s.dir, "chain")
		tr, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: "localhost", Path: s.data, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil || len(tr.Chain) != 2 {
			t.Fatalf("restore of the chain (full offsite, incremental onsite): %v %+v", err, tr)
		}
		sameFile(t, filepath.Join(s.data, "big.bin"), filepath.Join(to, "big.bin"))
		sameFile(t, filepath.Join(s.data, "etc/shadow"), filepath.Join(to, "etc/shadow"))
	}
}
