package recovertest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// NewKey writes a new age identity file (0600) at path, as tapir key new
// does, and returns its recipient.
func NewKey(t testing.TB, path string) string {
	t.Helper()
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := crypt.WriteIdentityFile(path, crypt.IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// DumpEncrypted dumps root at level with the real client (GNU tar
// incremental semantics, the site's state directory), zstd in frames of
// frameSize, its payload encrypted to recipients on its way to the
// holding disk as client-side encryption does, and records it as a run
// named ds: the file index from the client, the age header in the
// catalog, the header's encryption and recipients, the ciphertext's size
// and SHA-256. The image stays on the holding disk (testsite's Tape puts
// it on a volume). It returns the dump's id.
func DumpEncrypted(t testing.TB, site *testsite.Site, ds, host, path, root string, level, frameSize int, recipients []string) int64 {
	t.Helper()
	ctx := context.Background()
	cat := site.Catalog
	start, err := time.Parse("20060102150405", ds)
	if err != nil {
		t.Fatal(err)
	}
	run, err := cat.BeginRun(ctx, ds, site.Org, start)
	if err != nil {
		t.Fatal(err)
	}
	fps := crypt.Fingerprints(recipients)
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: run, Host: host, Path: path, Level: level, Datestamp: ds,
		Comp: string(image.CompZstd), FrameSize: int64(frameSize), Started: start, Encryption: crypt.Name, Recipients: fps})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := cat.NewFileWriter(ctx, id, int64(frameSize))
	if err != nil {
		t.Fatal(err)
	}
	hdr := &image.Header{Datestamp: ds, Host: host, Path: path, Level: level, Part: 1, Parts: 1, Comp: image.CompZstd,
		FrameSize: int64(frameSize), Encryption: image.EncAge, Recipients: fps}
	dir := filepath.Join(site.Holding, ds)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	hpath := filepath.Join(dir, hdr.Name())
	hf, err := os.Create(hpath)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if _, err := hf.Write(make([]byte, image.HeaderSize)); err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(hf)
	cw, err := crypt.NewWriter(bw, recipients)
	if err != nil {
		t.Fatal(err)
	}
	store := &client.StateStore{Dir: site.StateDir}
	res, err := client.Dump(ctx, root, client.DumpOptions{Level: level, Comp: image.CompZstd, CompressLevel: 1,
		FrameSize: frameSize, OneFilesystem: true, Datestamp: ds, State: store},
		client.Sink{Payload: cw, Index: func(r wire.IndexRecord) error {
			return fw.Add(ctx, catalog.FileRecord{Path: r.Path, Type: r.Type, Size: r.Size, Mode: r.Mode, Mtime: r.Mtime,
				UID: r.UID, GID: r.GID, Link: r.Link, TarOffset: r.TarOffset})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetDumpCryptHeader(ctx, id, cw.Header()); err != nil {
		t.Fatal(err)
	}
	sum := res.Summary
	hdr.OriginalSize, hdr.PayloadSize, hdr.SHA256, hdr.Files, hdr.Frames = sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, int64(len(sum.Frames))
	hb, err := hdr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hf.WriteAt(hb, 0); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetDumpHolding(ctx, id, sum.OriginalSize, cw.Size(), cw.SHA256(), res.Files, hpath, sum.Frames, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := store.Promote(root, level, ds); err != nil {
		t.Fatal(err)
	}
	if err := cat.FinishRun(ctx, run, catalog.RunOK, start.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	return id
}
