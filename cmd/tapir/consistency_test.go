package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/wire"
)

// The end-to-end proofs of issue 20's consistent sources, with the tapir
// binary as agent and server: a pg_dump command DLE restores into a fresh
// database with the same rows, and a btrfs snapshot DLE whose agent is
// killed in the middle of a dump leaves no snapshot once it is restarted.

// agentProc is a `tapir client` subprocess and the lines it logs.
type agentProc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  []string
	more chan struct{} // closed and replaced at every new line
	done chan struct{}
}

// startAgentProc starts `tapir client` on a free loopback port with the
// certificate in tlsDir, state in stateDir, and waits for its address.
func startAgentProc(t *testing.T, tlsDir, stateDir string, extra ...string) *agentProc {
	t.Helper()
	args := append([]string{"client", "--listen", "127.0.0.1:0", "--ca", filepath.Join(tlsDir, "ca.crt"),
		"--cert", filepath.Join(tlsDir, "localhost.crt"), "--key", filepath.Join(tlsDir, "localhost.key"),
		"--state-dir", stateDir, "--nice", "0", "--ionice", "0"}, extra...)
	a := &agentProc{cmd: exec.Command(tapirBin, args...), more: make(chan struct{}), done: make(chan struct{})}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			a.mu.Lock()
			a.log = append(a.log, sc.Text())
			close(a.more)
			a.more = make(chan struct{})
			a.mu.Unlock()
		}
		a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() { a.kill() })
	line := a.wait(t, 0, "client agent listening")
	m := regexp.MustCompile(`addr=(127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	a.addr = m[1]
	return a
}

// wait returns the first line from the from-th on that holds every one of
// subs, waiting for the agent to log it (or failing when it exits first).
func (a *agentProc) wait(t *testing.T, from int, subs ...string) string {
	t.Helper()
	for i := from; ; i++ {
		a.mu.Lock()
		for i >= len(a.log) {
			more := a.more
			a.mu.Unlock()
			select {
			case <-more:
			case <-a.done:
				a.mu.Lock()
				if i >= len(a.log) {
					all := strings.Join(a.log, "\n")
					a.mu.Unlock()
					t.Fatalf("the agent exited without logging %q:\n%s", subs, all)
				}
				a.mu.Unlock()
			}
			a.mu.Lock()
		}
		line := a.log[i]
		a.mu.Unlock()
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return line
		}
	}
}

// has says whether a line logged so far holds every one of subs.
func (a *agentProc) has(subs ...string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.log {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return true
		}
	}
	return false
}

func (a *agentProc) all() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.log, "\n")
}

func (a *agentProc) kill() {
	a.cmd.Process.Kill()
	<-a.done
}

// siteFiles makes a CA with a server certificate and one for localhost
// in dir/tls.
func siteFiles(t *testing.T, dir string) string {
	t.Helper()
	tlsDir := filepath.Join(dir, "tls")
	ca, err := wire.InitCA(tlsDir, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("backup", []string{wire.RoleServer}, tlsDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue("localhost", []string{wire.RoleClient}, tlsDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	return tlsDir
}

// writeConfig writes dir/tapir.toml: vtapes, a holding disk, the agent at
// addr, and the given dumptype and DLE tables.
func writeConfig(t *testing.T, dir, addr, tables string) string {
	t.Helper()
	for _, d := range []string{"vtapes", "holding"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "tapir.toml")
	text := fmt.Sprintf(`org = "test"
statedir = "state"
tapecycle = 2

[tls]
ca = "tls/ca.crt"
cert = "tls/backup.crt"
key = "tls/backup.key"

[changer]
type = "disk"
path = "vtapes"
slots = 4
tapetype = "small"

[tapetype.small]
length = "1 GiB"
blocksize = "64 KiB"

[[holding]]
path = "holding"

[host.localhost]
address = %q
%s`, addr, tables)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// script writes an executable shell script.
func script(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// pgDSN is the test cluster's DSN with another database.
func pgDSN(t *testing.T, base, db string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

func psql(t *testing.T, dsn, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestCommandDLEPgDump: a command DLE whose command is pg_dump -Fc of a
// real database is dumped by a night, verified, restored through --pipe
// into restore_command (pg_restore into a fresh database: the same row
// counts and sums), written to a file by --to, and read by hand from the
// vtape with dd and zstd: the same bytes.
func TestCommandDLEPgDump(t *testing.T) {
	base := os.Getenv("TAPIR_TEST_POSTGRES")
	if base == "" {
		t.Skip("TAPIR_TEST_POSTGRES is not set (scripts/test starts a PostgreSQL cluster and sets it)")
	}
	for _, tool := range []string{"pg_dump", "pg_restore", "psql", "dd", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	tlsDir := siteFiles(t, dir)
	suffix := strings.ToLower(rand.Text()[:8])
	src, dst := "tapir_src_"+suffix, "tapir_dst_"+suffix
	psql(t, base, "CREATE DATABASE "+src)
	psql(t, base, "CREATE DATABASE "+dst)
	t.Cleanup(func() {
		exec.Command("psql", "-X", "-q", "-d", base, "-c", "DROP DATABASE IF EXISTS "+src).Run()
		exec.Command("psql", "-X", "-q", "-d", base, "-c", "DROP DATABASE IF EXISTS "+dst).Run()
	})
	srcDSN, dstDSN := pgDSN(t, base, src), pgDSN(t, base, dst)
	psql(t, srcDSN, `CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
		INSERT INTO accounts SELECT i, 'owner ' || i, i * 1.5 FROM generate_series(1, 20000) i;
		CREATE TABLE events (id bigserial PRIMARY KEY, account int REFERENCES accounts(id), what text);
		INSERT INTO events(account, what) SELECT (i % 20000) + 1, md5(i::text) FROM generate_series(1, 50000) i;`)
	const counts = `SELECT (SELECT count(*) FROM accounts) || ' ' || (SELECT sum(balance) FROM accounts) || ' ' || (SELECT count(*) FROM events) || ' ' || (SELECT md5(string_agg(what, ',' ORDER BY id)) FROM events)`
	want := psql(t, srcDSN, counts)

	execDir := filepath.Join(dir, "exec")
	pgdump := script(t, filepath.Join(execDir, "pg_dump_app"), fmt.Sprintf("exec pg_dump -Fc -d '%s'", srcDSN))
	pre := script(t, filepath.Join(execDir, "pre"), `echo "pre: checkpoint of $TAPIR_DLE at level $TAPIR_LEVEL"`)
	agent := startAgentProc(t, tlsDir, filepath.Join(dir, "agent-state"), "--allow-exec", execDir)
	cfg := writeConfig(t, dir, agent.addr, fmt.Sprintf(`
[dumptype.pg]
command = [%q]
restore_command = ["/usr/bin/pg_restore", "--no-owner", "--exit-on-error", "-d", %q]
pre = [%q]

[[dle]]
host = "localhost"
path = "/pg/app"
dumptype = "pg"
`, pgdump, dstDSN, pre))

	if out, stderr, code := run(t, "check", "-c", cfg); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := run(t, "dump", "-c", cfg)
	if code != 0 {
		t.Fatalf("dump: exit %d\n%s%s", code, out, stderr)
	}
	for _, s := range []string{"COMMANDS RUN ON CLIENTS:", "command exit 0", pgdump, "pre: checkpoint of /pg/app at level 0"} {
		if !strings.Contains(out, s) {
			t.Errorf("the report does not say %q:\n%s", s, out)
		}
	}
	if out, stderr, code := run(t, "verify", "-c", cfg, "test-001"); code != 0 || !strings.Contains(out, "a command's output decompressed to its end") {
		t.Errorf("verify: exit %d\n%s%s", code, out, stderr)
	}

	// --pipe: into restore_command, a fresh database.
	out, stderr, code = run(t, "recover", "-c", cfg, "--host", "localhost", "--path", "/pg/app", "--all", "--pipe")
	if code != 0 || !strings.Contains(out, "piped into /usr/bin/pg_restore") {
		t.Fatalf("recover --pipe: exit %d\n%s%s", code, out, stderr)
	}
	if got := psql(t, dstDSN, counts); got != want {
		t.Errorf("restored database: %s, the source: %s", got, want)
	}

	// --to: the archive itself, which pg_restore reads, and which dd and
	// zstd read from the vtape by hand.
	file := filepath.Join(dir, "app.dump")
	out, stderr, code = run(t, "recover", "-c", cfg, "--host", "localhost", "--path", "/pg/app", "--all", "--to", file)
	if code != 0 {
		t.Fatalf("recover --to: exit %d\n%s%s", code, out, stderr)
	}
	restored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if toc, err := exec.Command("pg_restore", "-l", file).CombinedOutput(); err != nil || !bytes.Contains(toc, []byte("TABLE DATA public accounts")) {
		t.Errorf("pg_restore -l of the restored file: %v\n%s", err, toc)
	}
	if _, stderr, code := run(t, "recover", "-c", cfg, "--host", "localhost", "--path", "/pg/app", "--all", "--to", file); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("recover --to an existing file: exit %d, %s", code, stderr)
	}
	tape := commandTapeFile(t, filepath.Join(dir, "vtapes"))
	byHand, err := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | zstd -dc", tape)).Output()
	if err != nil {
		t.Fatalf("dd | zstd -dc of %s: %v", tape, err)
	}
	if !bytes.Equal(byHand, restored) {
		t.Errorf("dd | zstd -dc gives %d bytes, recover --to %d: not the same", len(byHand), len(restored))
	}
}

// commandTapeFile finds the vtape file whose header says it holds a
// command payload.
func commandTapeFile(t *testing.T, vtapes string) string {
	t.Helper()
	var found string
	filepath.Walk(vtapes, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || found != "" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		head := make([]byte, 32<<10)
		if n, _ := io.ReadFull(f, head); bytes.Contains(head[:n], []byte("\npayload: command\n")) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no vtape file under %s holds a command payload", vtapes)
	}
	return found
}

// btrfsVolume makes a btrfs filesystem on a loop device and a subvolume
// in it, or skips the test when this machine cannot (not root, no
// mkfs.btrfs, no loop device).
func btrfsVolume(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("btrfs on a loop device needs root")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/test installs btrfs-progs)", tool)
		}
	}
	img := filepath.Join(dir, "btrfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 400<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device: losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mkfs.btrfs", "-q", dev).CombinedOutput(); err != nil {
		t.Skipf("mkfs.btrfs: %v %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "btrfs", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount btrfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		// Whatever the test left: snapshots go with the filesystem.
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	vol := filepath.Join(mnt, "vol")
	if out, err := exec.Command("btrfs", "subvolume", "create", vol).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v %s", err, out)
	}
	return vol
}

// snapshots lists what btrfs snapshots the agent made are left in vol.
func snapshots(t *testing.T, vol string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(vol, ".tapir-snapshot-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSnapshotDLEAgentKilled: a btrfs snapshot DLE. The agent is killed
// (SIGKILL) while it streams a dump read from its snapshot; the snapshot
// is still there, and the restarted agent removes it before it serves.
// Then a night with pre and post hooks dumps the DLE from a new snapshot,
// removes it, reports the commands, and the DLE restores whole.
func TestSnapshotDLEAgentKilled(t *testing.T) {
	dir := t.TempDir()
	vol := btrfsVolume(t, dir)
	big := make([]byte, 48<<20) // more than the sockets hold: the dump cannot end unread
	rand.Read(big)
	for name, data := range map[string][]byte{"big.bin": big, "etc/app.conf": []byte("x = 1\n"), "db/journal": []byte("entry 1\n")} {
		p := filepath.Join(vol, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tlsDir := siteFiles(t, dir)
	state := filepath.Join(dir, "agent-state")
	execDir := filepath.Join(dir, "exec")
	marks := filepath.Join(dir, "marks")
	pre := script(t, filepath.Join(execDir, "pre"), fmt.Sprintf(`echo "quiesced $TAPIR_DLE"; echo pre >> '%s'`, marks))
	post := script(t, filepath.Join(execDir, "post"), fmt.Sprintf(`echo "thawed: $TAPIR_RESULT"; echo "post $TAPIR_RESULT" >> '%s'`, marks))
	agent := startAgentProc(t, tlsDir, state, "--allow", vol, "--allow-exec", execDir)

	// The test is the server: it takes the first data of a dump from the
	// snapshot, then stops reading, and the agent is killed mid-stream.
	tlsCfg, err := wire.ClientConfig(wire.Files{CA: filepath.Join(tlsDir, "ca.crt"), Cert: filepath.Join(tlsDir, "backup.crt"), Key: filepath.Join(tlsDir, "backup.key")}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	remote := &client.Remote{Host: "localhost", Addr: agent.addr, TLS: tlsCfg}
	first := make(chan struct{})
	killed := make(chan struct{})
	var once sync.Once
	dumped := make(chan error, 1)
	go func() {
		_, err := remote.Dump(context.Background(), wire.Request{DLE: vol, Level: 0, Datestamp: "20261204010000", Compress: "none",
			Snapshot: &wire.Snapshot{Kind: wire.SnapshotBtrfs}}, client.DumpHandler{
			Data: func([]byte) error {
				once.Do(func() { close(first) })
				<-killed
				return io.ErrClosedPipe
			},
		})
		dumped <- err
	}()
	<-first
	if got := snapshots(t, vol); len(got) != 1 {
		t.Fatalf("while the dump streams, the snapshots in %s: %v (want the one it reads)", vol, got)
	}
	agent.kill()
	close(killed)
	if err := <-dumped; err == nil {
		t.Fatal("the dump of a killed agent succeeded")
	}
	if got := snapshots(t, vol); len(got) != 1 {
		t.Fatalf("after kill -9, the snapshots in %s: %v (want the one the dead agent left)", vol, got)
	}
	agent = startAgentProc(t, tlsDir, state, "--allow", vol, "--allow-exec", execDir)
	// It cleans up before it serves: once a selfcheck is answered, the
	// cleanup is over and logged (read all of its log once it is gone).
	remote.Addr = agent.addr
	if _, err := remote.Selfcheck(context.Background(), vol); err != nil {
		t.Fatal(err)
	}
	if got := snapshots(t, vol); len(got) != 0 {
		t.Fatalf("the restarted agent left snapshots: %v", got)
	}
	agent.kill()
	if !agent.has("removed a snapshot left by an earlier agent", vol) {
		t.Errorf("the restarted agent did not say it removed the dead one's snapshot:\n%s", agent.all())
	}
	agent = startAgentProc(t, tlsDir, state, "--allow", vol, "--allow-exec", execDir)

	// A night: pre, snapshot, dump, snapshot removed, post.
	cfg := writeConfig(t, dir, agent.addr, fmt.Sprintf(`
[dumptype.snap]
snapshot = "btrfs"
pre = [%q]
post = [%q]
hook_timeout = "2m"

[[dle]]
host = "localhost"
path = %q
dumptype = "snap"
`, pre, post, vol))
	if out, stderr, code := run(t, "check", "-c", cfg); code != 0 {
		t.Fatalf("check (makes and removes a snapshot): exit %d\n%s%s", code, out, stderr)
	}
	if got := snapshots(t, vol); len(got) != 0 {
		t.Fatalf("check left snapshots: %v", got)
	}
	out, stderr, code := run(t, "dump", "-c", cfg)
	if code != 0 {
		t.Fatalf("dump: exit %d\n%s%s", code, out, stderr)
	}
	for _, s := range []string{"read from snapshot btrfs " + vol + "/.tapir-snapshot-", "quiesced " + vol, "thawed: ok", "snapshot-create", "snapshot-remove"} {
		if !strings.Contains(out, s) {
			t.Errorf("the report does not say %q:\n%s", s, out)
		}
	}
	if got := snapshots(t, vol); len(got) != 0 {
		t.Fatalf("the night left snapshots: %v", got)
	}
	if b, _ := os.ReadFile(marks); string(b) != "pre\npost ok\n" {
		t.Errorf("the hooks ran as %q, want pre then post ok", b)
	}
	to := filepath.Join(dir, "restored")
	if out, stderr, code := run(t, "recover", "-c", cfg, "--host", "localhost", "--path", vol, "--all", "--to", to); code != 0 {
		t.Fatalf("recover --all: exit %d\n%s%s", code, out, stderr)
	}
	if out, err := exec.Command("diff", "-r", vol, to).CombinedOutput(); err != nil {
		t.Errorf("diff -r %s %s: %v\n%s", vol, to, err, out)
	}
}
