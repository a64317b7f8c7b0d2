package server

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
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
	// Encrypted: the image is encrypted (age); without a key only its
	// ciphertext was checked.
	Encrypted bool
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

// volImage is an image with parts on the verified volume, and its read.
type volImage struct {
	d      catalog.Dump
	parts  []catalog.Part
	frames []image.Frame // the catalog's
	// first and last index parts: the run of parts on the verified
	// volume. Parts before first are on other volumes (the image spans
	// into the volume), so are parts after last (it spans out of it).
	first, last int
	check       *imageCheck // nil until the read starts
	done        bool
	files       int64 // tar entries read
	err         error // what is wrong with the image read back
}

// into: the image's earlier parts are on other volumes.
func (im *volImage) into() bool { return im.first > 0 }

// out: the image's later parts are on other volumes.
func (im *volImage) out() bool { return im.last < len(im.parts)-1 }

// hereEnd is the payload offset after the image's parts on the volume.
func (im *volImage) hereEnd() int64 {
	pt := im.parts[im.last]
	return pt.Offset + pt.Length
}

// finish reads the rest of the image and keeps the verdict.
func (im *volImage) finish() {
	if im.done || im.check == nil {
		return
	}
	im.files, im.err = im.check.finish()
	im.done = true
}

// seenHeader is a header record of the verified volume as read.
type seenHeader struct {
	raw []byte
	err error // it could not be reached or read
}

// VerifyOptions change what Verify checks.
type VerifyOptions struct {
	// Identities open the encrypted images (tapir verify --identity
	// FILE): their payload is decrypted whole, every chunk authenticated,
	// and the plaintext checked as a plain image's is (the tar stream to
	// its end). Without them an encrypted image's ciphertext is checked
	// (SHA-256, age header) and the verdict says that is all.
	Identities *crypt.Identities
}

// Verify checks every tape file of the volume label, without a key
// (VerifyWith).
func Verify(ctx context.Context, cfg *config.Config, label string, deps Deps) (*VerifyResult, error) {
	return VerifyWith(ctx, cfg, label, VerifyOptions{}, deps)
}

// VerifyWith checks every tape file of the volume label. A tape file the
// catalog records as a part of an image must have a header that matches
// its own checksum and, field by field, the catalog (datestamp, host,
// path, level, part, comp, frame-size, sha256, the sizes and counts it
// gives, encryption and recipients, and the volume's blocksize); then the
// whole image — from all its parts, on this and other volumes — is read
// back, its SHA-256 checked against the catalog, its tar stream read to
// the end (decompressed) and the catalog's frame list checked against the
// payload (each frame starts a zstd frame or gzip member, none ends past
// the payload). A tape file the catalog does not know is an orphan (never
// OK) unless the catalog records it as a failed write (listed, not bad); a
// part the catalog records on a file the volume does not have is missing.
//
// The volume is read in one forward pass, file by file, each image
// where its first file is: it is loaded and rewound once. An image that
// spans into the volume from another one is read up to the volume first;
// one that spans out of it is read on from the next volume after the
// last file of this one. deps.Ask (when set) is told once which volumes
// are needed, in order, and with a single drive asked for each cartridge
// that is not in the drive. It takes the run lock, so that it never
// competes with a night for a drive.
//
// An encrypted image is checked over the bytes on the volume without any
// key: its SHA-256 (of the ciphertext), its header's encryption and
// recipients against the catalog, and the age header at the start of its
// payload against the one the catalog recorded. With opt.Identities its
// payload is also decrypted whole (a chunk that fails its authentication
// is named) and its tar stream read to the end; an identity that is not
// one of its recipients is a bad verdict naming the fingerprints.
func VerifyWith(ctx context.Context, cfg *config.Config, label string, opt VerifyOptions, deps Deps) (*VerifyResult, error) {
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
	imgs := map[int64]*volImage{} // by dump ID
	for _, d := range dumps {
		parts, err := cat.Parts(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		frames, err := cat.Frames(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		im := &volImage{d: d, parts: parts, frames: frames, first: -1}
		for k, p := range parts {
			if p.Volume != label {
				continue
			}
			want[p.FileNo] = append(want[p.FileNo], expected{d: d, part: p, parts: parts})
			if im.first < 0 {
				im.first, im.last = k, k
			} else if im.last == k-1 {
				im.last = k
			}
		}
		if im.first >= 0 {
			imgs[d.ID] = im
		}
	}
	// A copy volume (tapir vault): the copies on it, read like images.
	copied, err := cat.DumpsCopiedOnVolume(ctx, label)
	if err != nil {
		return nil, err
	}
	for _, d := range copied {
		if imgs[d.ID] != nil {
			continue
		}
		copies, err := cat.Copies(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		frames, err := cat.Frames(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, c := range copies {
			im := &volImage{d: d, parts: c.Parts, frames: frames, first: -1}
			for k, p := range c.Parts {
				if p.Volume != label {
					continue
				}
				want[p.FileNo] = append(want[p.FileNo], expected{d: d, part: p, parts: c.Parts})
				if im.first < 0 {
					im.first, im.last = k, k
				} else if im.last == k-1 {
					im.last = k
				}
			}
			if im.first >= 0 && imgs[d.ID] == nil {
				imgs[d.ID] = im
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

	// The order of the reads: the images spanning into the volume up to
	// it, then the volume file by file, then the images spanning out of
	// it on from the next volume.
	var intos, outs []*volImage
	for _, im := range imgs {
		if im.into() {
			intos = append(intos, im)
		}
		if im.out() {
			outs = append(outs, im)
		}
	}
	intos = inTapeOrder(intos, func(im *volImage) []catalog.Part { return im.parts[:im.first] })
	outs = inTapeOrder(outs, func(im *volImage) []catalog.Part { return im.parts[im.last+1:] })
	var reads [][]catalog.Part
	for _, im := range intos {
		reads = append(reads, im.parts[:im.first])
	}
	reads = append(reads, []catalog.Part{{Volume: label}})
	for _, im := range outs {
		reads = append(reads, im.parts[im.last+1:])
	}
	msg := "The following tapes are needed: " + strings.Join(indexd.Needed(reads), " ")
	deps.Log.Info(msg)
	if deps.Ask != nil {
		deps.Ask(msg)
	}

	pass := &indexd.Pass{Source: vols, Ask: deps.Ask}
	defer pass.Close()
	headers := map[int64]seenHeader{} // by file number, of the verified volume
	onHeader := func(pt catalog.Part, raw []byte, err error) {
		if pt.Volume == label {
			headers[pt.FileNo] = seenHeader{raw: append([]byte(nil), raw...), err: err}
		}
	}
	disks := holdingDisks(cfg)
	start := func(im *volImage) {
		if im.check == nil {
			im.check = startCheck(ctx, pass, deps.Ask, onHeader, disks, im.d, im.parts, im.frames, opt.Identities)
		}
	}
	// Every read started is ended, also when Verify fails on the way.
	defer func() {
		for _, im := range imgs {
			if im.check != nil && !im.done {
				im.check.abort()
			}
		}
	}()
	for _, im := range intos {
		start(im)
		im.check.readTo(im.parts[im.first].Offset)
	}

	// The volume, file by file: each image where its first file is (its
	// parts on this volume read on, in order), the header of a file the
	// catalog does not know read by itself.
	if _, _, err := pass.Open(ctx, label, nil); err != nil {
		return nil, err
	}
	type onTape struct {
		fileno int64
		header []byte // the header record as read
		err    error
	}
	var files []onTape
	buf := make([]byte, max(int(vol.Blocksize), image.HeaderSize, 1<<20))
	for fileno := int64(1); ; fileno++ {
		if exps := want[fileno]; len(exps) == 1 {
			im := imgs[exps[0].d.ID]
			start(im)
			im.check.readTo(im.hereEnd())
			if !im.out() {
				im.finish()
			}
		}
		f := onTape{fileno: fileno}
		if h, ok := headers[fileno]; ok {
			if errors.Is(h.err, taper.ErrEndOfData) {
				break
			}
			f.header, f.err = h.raw, h.err
		} else {
			dev, _, err := pass.Open(ctx, label, nil)
			if err != nil {
				return nil, err
			}
			// Forward from where the reads left the volume: the start
			// of the file (a locate, or a space over filemarks).
			err = dev.Seek(taper.Position{File: fileno})
			if errors.Is(err, taper.ErrEndOfData) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("volume %s: go to tape file %d to read its header: %w", label, fileno, err)
			}
			n, err := dev.ReadRecord(buf)
			if errors.Is(err, taper.ErrEndOfData) {
				break
			}
			if err != nil {
				f.err = err
			} else {
				f.header = append([]byte(nil), buf[:n]...)
			}
		}
		if errors.Is(f.err, io.EOF) {
			f.header, f.err = nil, errors.New("an empty tape file")
		}
		files = append(files, f)
	}
	for _, im := range outs {
		im.finish()
	}
	// An image whose file the volume lacks was not read on (its verdict
	// is MISSING): the deferred abort ends its read, without loading
	// another volume for it.
	if err := ctx.Err(); err != nil {
		// Cancelled (Ctrl-C) while reading or waiting for a cartridge:
		// the reads that failed for it say nothing about the images.
		return nil, fmt.Errorf("volume %s: verify cancelled before it read every image: %w", label, err)
	}

	seen := map[int64]bool{}
	for _, f := range files {
		seen[f.fileno] = true
		vi, err := verifyFile(ctx, cat, vol, f.fileno, f.header, f.err, want[f.fileno], imgs, failed)
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

// inTapeOrder sorts images by indexd.TapeOrder of the parts each reads.
func inTapeOrder(ims []*volImage, reads func(*volImage) []catalog.Part) []*volImage {
	sort.Slice(ims, func(i, j int) bool { return ims[i].parts[ims[i].first].FileNo < ims[j].parts[ims[j].first].FileNo })
	rs := make([][]catalog.Part, len(ims))
	for i, im := range ims {
		rs[i] = reads(im)
	}
	out := make([]*volImage, 0, len(ims))
	for _, i := range indexd.TapeOrder(rs) {
		out = append(out, ims[i])
	}
	return out
}

// verifyFile is the verdict on one tape file: hdr is its header record
// (nil with rerr when it could not be read), exps what the catalog records
// there, imgs the images read back.
func verifyFile(ctx context.Context, cat *catalog.Catalog, vol *catalog.Volume,
	fileno int64, hdr []byte, rerr error, exps []expected, imgs map[int64]*volImage, failed map[int64]catalog.FailedFile) (VerifiedImage, error) {
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
	vi.Encrypted = d.Encrypted()
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
	im := imgs[d.ID]
	if im == nil || !im.done {
		// Not reached: every image with a part on a file found is read.
		vi.Detail = "the image was not read back (a bug of tapir verify: report it)"
		return vi, nil
	}
	vi.Files = im.files
	if im.err != nil {
		vi.Detail = im.err.Error()
		return vi, nil
	}
	vi.OK = true
	switch {
	case !d.Encrypted() && d.IsCommand():
		vi.Detail = "header matches its checksum and the catalog; SHA-256 matches the catalog, a command's output decompressed to its end"
	case !d.Encrypted():
		vi.Detail = fmt.Sprintf("header matches its checksum and the catalog; SHA-256 matches the catalog, %d tar entries read", vi.Files)
	case im.check.ids == nil:
		vi.Detail = "header matches its checksum and the catalog; encrypted: SHA-256 checked; give --identity FILE to check the frames and the tar stream"
	default:
		vi.Detail = fmt.Sprintf("header matches its checksum and the catalog; SHA-256 matches the catalog; decrypted with %s, every chunk authentic, %d tar entries read", im.check.ids.File, vi.Files)
	}
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
	diff("payload", payloadKind(h.Payload), payloadKind(d.Payload))
	if h.Frames != image.Unknown {
		frames, err := cat.Frames(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		diff("frames", h.Frames, len(frames))
	}
	enc := d.Encryption
	if enc == "" {
		enc = "none"
	}
	switch {
	case h.Encryption != enc && enc == "none":
		out = append(out, fmt.Sprintf("header field encryption says %s, the catalog records no encryption for this image", h.Encryption))
	case h.Encryption != enc:
		out = append(out, fmt.Sprintf("header field encryption says %s, the catalog says %s", h.Encryption, enc))
	case enc == image.EncAge:
		hr, cr := append([]string(nil), h.Recipients...), append([]string(nil), d.Recipients...)
		sort.Strings(hr)
		sort.Strings(cr)
		if strings.Join(hr, " ") != strings.Join(cr, " ") {
			out = append(out, fmt.Sprintf("header field recipients says %s, the catalog says %s", strings.Join(hr, " "), strings.Join(cr, " ")))
		}
	}
	if vol.Blocksize > 0 {
		if h.Blocksize != vol.Blocksize {
			out = append(out, fmt.Sprintf("header field blocksize says %d, the volume's blocksize in the catalog is %d", h.Blocksize, vol.Blocksize))
		}
	}
	return out, nil
}

// imageCheck reads a whole image back through its parts, in pieces
// (readTo), so that the reads of other tape files can come between: its
// SHA-256 against the catalog, and its tar stream to the end in a
// goroutine fed through a pipe (decrypted first when the image is
// encrypted and ids are given).
type imageCheck struct {
	d    catalog.Dump
	ids  *crypt.Identities // nil: an encrypted image's ciphertext only
	ir   *indexd.ImageReader
	pw   *io.PipeWriter
	sum  hash.Hash
	done chan tarResult
	off  int64 // payload bytes read
	err  error // the read failed
}

type tarResult struct {
	n   int64
	err error
}

// startCheck starts the read of image d through vols (the verify's pass);
// header is told each part's header record as read.
func startCheck(ctx context.Context, vols indexd.VolumeSource, ask indexd.Ask, header func(catalog.Part, []byte, error),
	disks []string, d catalog.Dump, parts []catalog.Part, frames []image.Frame, ids *crypt.Identities) *imageCheck {
	ir := indexd.NewImageReader(ctx, vols, disks, d, parts)
	ir.Ask, ir.Header = ask, header
	pr, pw := io.Pipe()
	c := &imageCheck{d: d, ir: ir, pw: pw, sum: sha256.New(), done: make(chan tarResult, 1)}
	if d.Encrypted() && ids != nil && len(ids.List) > 0 {
		c.ids = ids
	}
	go func() {
		var n int64
		var err error
		fc := newFrameCheck(frames, image.Comp(d.Comp))
		if d.Encrypted() {
			n, err = checkEncrypted(pr, d, c.ids, fc)
		} else {
			n, err = readPayload(io.TeeReader(pr, fc), d)
		}
		if err == nil && (!d.Encrypted() || c.ids != nil) {
			err = fc.done()
		}
		// The rest is read all the same: the SHA-256 is of the whole
		// payload.
		io.Copy(io.Discard, pr)
		c.done <- tarResult{n, err}
	}()
	return c
}

// checkEncrypted reads an encrypted payload: its age header against the
// one the catalog recorded, then, with ids, its plaintext, chunk by chunk,
// through readTar.
func checkEncrypted(r io.Reader, d catalog.Dump, ids *crypt.Identities, fc *frameCheck) (int64, error) {
	br := bufio.NewReaderSize(r, crypt.MaxHeader+crypt.NonceSize)
	peek, perr := br.Peek(int(min(d.PayloadSize, crypt.MaxHeader+crypt.NonceSize)))
	hl, err := crypt.HeaderLen(peek)
	if err != nil {
		if perr != nil && perr != io.EOF {
			return 0, payloadError{fmt.Errorf("reading its age header: %v", perr)}
		}
		return 0, payloadError{fmt.Errorf("the catalog says it is encrypted, but its payload is not an age file: %v", err)}
	}
	hdr := append([]byte(nil), peek[:hl]...)
	if len(d.CryptHeader) > 0 && !bytes.Equal(hdr, d.CryptHeader) {
		return 0, payloadError{fmt.Errorf("its payload starts with another age header than the one the catalog recorded (%d bytes, the catalog's %d): it is not the image the catalog knows", len(hdr), len(d.CryptHeader))}
	}
	if ids == nil {
		return 0, nil
	}
	key, err := crypt.Unwrap(hdr, d.PayloadSize, ids.List)
	if errors.Is(err, crypt.ErrWrongKey) {
		return 0, payloadError{fmt.Errorf("%w: identity file %s (fingerprints %s) is not one of its recipients (%s): give --identity the key of one of them",
			errWrongKey, ids.File, strings.Join(ids.Fingerprints(), " "), strings.Join(d.Recipients, " "))}
	}
	if err != nil {
		return 0, payloadError{fmt.Errorf("its age header: %v", err)}
	}
	cr, err := crypt.NewChunkReader(br, key)
	if err != nil {
		return 0, payloadError{err}
	}
	n, err := readPayload(io.TeeReader(cr, fc), d)
	if err == nil {
		// Every chunk to the last one, authenticated.
		_, err = io.Copy(fc, cr)
	}
	return n, err
}

// errWrongKey marks the verdict of an image the identity given does not
// open.
var errWrongKey = errors.New("wrong key")

// payloadError is what is wrong with an encrypted payload before its tar
// stream is reached: its age header, or the key.
type payloadError struct{ error }

func (e payloadError) Unwrap() error { return e.error }

// readTo reads the payload up to offset end (nothing after a failed read).
func (c *imageCheck) readTo(end int64) {
	if c.err != nil || end <= c.off {
		return
	}
	n, err := io.Copy(io.MultiWriter(c.sum, c.pw), io.NewSectionReader(c.ir, c.off, end-c.off))
	c.off += n
	if err != nil {
		c.err = err
	}
}

// finish reads the rest of the payload and says what is wrong with the
// image, if anything, and how many tar entries it holds.
func (c *imageCheck) finish() (int64, error) {
	c.readTo(c.d.PayloadSize)
	c.ir.Close()
	c.pw.CloseWithError(c.err)
	tr := <-c.done
	if c.err != nil {
		return 0, fmt.Errorf("read back: %w", c.err)
	}
	if got := hex.EncodeToString(c.sum.Sum(nil)); got != c.d.SHA256 {
		err := fmt.Errorf("SHA-256 mismatch: read %s, the catalog says %s: the image is damaged", got, c.d.SHA256)
		if errors.Is(tr.err, crypt.ErrDamaged) {
			err = fmt.Errorf("%w; decrypting it: %v", err, tr.err)
		}
		return 0, err
	}
	if tr.err != nil {
		var pe payloadError
		if errors.As(tr.err, &pe) {
			return 0, fmt.Errorf("SHA-256 matches, but %v", tr.err)
		}
		var fe frameError
		if errors.As(tr.err, &fe) {
			return tr.n, fmt.Errorf("SHA-256 matches and the tar stream is whole (%d entries), but %v", tr.n, tr.err)
		}
		return tr.n, fmt.Errorf("SHA-256 matches but the tar stream is broken after %d entries: %v", tr.n, tr.err)
	}
	return tr.n, nil
}

// abort ends a read that will not be finished.
func (c *imageCheck) abort() {
	c.ir.Close()
	c.pw.CloseWithError(errors.New("verify stopped"))
	<-c.done
}

// frameCheck watches a (plaintext) payload go by and checks the catalog's
// frame list against it: every frame starts where a frame of the payload's
// compression starts (a zstd frame, a gzip member), and every frame lies
// inside the payload. Single-file restores seek by this list, an encrypted
// image's to the age chunks that hold its frames.
type frameCheck struct {
	frames []image.Frame
	magic  []byte
	off    int64  // payload bytes seen
	i      int    // the next frame to check
	got    []byte // the first bytes of frame i seen so far
	err    error
}

// frameError is a frame list that does not match the payload.
type frameError struct{ error }

func (e frameError) Unwrap() error { return e.error }

func newFrameCheck(frames []image.Frame, comp image.Comp) *frameCheck {
	fc := &frameCheck{frames: frames}
	switch comp {
	case image.CompZstd:
		fc.magic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	case image.CompGzip:
		fc.magic = []byte{0x1f, 0x8b}
	}
	return fc
}

func (fc *frameCheck) Write(p []byte) (int, error) {
	start := fc.off
	fc.off += int64(len(p))
	for fc.err == nil && fc.i < len(fc.frames) && len(fc.magic) > 0 {
		f := fc.frames[fc.i]
		from := f.Offset + int64(len(fc.got))
		if from >= fc.off {
			break
		}
		if from < start { // not reached: frames are in order
			fc.err = frameError{fmt.Errorf("the catalog's frame %d (payload offset %d) is out of order", f.Index, f.Offset)}
			break
		}
		k := min(int64(len(fc.magic)-len(fc.got)), fc.off-from)
		fc.got = append(fc.got, p[from-start:from-start+k]...)
		if len(fc.got) < len(fc.magic) {
			break
		}
		if !bytes.Equal(fc.got, fc.magic) {
			fc.err = frameError{fmt.Errorf("the catalog's frame %d (payload offset %d) does not start a frame of the payload: single-file restores of this image would fail; run `tapir admin rebuild`", f.Index, f.Offset)}
		}
		fc.got = fc.got[:0]
		fc.i++
	}
	return len(p), nil
}

// done says what is wrong with the frame list once the whole payload went
// by.
func (fc *frameCheck) done() error {
	if fc.err != nil {
		return fc.err
	}
	if n := len(fc.frames); n > 0 {
		if last := fc.frames[n-1]; last.Offset+last.Size > fc.off {
			return frameError{fmt.Errorf("the catalog's frame %d ends at payload offset %d, past the %d bytes of the payload", last.Index, last.Offset+last.Size, fc.off)}
		}
	}
	return nil
}

// payloadKind is a payload kind with "" spelled out.
func payloadKind(p string) string {
	if p == "" {
		return image.PayloadTar
	}
	return p
}

// readPayload decompresses the payload of d and reads every tar entry to
// its end; a command DLE's output (no tar) is decompressed to its end.
func readPayload(r io.Reader, d catalog.Dump) (int64, error) {
	sr, err := image.NewStreamReader(r, image.Comp(d.Comp))
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	if d.IsCommand() {
		_, err := io.Copy(io.Discard, sr)
		return 0, err
	}
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
