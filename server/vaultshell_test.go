package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/wire"
)

// The recover shell, through the index server, restores from the copies
// once the first set is gone.
func TestVaultShellRestoresFromCopies(t *testing.T) {
	s := newSite(t, "")
	withVault(t, s, 8, "")
	s.nights(t, 0, 1)
	if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
		t.Fatalf("vault: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := wire.LoadCA(filepath.Join(s.dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.Issue("localhost", []string{wire.RoleServer, wire.RoleAdmin}, filepath.Join(s.dir, "admin-tls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.TLS.Cert, s.cfg.TLS.Key = crt, key
	shellCfg, err := wire.ClientConfig(wire.Files{CA: s.cfg.TLS.CA, Cert: crt, Key: key}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveIndexOf(t, s.cfg, shellCfg)
	cl, err := recover.Dial(t.Context(), addr, shellCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	to := t.TempDir()
	res, err := cl.Restore(t.Context(), recover.Query{Host: "localhost", DLE: s.data}, []string{"big.bin", "etc/shadow"}, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 2 {
		t.Fatalf("shell restore from the copies: %+v %v", res, err)
	}
	sameFile(t, filepath.Join(s.data, "big.bin"), filepath.Join(to, "big.bin"))
	sameFile(t, filepath.Join(s.data, "etc/shadow"), filepath.Join(to, "etc/shadow"))
}
