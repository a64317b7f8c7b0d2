package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// encryptImage (-encrypt) makes dumpOnVtape encrypt the image to a new
// key, keyFile ("" for a plain image).
var (
	encryptImage bool
	keyFile      string
)

// newKey writes a new identity file under work for -encrypt and returns
// its recipient.
func newKey(work string) (string, error) {
	id, err := crypt.NewIdentity()
	if err != nil {
		return "", err
	}
	keyFile = filepath.Join(work, "bench.key")
	os.Remove(keyFile)
	if err := crypt.WriteIdentityFile(keyFile, crypt.IdentityFileText(id, time.Now())); err != nil {
		return "", err
	}
	return id.Recipient().String(), nil
}

// identityArgs are the flags that give tapir recover the key.
func identityArgs() []string {
	if keyFile == "" {
		return nil
	}
	return []string{"--identity", keyFile}
}

// decompress is the baseline's decoding pipeline: zstd -dc, after age -d
// for an encrypted image.
func decompress() string {
	if keyFile == "" {
		return "zstd -qdc"
	}
	return fmt.Sprintf("age -d -i '%s' | zstd -qdc", keyFile)
}

// dumpEncrypted dumps tree at level 0 with the client's dump code as
// testsite does (zstd, 1 MiB frames), its payload encrypted on its way to
// the holding disk as client-side encryption does, records it with its
// age header, and tapes it; it returns the dump's id.
func dumpEncrypted(ctx context.Context, site *testsite.Site, tree, work string) (int64, error) {
	rcpt, err := newKey(work)
	if err != nil {
		return 0, err
	}
	const ds, frameSize = "20250601010000", 1 << 20
	cat := site.Catalog
	start, _ := time.Parse("20060102150405", ds)
	run, err := cat.BeginRun(ctx, ds, site.Org, start)
	if err != nil {
		return 0, err
	}
	fps := crypt.Fingerprints([]string{rcpt})
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: run, Host: "bench", Path: "/data", Level: 0, Datestamp: ds,
		Comp: string(image.CompZstd), FrameSize: frameSize, Started: start, Encryption: crypt.Name, Recipients: fps})
	if err != nil {
		return 0, err
	}
	fw, err := cat.NewFileWriter(ctx, id, frameSize)
	if err != nil {
		return 0, err
	}
	hdr := &image.Header{Datestamp: ds, Host: "bench", Path: "/data", Level: 0, Part: 1, Parts: 1, Comp: image.CompZstd,
		FrameSize: frameSize, Encryption: image.EncAge, Recipients: fps}
	dir := filepath.Join(site.Holding, ds)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	hpath := filepath.Join(dir, hdr.Name())
	hf, err := os.Create(hpath)
	if err != nil {
		return 0, err
	}
	defer hf.Close()
	if _, err := hf.Write(make([]byte, image.HeaderSize)); err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(hf, 1<<20)
	cw, err := crypt.NewWriter(bw, []string{rcpt})
	if err != nil {
		return 0, err
	}
	res, err := client.Dump(ctx, tree, client.DumpOptions{Level: 0, Comp: image.CompZstd, CompressLevel: 1,
		FrameSize: frameSize, OneFilesystem: true, Datestamp: ds, State: &client.StateStore{Dir: site.StateDir}},
		client.Sink{Payload: cw, Index: func(r wire.IndexRecord) error {
			return fw.Add(ctx, catalog.FileRecord{Path: r.Path, Type: r.Type, Size: r.Size, Mode: r.Mode, Mtime: r.Mtime,
				UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset})
		}})
	if err != nil {
		fw.Abort()
		return 0, err
	}
	if err := cw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := fw.Commit(ctx); err != nil {
		return 0, err
	}
	if err := cat.SetDumpCryptHeader(ctx, id, cw.Header()); err != nil {
		return 0, err
	}
	sum := res.Summary
	hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, hdr.Frames = sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, int64(len(sum.Frames))
	hb, err := hdr.Marshal()
	if err != nil {
		return 0, err
	}
	if _, err := hf.WriteAt(hb, 0); err != nil {
		return 0, err
	}
	if err := cat.SetDumpHolding(ctx, id, sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, hpath, sum.Frames, start.Add(time.Second)); err != nil {
		return 0, err
	}
	if err := cat.FinishRun(ctx, run, catalog.RunOK, start.Add(time.Minute), ""); err != nil {
		return 0, err
	}
	hf.Close()
	if _, err := site.Tape(ctx, "20250601020000", []int64{id}); err != nil {
		return 0, err
	}
	return id, nil
}
