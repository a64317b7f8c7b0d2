package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newTapeCommand) }

// newTapeCommand is amtape: what is in the changer, and moving volumes.
func newTapeCommand(g *globals) *cobra.Command {
	var file string
	var explain bool
	c := &cobra.Command{
		Use:   "tape -c FILE (inventory | show | slot N | current | next [--explain] | eject | reset)",
		Short: "the changer: what each slot holds and which the next run writes; load, eject, reset",
		Long: `inventory  every slot: label, when written, and its state (next, reusable, in tapecycle,
           no-reuse, blank, foreign), without moving a volume
show       the same, after a robot has loaded each volume whose label it does not know yet
slot N     load slot N and read its label
current    what the drive holds
next       load the slot after the one in the drive (robot); with --explain, move nothing and
           say what the next run would write or overwrite, and why that is safe
eject      unload the drive
reset      a robot's drive unloaded to its slot, a single drive rewound`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError{fmt.Errorf("say what: inventory, show, slot N, current, next, eject or reset")}
			case args[0] == "slot" && len(args) != 2:
				return usageError{fmt.Errorf("slot needs the slot number")}
			case args[0] != "slot" && len(args) != 1:
				return usageError{fmt.Errorf("%s takes no argument", args[0])}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			deps := server.Deps{Log: g.logger(0)}
			var msg string
			switch args[0] {
			case "inventory", "show":
				slots, next, err := server.TapeInventory(ctx, cfg, deps, args[0] == "show")
				if err != nil {
					return err
				}
				return server.WriteTapeInventory(os.Stdout, slots, next)
			case "slot":
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return usageError{fmt.Errorf("slot %q: want a number from 1", args[1])}
				}
				msg, err = server.TapeLoad(ctx, cfg, deps, n)
				if err != nil {
					return err
				}
			case "current":
				if msg, err = server.TapeCurrent(ctx, cfg, deps); err != nil {
					return err
				}
			case "next":
				if explain {
					return server.ExplainNext(ctx, cfg, deps, os.Stdout)
				}
				if msg, err = server.TapeNext(ctx, cfg, deps); err != nil {
					return err
				}
			case "eject":
				if err := server.TapeEject(ctx, cfg, deps); err != nil {
					return err
				}
				msg = "ejected"
			case "reset":
				if msg, err = server.TapeReset(ctx, cfg, deps); err != nil {
					return err
				}
			default:
				return usageError{fmt.Errorf("unknown action %q: want inventory, show, slot N, current, next, eject or reset", args[0])}
			}
			fmt.Println(msg)
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().BoolVar(&explain, "explain", false, "with next: say what the next run would write or overwrite and why, moving nothing")
	return c
}
