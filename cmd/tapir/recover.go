package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/recover"
)

func newRecoverCommand(g *globals) *cobra.Command {
	var file string
	var all bool
	var req recover.Request
	c := &cobra.Command{
		Use:   "recover -c FILE --host H --path P (--file F | --all) --to DIR",
		Short: "restore one file from the newest image that holds it, or a whole DLE through its chain of images",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			need := []struct{ name, v string }{{"host", req.Host}, {"path", req.Path}, {"to", req.To}}
			if !all {
				need = append(need, struct{ name, v string }{"file", req.File})
			} else if req.File != "" {
				return usageError{fmt.Errorf("--all restores the whole DLE; drop --file")}
			}
			for _, f := range need {
				if f.v == "" {
					return usageError{fmt.Errorf("--%s is required", f.name)}
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			if all {
				return runRecoverTree(ctx, g, cfg, recover.TreeRequest{Host: req.Host, Path: req.Path, To: req.To, AsOf: req.AsOf})
			}
			res, err := recover.File(ctx, cfg, req, g.logger(0))
			if err != nil {
				return err
			}
			fmt.Printf("restored %s (%d bytes) from the level %d image of %s, volume %s file %d\n",
				res.Written, res.Size, res.Dump.Level, res.Dump.Datestamp, res.Volume, res.FileNo)
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&req.Host, "host", "", "the DLE's host")
	c.Flags().StringVar(&req.Path, "path", "", "the DLE's path")
	c.Flags().StringVar(&req.File, "file", "", "the file: absolute, or relative to the DLE's path")
	c.Flags().BoolVar(&all, "all", false, "restore the whole DLE: the full image, then each incremental in order, deletions applied")
	c.Flags().StringVar(&req.To, "to", "", "directory to restore into (the file keeps its path below the DLE)")
	c.Flags().StringVar(&req.AsOf, "date", "", "restore as of this datestamp (YYYYMMDDhhmmss), default newest")
	c.Flags().BoolVar(&req.Overwrite, "overwrite", false, "replace an existing local file")
	return c
}

func runRecoverTree(ctx context.Context, g *globals, cfg *config.Config, req recover.TreeRequest) error {
	res, err := recover.Tree(ctx, cfg, req, g.logger(0))
	if res != nil {
		for _, d := range res.Chain {
			fmt.Printf("image %s level %d\n", d.Datestamp, d.Level)
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("restored %s:%s into %s: %d entries from %d images, %d removed as deleted\n", req.Host, req.Path, req.To, res.Entries, len(res.Chain), len(res.Removed))
	return nil
}
