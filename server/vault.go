package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/holding"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/taper"
)

// VaultOptions says what `tapir vault` copies.
type VaultOptions struct {
	// To names the [vault] to write ("" or its name).
	To string
	// Since copies only images of runs at or after this datestamp
	// (YYYYMMDD or a whole datestamp); "" copies all (or [vault]
	// since_days).
	Since string
	// FullsOnly copies level 0 images only (or [vault] fulls_only).
	FullsOnly bool
	// Host and Path narrow the copy to a host or one DLE.
	Host, Path string
}

// VaultItem is one image a vault looked at.
type VaultItem struct {
	Host, Path string
	Level      int
	Datestamp  string
	Bytes      int64
	From, To   []string // volumes (or the holding file) read, copy volumes written
	Why        string   // why it was not copied
}

func (it VaultItem) what() string {
	return fmt.Sprintf("%s:%s level %d of run %s", it.Host, it.Path, it.Level, it.Datestamp)
}

// VaultResult is what a vault did.
type VaultResult struct {
	Vault   string
	Copied  []VaultItem
	Already int         // images that already had a copy on the vault's volumes
	Failed  []VaultItem // images that could not be copied, each with why
	Volumes []report.Volume
	Next    string // the copy volume the next vault would write
	Notes   []string
}

// Text is the vault's report for a person.
func (r *VaultResult) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tapir vault %s: %d image(s) copied, %d already copied, %d NOT copied\n", r.Vault, len(r.Copied), r.Already, len(r.Failed))
	for _, it := range r.Copied {
		fmt.Fprintf(&b, "  copied %s: %s -> %s\n", it.what(), strings.Join(it.From, ", "), strings.Join(it.To, ", "))
	}
	for _, it := range r.Failed {
		fmt.Fprintf(&b, "  NOT COPIED %s: %s\n", it.what(), it.Why)
	}
	for _, v := range r.Volumes {
		fmt.Fprintf(&b, "  copy volume %s (slot %d): %d file(s)\n", v.Label, v.Slot, v.Files)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if r.Next != "" {
		fmt.Fprintf(&b, "  the next vault writes %s\n", r.Next)
	}
	return b.String()
}

// ErrVaultIncomplete is matched by the error of a vault that left
// images it should have copied without a copy.
var ErrVaultIncomplete = errors.New("some images were not copied")

// Vault copies good images from their volumes, and images waiting on this
// server's holding disks from there, onto the volumes of the
// [vault] label set (Amanda's amvault), under the run lock: each image is
// read part by part (its header checked against the catalog), written as
// the taper writes (labels, headers, spanning at early warning), its
// SHA-256 checked, and recorded as a copy. An image whose copy exists is
// skipped; one whose volume is missing is skipped with its reason, and
// the others go on. The error matches ErrVaultIncomplete when any image
// was not copied.
func Vault(ctx context.Context, cfg *config.Config, opt VaultOptions, deps Deps) ([]*VaultResult, error) {
	if len(cfg.Vaults) == 0 {
		return nil, fmt.Errorf("vault: %s has no [vault] section: add one naming the changer and labels of the copy volumes (docs/guide.md, \"Offsite copies\")", cfg.File)
	}
	vaults := make([]*config.Vault, 0, len(cfg.Vaults))
	if opt.To != "" {
		v := cfg.VaultNamed(opt.To)
		if v == nil {
			return nil, fmt.Errorf("vault: %s has no vault named %q (it has %s): use --to with one of them, or leave --to out to run them all", cfg.File, opt.To, strings.Join(cfg.VaultNames(), ", "))
		}
		vaults = append(vaults, v)
	} else {
		for i := range cfg.Vaults {
			vaults = append(vaults, &cfg.Vaults[i])
		}
	}
	cat, unlock, err := openLocked(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer unlock()
	// One after the other, each to the end: a vault that fails leaves
	// the next to run (what the first could not copy, it names).
	var out []*VaultResult
	var errs []error
	for _, v := range vaults {
		res, err := vaultLocked(ctx, cfg, cat, v, opt, deps)
		if res != nil {
			out = append(out, res)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out, errors.Join(errs...)
}

func vaultLocked(ctx context.Context, cfg *config.Config, cat *catalog.Catalog, vault *config.Vault, opt VaultOptions, deps Deps) (*VaultResult, error) {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("vault", vault.Name)
	clk := clock.Or(deps.Clock)
	vcfg := cfg.VaultConfig(vault)
	if opt.Since == "" && vault.SinceDays > 0 {
		opt.Since = clk.Now().In(cfg.Location()).AddDate(0, 0, -vault.SinceDays).Format("20060102")
	}
	opt.FullsOnly = opt.FullsOnly || vault.FullsOnly
	since, err := sinceStamp(opt.Since)
	if err != nil {
		return nil, err
	}
	res := &VaultResult{Vault: vault.Name}
	todo, err := vaultCandidates(ctx, cat, vcfg.LabelRegexp(), opt, since, holdingDisks(cfg), res)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", vault.Name, err)
	}
	if len(todo) == 0 {
		res.Notes = append(res.Notes, "nothing to copy")
		return res, nil
	}
	src, err := VolumeSource(cfg, deps, cat, log)
	if err != nil {
		return nil, fmt.Errorf("vault: the volumes to copy from: %w", err)
	}
	vdeps := deps
	vdeps.Changer = deps.VaultChangers[vault.Name]
	vch, err := openChangerFor(vcfg, vdeps, log, false)
	if err != nil {
		return nil, fmt.Errorf("vault %s: the changer of its copy volumes ([vault.changer]): %w", vault.Name, err)
	}
	if vdeps.Changer == nil {
		defer closeChanger(vch)
	}
	ds := clk.Now().In(cfg.Location()).Format("20060102150405")
	v := &volumes{cfg: vcfg, cat: cat, datestamp: ds, clock: clk, log: log, deps: deps,
		notes: func(s string) { res.Notes = append(res.Notes, s) }}
	v.setDrives([]taper.Changer{vch})
	sc := taper.NewScribe(v.drives[0], log)
	sc.Clock = clk
	disks := holdingDisks(cfg)
	var dead error
	for _, d := range todo {
		it := VaultItem{Host: d.Host, Path: d.Path, Level: d.Level, Datestamp: d.Datestamp, Bytes: d.PayloadSize}
		if dead != nil {
			it.Why = "no copy volume to write: " + dead.Error()
			res.Failed = append(res.Failed, it)
			continue
		}
		err := vaultOne(ctx, cat, src, disks, sc, v, d, &it, clk)
		switch {
		case err == nil:
			res.Copied = append(res.Copied, it)
			log.Info("copied", "host", d.Host, "path", d.Path, "level", d.Level, "datestamp", d.Datestamp, "to", strings.Join(it.To, ","))
		case errors.Is(err, taper.ErrNoVolume) || ctx.Err() != nil:
			dead = err
			it.Why = "no copy volume to write: " + err.Error()
			res.Failed = append(res.Failed, it)
		default:
			it.Why = err.Error()
			res.Failed = append(res.Failed, it)
			log.Error("not copied", "host", d.Host, "path", d.Path, "level", d.Level, "datestamp", d.Datestamp, "err", err)
		}
	}
	used, next, notes := v.finish(context.WithoutCancel(ctx), cfg.Eject)
	res.Volumes, res.Next = used, next
	res.Notes = append(res.Notes, notes...)
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("vault %s: %w: %d of %d image(s) have no copy (each line NOT COPIED says why); the next vault tries them again", vault.Name, ErrVaultIncomplete, len(res.Failed), len(todo))
	}
	return res, nil
}

// sinceStamp turns --since (YYYYMMDD, YYYY-MM-DD or a datestamp) into the
// smallest datestamp it admits.
func sinceStamp(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	t := strings.ReplaceAll(s, "-", "")
	if len(t) == 8 {
		t += "000000"
	}
	if len(t) != 14 || strings.Trim(t, "0123456789") != "" {
		return "", fmt.Errorf("vault: --since %q is not a date: write YYYY-MM-DD, YYYYMMDD or a run's datestamp YYYYMMDDhhmmss", s)
	}
	if _, err := time.Parse("20060102150405", t); err != nil {
		return "", fmt.Errorf("vault: --since %q is not a date: %v", s, err)
	}
	return t, nil
}

// vaultCandidates returns the images the vault copies, oldest first: the
// good ones, and those waiting on this server's holding disks (a night
// without a usable volume leaves its images there; their copy is the
// only one off this machine until a flush). Those that already have a
// copy on the vault's label set are counted in res.Already.
func vaultCandidates(ctx context.Context, cat *catalog.Catalog, vaultRe *regexp.Regexp, opt VaultOptions, since string, disks []string, res *VaultResult) ([]catalog.Dump, error) {
	dumps, err := cat.DumpsWithStatus(ctx, catalog.DumpGood)
	if err != nil {
		return nil, err
	}
	held, err := cat.DumpsWithStatus(ctx, catalog.DumpHolding)
	if err != nil {
		return nil, err
	}
	for _, d := range held {
		// Another server's holding disk (a shared catalog) is not read
		// here; its own vault copies it.
		if holding.DiskOf(d.HoldingPath, disks) != "" {
			dumps = append(dumps, d)
		}
	}
	copies, err := cat.AllCopies(ctx)
	if err != nil {
		return nil, err
	}
	var out []catalog.Dump
	for _, d := range dumps {
		if (opt.Host != "" && d.Host != opt.Host) || (opt.Path != "" && d.Path != opt.Path) ||
			(opt.FullsOnly && d.Level != 0) || d.Datestamp < since {
			continue
		}
		done := false
		for _, c := range copies[d.ID] {
			done = done || allMatch(c.Volumes(), vaultRe)
		}
		if !done {
			// An image that lives on the vault's volumes only (its first
			// location was overwritten) needs no copy there.
			parts, err := cat.Parts(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			var labels []string
			for _, p := range parts {
				labels = append(labels, p.Volume)
			}
			done = len(labels) > 0 && allMatch(labels, vaultRe)
		}
		if done {
			res.Already++
			continue
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Datestamp != b.Datestamp {
			return a.Datestamp < b.Datestamp
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Level < b.Level
	})
	return out, nil
}

func allMatch(labels []string, re *regexp.Regexp) bool {
	for _, l := range labels {
		if !re.MatchString(l) {
			return false
		}
	}
	return len(labels) > 0
}

// vaultOne copies one image: its header and payload read from its volumes
// (or the holding disk) and checked, written by the scribe onto copy
// volumes, its SHA-256 checked, recorded as a copy.
func vaultOne(ctx context.Context, cat *catalog.Catalog, src indexd.VolumeSource, disks []string, sc *taper.Scribe, v *volumes, d catalog.Dump, it *VaultItem, clk clock.Clock) error {
	parts, err := cat.Parts(ctx, d.ID)
	if err != nil {
		return err
	}
	for _, p := range parts {
		it.From = append(it.From, fmt.Sprintf("%s file %d", p.Volume, p.FileNo))
	}
	var hdr *image.Header
	var payload io.Reader
	switch {
	case len(parts) == 0 && d.Status == catalog.DumpHolding:
		it.From = append(it.From, "holding file "+d.HoldingPath)
		im, err := holding.OpenImage(d.HoldingPath, disks)
		if err != nil {
			return fmt.Errorf("cannot read it on the holding disk (%v); the next night's flush says what became of it", err)
		}
		defer im.Close()
		h := *im.Header
		if h.Datestamp != d.Datestamp || h.Host != d.Host || h.Path != d.Path || h.Level != d.Level || h.SHA256 != d.SHA256 || im.Size != d.PayloadSize {
			return fmt.Errorf("holding file %s holds %s %s:%s level %d (%d bytes, sha256 %s), not the catalog's image (%d bytes, sha256 %s): it is not copied; tapir dump's flush reports it",
				d.HoldingPath, h.Datestamp, h.Host, h.Path, h.Level, im.Size, h.SHA256, d.PayloadSize, d.SHA256)
		}
		// As the taper writes a flushed image: the header without
		// the holding disk's chunk note.
		if h.Extra != nil {
			h.Extra = maps.Clone(h.Extra)
			delete(h.Extra, holding.ChunksKey)
		}
		hdr, payload = &h, im.Reader()
	case len(parts) == 0:
		return fmt.Errorf("the catalog has no part of it on a volume")
	default:
		// Every source volume must be there: a missing one skips the
		// image before anything is written.
		for _, l := range catalog.PartVolumes(parts) {
			if _, err := src.Locate(ctx, l); err != nil {
				return fmt.Errorf("source volume %s is not available (%v); put it in the changer and run the vault again", l, err)
			}
		}
		var raw []byte
		ir := indexd.NewImageReader(ctx, src, disks, d, parts)
		ir.Header = func(pt catalog.Part, b []byte, err error) {
			if pt.Part == 1 && err == nil {
				raw = append([]byte(nil), b...)
			}
		}
		defer ir.Close()
		var probe [1]byte
		if _, err := ir.ReadAt(probe[:], 0); err != nil {
			return fmt.Errorf("cannot read it: %w", err)
		}
		if hdr, err = image.ReadHeader(bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("the header on volume %s: %w", parts[0].Volume, err)
		}
		payload = io.NewSectionReader(ir, 0, d.PayloadSize)
	}
	res, err := sc.WriteImage(ctx, *hdr, payload, hdr.Name())
	var we *taper.WriteError
	switch {
	case errors.As(err, &we):
		recordLeftFiles(ctx, cat, v.datestamp, d, we.Files)
	case err == nil:
		recordLeftFiles(ctx, cat, v.datestamp, d, res.Abandoned)
	}
	if err != nil {
		return fmt.Errorf("writing the copy: %w", err)
	}
	var cp []catalog.Part
	var files []taper.LeftFile
	for _, p := range res.Parts {
		cp = append(cp, catalog.Part{DumpID: d.ID, Volume: p.Volume, Part: p.Part, FileNo: p.Pos.File, Record: p.Pos.Record,
			LogicalPos: p.Pos.Logical, Offset: p.Offset, Length: p.Length})
		files = append(files, taper.LeftFile{Volume: p.Volume, Slot: p.Slot, FileNo: p.Pos.File, Bytes: p.Length,
			Why: fmt.Sprintf("part %d of a copy written whole but not recorded as one", p.Part)})
		it.To = append(it.To, fmt.Sprintf("%s file %d", p.Volume, p.Pos.File))
	}
	if res.SHA256 != d.SHA256 || res.Bytes != d.PayloadSize {
		recordLeftFiles(ctx, cat, v.datestamp, d, files)
		src := "tapir verify on " + strings.Join(catalog.PartVolumes(parts), ", ")
		if len(parts) == 0 {
			src = "the next night's flush checks holding file " + d.HoldingPath
		}
		return fmt.Errorf("what was copied has SHA-256 %s and %d bytes, the catalog's image %s and %d bytes: the source is damaged (%s); the copy is recorded as failed files",
			res.SHA256, res.Bytes, d.SHA256, d.PayloadSize, src)
	}
	if _, err := cat.RecordCopy(context.WithoutCancel(ctx), d.ID, cp, clk.Now()); err != nil {
		recordLeftFiles(ctx, cat, v.datestamp, d, files)
		return err
	}
	for _, p := range res.Parts {
		v.account(p.Volume, p.Length)
	}
	return nil
}

// recordLeftFiles records the tape files a failed copy left as failed
// files, so that verify names them and no restore uses them.
func recordLeftFiles(ctx context.Context, cat *catalog.Catalog, ds string, d catalog.Dump, files []taper.LeftFile) {
	for _, f := range files {
		cat.RecordFailedFile(context.WithoutCancel(ctx), catalog.FailedFile{Volume: f.Volume, FileNo: f.FileNo, Datestamp: ds,
			Host: d.Host, Path: d.Path, Level: d.Level, Reason: "vault: " + f.Why})
	}
}
