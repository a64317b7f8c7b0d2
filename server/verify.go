package server

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
)

// VerifiedImage is the verdict on one tape file of a volume.
type VerifiedImage struct {
	FileNo    int64
	Datestamp string // the image: from the catalog when it records this file, else from the header
	Host      string
	Path      string
	Level     int
	Part      int
	Parts     int    // parts of the image, from the catalog; 0 when unknown
	OK        bool   // the header matches its checksum and the catalog, the whole image read back with its SHA-256, and its tar stream is whole
	Files     int64  // tar entries read
	Bytes     int64  // payload bytes of the whole image
	Detail    string // what was checked, or what is wrong

	// Orphan: a tape file the catalog does not know (not an image of it,
	// not a failed write it recorded). Never OK, and counted by Bad.
	Orphan bool
	// FailedWrite: a tape file left by a write the catalog records as
	// failed (catalog.FailedFile). Not an image; listed, not counted by Bad.
	FailedWrite bool
	// Missing: the catalog records a part on this file number, but the
	// volume has no such file. Counted by Bad.
	Missing bool
}

// VerifyResult is what `tapir verify` found on one volume.
type VerifyResult struct {
	Label  string
	Slot   int
	Images []VerifiedImage
}

// Bad counts the tape files that failed: bad images, orphans and parts the
// catalog records that are not on the volume (failed writes the catalog
// recorded are not counted).
func (r *VerifyResult) Bad() int {
	n := 0
	for _, im := range r.Images {
		if !im.OK && !im.FailedWrite {
			n++
		}
	}
	return n
}

// Orphans counts the tape files the catalog does not know.
func (r *VerifyResult) Orphans() int {
	n := 0
	for _, im := range r.Images {
		if im.Orphan {
			n++
		}
	}
	return n
}

// expected is a part the catalog records on the volume.
type expected struct {
	d     catalog.Dump
	part  catalog.Part
	parts []catalog.Part
}

// Verify checks every tape file of the volume label. A tape file the
// catalog records as a part of an image must have a header that matches
// its own checksum and, field by field, the catalog (datestamp, host,
// path, level, part, comp, frame-size, sha256, the sizes and counts it
// gives, encryption, and the volume's blocksize); then the whole image —
// from all its parts, on this and other volumes — is read back, its
// SHA-256 checked against the catalog and its tar stream read to the end
// (decompressed). A tape file the catalog does not know is an orphan (never
// OK) unless the catalog records it as a failed write (listed, not bad); a
// part the catalog records on a file the volume does not have is missing.
// It takes the run lock, so that it never competes with a night for a
// drive.
func Verify(ctx context.Context, cfg *config.Config, label string, deps Deps) (*VerifyResult, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	cat, unlock, err := openLocked(cfg)
	if err != nil {
		return nil, err
	}
	defer unlock()
	vol, err := cat.Volume(ctx, label)
	if err != nil {
		return nil, err
	}
	vols, err := VolumeSource(cfg, deps, cat, deps.Log)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Label: label, Slot: vol.Slot}

	// What the catalog says is on the volume, file by file.
	dumps, err := cat.DumpsOnVolume(ctx, label)
	if err != nil {
		return nil, err
	}
	want := map[int64][]expected{}
	for _, d := range dumps {
		parts, err := cat.Parts(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			if p.Volume == label {
				want[p.FileNo] = append(want[p.FileNo], expected{d: d, part: p, parts: parts})
			}
		}
	}
	failedList, err := cat.FailedFiles(ctx, label)
	if err != nil {
		return nil, err
	}
	failed := map[int64]catalog.FailedFile{}
	for _, f := range failedList {
		failed[f.FileNo] = f
	}

	// What is on the volume, file by file.
	dev, release, err := vols.Open(ctx, label, deps.Ask)
	if err != nil {
		return nil, err
	}
	type onTape struct {
		fileno int64
		header []byte // the header record as read
		err    error
	}
	var files []onTape
	buf := make([]byte, max(int(vol.Blocksize), image.HeaderSize, 1<<20))
	// File by file: the header record, then space over the rest to the
	// next filemark (no data is read here).
	err = dev.Rewind()
	if err == nil {
		err = dev.SpaceFiles(1) // the label
	}
	for fileno := int64(1); err == nil; fileno++ {
		n, rerr := dev.ReadRecord(buf)
		if errors.Is(rerr, taper.ErrEndOfData) {
			break
		}
		switch {
		case errors.Is(rerr, io.EOF):
			files = append(files, onTape{fileno: fileno, err: errors.New("an empty tape file")})
			continue // the filemark was read: already at the next file
		case rerr != nil:
			files = append(files, onTape{fileno: fileno, err: rerr})
		default:
			files = append(files, onTape{fileno: fileno, header: append([]byte(nil), buf[:n]...)})
		}
		err = dev.SpaceFiles(1)
	}
	release()
	if err != nil && !errors.Is(err, taper.ErrEndOfData) {
		return nil, fmt.Errorf("volume %s: list its files: %w", label, err)
	}

	seen := map[int64]bool{}
	for _, f := range files {
		seen[f.fileno] = true
		vi, err := verifyFile(ctx, cat, vols, cfg, vol, f.fileno, f.header, f.err, want[f.fileno], failed)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, vi)
	}
	for fileno, exps := range want {
		if seen[fileno] {
			continue
		}
		for _, e := range exps {
			vi := VerifiedImage{FileNo: fileno, Datestamp: e.d.Datestamp, Host: e.d.Host, Path: e.d.Path, Level: e.d.Level, Part: e.part.Part, Parts: len(e.parts), Missing: true}
			vi.Detail = fmt.Sprintf("MISSING: the catalog records part %d of this image on file %d, but the volume has only %d file(s) after its label: the volume was overwritten or truncated, or the catalog is wrong (run `tapir admin rebuild`)", e.part.Part, fileno, len(files))
			res.Images = append(res.Images, vi)
		}
	}
	sort.SliceStable(res.Images, func(i, j int) bool { return res.Images[i].FileNo < res.Images[j].FileNo })
	return res, nil
}

// verifyFile is the verdict on one tape file: hdr is its header record
// (nil with rerr when it could not be read), exps what the catalog records
// there.
func verifyFile(ctx context.Context, cat *catalog.Catalog, vols indexd.VolumeSource, cfg *config.Config, vol *catalog.Volume,
	fileno int64, hdr []byte, rerr error, exps []expected, failed map[int64]catalog.FailedFile) (VerifiedImage, error) {
	vi := VerifiedImage{FileNo: fileno}
	var h *image.Header
	perr := rerr
	if perr == nil {
		h, perr = image.ParseHeader(hdr)
	}
	if len(exps) == 0 {
		if ff, ok := failed[fileno]; ok {
			vi.Datestamp, vi.Host, vi.Path, vi.Level = ff.Datestamp, ff.Host, ff.Path, ff.Level
			vi.FailedWrite = true
			vi.Detail = fmt.Sprintf("failed write recorded %s (%s)", ff.Datestamp, ff.Reason)
			return vi, nil
		}
		vi.Orphan = true
		switch {
		case h != nil:
			vi.Datestamp, vi.Host, vi.Path, vi.Level, vi.Part = h.Datestamp, h.Host, h.Path, h.Level, h.Part
			vi.Detail = "ORPHAN: this image is not in the catalog (a write that did not finish, or a run the catalog forgot); run `tapir admin rebuild` to catalogue the volume again, or relabel the volume if its images are not needed"
		case rerr != nil:
			vi.Detail = fmt.Sprintf("ORPHAN: a tape file the catalog does not know, and its header cannot be read: %v", rerr)
		default:
			vi.Detail = fmt.Sprintf("ORPHAN: a tape file the catalog does not know, and its header is bad: %v", perr)
		}
		return vi, nil
	}
	e := exps[0]
	d := e.d
	vi.Datestamp, vi.Host, vi.Path, vi.Level, vi.Part, vi.Parts = d.Datestamp, d.Host, d.Path, d.Level, e.part.Part, len(e.parts)
	if len(exps) > 1 {
		var names []string
		for _, x := range exps {
			names = append(names, fmt.Sprintf("%s:%s level %d of %s part %d", x.d.Host, x.d.Path, x.d.Level, x.d.Datestamp, x.part.Part))
		}
		vi.Detail = fmt.Sprintf("the catalog records %d images on this one tape file (%s): it is wrong; run `tapir admin rebuild`", len(exps), strings.Join(names, ", "))
		return vi, nil
	}
	if rerr != nil {
		vi.Detail = fmt.Sprintf("unreadable header: %v", rerr)
		return vi, nil
	}
	if perr != nil {
		vi.Detail = fmt.Sprintf("bad header: %v", perr)
		if errors.Is(perr, image.ErrHeaderChecksum) {
			// What the damaged header says, against the catalog: names
			// the field even when the damage cannot be located.
			if u, err := image.ParseHeaderUnchecked(hdr); err == nil {
				diffs, err := headerDiffs(ctx, cat, u, e, vol)
				if err != nil {
					return vi, err
				}
				if len(diffs) > 0 {
					vi.Detail += "; against the catalog: " + strings.Join(diffs, "; ")
				}
			}
		}
		return vi, nil
	}
	diffs, err := headerDiffs(ctx, cat, h, e, vol)
	if err != nil {
		return vi, err
	}
	if len(diffs) > 0 {
		vi.Detail = "the header does not match the catalog: " + strings.Join(diffs, "; ")
		return vi, nil
	}
	vi.Bytes = d.PayloadSize
	vi.Files, err = checkImage(ctx, vols, cfg, d, e.parts)
	if err != nil {
		vi.Detail = err.Error()
		return vi, nil
	}
	vi.OK = true
	vi.Detail = fmt.Sprintf("header matches its checksum and the catalog; SHA-256 matches the catalog, %d tar entries read", vi.Files)
	if len(e.parts) > 1 {
		vi.Detail += fmt.Sprintf(" (all %d parts)", len(e.parts))
	}
	return vi, nil
}

// headerDiffs compares every field of a header with what the catalog
// records of the image, the part and the volume: "header field level says
// 1, the catalog says 0".
func headerDiffs(ctx context.Context, cat *catalog.Catalog, h *image.Header, e expected, vol *catalog.Volume) ([]string, error) {
	d := e.d
	var out []string
	diff := func(field string, header, catalog any) {
		if fmt.Sprint(header) != fmt.Sprint(catalog) {
			out = append(out, fmt.Sprintf("header field %s says %v, the catalog says %v", field, header, catalog))
		}
	}
	diff("datestamp", h.Datestamp, d.Datestamp)
	diff("host", strconv.Quote(h.Host), strconv.Quote(d.Host))
	diff("path", strconv.Quote(h.Path), strconv.Quote(d.Path))
	diff("level", h.Level, d.Level)
	diff("part", h.Part, e.part.Part)
	if h.Parts != image.Unknown {
		diff("parts", h.Parts, len(e.parts))
	}
	diff("comp", h.Comp, d.Comp)
	diff("frame-size", h.FrameSize, d.FrameSize)
	if h.SHA256 != "" {
		diff("sha256", h.SHA256, d.SHA256)
	}
	if h.PayloadSize != image.Unknown {
		diff("payload-size", h.PayloadSize, d.PayloadSize)
	}
	if h.OriginalSize != image.Unknown {
		diff("original-size", h.OriginalSize, d.OrigSize)
	}
	if h.Files != image.Unknown {
		diff("files", h.Files, d.Files)
	}
	if h.Frames != image.Unknown {
		frames, err := cat.Frames(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		diff("frames", h.Frames, len(frames))
	}
	if h.Encryption != "none" {
		out = append(out, fmt.Sprintf("header field encryption says %s, the catalog records no encryption for this image", h.Encryption))
	}
	if vol.Blocksize > 0 {
		if h.Blocksize != vol.Blocksize {
			out = append(out, fmt.Sprintf("header field blocksize says %d, the volume's blocksize in the catalog is %d", h.Blocksize, vol.Blocksize))
		}
	}
	return out, nil
}

// checkImage reads a whole image back through its parts, checks its
// SHA-256 against the catalog, and reads its tar stream to the end.
func checkImage(ctx context.Context, vols indexd.VolumeSource, cfg *config.Config, d catalog.Dump, parts []catalog.Part) (int64, error) {
	ir := indexd.NewImageReader(ctx, vols, holdingDisks(cfg), d, parts)
	defer ir.Close()
	pr, pw := io.Pipe()
	sum := sha256.New()
	type tarResult struct {
		n   int64
		err error
	}
	done := make(chan tarResult, 1)
	go func() {
		n, err := readTar(pr, image.Comp(d.Comp))
		pr.CloseWithError(err)
		done <- tarResult{n, err}
	}()
	_, err := io.Copy(io.MultiWriter(sum, pw), io.NewSectionReader(ir, 0, d.PayloadSize))
	pw.CloseWithError(err)
	tr := <-done
	if err != nil {
		return 0, fmt.Errorf("read back: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != d.SHA256 {
		return 0, fmt.Errorf("SHA-256 mismatch: read %s, the catalog says %s: the image is damaged", got, d.SHA256)
	}
	if tr.err != nil {
		return tr.n, fmt.Errorf("SHA-256 matches but the tar stream is broken after %d entries: %v", tr.n, tr.err)
	}
	return tr.n, nil
}

// readTar decompresses a payload and reads every tar entry to its end.
func readTar(r io.Reader, comp image.Comp) (int64, error) {
	sr, err := image.NewStreamReader(r, comp)
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	tr := tar.NewReader(sr)
	var n int64
	for {
		_, err := tr.Next()
		if err == io.EOF {
			// The rest (zstd seek table, padding) is read by the decoder.
			io.Copy(io.Discard, sr)
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return n, err
		}
	}
}
