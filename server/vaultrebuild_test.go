package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/rebuild"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/taper"
)

// rebuildWithVaults rebuilds the site's catalog into out from the
// changer's and the vault's volumes and the holding disk, as tapir admin
// rebuild does.
func rebuildWithVaults(t *testing.T, cfg *config.Config, out string) *rebuild.Result {
	t.Helper()
	tt := cfg.Tapetype()
	ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), nil)
	if err != nil {
		t.Fatal(err)
	}
	var vaults []rebuild.Vault
	for i := range cfg.Vaults {
		v := &cfg.Vaults[i]
		vt := cfg.VaultConfig(v).Tapetype()
		vch, err := taper.NewDiskChanger(v.Changer.Path, v.Changer.Slots, int64(vt.Length), int64(vt.Blocksize), nil)
		if err != nil {
			t.Fatal(err)
		}
		vaults = append(vaults, rebuild.Vault{Name: v.Name, Changer: vch})
	}
	res, err := rebuild.Rebuild(t.Context(), rebuild.Options{Catalog: out, Force: true, Changer: ch, Vaults: vaults, Holding: holdingDisks(cfg),
		Org: cfg.Org, Loc: cfg.Location(), Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRebuildKnowsVaultCopies: the catalog lost, tapir admin rebuild reads
// the vault's copy volumes too: every copy comes back as a copy; with the
// first set lost as well, every image comes back on its copy, and every
// DLE restores from the rebuilt catalog.
func TestRebuildKnowsVaultCopies(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 3, 0)
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Failed) != 0 {
		t.Fatalf("vault: %v", err)
	}
	cat := s.catalog(t)
	good := goodDumps(t, cat, false)

	out := filepath.Join(s.dir, "rebuilt.db")
	res := rebuildWithVaults(t, s.cfg, out)
	if len(res.Problems) != 0 || res.Dumps != len(good) || res.Copies != len(good) {
		t.Fatalf("rebuild: %d images, %d copies, problems %q; want %d each", res.Dumps, res.Copies, res.Problems, len(good))
	}
	rc, err := catalog.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range goodDumps(t, rc, false) {
		parts, _ := rc.Parts(t.Context(), d.ID)
		cs, _ := rc.Copies(t.Context(), d.ID)
		if len(parts) == 0 || strings.HasPrefix(parts[0].Volume, "test-Offsite-") || len(cs) != 1 || !strings.HasPrefix(cs[0].Volumes()[0], "test-Offsite-") {
			t.Errorf("%s:%s level %d of %s: parts %+v, copies %+v", d.Host, d.Path, d.Level, d.Datestamp, parts, cs)
		}
	}
	rc.Close()

	// A flipped byte in a copy: that copy is named and left out, the
	// image itself is recorded from its own volume.
	cf, _ := filepath.Glob(filepath.Join(s.cfg.Vaults[0].Changer.Path, "slot*", "00001.*"))
	if len(cf) != 1 {
		t.Fatalf("copy files %v", cf)
	}
	orig, _ := os.ReadFile(cf[0])
	bad := append([]byte(nil), orig...)
	bad[len(bad)-200] ^= 0x10
	if err := os.WriteFile(cf[0], bad, 0o640); err != nil {
		t.Fatal(err)
	}
	res = rebuildWithVaults(t, s.cfg, out)
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "is damaged") || res.Dumps != len(good) || res.Copies != len(good)-1 {
		t.Fatalf("rebuild with a damaged copy: %d images, %d copies, problems %q", res.Dumps, res.Copies, res.Problems)
	}
	// A copy cut short (a vault killed while writing it): named, left out.
	if err := os.WriteFile(cf[0], orig[:len(orig)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	res = rebuildWithVaults(t, s.cfg, out)
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "is not whole") || !strings.Contains(res.Problems[0], "did not finish") || res.Copies != len(good)-1 {
		t.Fatalf("rebuild with a copy cut short: %d copies, problems %q", res.Copies, res.Problems)
	}
	if err := os.WriteFile(cf[0], orig, 0o640); err != nil {
		t.Fatal(err)
	}

	// The first set gone with the server: the rebuild finds every image
	// on its copy only.
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	res = rebuildWithVaults(t, s.cfg, out)
	if len(res.Problems) != 0 || res.Dumps != len(good) || res.Copies != 0 {
		t.Fatalf("rebuild from the vault alone: %d images, %d copies, problems %q", res.Dumps, res.Copies, res.Problems)
	}
	s.cfg.Catalog = out
	for _, dle := range s.cfg.DLEs {
		to := filepath.Join(s.dir, "from-rebuilt", filepath.Base(dle.Path))
		tr, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: dle.Host, Path: dle.Path, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Fatalf("restore %s from the rebuilt catalog: %v", dle.Path, err)
		}
		if len(tr.Chain) != 2 || tr.Chain[0].Level != 0 || tr.Chain[1].Level != 1 {
			t.Errorf("restore %s applied %d images, want the full and the newest level 1", dle.Path, len(tr.Chain))
		}
		restoredFilesMatch(t, dle.Path, to)
	}
}

// TestRebuildHoldingImageWithCopy: images a night left on the holding
// disk and the vault copied come back from a rebuild still waiting there,
// with their copies, so that the next flush puts them onsite; one whose
// holding file is damaged comes back on its copy, said.
func TestRebuildHoldingImageWithCopy(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.degradedNight(t)
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault: %v", err)
	}
	out := filepath.Join(s.dir, "rebuilt.db")
	res := rebuildWithVaults(t, s.cfg, out)
	if len(res.Problems) != 0 || res.Dumps != 2 || res.Copies != 2 {
		t.Fatalf("rebuild: %d images, %d copies, problems %q", res.Dumps, res.Copies, res.Problems)
	}
	s.cfg.Catalog = out
	cat := s.catalog(t)
	for _, dle := range s.cfg.DLEs {
		d := holdingDump(t, cat, dle.Path)
		if cs, _ := cat.Copies(t.Context(), d.ID); len(cs) != 1 {
			t.Errorf("%s: copies %+v", dle.Path, cs)
		}
	}
	var fout strings.Builder
	if _, err := Flush(t.Context(), s.cfg, FlushOptions{}, Deps{Log: testLogger(t), Out: &fout}); err != nil {
		t.Fatalf("flush after the rebuild: %v\n%s", err, fout.String())
	}
	for _, d := range goodDumps(t, cat, false) {
		parts, _ := cat.Parts(t.Context(), d.ID)
		cs, _ := cat.Copies(t.Context(), d.ID)
		if len(parts) == 0 || strings.HasPrefix(parts[0].Volume, "test-Offsite-") || len(cs) != 1 {
			t.Errorf("%s after the flush: parts %+v, copies %+v", d.Path, parts, cs)
		}
	}
	if n := len(goodDumps(t, cat, false)); n != 2 {
		t.Errorf("%d good images after the flush, want 2", n)
	}

	// Another degraded night, vaulted; one holding file damaged: the
	// rebuild records that image from its copy and says so.
	s.degradedNight(t)
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault: %v", err)
	}
	files := holdingFiles(t, s)
	b, _ := os.ReadFile(files[0])
	b[len(b)-100] ^= 0x40
	if err := os.WriteFile(files[0], b, 0o640); err != nil {
		t.Fatal(err)
	}
	res = rebuildWithVaults(t, s.cfg, filepath.Join(s.dir, "rebuilt2.db"))
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "the image is recorded from its copy") {
		t.Fatalf("rebuild with a damaged holding file: problems %q", res.Problems)
	}
}
