package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newServerCommand) }

func newServerCommand(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "server -c FILE",
		Short: "run the backup server: the nightly run on its schedule, the index server (TCP 10082) and the metrics",
		Long: `server runs until stopped. SIGHUP reads the configuration again (a bad new file is
rejected and the old one kept). SIGTERM (or SIGINT) stops an idle server at once; a running night lets
the dumps in flight finish onto the holding disk, writes its report, then the server exits; a
second SIGTERM cancels at once.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			log := g.logger(0)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			term := make(chan os.Signal, 2)
			signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
			reload, stop := make(chan struct{}), make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for range hup {
					reload <- struct{}{}
				}
			}()
			go func() {
				<-term
				log.Info("stop requested: finishing the running night cleanly (signal again to cancel it)")
				close(stop)
				<-term
				cancel()
			}()
			return server.Daemon(ctx, server.DaemonOptions{ConfigFile: file, Deps: server.Deps{Log: log},
				Reload: reload, Stop: stop, Index: server.ServeIndex})
		},
	}
	addConfigFlag(c, &file)
	return c
}
