package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server/restore"
)

// withVaults adds two [[vault]] tables to the site's configuration:
// "offsite" (test-Offsite-NNN in vtape directory offsite) and "dr"
// (test-dr-NNN in directory dr), dr running after each night.
func withVaults(t *testing.T, s *site) {
	t.Helper()
	f, err := os.OpenFile(s.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(`
[[vault]]
[vault.changer]
type = "disk"
path = "offsite"
slots = 4

[[vault]]
name = "dr"
after_night = true
[vault.changer]
type = "disk"
path = "dr"
slots = 4
`)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg, err = config.Load(s.cfgPath); err != nil {
		t.Fatal(err)
	}
	for _, v := range s.cfg.Vaults {
		if err := os.Mkdir(v.Changer.Path, 0o750); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeveralVaults: two vaults, one run after each night, the other by
// hand (--to, or all of them); each copies onto its own label set and
// counts only its own copies; with the first set and the offsite set
// both erased, every DLE restores from the dr copies.
func TestSeveralVaults(t *testing.T) {
	s := newSite(t, "")
	withVaults(t, s)
	s.nights(t, 0, 2, 0)
	cat := s.catalog(t)
	good := goodDumps(t, cat, false)
	for _, d := range good {
		cs, err := cat.Copies(t.Context(), d.ID)
		if err != nil || len(cs) != 1 || !strings.HasPrefix(cs[0].Volumes()[0], "test-dr-") {
			t.Fatalf("after the nights, copies of %s:%s %s: %+v %v; want one on dr (after_night)", d.Host, d.Path, d.Datestamp, cs, err)
		}
	}
	// The metrics: dr has copied everything (after each night), offsite
	// nothing yet.
	m := gather(t, NewCollector(func() *config.Config { return s.cfg }, cat, testLogger(t)))
	if m["tapir_vault_dles_not_copied{vault=dr}"] != 0 || m["tapir_vault_dles_not_copied{vault=offsite}"] != float64(len(s.cfg.DLEs)) ||
		m["tapir_vault_last_copy_timestamp_seconds{vault=dr}"] == 0 || m["tapir_scrape_error{}"] != 0 {
		t.Errorf("vault metrics after the nights: %v", vaultMetrics(m))
	}
	if _, ok := m["tapir_vault_last_copy_timestamp_seconds{vault=offsite}"]; ok {
		t.Errorf("offsite has a last copy before any: %v", vaultMetrics(m))
	}
	for _, dle := range s.cfg.DLEs {
		if m["tapir_dle_last_vaulted_full_timestamp_seconds{host=localhost,path="+dle.Path+",vault=dr}"] == 0 {
			t.Errorf("no vaulted full of %s on dr: %v", dle.Path, vaultMetrics(m))
		}
	}
	// --to dr: nothing new for dr.
	rs, err := Vault(t.Context(), s.cfg, VaultOptions{To: "dr"}, Deps{Log: testLogger(t), Clock: day(30)})
	if err != nil || len(rs) != 1 || rs[0].Vault != "dr" || len(rs[0].Copied) != 0 || rs[0].Already != len(good) {
		t.Fatalf("--to dr: %v %+v", err, rs)
	}
	// All vaults: offsite copies everything, dr nothing.
	rs, err = Vault(t.Context(), s.cfg, VaultOptions{}, Deps{Log: testLogger(t), Clock: day(30)})
	if err != nil || len(rs) != 2 || rs[0].Vault != "offsite" || len(rs[0].Copied) != len(good) || rs[1].Vault != "dr" || len(rs[1].Copied) != 0 {
		t.Fatalf("all vaults: %v %+v", err, rs)
	}
	for _, d := range good {
		if cs, _ := cat.Copies(t.Context(), d.ID); len(cs) != 2 {
			t.Errorf("%s:%s %s has %d copies, want 2", d.Host, d.Path, d.Datestamp, len(cs))
		}
	}
	if m := gather(t, NewCollector(func() *config.Config { return s.cfg }, cat, testLogger(t))); m["tapir_vault_dles_not_copied{vault=offsite}"] != 0 {
		t.Errorf("vault metrics after offsite ran: %v", vaultMetrics(m))
	}
	// A night after: the copy volumes of both vaults are not the
	// changer's, and not reported missing from it.
	if _, out, err := s.night(t, Deps{Clock: day(3)}); err != nil || strings.Contains(out, "in no slot of the changer") {
		t.Fatalf("night after the vaults: %v\n%s", err, out)
	}
	// The first set and the offsite set gone: the dr copies restore.
	for _, dir := range []string{s.cfg.Changer.Path, s.cfg.Vaults[0].Changer.Path} {
		files, _ := filepath.Glob(filepath.Join(dir, "slot*", "*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, dle := range s.cfg.DLEs {
		to := filepath.Join(s.dir, "from-dr", filepath.Base(dle.Path))
		tr, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: dle.Host, Path: dle.Path, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Fatalf("restore %s from the dr copies: %v", dle.Path, err)
		}
		if len(tr.Chain) != 2 {
			t.Errorf("restore %s applied %d images, want the full and the incremental", dle.Path, len(tr.Chain))
		}
		restoredFilesMatch(t, dle.Path, to)
	}
	// tapir check names the next copy volume of each.
	c := Check(t.Context(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	info := strings.Join(c.Info, "\n")
	for _, want := range []string{"Vault offsite will write", "Vault dr will write"} {
		if !strings.Contains(info, want) {
			t.Errorf("check does not say %q:\n%s", want, info)
		}
	}
}

func vaultMetrics(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.Contains(k, "vault") {
			out[k] = v
		}
	}
	return out
}
