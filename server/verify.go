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

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
)

// VerifiedImage is the verdict on one tape file of a volume.
type VerifiedImage struct {
	FileNo    int64
	Datestamp string
	Host      string
	Path      string
	Level     int
	Part      int
	Parts     int    // parts of the image, from the catalog; 0 when unknown
	OK        bool   // the whole image read back with its SHA-256, and its tar stream is whole
	Files     int64  // tar entries read
	Bytes     int64  // payload bytes of the whole image
	Detail    string // what was checked, or what is wrong
}

// VerifyResult is what `tapir verify` found on one volume.
type VerifyResult struct {
	Label  string
	Slot   int
	Images []VerifiedImage
}

// Bad counts the images that failed.
func (r *VerifyResult) Bad() int {
	n := 0
	for _, im := range r.Images {
		if !im.OK {
			n++
		}
	}
	return n
}

// Verify reads back every image that has a part on the volume label — the
// whole image, from all its parts, on this and other volumes — and checks
// its SHA-256 against the catalog and its tar stream from end to end
// (decompressed). Tape files the catalog does not know are listed too. It
// takes the run lock, so that it never competes with a night for a drive.
func Verify(ctx context.Context, cfg *config.Config, label string, deps Deps) (*VerifyResult, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	cat, unlock, err := openLocked(cfg)
	if err != nil {
		return nil, err
	}
	defer unlock()
	vol, err := cat.Volume(label)
	if err != nil {
		return nil, err
	}
	vols, err := VolumeSource(cfg, deps, cat, deps.Log)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Label: label, Slot: vol.Slot}

	// What is on the volume, file by file.
	dev, release, err := vols.Open(ctx, label)
	if err != nil {
		return nil, err
	}
	type onTape struct {
		fileno int64
		h      *image.Header
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
			h, perr := image.ParseHeader(buf[:n])
			files = append(files, onTape{fileno: fileno, h: h, err: perr})
		}
		err = dev.SpaceFiles(1)
	}
	release()
	if err != nil && !errors.Is(err, taper.ErrEndOfData) {
		return nil, fmt.Errorf("volume %s: list its files: %w", label, err)
	}

	dumps, err := cat.DumpsOnVolume(label)
	if err != nil {
		return nil, err
	}
	type key struct {
		stamp, host, path string
		level             int
	}
	byKey := map[key]index.Dump{}
	for _, d := range dumps {
		byKey[key{d.Datestamp, d.Host, d.Path, d.Level}] = d
	}
	for _, f := range files {
		vi := VerifiedImage{FileNo: f.fileno}
		if f.err != nil {
			vi.Detail = fmt.Sprintf("unreadable header: %v", f.err)
			res.Images = append(res.Images, vi)
			continue
		}
		h := f.h
		vi.Datestamp, vi.Host, vi.Path, vi.Level, vi.Part = h.Datestamp, h.Host, h.Path, h.Level, h.Part
		d, ok := byKey[key{h.Datestamp, h.Host, h.Path, h.Level}]
		if !ok {
			vi.OK = true // nothing the catalog relies on
			vi.Detail = "not in the catalog: an image whose writing did not finish, or of a run the catalog forgot (not checked)"
			res.Images = append(res.Images, vi)
			continue
		}
		parts, err := cat.Parts(d.ID)
		if err != nil {
			return nil, err
		}
		vi.Parts = len(parts)
		mine := false
		for _, p := range parts {
			if p.Volume == label && p.FileNo == f.fileno && p.Part == h.Part {
				mine = true
			}
		}
		if !mine {
			vi.Detail = fmt.Sprintf("the catalog puts part %d of this image elsewhere; this file is not used", h.Part)
			vi.OK = true
			res.Images = append(res.Images, vi)
			continue
		}
		vi.Bytes = d.PayloadSize
		vi.Files, err = checkImage(ctx, vols, cfg, d, parts)
		if err != nil {
			vi.Detail = err.Error()
		} else {
			vi.OK = true
			vi.Detail = fmt.Sprintf("SHA-256 matches the catalog, %d tar entries read", vi.Files)
			if len(parts) > 1 {
				vi.Detail += fmt.Sprintf(" (all %d parts)", len(parts))
			}
		}
		res.Images = append(res.Images, vi)
	}
	sort.SliceStable(res.Images, func(i, j int) bool { return res.Images[i].FileNo < res.Images[j].FileNo })
	return res, nil
}

// checkImage reads a whole image back through its parts, checks its
// SHA-256 against the catalog, and reads its tar stream to the end.
func checkImage(ctx context.Context, vols indexd.VolumeSource, cfg *config.Config, d index.Dump, parts []index.Part) (int64, error) {
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
