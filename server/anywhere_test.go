package server

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/wire"
)

// serveIndexOf starts the index server of cfg on a loopback port, with
// [server] advertise set to it, and returns the address and how to stop
// it, once it serves (a session with shell's configuration says hello):
// it has registered its address by then.
func serveIndexOf(t *testing.T, cfg *config.Config, shell *tls.Config) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg.Server.Advertise = "localhost:" + port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeIndex(ctx, cfg, ln, testLogger(t)) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("index server of %s: %v", cfg.Server.Name, err)
		}
	}
	t.Cleanup(stop)
	cl, err := recover.Dial(context.Background(), cfg.Server.Advertise, shell)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	return cfg.Server.Advertise, stop
}

// Restore from anywhere, end to end on PostgreSQL: north and south, each
// with its own agent, holding disk and vtapes, run their nights into one
// catalog; then a recover shell connected to south's index server
// restores north's files, read from north's volumes through north's index
// server; and `tapir recover -c` with south's configuration does the same
// for a file and a whole DLE.
func TestRestoreFromAnywhereEndToEnd(t *testing.T) {
	north, south := twoServers(t)
	dumpOK(t, north.cfg)
	dumpOK(t, south.cfg)
	// The servers' index servers speak to each other with certificates
	// of one CA (north's), named as they advertise themselves.
	ca, err := wire.LoadCA(filepath.Join(north.dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	peerDir := filepath.Join(north.dir, "peer-tls")
	crt, key, err := ca.Issue("localhost", []string{wire.RoleServer, wire.RoleAdmin}, peerDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*site{north, south} {
		s.cfg.TLS.CA, s.cfg.TLS.Cert, s.cfg.TLS.Key = filepath.Join(north.dir, "tls", wire.CACertFile), crt, key
	}
	shellCfg, err := wire.ClientConfig(wire.Files{CA: north.cfg.TLS.CA, Cert: crt, Key: key}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	northAddr, stopNorth := serveIndexOf(t, north.cfg, shellCfg)
	southAddr, _ := serveIndexOf(t, south.cfg, shellCfg)
	ctx := context.Background()
	cl, err := recover.Dial(ctx, southAddr, shellCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	q := recover.Query{Host: "localhost", DLE: north.data}
	to := t.TempDir()
	res, err := cl.Restore(ctx, q, []string{"big.bin", "sub/x.txt"}, recover.RestoreOptions{To: to})
	if err != nil || !res.OK() || res.Restored != 2 {
		t.Fatalf("restore of north's files through south: %+v %v", res, err)
	}
	sameFile(t, filepath.Join(north.data, "big.bin"), filepath.Join(to, "big.bin"))
	sameFile(t, filepath.Join(north.data, "sub/x.txt"), filepath.Join(to, "sub/x.txt"))
	for _, im := range res.Images {
		for _, v := range im.Volumes {
			if !strings.Contains(v.Where, "tapir server north at "+northAddr) {
				t.Errorf("plan: north's volume %+v; want it read from tapir server north (%s)", v, northAddr)
			}
		}
	}

	// recover -c on south's machine, for north's images.
	fileTo := t.TempDir()
	fr, err := restore.File(ctx, south.cfg, restore.Request{Host: "localhost", Path: north.data, File: "big.bin", To: fileTo,
		Volumes: mustVolumes(t, south.cfg), Peers: Peers(south.cfg, testLogger(t))}, testLogger(t))
	if err != nil {
		t.Fatalf("recover -c of south, north's file: %v", err)
	}
	sameFile(t, filepath.Join(north.data, "big.bin"), fr.Written)
	treeTo := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(treeTo, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Tree(ctx, south.cfg, restore.TreeRequest{Host: "localhost", Path: north.data, To: treeTo,
		Volumes: mustVolumes(t, south.cfg), Peers: Peers(south.cfg, testLogger(t))}, testLogger(t)); err != nil {
		t.Fatalf("recover -c --all of south, north's DLE: %v", err)
	}
	sameFile(t, filepath.Join(north.data, "big.bin"), filepath.Join(treeTo, "big.bin"))
	sameFile(t, filepath.Join(north.data, "sub/x.txt"), filepath.Join(treeTo, "sub/x.txt"))

	// tapir check on south proves that north's index server answers.
	c := Check(ctx, south.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	if !slices.ContainsFunc(c.Info, func(s string) bool {
		return strings.Contains(s, `tapir server "north" at `+northAddr+` answers`)
	}) || len(c.Warnings) > 0 {
		t.Errorf("check of south: info %q, warnings %q; want north's index server answering", c.Info, c.Warnings)
	}
	stopNorth()
	c = Check(ctx, south.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `volume(s) of tapir server "north" from this server would fail`) || !strings.Contains(c.Warnings[0], "cannot be reached") {
		t.Errorf("check of south with north down: warnings %q; want one saying north cannot be reached", c.Warnings)
	}

	// Without peers, south cannot read north's volumes, and says so.
	_, err = restore.File(ctx, south.cfg, restore.Request{Host: "localhost", Path: north.data, File: "big.bin", To: t.TempDir(),
		Volumes: mustVolumes(t, south.cfg)}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "is in no slot") {
		t.Errorf("south without peers: %v; want the volume not found in its changer", err)
	}
}
