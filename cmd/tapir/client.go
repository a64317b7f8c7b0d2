package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/client"
	"github.com/tapir-backup/tapir/wire"
)

func newClientCommand(g *globals) *cobra.Command {
	var listen string
	var files wire.Files
	var allow, allowExec []string
	var stateDir string
	var nice, ioniceClass int
	c := &cobra.Command{
		Use:   "client",
		Short: "run the client agent that the backup server dumps from (TCP 10080, mutual TLS)",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			for i, a := range allow {
				abs, err := filepath.Abs(a)
				if err != nil {
					return err
				}
				allow[i] = abs
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := client.Renice(nice, ioniceClass); err != nil {
				return err
			}
			for i, a := range allowExec {
				if !filepath.IsAbs(a) {
					return fmt.Errorf("--allow-exec %s: give an absolute path (a directory of scripts, or one executable)", a)
				}
				allowExec[i] = filepath.Clean(a)
			}
			return runClient(ctx, g, listen, files, allow, allowExec, stateDir)
		},
	}
	c.Flags().StringVar(&listen, "listen", ":10080", "address to listen on")
	c.Flags().StringVar(&files.CA, "ca", "/etc/tapir/tls/ca.crt", "CA certificate of the backup server")
	c.Flags().StringVar(&files.Cert, "cert", "/etc/tapir/tls/client.crt", "this host's certificate (tapir ca issue HOST)")
	c.Flags().StringVar(&files.Key, "key", "/etc/tapir/tls/client.key", "this host's key")
	c.Flags().StringSliceVar(&allow, "allow", nil, "directories the server may dump and read exclude lists from (repeatable; a symlink leading out of one is refused; default: any)")
	c.Flags().StringArrayVar(&allowExec, "allow-exec", nil, "an executable, or a directory of them, the server may have this agent run as a pre/post hook, a command DLE or a snapshot command (repeatable; default: none may run)")
	c.Flags().StringVar(&stateDir, "state-dir", "/var/lib/tapir/client", "where the incremental state of each DLE is kept (empty: level 0 only)")
	c.Flags().IntVar(&nice, "nice", 10, "CPU niceness of the agent (0..19; higher yields more to the host's own work)")
	c.Flags().IntVar(&ioniceClass, "ionice", 3, "I/O scheduling class: 1 realtime, 2 best-effort, 3 idle (0 leaves it alone)")
	return c
}

func runClient(ctx context.Context, g *globals, listen string, files wire.Files, allow, allowExec []string, stateDir string) error {
	log := g.logger(0)
	cfg, err := wire.ServerConfig(files, wire.RoleServer)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("client agent: %w", err)
	}
	log.Info("client agent listening", "addr", ln.Addr().String(), "allow", allow)
	for _, al := range allow {
		// The entry is followed at each request; say now where it leads.
		if real, err := filepath.EvalSymlinks(al); err != nil {
			log.Warn("allowed directory cannot be opened now; requests below it fail until it can", "allow", al, "err", err)
		} else if real != al {
			log.Info("allowed directory is a symlink: it is followed, nothing below it is followed out", "allow", al, "target", real)
		}
	}
	for _, ae := range allowExec {
		if _, err := filepath.EvalSymlinks(ae); err != nil {
			log.Warn("allowed executable or directory cannot be found now; commands below it are refused until it can", "allow_exec", ae, "err", err)
		}
	}
	if len(allowExec) > 0 {
		log.Info("the server may run commands below these paths", "allow_exec", allowExec)
	}
	a := &client.Agent{Log: log, TLS: cfg, Allow: allow, AllowExec: allowExec, StateDir: stateDir}
	return a.Serve(ctx, ln)
}
