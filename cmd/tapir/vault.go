package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/internal/clock"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newVaultCommand) }

func newVaultCommand(g *globals) *cobra.Command {
	var file, format string
	var opt server.VaultOptions
	c := &cobra.Command{
		Use:   "vault -c FILE [--to NAME] [--since DATE] [--fulls-only] [HOST [PATH]]",
		Short: "copy images onto the volumes of the [vault] label set (or of each [[vault]]), for offsite (amvault)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usageError{fmt.Errorf("at most HOST and PATH, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				opt.Host = args[0]
			}
			if len(args) > 1 {
				opt.Path = args[1]
			}
			if err := checkFormat(format); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			res, err := server.Vault(ctx, cfg, opt, server.Deps{Log: g.logger(0), Clock: clock.Real})
			if format == "json" && len(res) > 0 {
				// One vault: its object; several: an array of them.
				var v any = res
				if len(res) == 1 {
					v = res[0]
				}
				b, jerr := json.MarshalIndent(v, "", "  ")
				if jerr != nil {
					return jerr
				}
				os.Stdout.Write(append(b, '\n'))
			} else {
				for _, r := range res {
					fmt.Fprint(os.Stdout, r.Text())
				}
			}
			return err
		},
	}
	addConfigFlag(c, &file)
	addFormatFlag(c, &format)
	c.Flags().StringVar(&opt.To, "to", "", "the vault to write, by its name (default: every vault, one after the other)")
	c.Flags().StringVar(&opt.Since, "since", "", "copy only images of runs on or after DATE (YYYY-MM-DD or a datestamp)")
	c.Flags().BoolVar(&opt.FullsOnly, "fulls-only", false, "copy level 0 images only")
	return c
}
