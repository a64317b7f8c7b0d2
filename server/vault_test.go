package server

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/server/restore"
)

// withVault adds a [vault] table to the site's configuration file (copy
// volumes test-Offsite-NNN in the vtape directory "offsite") and reloads
// it; the changer gets slots slots.
func withVault(t *testing.T, s *site, slots int, extra string) {
	t.Helper()
	withVaultTail(t, s, slots, extra, "")
}

// withVaultTail is withVault with tail written after [vault.changer]'s
// keys (more of its keys, then tables).
func withVaultTail(t *testing.T, s *site, slots int, extra, tail string) {
	t.Helper()
	f, err := os.OpenFile(s.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n[vault]\n" + extra + "\n[vault.changer]\ntype = \"disk\"\npath = \"offsite\"\nslots = 4\n" + tail)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Changer.Slots = slots
	s.cfg = cfg
	if err := os.Mkdir(cfg.Vaults[0].Changer.Path, 0o750); err != nil {
		t.Fatal(err)
	}
}

func day(n int) clock.Clock { return offsetClock(time.Duration(n) * 24 * time.Hour) }

// nights runs n nights, a day apart from day first; fulls lists the
// nights (from 0) on which both DLEs are forced to a full.
func (s *site) nights(t *testing.T, first, n int, fulls ...int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		for _, f := range fulls {
			if f == i {
				for _, d := range s.cfg.DLEs {
					if _, err := Force(t.Context(), s.cfg, d.Host, d.Path, true); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if _, out, err := s.night(t, Deps{Clock: day(i)}); err != nil {
			t.Fatalf("night %d: %v\n%s", i, err, out)
		}
	}
}

func goodDumps(t *testing.T, cat *catalog.Catalog, fullsOnly bool) []catalog.Dump {
	t.Helper()
	ds, err := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	if err != nil {
		t.Fatal(err)
	}
	var out []catalog.Dump
	for _, d := range ds {
		if !fullsOnly || d.Level == 0 {
			out = append(out, d)
		}
	}
	return out
}

func vault(t *testing.T, s *site, opt VaultOptions) (*VaultResult, error) {
	t.Helper()
	rs, err := Vault(t.Context(), s.cfg, opt, Deps{Log: testLogger(t), Clock: day(30)})
	for _, r := range rs {
		t.Log(r.Text())
	}
	if len(rs) > 1 {
		t.Fatalf("vault ran %d vaults; this helper is for one", len(rs))
	}
	if len(rs) == 0 {
		return nil, err
	}
	return rs[0], err
}

// The proof of issue 20's offsite half: a week of nights, its fulls
// vaulted to a second vtape set, the first set erased, every file of
// every DLE restored from the copies, byte for byte.
func TestVaultWeekOfFullsRestoresFromCopies(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 7, 0, 3)
	cat := s.catalog(t)
	fulls := goodDumps(t, cat, true)
	if len(fulls) != 4 {
		t.Fatalf("a week with fulls on nights 0 and 3 has %d good fulls, want 4", len(fulls))
	}
	res, err := vault(t, s, VaultOptions{FullsOnly: true})
	if err != nil || len(res.Copied) != 4 || len(res.Failed) != 0 {
		t.Fatalf("vault: %v, copied %d", err, len(res.Copied))
	}
	for _, d := range fulls {
		cs, err := cat.Copies(t.Context(), d.ID)
		if err != nil || len(cs) != 1 || !strings.HasPrefix(cs[0].Parts[0].Volume, "test-Offsite-") {
			t.Fatalf("copies of %s:%s %s: %+v %v", d.Host, d.Path, d.Datestamp, cs, err)
		}
	}
	// The copy files are images like any: same header line, same bytes
	// after it as the original.
	copies, _ := filepath.Glob(filepath.Join(s.cfg.Vaults[0].Changer.Path, "slot*", "0000[1-9].*"))
	if len(copies) != 4 {
		t.Fatalf("copy volume files: %v", copies)
	}
	for _, f := range copies {
		b, _ := os.ReadFile(f)
		if !bytes.HasPrefix(b, []byte("TAPIR FILE ")) {
			t.Errorf("%s does not start with an image header", f)
		}
	}

	// The first set is gone: every vtape file of it deleted.
	slots, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*"))
	for _, sl := range slots {
		files, _ := filepath.Glob(filepath.Join(sl, "*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every file of each DLE, as of its newest full, from the copies.
	newest := map[string]string{}
	for _, d := range fulls {
		if d.Datestamp > newest[d.Path] {
			newest[d.Path] = d.Datestamp
		}
	}
	for _, dle := range s.cfg.DLEs {
		to := filepath.Join(s.dir, "from-copies", filepath.Base(dle.Path))
		tr, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: dle.Host, Path: dle.Path, To: to, AsOf: newest[dle.Path], Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
		if err != nil {
			t.Fatalf("restore %s from the copies: %v", dle.Path, err)
		}
		if len(tr.Chain) != 1 || tr.Chain[0].Level != 0 {
			t.Errorf("restore %s applied %d images, want the full alone", dle.Path, len(tr.Chain))
		}
		n := 0
		filepath.WalkDir(to, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(to, p)
			sameFile(t, filepath.Join(dle.Path, rel), p)
			n++
			return nil
		})
		want := 0
		filepath.WalkDir(dle.Path, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != dle.Path && e.IsDir() && dle.Path == s.data && p == filepath.Join(s.data, "sub") {
				// sub is a DLE of its own; whether the parent holds it
				// too is checked by comparing what was restored.
				if _, err := os.Stat(filepath.Join(to, "sub")); err != nil {
					return filepath.SkipDir
				}
			}
			if e.Type().IsRegular() {
				want++
			}
			return nil
		})
		if n != want || n == 0 {
			t.Errorf("restored %d files of %s from the copies, the DLE has %d", n, dle.Path, want)
		}
	}
	// A single file too, through the restore of one file.
	r, err := restore.File(t.Context(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "big.bin", To: filepath.Join(s.dir, "one"), Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
	if err != nil {
		t.Fatalf("restore big.bin from the copies: %v", err)
	}
	sameFile(t, filepath.Join(s.data, "big.bin"), r.Written)
}

// Without --fulls-only the incrementals go too; --since and HOST/DISK
// narrow it; a second vault copies nothing new.
func TestVaultIncrementalsSinceFiltersIdempotent(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 3)
	cat := s.catalog(t)
	all := goodDumps(t, cat, false)
	if len(all) != 6 {
		t.Fatalf("3 nights of 2 DLEs: %d good images", len(all))
	}
	sub := filepath.Join(s.data, "sub")
	// One DLE, from the second night on.
	since := all[0].Datestamp[:8]
	for _, d := range all {
		if d.Level > 0 && d.Datestamp[:8] > since {
			since = d.Datestamp[:8]
			break
		}
	}
	res, err := vault(t, s, VaultOptions{Host: "localhost", Path: sub, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range res.Copied {
		if it.Path != sub || it.Datestamp[:8] < since || it.Level == 0 {
			t.Errorf("copied %s, outside localhost:%s since %s", it.what(), sub, since)
		}
	}
	if len(res.Copied) != 2 {
		t.Errorf("copied %d images of %s since %s, want its 2 incrementals", len(res.Copied), sub, since)
	}
	// The rest: everything else, incrementals included.
	res, err = vault(t, s, VaultOptions{})
	if err != nil || len(res.Copied) != 4 || res.Already != 2 {
		t.Fatalf("second vault: %v; copied %d, already %d; want 4 and 2", err, len(res.Copied), res.Already)
	}
	levels := 0
	for _, it := range res.Copied {
		levels += it.Level
	}
	if levels == 0 {
		t.Errorf("no incremental copied without --fulls-only")
	}
	// Idempotent: nothing new, no volume written.
	res, err = vault(t, s, VaultOptions{})
	if err != nil || len(res.Copied) != 0 || res.Already != 6 || len(res.Volumes) != 0 {
		t.Fatalf("third vault: %v; copied %d, already %d, volumes %v", err, len(res.Copied), res.Already, res.Volumes)
	}
	if _, err := vault(t, s, VaultOptions{Since: "yesterday"}); err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD") {
		t.Errorf("--since yesterday: %v", err)
	}
	if _, err := vault(t, s, VaultOptions{To: "elsewhere"}); err == nil || !strings.Contains(err.Error(), `no vault named "elsewhere" (it has offsite)`) {
		t.Errorf("--to elsewhere: %v", err)
	}
}

// A copy volume is verified like any volume; a source volume missing
// skips its images with a line saying which, the others are copied.
func TestVaultVerifyAndMissingSource(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 2)
	cat := s.catalog(t)
	all := goodDumps(t, cat, false)
	parts, err := cat.Parts(t.Context(), all[len(all)-1].ID)
	if err != nil {
		t.Fatal(err)
	}
	gone := parts[0].Volume // the second night's volume
	slot, err := cat.Volume(t.Context(), gone)
	if err != nil {
		t.Fatal(err)
	}
	// Its vtape files are taken away (the slot is empty).
	dir := filepath.Join(s.cfg.Changer.Path, "slot"+strconv.Itoa(slot.Slot))
	away := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if err := os.Rename(f, filepath.Join(away, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	res, err := vault(t, s, VaultOptions{})
	if !errors.Is(err, ErrVaultIncomplete) || len(res.Copied) != 2 || len(res.Failed) != 2 {
		t.Fatalf("vault with %s missing: %v; copied %d, failed %d", gone, err, len(res.Copied), len(res.Failed))
	}
	for _, it := range res.Failed {
		if !strings.Contains(it.Why, "source volume "+gone+" is not available") {
			t.Errorf("%s: why %q does not name the missing volume %s", it.what(), it.Why, gone)
		}
	}
	if !strings.Contains(res.Text(), "NOT COPIED") {
		t.Errorf("the report does not say what was not copied:\n%s", res.Text())
	}
	// Back: the next vault copies what was skipped.
	for _, f := range files {
		if err := os.Rename(filepath.Join(away, filepath.Base(f)), f); err != nil {
			t.Fatal(err)
		}
	}
	res, err = vault(t, s, VaultOptions{})
	if err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault after %s came back: %v; copied %d", gone, err, len(res.Copied))
	}
	// Both copy volumes verify.
	vols, err := cat.AllVolumes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range vols {
		if !strings.HasPrefix(v.Label, "test-Offsite-") {
			continue
		}
		vr, err := VerifyWith(t.Context(), s.cfg, v.Label, VerifyOptions{}, Deps{Log: testLogger(t)})
		if err != nil || vr.Bad() != 0 || vr.Orphans() != 0 {
			t.Fatalf("verify %s: %v %+v", v.Label, err, vr)
		}
		n += len(vr.Images)
	}
	if n != 4 {
		t.Errorf("verify of the copy volumes checked %d images, want 4", n)
	}
}

// A second vault while one (or a night) runs is refused by the run lock.
func TestVaultRefusedUnderRunLock(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	l, err := lockRun(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	_, err = Vault(t.Context(), s.cfg, VaultOptions{}, Deps{Log: testLogger(t)})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "wait for it to end") {
		t.Fatalf("vault under the run lock: %v", err)
	}
}

// [vault] after_night = true copies the night's images after it.
func TestVaultAfterNight(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "after_night = true\nfulls_only = true\n")
	rep, out, err := s.night(t, Deps{Clock: day(0)})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	if !strings.Contains(out, "vault offsite: copied localhost:") {
		t.Errorf("the night's report does not say what the vault copied:\n%s", out)
	}
	// The next night does not take the copy volumes, in their own
	// changer, for volumes missing from its changer.
	if _, out, err := s.night(t, Deps{Clock: day(1)}); err != nil || strings.Contains(out, "test-Offsite-001") && strings.Contains(out, "in no slot") {
		t.Errorf("night after a vault: %v\n%s", err, out)
	}
	cat := s.catalog(t)
	for _, d := range goodDumps(t, cat, true) {
		if cs, err := cat.Copies(t.Context(), d.ID); err != nil || len(cs) != 1 {
			t.Errorf("%s:%s has copies %+v %v after a night with after_night", d.Host, d.Path, cs, err)
		}
	}
	if rep == nil {
		t.Fatal("no report")
	}
}

// A copy volume that cannot be written (its slot directory
// write-protected) stops the vault with what to do, and records nothing.
func TestVaultCopyVolumeWriteProtected(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 1)
	for i := 1; i <= 4; i++ {
		sl := filepath.Join(s.cfg.Vaults[0].Changer.Path, "slot"+strconv.Itoa(i))
		os.Mkdir(sl, 0o750)
		if err := os.Chmod(sl, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(sl, 0o755) })
	}
	res, err := vault(t, s, VaultOptions{})
	if !errors.Is(err, ErrVaultIncomplete) || res == nil || len(res.Copied) != 0 || len(res.Failed) != 2 || !strings.Contains(res.Failed[0].Why, "no copy volume") {
		t.Fatalf("vault onto a write-protected changer: %v %+v", err, res)
	}
	all, _ := s.catalog(t).AllCopies(t.Context())
	if len(all) != 0 {
		t.Errorf("copies recorded: %+v", all)
	}
}

// An image larger than what is left on a copy volume spans onto the next
// copy volume, as the taper does; the copy restores, and with neither
// location there the restore names both.
func TestVaultSpansCopyVolumes(t *testing.T) {
	s := newSite(t, "")
	withVaultTail(t, s, 8, "", "tapetype = \"tiny\"\n[tapetype.tiny]\nlength = \"1 MiB\"\nblocksize = \"64 KiB\"\n")
	s.nights(t, 0, 1)
	res, err := vault(t, s, VaultOptions{Path: s.data})
	if err != nil || len(res.Copied) != 1 || len(res.Volumes) < 2 {
		t.Fatalf("vault of a %d-byte image onto 1 MiB volumes: %v; volumes %+v", res.Copied[0].Bytes, err, res.Volumes)
	}
	cat := s.catalog(t)
	d := goodDumps(t, cat, true)[0]
	if d.Path != s.data {
		d = goodDumps(t, cat, true)[1]
	}
	cs, err := cat.Copies(t.Context(), d.ID)
	if err != nil || len(cs) != 1 || len(cs[0].Parts) < 2 {
		t.Fatalf("copy of %s: %+v %v; want parts on several volumes", d.Path, cs, err)
	}
	own, _ := cat.Parts(t.Context(), d.ID)
	main := filepath.Join(s.cfg.Changer.Path, "slot1")
	away := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(main, "*"))
	for _, f := range files {
		if err := os.Rename(f, filepath.Join(away, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	to := filepath.Join(s.dir, "spanned")
	if _, err := restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: "localhost", Path: s.data, To: to, Volumes: mustVolumes(t, s.cfg)}, testLogger(t)); err != nil {
		t.Fatalf("restore from the spanning copy: %v", err)
	}
	sameFile(t, filepath.Join(s.data, "big.bin"), filepath.Join(to, "big.bin"))
	// The copy's second volume gone too: the restore names both locations.
	second := cs[0].Parts[1].Volume
	v, err := cat.Volume(t.Context(), second)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.Vaults[0].Changer.Path, "slot"+strconv.Itoa(v.Slot))); err != nil {
		t.Fatal(err)
	}
	_, err = restore.Tree(t.Context(), s.cfg, restore.TreeRequest{Host: "localhost", Path: s.data, To: filepath.Join(s.dir, "none"), Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), own[0].Volume) || !strings.Contains(err.Error(), second) {
		t.Fatalf("restore with neither location there: %v; want an error naming %s and %s", err, own[0].Volume, second)
	}
}

// A [vault] whose changer directory is missing (the offsite disk not
// mounted) never stops a restore from the images' own volumes.
func TestVaultChangerMissingRestoresFromOwnVolumes(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 1)
	if err := os.Remove(s.cfg.Vaults[0].Changer.Path); err != nil {
		t.Fatal(err)
	}
	r, err := restore.File(t.Context(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "big.bin", To: filepath.Join(s.dir, "r"), Volumes: mustVolumes(t, s.cfg)}, testLogger(t))
	if err != nil {
		t.Fatalf("restore with the vault's changer missing: %v", err)
	}
	sameFile(t, filepath.Join(s.data, "big.bin"), r.Written)
	res, err := vault(t, s, VaultOptions{})
	if err == nil || res != nil || !strings.Contains(err.Error(), "[vault.changer]") {
		t.Errorf("vault with its changer missing: %v", err)
	}
}

// tapir check says which copy volume the next vault writes, and names a
// [vault] changer that cannot be opened as a problem.
func TestVaultCheck(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	c := Check(t.Context(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	if !strings.Contains(strings.Join(c.Info, "\n"), "Vault offsite will write to a new copy volume, labelled test-Offsite-001") {
		t.Errorf("check does not say what the vault writes: %v", c.Info)
	}
	if err := os.RemoveAll(s.cfg.Vaults[0].Changer.Path); err != nil {
		t.Fatal(err)
	}
	c = Check(t.Context(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	found := false
	for _, p := range c.Problems {
		found = found || (p.Where == "vault offsite" && strings.Contains(p.What, "[vault.changer]"))
	}
	if !found {
		t.Errorf("check with the vault's changer missing: problems %+v", c.Problems)
	}
}
