package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/server"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/wire"
)

// Options for a demo run.
type Options struct {
	Dir   string       // everything lives here (default ./var/demo)
	Log   *slog.Logger // operational log (nil: discarded)
	Out   io.Writer    // what a person reads
	Clock clock.Clock
}

// ServerName is the name in the demo server's certificate.
const ServerName = "tapir-server"

// Run performs one demo night.
func Run(ctx context.Context, opt Options) error {
	if opt.Dir == "" {
		opt.Dir = filepath.Join("var", "demo")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(opt.Out, format+"\n", a...) }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// 1. CA and certificates.
	tlsDir := filepath.Join(dir, "tls")
	if _, err := os.Stat(filepath.Join(tlsDir, wire.CACertFile)); errors.Is(err, os.ErrNotExist) {
		ca, err := wire.InitCA(tlsDir, "tapir-demo", opt.Clock.Now())
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if _, _, err := ca.Issue(ServerName, []string{wire.RoleServer, wire.RoleAdmin}, tlsDir, opt.Clock.Now()); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if _, _, err := ca.Issue("localhost", []string{wire.RoleClient}, tlsDir, opt.Clock.Now()); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		say("Created a CA and certificates for the server (%s) and the client (localhost) in %s", ServerName, tlsDir)
	} else {
		say("Using the CA and certificates in %s", tlsDir)
	}

	// 2. Sample data.
	data := filepath.Join(dir, "data")
	night := 1
	if _, err := os.Stat(data); errors.Is(err, os.ErrNotExist) {
		st, err := Generate(data, 1)
		if err != nil {
			return fmt.Errorf("demo: generate sample tree: %w", err)
		}
		say("Generated a sample tree of %d files (%.1f MiB) in %s", st.Files, float64(st.Bytes)/(1<<20), data)
	} else {
		n, err := Touch(data, opt.Clock.Now())
		if err != nil {
			return fmt.Errorf("demo: change sample tree: %w", err)
		}
		night = 2
		say("Changed %d files of the sample tree in %s since the last night", n, data)
	}

	// 2b. A second DLE whose images are encrypted by the agent, and the
	// key that opens them. On a real site the key never lives on the
	// backup server (tapir key new on a safe machine, its recipient in the
	// configuration); the demo has one machine.
	secrets := filepath.Join(dir, "secrets")
	keyFile := filepath.Join(dir, "keys", "demo.key")
	recipient, err := demoKey(keyFile, opt.Clock, say)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if _, err := os.Stat(secrets); errors.Is(err, os.ErrNotExist) {
		n, err := GenerateSecrets(secrets)
		if err != nil {
			return fmt.Errorf("demo: generate the encrypted DLE: %w", err)
		}
		say("Generated %d files in %s, a DLE whose images are encrypted to the key %s", n, secrets, rel(keyFile))
	} else if err := TouchSecret(secrets, opt.Clock.Now()); err != nil {
		return fmt.Errorf("demo: change the encrypted DLE: %w", err)
	}

	// 3. The client agent, in-process, on a free loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listen on loopback: %w", err)
	}
	agentTLS, err := wire.ServerConfig(wire.Files{CA: filepath.Join(tlsDir, wire.CACertFile), Cert: filepath.Join(tlsDir, "localhost.crt"), Key: filepath.Join(tlsDir, "localhost.key")}, wire.RoleServer)
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: %w", err)
	}
	agent := &client.Agent{Log: opt.Log.With("component", "agent"), TLS: agentTLS, Allow: []string{data, secrets}, StateDir: filepath.Join(dir, "agent-state")}
	actx, stop := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Serve(actx, ln) }()
	defer func() { stop(); <-agentDone }()
	addr := ln.Addr().String()
	say("Started a client agent on %s (mutual TLS)", addr)

	// 4. Configuration.
	cfgPath := filepath.Join(dir, "tapir.toml")
	if err := writeConfig(cfgPath, data, secrets, recipient, addr); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo: the generated configuration is invalid: %w", err)
	}
	say("Wrote the configuration %s", cfgPath)
	// The demo is the administrator here: tapir uses a changer directory
	// and a holding disk but never creates them (an unmounted disk must
	// be noticed, not silently replaced by an empty directory).
	for _, d := range []string{cfg.Changer.Path, cfg.Holding[0].Path} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(d, 0o750); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			say("Created %s", d)
		}
	}

	// 5. The night.
	say("\n--- running the backup (tapir dump -c %s) ---\n", rel(cfgPath))
	var repBuf bytes.Buffer
	rep, runErr := server.Dump(ctx, cfg, server.Deps{Log: opt.Log.With("component", "server"), Clock: opt.Clock, Out: &repBuf})
	io.Copy(opt.Out, &repBuf)
	if runErr != nil {
		return fmt.Errorf("demo: the backup run failed: %w", runErr)
	}

	// 6. Restore one file and compare.
	pick, err := pickFile(data, night)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	restoreDir := filepath.Join(dir, "restore", rep.Datestamp)
	os.RemoveAll(restoreDir)
	vols, err := server.VolumeSource(cfg, server.Deps{}, nil, opt.Log.With("component", "recover"))
	if err != nil {
		return fmt.Errorf("demo: restore of %s: %w", pick, err)
	}
	res, err := restore.File(ctx, cfg, restore.Request{Host: "localhost", Path: data, File: pick, To: restoreDir, Volumes: vols}, opt.Log.With("component", "recover"))
	if err != nil {
		return fmt.Errorf("demo: restore of %s failed: %w", pick, err)
	}
	if err := sameFile(filepath.Join(data, pick), res.Written); err != nil {
		return fmt.Errorf("demo: restored file differs from the original: %w", err)
	}
	say("\n--- restore ---\n")
	say("Restored %s (%d bytes) from volume %s, tape file %d, into %s: identical to the original, mode and mtime included.", pick, res.Size, res.Volume, res.FileNo, res.Written)

	// 6b. The same through the index server and the recover shell, as a
	// client host would: only the frames that hold the file cross the wire.
	shellDir := filepath.Join(dir, "restore", rep.Datestamp+"-shell")
	os.RemoveAll(shellDir)
	if err := os.MkdirAll(shellDir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := shellRestore(ctx, cfg, tlsDir, data, pick, shellDir, opt, say); err != nil {
		return err
	}
	if err := sameFile(filepath.Join(data, pick), filepath.Join(shellDir, pick)); err != nil {
		return fmt.Errorf("demo: the file restored by the shell differs from the original: %w", err)
	}
	say("The shell restored %s into %s: identical to the original.", pick, rel(shellDir))

	// 6c. A file of the encrypted DLE: the catalog locates it like any
	// other, and only the age chunks of its frames are read and decrypted.
	ids, err := crypt.ReadIdentities(keyFile)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	secretPick := SecretFile
	secretDir := filepath.Join(dir, "restore", rep.Datestamp+"-encrypted")
	os.RemoveAll(secretDir)
	sres, err := restore.File(ctx, cfg, restore.Request{Host: "localhost", Path: secrets, File: secretPick, To: secretDir, Volumes: vols, Identities: ids}, opt.Log.With("component", "recover"))
	if err != nil {
		return fmt.Errorf("demo: restore of %s from the encrypted DLE failed: %w", secretPick, err)
	}
	if err := sameFile(filepath.Join(secrets, secretPick), sres.Written); err != nil {
		return fmt.Errorf("demo: the file restored from the encrypted DLE differs from the original: %w", err)
	}
	say("Restored %s of the encrypted DLE with --identity %s from volume %s, tape file %d: identical to the original.", secretPick, rel(keyFile), sres.Volume, sres.FileNo)

	// 7. Where things are and what to type next.
	vt := cfg.Changer.Path
	say("\n--- where things are ---\n")
	say("  configuration   %s", rel(cfgPath))
	say("  catalog         %s (SQLite)", rel(cfg.Catalog))
	say("  virtual tapes   %s/slot1..slot%d", rel(vt), cfg.Changer.Slots)
	say("  holding disk    %s (empty when every image is on a volume)", rel(cfg.Holding[0].Path))
	say("  reports         %s", rel(cfg.ReportDir))
	say("  certificates    %s", rel(tlsDir))
	say("  age key         %s (opens the images of %s; keep such a key off the backup server)", rel(keyFile), rel(secrets))
	tapeFile, secretFile := "", ""
	if len(rep.Volumes) > 0 {
		matches, _ := filepath.Glob(filepath.Join(vt, fmt.Sprintf("slot%d", rep.Volumes[0].Slot), "0*.localhost.*"))
		for _, m := range matches {
			if strings.Contains(filepath.Base(m), "secrets") {
				if secretFile == "" {
					secretFile = m
				}
			} else if tapeFile == "" {
				tapeFile = m
			}
		}
	}
	say("\n--- try next ---\n")
	say("  # serve restores, then browse the backup with the shell as a client host would (another terminal)")
	say("  go run ./cmd/tapir index-server -c %s --listen 127.0.0.1:10082", rel(cfgPath))
	say("  go run ./cmd/tapir recover --server 127.0.0.1:10082 --server-name %s --tls-dir %s --cert %s --key %s", ServerName, rel(tlsDir), rel(filepath.Join(tlsDir, "localhost.crt")), rel(filepath.Join(tlsDir, "localhost.key")))
	say("  # when each DLE gets its next full; every image of the host; a volume read back")
	say("  go run ./cmd/tapir admin due -c %s", rel(cfgPath))
	say("  go run ./cmd/tapir admin find -c %s localhost", rel(cfgPath))
	if len(rep.Volumes) > 0 {
		say("  go run ./cmd/tapir verify -c %s %s", rel(cfgPath), rep.Volumes[0].Label)
	}
	say("  # restore any file of the sample tree without the shell (the catalog knows where each one is)")
	say("  go run ./cmd/tapir recover -c %s --host localhost --path %s --file %s --to /tmp/tapir-restore", rel(cfgPath), data, pick)
	say("  # restore the whole tree as of the newest night: the full, then each incremental, deletions applied")
	say("  go run ./cmd/tapir recover -c %s --host localhost --path %s --all --to /tmp/tapir-restore-all", rel(cfgPath), data)
	if tapeFile != "" {
		say("  # read an image with standard tools only, as you would on a machine without tapir")
		say("  dd if=%s bs=32k skip=1 | zstd -dc | tar -tvf - | head", rel(tapeFile))
		say("  head -c 1024 %s   # the image header says the same", rel(tapeFile))
	}
	if secretFile != "" {
		say("  # an encrypted image: age, with the key, before zstd")
		say("  dd if=%s bs=32k skip=1 | age -d -i %s | zstd -dc | tar -tvf - | head", rel(secretFile), rel(keyFile))
	}
	say("  # the encrypted DLE's files, with the key (without it: a sentence naming the image)")
	say("  go run ./cmd/tapir recover -c %s --host localhost --path %s --all --identity %s --to /tmp/tapir-restore-secrets", rel(cfgPath), secrets, rel(keyFile))
	say("  go run ./cmd/tapir key paper %s   # the key as a text block for a safe", rel(keyFile))
	if len(rep.Volumes) > 0 {
		say("  go run ./cmd/tapir verify -c %s %s --identity %s   # every age chunk and the tar stream inside too", rel(cfgPath), rep.Volumes[0].Label, rel(keyFile))
	}
	say("  # the effective configuration, every default filled in")
	say("  go run ./cmd/tapir config check -c %s", rel(cfgPath))
	say("  # the catalog is a plain SQLite database")
	say("  sqlite3 %s 'select datestamp, host, path, level, status, payload_size from dumps'", rel(cfg.Catalog))
	say("  # what the next night writes or overwrites, and why nothing needed is lost")
	say("  go run ./cmd/tapir tape next -c %s --explain", rel(cfgPath))
	say("  # run another night (a volume is reused once tapecycle = %d allows and no newest chain is on it)", cfg.Tapecycle)
	say("  go run ./cmd/tapir demo")
	return nil
}

// shellRestore starts the index server on loopback and runs a scripted
// recover session against it with the client's certificate.
func shellRestore(ctx context.Context, cfg *config.Config, tlsDir, data, pick, to string, opt Options, say func(string, ...any)) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ictx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- server.ServeIndex(ictx, cfg, ln, opt.Log.With("component", "index")) }()
	defer func() { stop(); <-done }()
	tlsCfg, err := wire.ClientConfig(wire.Files{CA: filepath.Join(tlsDir, wire.CACertFile), Cert: filepath.Join(tlsDir, "localhost.crt"), Key: filepath.Join(tlsDir, "localhost.key")}, ServerName)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dir, file := filepath.Split(pick)
	script := fmt.Sprintf("cd %s; add %s; list; extract", strings.TrimSuffix(dir, "/"), file)
	say("\n--- the same through the index server and the shell: tapir recover --server %s -e '%s' ---\n", ln.Addr(), script)
	err = recover.RunShell(ctx, recover.ShellOptions{Server: ln.Addr().String(), TLS: tlsCfg, Host: "localhost", Disk: data,
		Lcd: to, Script: script, In: strings.NewReader(""), Out: opt.Out, Err: opt.Out})
	if err != nil {
		return fmt.Errorf("demo: the recover shell failed: %w", err)
	}
	return nil
}

func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

var cfgTemplate = template.Must(template.New("cfg").Parse(`# tapir demo configuration. ` + "`tapir demo`" + ` rewrites this file on every run
# (the client agent's port changes); copy it elsewhere to experiment.
org = "demo"
statedir = "."
dumpcycle = 7
tapecycle = 3
mailto = []

[tls]
ca = "tls/ca.crt"
cert = "tls/{{.Server}}.crt"
key = "tls/{{.Server}}.key"

[changer]
type = "disk"
path = "vtapes"
slots = 9
tapetype = "vtape"

[tapetype.vtape]
length = "4 GiB"
blocksize = "256 KiB"

[[holding]]
path = "holding"
use = "2 GiB"

[dumptype.default]
compress = "client-zstd"
compress_level = 1
frame_size = "1 MiB"

# Encrypted by the agent to the demo's key (keys/demo.key): the server
# holds only the recipient.
[dumptype.secret]
encrypt = "client"
recipients = ["{{.Recipient}}"]

[host.localhost]
address = "{{.Addr}}"

[[dle]]
host = "localhost"
path = "{{.Data}}"

[[dle]]
host = "localhost"
path = "{{.Secrets}}"
dumptype = "secret"
`))

func writeConfig(path, data, secrets, recipient, addr string) error {
	var b bytes.Buffer
	if err := cfgTemplate.Execute(&b, map[string]string{"Server": ServerName, "Addr": addr, "Data": data, "Secrets": secrets, "Recipient": recipient}); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func sameFile(a, b string) error {
	ab, err := os.ReadFile(a)
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(ab, bb) {
		return fmt.Errorf("%s and %s differ in content", a, b)
	}
	sa, _ := os.Stat(a)
	sb, _ := os.Stat(b)
	if sa.Mode() != sb.Mode() {
		return fmt.Errorf("%s has mode %v, restored %v", a, sa.Mode(), sb.Mode())
	}
	if !sa.ModTime().Equal(sb.ModTime()) {
		return fmt.Errorf("%s has mtime %v, restored %v", a, sa.ModTime(), sb.ModTime())
	}
	return nil
}

// demoKey makes the demo's age key in keyFile unless it exists, and
// returns its recipient.
func demoKey(keyFile string, clk clock.Clock, say func(string, ...any)) (string, error) {
	if ids, err := crypt.ReadIdentities(keyFile); err == nil && len(ids.Recipients) > 0 {
		return ids.Recipients[0], nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return "", err
	}
	id, err := crypt.NewIdentity()
	if err != nil {
		return "", err
	}
	if err := crypt.WriteIdentityFile(keyFile, crypt.IdentityFileText(id, clk.Now())); err != nil {
		return "", err
	}
	say("Made an age key %s (as tapir key new does); its recipient %s goes in the configuration", rel(keyFile), id.Recipient())
	return id.Recipient().String(), nil
}
