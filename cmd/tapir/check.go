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

func init() { extraCommands = append(extraCommands, newCheckCommand) }

func newCheckCommand(g *globals) *cobra.Command {
	var file, identity string
	var mailIt, serverOnly bool
	c := &cobra.Command{
		Use:   "check -c FILE [--mail] [--server-only] [--identity KEYFILE]",
		Short: "check that the next run can work (amcheck): directories, holding space, the next volume, certificates, catalog, every client and DLE, mail",
		Long: `check looks at everything the next run needs and prints one line per problem.
Exit status: 0 when all is well, 1 when there are problems (2: bad usage or configuration).
With --mail the problems are also mailed to mailto (nothing is mailed when there are none).
With --identity KEYFILE (an age identity, tapir key new) it proves that the key opens the newest
image of every encrypted DLE: the key is unwrapped from the image's age header, and its first and
last chunks are decrypted when the image is on the holding disk or in a disk or robot changer (a
tape a person would have to insert is not asked for). The key file must be readable by its owner only.
It warns when the age recipients of a DLE changed since its last full.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			deps := server.Deps{Log: g.logger(0)}
			rep := server.Check(ctx, cfg, deps, server.CheckOptions{Clients: !serverOnly, Mail: true, Identity: identity})
			fmt.Print(rep.Text())
			if mailIt && len(rep.Problems) > 0 {
				if err := server.MailCheck(ctx, cfg, rep, deps); err != nil {
					return err
				}
			}
			if len(rep.Problems) > 0 {
				return fmt.Errorf("%d problem(s) found (listed above)", len(rep.Problems))
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().BoolVar(&mailIt, "mail", false, "mail the problems to mailto")
	c.Flags().BoolVar(&serverOnly, "server-only", false, "do not contact the client agents")
	c.Flags().StringVar(&identity, "identity", "", "an age identity file: prove it opens the newest image of every encrypted DLE")
	return c
}
