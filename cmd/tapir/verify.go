package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newVerifyCommand) }

func newVerifyCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "verify -c FILE LABEL",
		Short: "read every image on a volume back: its SHA-256 against the catalog and its tar stream to the end, per image",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			res, err := server.Verify(ctx, cfg, args[0], server.Deps{Log: g.logger(0)})
			if err != nil {
				return err
			}
			for _, im := range res.Images {
				verdict := "OK "
				if !im.OK {
					verdict = "BAD"
				}
				what := "?"
				if im.Host != "" {
					what = fmt.Sprintf("%s:%s level %d of %s part %d", im.Host, im.Path, im.Level, im.Datestamp, im.Part)
				}
				fmt.Printf("%s file %d: %s: %s\n", verdict, im.FileNo, what, im.Detail)
			}
			if n := res.Bad(); n > 0 {
				return fmt.Errorf("volume %s: %d of %d image(s) failed verification (listed above)", res.Label, n, len(res.Images))
			}
			fmt.Printf("volume %s: all %d image(s) verified\n", res.Label, len(res.Images))
			return nil
		},
	}
	addConfigFlag(c, &file)
	return c
}
