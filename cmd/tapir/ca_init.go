package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/wire"
)

func newCAInitCommand(g *globals) *cobra.Command {
	var dir, org, server string
	c := &cobra.Command{
		Use:   "init",
		Short: "create a CA (ECDSA P-256) and the backup server's certificate",
		Long: `Creates DIR/ca.crt and DIR/ca.key (0600), and a certificate for the backup
server (DIR/<server>.crt, DIR/<server>.key) with the server and admin roles.
Point [tls] in the configuration at these files, and give every client host
ca.crt plus a certificate from ` + "`tapir ca issue`" + `.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			if server == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("cannot tell this host's name (%v); give --server", err)
				}
				server = h
			}
			return runCAInit(dir, org, server, time.Now())
		},
	}
	c.Flags().StringVar(&dir, "dir", "/etc/tapir/tls", "directory for the CA and the server certificate")
	c.Flags().StringVar(&org, "org", "tapir", "organisation named in the CA")
	c.Flags().StringVar(&server, "server", "", "host name of the backup server (default: this host)")
	return c
}

func runCAInit(dir, org, server string, now time.Time) error {
	ca, err := wire.InitCA(dir, org, now)
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue(server, []string{wire.RoleServer, wire.RoleAdmin}, dir, now)
	if err != nil {
		return err
	}
	fmt.Printf("CA:                 %s (key %s, mode 0600)\n", filepath.Join(dir, wire.CACertFile), filepath.Join(dir, wire.CAKeyFile))
	fmt.Printf("server certificate: %s (key %s)\n", cert, key)
	return nil
}
