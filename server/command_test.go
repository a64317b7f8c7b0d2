package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/wire"
)

// commandSite is a site with a second host, dbhost, whose agent may run
// the scripts of exec: a command DLE /db/main dumps the file src (the
// "database") through dump.sh, and restore.sh writes what it is given to
// the file its argument names.
type commandSite struct {
	*site
	exec, src string
	dle       config.DLE
}

func newCommandSite(t *testing.T) *commandSite {
	t.Helper()
	s := newSite(t, "")
	tlsDir := filepath.Join(s.dir, "tls")
	ca, err := wire.LoadCA(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(s.dir, "dbhost-tls")
	if _, _, err := ca.Issue("dbhost", []string{wire.RoleClient}, certDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: filepath.Join(tlsDir, "ca.crt"), Cert: filepath.Join(certDir, "dbhost.crt"), Key: filepath.Join(certDir, "dbhost.key")}, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	cs := &commandSite{site: s, exec: filepath.Join(s.dir, "exec"), src: filepath.Join(s.dir, "db.src")}
	if err := os.Mkdir(cs.exec, 0o755); err != nil {
		t.Fatal(err)
	}
	db := make([]byte, 400<<10) // several 64 KiB frames
	rand.Read(db[:len(db)/2])
	if err := os.WriteFile(cs.src, db, 0o644); err != nil {
		t.Fatal(err)
	}
	cs.script(t, "dump.sh", fmt.Sprintf("exec cat %q", cs.src))
	cs.script(t, "restore.sh", `cat > "$1"`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := &client.Agent{Log: testLogger(t).With("component", "dbagent"), TLS: tlsCfg, AllowExec: []string{cs.exec}, StateDir: filepath.Join(s.dir, "dbagent-state")}
	go func() { a.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	f, err := os.OpenFile(s.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `
[dumptype.db]
command = [%q]
restore_command = [%q, %q]
frame_size = "64 KiB"

[host.dbhost]
address = %q

[[dle]]
host = "dbhost"
path = "/db/main"
dumptype = "db"
`, filepath.Join(cs.exec, "dump.sh"), filepath.Join(cs.exec, "restore.sh"), filepath.Join(s.dir, "piped.out"), ln.Addr().String())
	f.Close()
	if s.cfg, err = config.Load(s.cfgPath); err != nil {
		t.Fatal(err)
	}
	cs.dle = config.DLE{Host: "dbhost", Path: "/db/main"}
	return cs
}

func (cs *commandSite) script(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cs.exec, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (cs *commandSite) dleOf(rep *report.Run) report.DLE {
	for _, d := range rep.DLEs {
		if d.Host == cs.dle.Host && d.Path == cs.dle.Path {
			return d
		}
	}
	return report.DLE{}
}

func (cs *commandSite) restore(t *testing.T, to string, pipe bool) (*restore.TreeResult, error) {
	var out bytes.Buffer
	return restore.Tree(t.Context(), cs.cfg, restore.TreeRequest{Host: cs.dle.Host, Path: cs.dle.Path, To: to, Pipe: pipe, Output: &out,
		Volumes: mustVolumes(t, cs.cfg)}, testLogger(t))
}

// commandVtapeFile is the vtape file holding the command DLE's image.
func (cs *commandSite) commandVtapeFile(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cs.cfg.Changer.Path, "slot*", "0*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		h, err := image.ReadHeader(fh)
		fh.Close()
		if err == nil && h.Payload == image.PayloadCommand {
			return f
		}
	}
	t.Fatalf("no vtape file holds a command payload")
	return ""
}

// TestCommandDLEServerSide: a night dumps the command DLE (payload
// command, no index, level 0), verify checks it, restore writes it to a
// file or pipes it into restore_command, byte for byte. A flipped byte on
// the volume: verify says so, a restore to a file fails and leaves no
// file, a piped restore fails and says what it gave the command.
func TestCommandDLEServerSide(t *testing.T) {
	cs := newCommandSite(t)
	rep, out, err := cs.night(t, Deps{})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	if d := cs.dleOf(rep); d.Status != report.StatusOK || d.Level != 0 {
		t.Fatalf("command DLE in the report: %+v", d)
	}
	cat := cs.catalog(t)
	var d catalog.Dump
	ds, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	for _, x := range ds {
		if x.Host == "dbhost" {
			d = x
		}
	}
	if !d.IsCommand() || d.Files != 0 || d.Level != 0 {
		t.Fatalf("catalog: %+v", d)
	}
	want, _ := os.ReadFile(cs.src)
	if d.OrigSize != int64(len(want)) {
		t.Errorf("orig size %d, the command wrote %d", d.OrigSize, len(want))
	}

	to := filepath.Join(cs.dir, "restored.dump")
	res, err := cs.restore(t, to, false)
	if err != nil || res.Command == nil || res.Command.Written != to {
		t.Fatalf("restore to a file: %+v, %v", res, err)
	}
	sameBytes(t, cs.src, to)
	if _, err := cs.restore(t, to, false); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("restore onto an existing file: %v", err)
	}
	if _, err := cs.restore(t, "", true); err != nil {
		t.Fatalf("restore --pipe: %v", err)
	}
	sameBytes(t, cs.src, filepath.Join(cs.dir, "piped.out"))

	// restore_command fails: said, with its name.
	cs.script(t, "restore.sh", `cat > /dev/null; echo "no such database" >&2; exit 4`)
	if _, err := cs.restore(t, "", true); err == nil || !strings.Contains(err.Error(), "failed (exit status 4)") {
		t.Errorf("failing restore_command: %v", err)
	}
	cs.script(t, "restore.sh", `cat > "$1"`)

	// A flipped byte in the middle of the image on the volume.
	vf := cs.commandVtapeFile(t)
	b, _ := os.ReadFile(vf)
	b[image.HeaderSize+len(b[image.HeaderSize:])/2] ^= 0x20
	if err := os.WriteFile(vf, b, 0o640); err != nil {
		t.Fatal(err)
	}
	parts, _ := cat.Parts(t.Context(), d.ID)
	vr, err := VerifyWith(t.Context(), cs.cfg, parts[0].Volume, VerifyOptions{}, Deps{Log: testLogger(t)})
	if err == nil && vr.Bad() == 0 {
		t.Errorf("verify of %s found nothing wrong", parts[0].Volume)
	}
	bad := filepath.Join(cs.dir, "bad.dump")
	if _, err := cs.restore(t, bad, false); err == nil {
		t.Error("a damaged image restored to a file")
	}
	if left, _ := filepath.Glob(filepath.Join(cs.dir, "*bad.dump*")); len(left) != 0 {
		t.Errorf("a failed restore left %v", left)
	}
	os.Remove(filepath.Join(cs.dir, "piped.out"))
	if _, err := cs.restore(t, "", true); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("a damaged image piped: %v", err)
	}
}

// TestCommandDLECommandFails: a command that exits non-zero fails its DLE
// with the command's words; nothing of it is good in the catalog, and the
// night's other DLEs are unharmed.
func TestCommandDLECommandFails(t *testing.T) {
	cs := newCommandSite(t)
	cs.script(t, "dump.sh", `echo partial; echo "pg_dump: error: connection to server failed" >&2; exit 3`)
	rep, out, err := cs.night(t, Deps{})
	if !errors.Is(err, ErrRunFailed) {
		t.Fatalf("night: %v\n%s", err, out)
	}
	d := cs.dleOf(rep)
	if d.Status != report.StatusFailed || !strings.Contains(d.Reason, "connection to server failed") {
		t.Errorf("command DLE: %+v", d)
	}
	for _, x := range rep.DLEs {
		if x.Host != "dbhost" && x.Status != report.StatusOK {
			t.Errorf("%s:%s is %s", x.Host, x.Path, x.Status)
		}
	}
	cat := cs.catalog(t)
	ds, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
	for _, x := range ds {
		if x.Host == "dbhost" {
			t.Errorf("a good image of the failed command: %+v", x)
		}
	}
}

// sameBytes: the file got holds what want holds (a command's output has
// no mode or mtime of its own to compare).
func sameBytes(t *testing.T, want, got string) {
	t.Helper()
	wb, err1 := os.ReadFile(want)
	gb, err2 := os.ReadFile(got)
	if err1 != nil || err2 != nil || !bytes.Equal(wb, gb) {
		t.Errorf("%s differs from %s (%v %v)", got, want, err1, err2)
	}
}
