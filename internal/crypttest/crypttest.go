// Package crypttest writes encrypted images onto a testsite.Site, as a
// night with client-side encryption leaves them (docs/keys.md): the
// payload an age file (image/crypt) of the framed payload, the header
// saying encryption age with the recipients' fingerprints, the catalog
// recording the dump with its recipients, age header, plaintext frames
// and file index, and the parts on the site's vtapes. Tests of verify,
// rebuild and restore of encrypted images use it; it does not go through
// the server's dump path, so that they test their own code against a
// known good image. Run labels the slot after the highest slot of a
// volume in the catalog: do not call the site's own Run after it (its
// slot counter does not know these volumes).
package crypttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// Options change how a run is written.
type Options struct {
	// SplitAt > 0 writes the ciphertext of the run's last DLE as two parts
	// on two volumes: its first SplitAt bytes end the first volume.
	SplitAt int64
	// HoldingOnly leaves the images on the holding disk.
	HoldingOnly bool
}

// Run dumps dles (level, comp and frame size as each says; Tar is not
// supported) as one run named datestamp, encrypted to recipients (age1…
// strings), onto the next free slots of the site (labelled TEST-00N, N the
// slot), and records it all in the site's catalog. It returns the dump
// ids.
func Run(ctx context.Context, s *testsite.Site, datestamp string, dles []testsite.DLE, recipients []string, o Options) ([]int64, error) {
	start, err := time.Parse("20060102150405", datestamp)
	if err != nil {
		return nil, err
	}
	cat := s.Catalog
	runID, err := cat.BeginRun(ctx, datestamp, s.Org, start)
	if err != nil {
		return nil, err
	}
	var ids []int64
	var dev taper.Device
	var label string
	for i, d := range dles {
		split := int64(0)
		if i == len(dles)-1 {
			split = o.SplitAt
		}
		id, hpath, hdr, err := dumpOne(ctx, s, runID, datestamp, d, recipients)
		if err != nil {
			return ids, fmt.Errorf("crypttest: %s:%s level %d: %w", d.Host, d.Path, d.Level, err)
		}
		ids = append(ids, id)
		if o.HoldingOnly {
			continue
		}
		if dev == nil {
			if dev, label, err = s.NextVolume(ctx, datestamp, start); err != nil {
				return ids, err
			}
		}
		if dev, label, err = tape(ctx, s, dev, label, id, hpath, hdr, split, datestamp, start); err != nil {
			return ids, fmt.Errorf("crypttest: tape %s:%s level %d: %w", d.Host, d.Path, d.Level, err)
		}
	}
	if dev != nil {
		s.Changer.Eject(context.WithoutCancel(ctx))
	}
	status := catalog.RunOK
	if o.HoldingOnly {
		status = catalog.RunDegraded
	}
	return ids, cat.FinishRun(ctx, runID, status, start.Add(time.Minute), "")
}

// dumpOne writes the image of d encrypted onto the holding disk and
// records it (status holding).
func dumpOne(ctx context.Context, s *testsite.Site, runID int64, datestamp string, d testsite.DLE, recipients []string) (int64, string, *image.Header, error) {
	cat := s.Catalog
	if d.Comp == "" {
		d.Comp = image.CompZstd
	}
	if d.FrameSize == 0 {
		d.FrameSize = 64 << 10
	}
	if d.Tar != nil {
		return 0, "", nil, errors.New("crypttest does not store a given tar stream")
	}
	recips, err := crypt.ParseRecipients(recipients, nil)
	if err != nil {
		return 0, "", nil, err
	}
	fps := crypt.Fingerprints(recips)
	start, _ := time.Parse("20060102150405", datestamp)
	hdr := &image.Header{Datestamp: datestamp, Host: d.Host, Path: d.Path, Level: d.Level, Part: 1, Parts: 1,
		Comp: d.Comp, FrameSize: int64(d.FrameSize), Encryption: image.EncAge, Recipients: fps}
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: runID, Host: d.Host, Path: d.Path, Level: d.Level, Datestamp: datestamp,
		Comp: string(d.Comp), FrameSize: int64(d.FrameSize), Started: start, Encryption: image.EncAge, Recipients: fps})
	if err != nil {
		return 0, "", nil, err
	}
	fw, err := cat.NewFileWriter(ctx, id, int64(d.FrameSize))
	if err != nil {
		return 0, "", nil, err
	}
	rundir := filepath.Join(s.Holding, datestamp)
	if err := os.MkdirAll(rundir, 0o750); err != nil {
		return 0, "", nil, err
	}
	hpath := filepath.Join(rundir, hdr.Name())
	hf, err := os.Create(hpath)
	if err != nil {
		return 0, "", nil, err
	}
	defer hf.Close()
	if _, err := hf.Write(make([]byte, image.HeaderSize)); err != nil {
		return 0, "", nil, err
	}
	cw, err := crypt.NewWriter(hf, recips)
	if err != nil {
		return 0, "", nil, err
	}
	store := &client.StateStore{Dir: s.StateDir}
	var plain bytes.Buffer // the framed payload (test trees are small)
	res, err := client.Dump(ctx, d.Root, client.DumpOptions{Level: d.Level, Comp: d.Comp, CompressLevel: 1,
		FrameSize: d.FrameSize, OneFilesystem: true, Datestamp: datestamp, State: store},
		client.Sink{Payload: io.MultiWriter(cw, &plain), Index: func(r wire.IndexRecord) error {
			return fw.Add(ctx, catalog.FileRecord{Path: r.Path, Type: r.Type, Size: r.Size, Mode: r.Mode, Mtime: r.Mtime,
				UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset})
		}})
	if err == nil {
		err = cw.Close()
	}
	if err != nil {
		fw.Abort()
		return 0, "", nil, err
	}
	if cw.PlainSize() != res.Summary.PayloadSize {
		return 0, "", nil, fmt.Errorf("the age writer read %d plaintext bytes, the payload is %d", cw.PlainSize(), res.Summary.PayloadSize)
	}
	if err := fw.Commit(ctx); err != nil {
		return 0, "", nil, err
	}
	sum := res.Summary
	hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, hdr.Frames = sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, int64(len(sum.Frames))
	hb, err := hdr.Marshal()
	if err != nil {
		return 0, "", nil, err
	}
	if _, err := hf.WriteAt(hb, 0); err != nil {
		return 0, "", nil, err
	}
	if err := hf.Sync(); err != nil {
		return 0, "", nil, err
	}
	if err := cat.SetDumpCryptHeader(ctx, id, cw.Header()); err != nil {
		return 0, "", nil, err
	}
	if err := cat.SetDumpHolding(ctx, id, sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, hpath, sum.Frames, start.Add(time.Second)); err != nil {
		return 0, "", nil, err
	}
	// The directory listings, from the plaintext (as a server that scans
	// its images with the key, or the agent, would record them).
	sr, err := image.NewStreamReader(bytes.NewReader(plain.Bytes()), d.Comp)
	if err != nil {
		return 0, "", nil, err
	}
	listings, err := tarscan.Listings(sr)
	sr.Close()
	if err != nil {
		return 0, "", nil, err
	}
	if err := cat.SetListings(ctx, id, listings); err != nil {
		return 0, "", nil, err
	}
	if err := store.Promote(d.Root, d.Level, datestamp); err != nil {
		return 0, "", nil, err
	}
	return id, hpath, hdr, nil
}

// tape writes the holding image onto dev (and, split > 0, its rest onto
// the next volume), records it taped and removes the holding file. It
// returns the volume it ended on.
func tape(ctx context.Context, s *testsite.Site, dev taper.Device, label string, id int64, hpath string, hdr *image.Header, split int64, datestamp string, start time.Time) (taper.Device, string, error) {
	hf, err := os.Open(hpath)
	if err != nil {
		return dev, label, err
	}
	defer hf.Close()
	lengths := []int64{hdr.PayloadSize}
	if split > 0 && split < hdr.PayloadSize {
		lengths = []int64{split, hdr.PayloadSize - split}
	}
	var parts []catalog.Part
	var off int64
	h := sha256.New()
	for i, n := range lengths {
		if i > 0 {
			if dev, label, err = s.NextVolume(ctx, datestamp, start); err != nil {
				return dev, label, err
			}
		}
		p, err := s.WritePart(dev, label, *hdr, i+1, hf, off, n, h)
		if err != nil {
			return dev, label, err
		}
		p.DumpID = id
		parts = append(parts, p)
		off += n
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hdr.SHA256 {
		return dev, label, fmt.Errorf("holding file %s changed while taped", hpath)
	}
	if err := s.Catalog.CommitTaped(ctx, id, parts, start.Add(2*time.Second)); err != nil {
		return dev, label, err
	}
	hf.Close()
	return dev, label, os.Remove(hpath)
}
