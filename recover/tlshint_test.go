package recover

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/wire"
)

// TestDialExplainsTLS: a failed handshake names what to change on this
// side: connecting by address to a server whose certificate names a host
// points to --server-name; a name the certificate does not carry points to
// the name it carries; a local CA file that does not sign the server's
// certificate is the local file's fault. Real TLS, a test CA.
func TestDialExplainsTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := wire.InitCA(filepath.Join(dir, "ca"), "test", now)
	if err != nil {
		t.Fatal(err)
	}
	scrt, skey, err := ca.Issue("backup.example", []string{wire.RoleServer}, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	ccrt, ckey, err := ca.Issue("web1", []string{wire.RoleClient}, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(ca.Dir, wire.CACertFile)
	srvCfg, err := wire.ServerConfig(wire.Files{CA: caFile, Cert: scrt, Key: skey}, wire.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	addr := ln.Addr().String()
	ip, _, _ := net.SplitHostPort(addr)
	other, err := wire.InitCA(filepath.Join(dir, "other"), "other", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ca, serverName string
		want                 []string
	}{
		{"by address", caFile, ip, []string{"certificate for backup.example, not for the address " + ip, "--server-name backup.example"}},
		{"another name", caFile, "tapir.example", []string{"certificate for backup.example, not for tapir.example", "--server-name backup.example"}},
		{"wrong local CA", filepath.Join(other.Dir, wire.CACertFile), "backup.example", []string{"this host's CA file does not sign", "--ca", "copy of the backup server's ca.crt"}},
	} {
		cfg, err := wire.ClientConfig(wire.Files{CA: tc.ca, Cert: ccrt, Key: ckey}, tc.serverName)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Dial(context.Background(), addr, cfg)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", tc.name, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "issue it a certificate") {
			t.Errorf("%s: %v blames the server's certificate", tc.name, err)
		}
	}
}
