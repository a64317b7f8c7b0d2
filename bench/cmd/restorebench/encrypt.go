package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/crypttest"
	"github.com/tapir-backup/tapir/internal/testsite"
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

// dumpEncrypted dumps tree at level 0 as testsite does for the plain
// image (zstd, 1 MiB frames), its payload encrypted to a new key as
// client-side encryption does (crypttest), records it with its age header
// and tapes it; it returns the dump's id.
func dumpEncrypted(ctx context.Context, site *testsite.Site, tree, work string) (int64, error) {
	rcpt, err := newKey(work)
	if err != nil {
		return 0, err
	}
	ids, err := crypttest.Run(ctx, site, "20250601010000", []testsite.DLE{{Host: "bench", Path: "/data", Root: tree, FrameSize: 1 << 20}}, []string{rcpt}, crypttest.Options{})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}
