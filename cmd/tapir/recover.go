package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/server"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/wire"
)

// defaultIndexServer is where the shell connects without --server or
// TAPIR_SERVER.
const defaultIndexServer = "localhost:10082"

func newRecoverCommand(g *globals) *cobra.Command {
	var file string
	var all, targetMeta, pipe bool
	var identity string
	var req restore.Request
	var sh shellFlags
	c := &cobra.Command{
		Use:   "recover [--server HOST:PORT] [--host H] [--disk DLE] [--date D] [-e 'CMD; CMD']  |  recover -c FILE --host H --path P (--file F | --all) --to DIR",
		Short: "browse the backups of a host at any date and restore files (the interactive shell), or restore one file or a whole DLE straight from the catalog",
		Long: `Without -c, --file or --all, tapir recover is the interactive shell: it connects to
the index server (TCP 10082, mutual TLS) with this host's certificate and offers
amrecover's commands (sethost, setdisk, setdate, ls, cd, add, extract, ...; type help).
With -e it runs the given commands (separated by ';') and exits 1 at the first that fails.
Commands piped on standard input run the same way. See docs/recover.md.

With -c FILE (on the backup server) it reads the catalog directly: --file restores one
file from the newest image that holds it, --all the whole DLE through its chain of images,
into an empty directory unless --overwrite. For a command DLE (dumptype command = [...]),
--all writes the command's output to --to (a new file, or a file in a directory) or, with
--pipe, pipes it into the dumptype's restore_command. It first prints the volumes it needs, in the
order it reads them ("The following tapes are needed: ..."); with a single drive it asks for
each cartridge in turn (here, in the log and by mail) and waits for it; Ctrl-C cancels. Nothing is ever written outside --to. A client's
device nodes, setuid/setgid bits and trusted.*/security.* xattrs are left out (each entry
is listed) unless --same-privileges.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			scripted := c.Flags().Changed("config") || c.Flags().Changed("file") || all || c.Flags().Changed("path") || c.Flags().Changed("to")
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if !scripted && (targetMeta || req.Overwrite) {
				return usageError{fmt.Errorf("--overwrite and --target-meta go with -c FILE (in the shell, extract -o overwrites)")}
			}
			if identity != "" {
				// Read (and its mode checked) before anything else: a key
				// others may read is refused, whatever the restore.
				ids, err := crypt.ReadIdentities(identity)
				if err != nil {
					return err
				}
				req.Identities, sh.identities = ids, ids
			}
			if !scripted {
				sh.host, sh.date, sh.samePrivileges = req.Host, req.AsOf, req.SamePrivileges
				return runShell(ctx, c, sh)
			}
			need := []struct{ name, v string }{{"host", req.Host}, {"path", req.Path}}
			if pipe && !all {
				return usageError{fmt.Errorf("--pipe goes with --all (a command DLE's image is restored whole)")}
			}
			if pipe && req.To != "" {
				return usageError{fmt.Errorf("--pipe sends the image to restore_command: drop --to, or drop --pipe to write it to --to")}
			}
			if !pipe {
				need = append(need, struct{ name, v string }{"to", req.To})
			}
			if !all {
				need = append(need, struct{ name, v string }{"file", req.File})
			} else if req.File != "" {
				return usageError{fmt.Errorf("--all restores the whole DLE; drop --file")}
			}
			if targetMeta && !all {
				return usageError{fmt.Errorf("--target-meta goes with --all (it gives --to the mode of the DLE's root)")}
			}
			for _, f := range need {
				if f.v == "" {
					return usageError{fmt.Errorf("--%s is required", f.name)}
				}
			}
			if strings.Contains(req.AsOf, "-") {
				ds, err := recover.ParseDate(req.AsOf, time.Now())
				if err != nil {
					return usageError{err}
				}
				req.AsOf = ds
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			vols, err := server.VolumeSource(cfg, server.Deps{}, nil, g.logger(0))
			if err != nil {
				return err
			}
			// The person at the terminal is told the volumes needed and,
			// with a single drive, asked for each cartridge; Ctrl-C
			// cancels the wait.
			ask := func(msg string) { fmt.Println(msg) }
			if all {
				return runRecoverTree(ctx, g, cfg, restore.TreeRequest{Host: req.Host, Path: req.Path, To: req.To, AsOf: req.AsOf,
					Overwrite: req.Overwrite, SamePrivileges: req.SamePrivileges, TargetMeta: targetMeta, Volumes: vols, Ask: ask, Identities: req.Identities,
					Peers: server.Peers(cfg, g.logger(0)), Pipe: pipe})
			}
			req.Volumes, req.Ask, req.Peers = vols, ask, server.Peers(cfg, g.logger(0))
			res, err := restore.File(ctx, cfg, req, g.logger(0))
			if err != nil {
				return err
			}
			printDropped(res.Dropped)
			fmt.Printf("restored %s (%d bytes) from the level %d image of %s, volume %s file %d\n",
				res.Written, res.Size, res.Dump.Level, res.Dump.Datestamp, res.Volume, res.FileNo)
			return nil
		},
	}
	addConfigFlag(c, &file)
	f := c.Flags()
	f.StringVar(&req.Host, "host", "", "the host (shell: default the host your certificate names)")
	f.StringVar(&req.Path, "path", "", "-c: the DLE's path")
	f.StringVar(&req.File, "file", "", "-c: the file: absolute, or relative to the DLE's path")
	f.BoolVar(&all, "all", false, "-c: restore the whole DLE: the full image, then each incremental in order, deletions applied")
	f.StringVar(&req.To, "to", "", "-c: directory to restore into (the file keeps its path below the DLE)")
	f.StringVar(&req.AsOf, "date", "", "as of this date: YYYY-MM-DD[-hh:mm:ss] or a datestamp YYYYMMDD[hhmmss]; default the newest")
	f.BoolVar(&req.Overwrite, "overwrite", false, "-c: --file: replace an existing local file; --all: restore into a directory that is not empty (what the DLE did not hold is deleted there)")
	f.BoolVar(&req.SamePrivileges, "same-privileges", false, "recreate device nodes, setuid/setgid bits and trusted.*/security.* xattrs from the backup (-c: left out by default; shell: the default for the host's own files)")
	f.BoolVar(&pipe, "pipe", false, "-c --all, command DLEs: pipe the image into the dumptype's restore_command (pg_restore -d DB) instead of writing it to --to")
	f.BoolVar(&targetMeta, "target-meta", false, "-c --all: give --to the owner, mode and mtime of the DLE's root (default: --to keeps its own)")
	f.StringVar(&identity, "identity", "", "age identity file (tapir key new, or its paper form; mode 0600) that opens encrypted images")
	f.StringVar(&sh.server, "server", "", "index server HOST:PORT (default $TAPIR_SERVER, else "+defaultIndexServer+")")
	f.StringVar(&sh.serverName, "server-name", "", "the name the index server's certificate must carry (default: the host of --server)")
	f.StringVar(&sh.tlsDir, "tls-dir", "/etc/tapir/tls", "directory holding ca.crt and this host's client.crt and client.key (those of the agent)")
	f.StringVar(&sh.ca, "ca", "", "CA certificate (default TLS-DIR/ca.crt)")
	f.StringVar(&sh.cert, "cert", "", "this host's certificate (default TLS-DIR/client.crt)")
	f.StringVar(&sh.key, "key", "", "this host's key (default TLS-DIR/client.key)")
	f.StringVar(&sh.disk, "disk", "", "the DLE to browse first (setdisk)")
	f.StringVar(&sh.lcd, "lcd", "", "local directory extract writes into (default the current directory)")
	f.StringVarP(&sh.script, "execute", "e", "", "run these commands (separated by ';') and exit; exit status 1 at the first that fails")
	return c
}

type shellFlags struct {
	server, serverName, tlsDir, ca, cert, key string
	host, disk, date, lcd, script             string
	samePrivileges                            bool
	identities                                *crypt.Identities
}

func runShell(ctx context.Context, c *cobra.Command, f shellFlags) error {
	server := f.server
	if server == "" {
		server = os.Getenv("TAPIR_SERVER")
	}
	if server == "" {
		server = defaultIndexServer
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "10082")
	}
	host, _, _ := net.SplitHostPort(server)
	if f.serverName != "" {
		host = f.serverName
	}
	files := wire.Files{CA: f.ca, Cert: f.cert, Key: f.key}
	if files.CA == "" {
		files.CA = filepath.Join(f.tlsDir, wire.CACertFile)
	}
	if files.Cert == "" {
		files.Cert = filepath.Join(f.tlsDir, "client.crt")
	}
	if files.Key == "" {
		files.Key = filepath.Join(f.tlsDir, "client.key")
	}
	tlsCfg, err := wire.ClientConfig(files, host)
	if err != nil {
		return err
	}
	_, ttyErr := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	_, ttyErr2 := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS)
	return recover.RunShell(ctx, recover.ShellOptions{
		Server: server, TLS: tlsCfg,
		Host: f.host, Disk: f.disk, Date: f.date, Lcd: f.lcd, Script: f.script, SamePrivileges: f.samePrivileges, Identities: f.identities,
		Terminal: ttyErr == nil && ttyErr2 == nil,
		In:       c.InOrStdin(), Out: c.OutOrStdout(), Err: c.ErrOrStderr(),
	})
}

func runRecoverTree(ctx context.Context, g *globals, cfg *config.Config, req restore.TreeRequest) error {
	res, err := restore.Tree(ctx, cfg, req, g.logger(0))
	if res != nil {
		for _, d := range res.Chain {
			fmt.Printf("image %s level %d\n", d.Datestamp, d.Level)
		}
		printDropped(res.Dropped)
	}
	if err != nil {
		return err
	}
	switch cr := res.Command; {
	case cr != nil && cr.Piped != "":
		fmt.Printf("restored %s:%s: %d bytes of the command's output piped into %s\n", req.Host, req.Path, cr.Bytes, cr.Piped)
	case cr != nil:
		fmt.Printf("restored %s:%s: %d bytes of the command's output written to %s\n", req.Host, req.Path, cr.Bytes, cr.Written)
	default:
		fmt.Printf("restored %s:%s into %s: %d entries from %d images, %d removed as deleted\n", req.Host, req.Path, req.To, res.Entries, len(res.Chain), len(res.Removed))
	}
	return nil
}

// printDropped lists, one line an entry and at most
// recover.MaxDroppedLines of them, what a restore from a client's image
// left out because it would give privilege on this host.
func printDropped(d recover.Dropped) {
	if d.Count == 0 {
		return
	}
	for _, l := range d.Lines {
		fmt.Printf("left out: %s\n", l)
	}
	entries := func(n int) string {
		if n == 1 {
			return "1 entry"
		}
		return fmt.Sprintf("%d entries", n)
	}
	if more := d.Count - len(d.Lines); more > 0 {
		fmt.Printf("left out: ... and %s more\n", entries(more))
	}
	fmt.Printf("%s had device nodes, setuid/setgid bits or trusted.*/security.* xattrs left out: a restore from a client's backup does not recreate them on this host unless --same-privileges\n", entries(d.Count))
}
