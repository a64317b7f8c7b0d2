package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/rebuild"
	"github.com/tapir-backup/tapir/taper"
)

func init() { adminCommands = append(adminCommands, newAdminRebuildCommand) }

func newAdminRebuildCommand(g *globals) *cobra.Command {
	var file, outFile string
	var force bool
	var identity string
	c := &cobra.Command{
		Use:   "rebuild -c FILE [--force] [--out FILE]",
		Short: "recreate the catalog from the volumes in the changer (and the vaults' changers) and the holding disks alone",
		Long: `Reads the label of every slot, the header of every tape file, every payload (its
SHA-256 is checked) and the tar streams, and writes a new catalog: runs, volumes,
images, parts, frames, the file index and the directory listings. Images whose
parts are not all in the changer, or whose payload is damaged, are listed and left
out. The copy volumes of each vault ([vault] or [[vault]], disk changers) are read
too: an image whole on the changer's volumes is recorded there and each whole copy on
a vault's volumes as its copy; an image whole only on a vault's volumes (the first
set lost with the server) is recorded there. An existing catalog is never
overwritten: --force moves it aside first.
Stop the server (and any run) before rebuilding.

Encrypted images (docs/keys.md) come back without any key: their dumps and parts
from the headers, their SHA-256 checked over the bytes on the volumes. Their frames,
file index and listings are in the plaintext: give --identity FILE (an identity of
one of their recipients) to rebuild those too. Rebuilding again later with --force
--identity FILE fills them in.

The new catalog is an SQLite file: the configured one, or --out FILE. A catalog on
PostgreSQL is never rebuilt in place: rebuild with --out FILE, check it, then copy
it into an empty database (tapir admin catalog copy). The runs, images and volumes
rebuilt are recorded as this server's ([server] name).`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if cfg.Changer.Type != "disk" {
				return fmt.Errorf("changer type %q: this version rebuilds from a disk changer (vtapes) only", cfg.Changer.Type)
			}
			tt := cfg.Tapetype()
			ch, err := taper.NewDiskChanger(cfg.Changer.Path, cfg.Changer.Slots, int64(tt.Length), int64(tt.Blocksize), g.logger(0))
			if err != nil {
				return err
			}
			var disks []string
			for _, h := range cfg.Holding {
				disks = append(disks, h.Path)
			}
			out := c.OutOrStdout()
			// The vaults' copy volumes are read too: their copies go back
			// into the catalog, and an image whose own volumes are gone
			// comes back on its copy.
			var vaults []rebuild.Vault
			for i := range cfg.Vaults {
				v := &cfg.Vaults[i]
				if v.Changer.Type != "disk" {
					fmt.Fprintf(out, "Vault %s: changer type %q: this version rebuilds from disk changers only; its copies are not read.\n", v.Name, v.Changer.Type)
					continue
				}
				vt := cfg.VaultConfig(v).Tapetype()
				vch, err := taper.NewDiskChanger(v.Changer.Path, v.Changer.Slots, int64(vt.Length), int64(vt.Blocksize), g.logger(0))
				if err != nil {
					fmt.Fprintf(out, "Vault %s: %v; its copies are not read (put its volumes back and rebuild again with --force).\n", v.Name, err)
					continue
				}
				vaults = append(vaults, rebuild.Vault{Name: v.Name, Changer: vch})
			}
			var ids *crypt.Identities
			if identity != "" {
				if ids, err = crypt.ReadIdentities(identity); err != nil {
					return err
				}
			}
			target := cfg.Catalog
			if outFile != "" {
				target = outFile
			}
			res, err := rebuild.Rebuild(ctx, rebuild.Options{Catalog: target, Server: cfg.Server.Name, Force: force, Changer: ch, Vaults: vaults, Holding: disks,
				Org: cfg.Org, Loc: cfg.Location(), Log: g.logger(0), Progress: func(s string) { fmt.Fprintln(out, s) }, Identities: ids})
			if err != nil {
				return err
			}
			if res.MovedAside != "" {
				fmt.Fprintf(out, "The old catalog is now %s.\n", res.MovedAside)
			}
			fmt.Fprintf(out, "Rebuilt %s: %d runs, %d volumes, %d images (%d parts), %d index entries, %d copies.\n", config.MaskDSN(target), res.Runs, res.Volumes, res.Dumps, res.Parts, res.Files, res.Copies)
			if len(res.Skipped) > 0 {
				fmt.Fprintf(out, "Skipped, left by failed writes and recorded as failed files (%d):\n", len(res.Skipped))
				for _, s := range res.Skipped {
					fmt.Fprintf(out, "  %s\n", s)
				}
			}
			if res.Encrypted > 0 {
				if len(res.NoIndex) == 0 {
					fmt.Fprintf(out, "%d encrypted images: dumps, parts and file index rebuilt with %s.\n", res.Encrypted, identity)
				} else if identity == "" {
					fmt.Fprintf(out, "%d encrypted images: dumps and parts rebuilt, file index needs --identity FILE (run again with --force --identity FILE).\n", res.Encrypted)
				} else {
					fmt.Fprintf(out, "%d encrypted images: dumps and parts rebuilt; %d of them without file index, %s opens none of their recipients:\n", res.Encrypted, len(res.NoIndex), identity)
					for _, s := range res.NoIndex {
						fmt.Fprintf(out, "  %s\n", s)
					}
				}
			}
			if len(res.Problems) > 0 {
				fmt.Fprintf(out, "Left out (%d):\n", len(res.Problems))
				for _, p := range res.Problems {
					fmt.Fprintf(out, "  %s\n", p)
				}
				return fmt.Errorf("rebuild left %d volume(s) or image(s) out; see above", len(res.Problems))
			}
			if res.WrongKey > 0 {
				return fmt.Errorf("rebuild: the identity file %s opens none of the recipients of %d encrypted image(s) listed above: their file index is not rebuilt; rebuild again with --force --identity FILE naming a file that holds one of their keys (it may hold several)", identity, res.WrongKey)
			}
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&identity, "identity", "", "an age identity file (tapir key new) that opens encrypted images: their frames and file index are rebuilt too")
	c.Flags().BoolVar(&force, "force", false, "move an existing catalog aside (to FILE.before-rebuild-<time>) instead of refusing")
	c.Flags().StringVar(&outFile, "out", "", "write the new catalog to this SQLite file instead of the configured catalog (required when the catalog is on PostgreSQL)")
	return c
}
