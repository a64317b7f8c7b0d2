package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/wire"
)

func newCAIssueCommand(g *globals) *cobra.Command {
	var dir, out string
	var admin, server bool
	c := &cobra.Command{
		Use:   "issue HOST",
		Short: "issue a certificate for a client host (or an admin, or a server)",
		Long: `Writes OUT/HOST.crt and OUT/HOST.key (0600), signed by the CA in --dir.
A client certificate lets the host run the agent and browse and restore its own
DLEs; --admin lets it browse every host's; --server makes it a backup server.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				out = dir
			}
			roles := []string{wire.RoleClient}
			if admin {
				roles = append(roles, wire.RoleAdmin)
			}
			if server {
				roles = append(roles, wire.RoleServer)
			}
			return runCAIssue(dir, args[0], roles, out, time.Now())
		},
	}
	c.Flags().StringVar(&dir, "dir", "/etc/tapir/tls", "directory of the CA")
	c.Flags().StringVar(&out, "out", "", "where to write the certificate and key (default: --dir)")
	c.Flags().BoolVar(&admin, "admin", false, "may browse and restore every host's DLEs")
	c.Flags().BoolVar(&server, "server", false, "may act as a backup server")
	return c
}

func runCAIssue(dir, host string, roles []string, out string, now time.Time) error {
	ca, err := wire.LoadCA(dir)
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue(host, roles, out, now)
	if err != nil {
		return err
	}
	fmt.Printf("certificate for %s (roles %v): %s (key %s, mode 0600)\n", host, roles, cert, key)
	return nil
}
