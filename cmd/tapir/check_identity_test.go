package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image/crypt"
)

// tapir check --identity reads the key file as a restore would: one that
// others may read is a problem naming chmod; a good one is used (here no
// DLE is encrypted, and check says the key was not needed).
func TestCheckIdentityFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tapir.toml")
	os.WriteFile(cfg, []byte("org = \"x\"\nstatedir = \"state\"\n[[dle]]\nhost = \"web1\"\npath = \"/etc\"\n"), 0o644)
	id, _ := crypt.NewIdentity()
	key := filepath.Join(dir, "k.key")
	if err := crypt.WriteIdentityFile(key, crypt.IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose.key")
	os.WriteFile(loose, crypt.IdentityFileText(id, time.Now()), 0o644)
	os.Chmod(loose, 0o644)

	out, _, code := run(t, "check", "-c", cfg, "--server-only", "--identity", loose)
	if code != 1 || !strings.Contains(out, "ERROR: identity "+loose) || !strings.Contains(out, "chmod 600") {
		t.Errorf("check --identity with a 0644 key: exit %d\n%s", code, out)
	}
	out, _, _ = run(t, "check", "-c", cfg, "--server-only", "--identity", key)
	if strings.Contains(out, "ERROR: identity "+key) || !strings.Contains(out, "No DLE is encrypted: the identity "+key+" was not needed.") {
		t.Errorf("check --identity with a good key and no encrypted DLE:\n%s", out)
	}
}
