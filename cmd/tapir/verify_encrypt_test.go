package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/crypttest"
	"github.com/tapir-backup/tapir/internal/testsite"
)

// TestEncryptedVerifyAndRebuildCommands: a key made by tapir key new, an
// encrypted L0 and L1 made to its recipient. The tape files restore with
// the real age CLI alone; tapir verify says without the key that only the
// ciphertext was checked, and with --identity reads the tar streams; a
// wrong key makes it exit 1; tapir admin rebuild without a key rebuilds
// dumps and parts and says the file index needs --identity, and with it
// the file index comes back (tapir admin find finds a file).
func TestEncryptedVerifyAndRebuildCommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "backup.key")
	out, stderr, code := run(t, "key", "new", key)
	m := recipientRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("key new: exit %d\n%s%s", code, out, stderr)
	}
	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	testsite.MakeTree(data)
	ctx := context.Background()
	dle := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	if _, err := crypttest.Run(ctx, site, "20250607010000", []testsite.DLE{dle}, []string{m[1]}, crypttest.Options{}); err != nil {
		t.Fatal(err)
	}
	testsite.Mutate(data)
	dle.Level = 1
	if _, err := crypttest.Run(ctx, site, "20250608010000", []testsite.DLE{dle}, []string{m[1]}, crypttest.Options{}); err != nil {
		t.Fatal(err)
	}
	site.Close()
	cfg := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfg, dle); err != nil {
		t.Fatal(err)
	}

	// The standard tools alone read the L0 (the header's restore line).
	if _, err := exec.LookPath("age"); err == nil {
		files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b[:image.HeaderSize], []byte("age -d -i KEYFILE")) {
			t.Errorf("the header has no age restore line:\n%s", b[:bytes.IndexByte(b, 0)])
		}
		cmd := exec.Command("sh", "-c", fmt.Sprintf("age -d -i %s | zstd -dc | tar -tf -", key))
		cmd.Stdin = bytes.NewReader(b[image.HeaderSize:])
		list, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(list), "etc/passwd") {
			t.Errorf("age -d | zstd -dc | tar -t: %v\n%s", err, list)
		}
	}

	out, stderr, code = run(t, "verify", "-c", cfg, "TEST-001")
	if code != 0 || !strings.Contains(out, "encrypted: SHA-256 checked; give --identity FILE") || !strings.Contains(out, "1 encrypted tape file(s): only their ciphertext was checked") {
		t.Errorf("verify without a key: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "verify", "-c", cfg, "TEST-002", "--identity", key)
	if code != 0 || !strings.Contains(out, "decrypted with "+key) || strings.Contains(out, "only their ciphertext") {
		t.Errorf("verify with the key: exit %d\n%s%s", code, out, stderr)
	}
	other := filepath.Join(dir, "other.key")
	run(t, "key", "new", other)
	out, stderr, code = run(t, "verify", "-c", cfg, "TEST-002", "--identity", other)
	if code != 1 || !strings.Contains(out, "BAD     file 1: web1:/srv level 1 of 20250608010000 part 1: ") || !strings.Contains(out, "is not one of its recipients") {
		t.Errorf("verify with a wrong key: exit %d\n%s%s", code, out, stderr)
	}
	os.Chmod(other, 0o644)
	if _, stderr, code = run(t, "verify", "-c", cfg, "TEST-002", "--identity", other); code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("verify with a world-readable key: exit %d %s", code, stderr)
	}
	os.Chmod(other, 0o600)

	out, stderr, code = run(t, "admin", "rebuild", "-c", cfg, "--force")
	if code != 0 || !strings.Contains(out, "2 encrypted images: dumps and parts rebuilt, file index needs --identity FILE") {
		t.Errorf("rebuild without a key: exit %d\n%s%s", code, out, stderr)
	}
	findPasswd := func() error {
		t.Helper()
		cat, err := catalog.Open(site.CatalogDB)
		if err != nil {
			t.Fatal(err)
		}
		defer cat.Close()
		_, err = cat.FindFile(ctx, "web1", "/srv", "etc/passwd", "")
		return err
	}
	if findPasswd() == nil {
		t.Error("without a key, the rebuilt catalog finds a file")
	}
	out, stderr, code = run(t, "admin", "rebuild", "-c", cfg, "--force", "--identity", other)
	if code != 1 || !strings.Contains(stderr, "opens none of the recipients of 2 encrypted image(s)") {
		t.Errorf("rebuild with a wrong key: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "admin", "rebuild", "-c", cfg, "--force", "--identity", key)
	if code != 0 || !strings.Contains(out, "2 encrypted images: dumps, parts and file index rebuilt with "+key) {
		t.Errorf("rebuild with the key: exit %d\n%s%s", code, out, stderr)
	}
	if err := findPasswd(); err != nil {
		t.Errorf("after the rebuild with the key: %v", err)
	}
}
