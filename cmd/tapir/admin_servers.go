package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/report/admin"
	"github.com/tapir-backup/tapir/server"
)

func init() { adminCommands = append(adminCommands, newAdminServersCommand) }

func newAdminServersCommand(g *globals) *cobra.Command {
	var file, forget string
	var takeOver bool
	c := &cobra.Command{
		Use:   "servers -c FILE [--take-over | --forget NAME]",
		Short: "list the tapir servers sharing the catalog; take over this server's name on a replacement machine, or forget a retired server",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if takeOver && forget != "" {
				return usageError{fmt.Errorf("--take-over and --forget do not go together")}
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			switch {
			case takeOver:
				was, err := server.TakeOver(c.Context(), cfg)
				if err != nil {
					return err
				}
				host, _ := os.Hostname()
				if was == "" || was == host {
					fmt.Printf("server %s is registered on this host (%s)\n", cfg.Server.Name, host)
				} else {
					fmt.Printf("server %s now runs on this host (%s) instead of %s: make sure tapir no longer runs there\n", cfg.Server.Name, host, was)
				}
				return nil
			case forget != "":
				if err := server.ForgetServer(c.Context(), cfg, forget); err != nil {
					return err
				}
				fmt.Printf("forgot server %s: its runs, images and volumes stay in the catalog\n", forget)
				return nil
			}
			cat, err := server.OpenCatalog(cfg)
			if err != nil {
				return err
			}
			defer cat.Close()
			return admin.Servers(c.Context(), os.Stdout, cat)
		},
	}
	addConfigFlag(c, &file)
	c.Flags().BoolVar(&takeOver, "take-over", false, "this machine replaces the one the catalog says runs this server ([server] name)")
	c.Flags().StringVar(&forget, "forget", "", "remove the registration of server `NAME` (retired): its images stay")
	return c
}
