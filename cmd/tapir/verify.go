package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newVerifyCommand) }

func newVerifyCommand(g *globals) *cobra.Command {
	var file, identity string
	c := &cobra.Command{
		Use:   "verify -c FILE LABEL [--identity KEYFILE]",
		Short: "check every tape file of a volume: its header against its checksum and the catalog, its image read back (SHA-256, tar stream); exit 1 on any bad, missing or orphan file",
		Long: `Check every tape file of a volume: its header against its own checksum and the
catalog, then its image read back (SHA-256 against the catalog, the tar stream to the
end, the catalog's frame list against the payload), also the parts of an image that
are on other volumes. The volume is read in one
forward pass. verify first prints the volumes it needs, in the order it reads them
("The following tapes are needed: ..."). With a single drive it asks for each cartridge
that is not in the drive ("insert volume LABEL into /dev/nst0") and waits until it is
inserted; Ctrl-C cancels. Exits 1 on any bad, missing or orphan file.

Encrypted images are checked without any key over the bytes on the volume: the
SHA-256 of the ciphertext, the header's encryption and recipients, and the age header
at the start of the payload against the catalog; their verdict says that only the
ciphertext was checked. With --identity KEYFILE (tapir key new) they are also
decrypted whole, every chunk authenticated (a damaged one is named), and their tar
stream read to the end; a key that is not one of an image's recipients is BAD.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			var opt server.VerifyOptions
			if identity != "" {
				if opt.Identities, err = crypt.ReadIdentities(identity); err != nil {
					return err
				}
			}
			res, err := server.VerifyWith(ctx, cfg, args[0], opt, server.Deps{Log: g.logger(0),
				// The person at the terminal: the tapes needed and, with
				// a single drive, each cartridge to insert.
				Ask: func(msg string) { fmt.Println(msg) }})
			if err != nil {
				return err
			}
			skipped, keyless := 0, 0
			for _, im := range res.Images {
				if im.OK && im.Encrypted && opt.Identities == nil {
					keyless++
				}
				verdict := "OK     "
				switch {
				case im.FailedWrite:
					verdict = "SKIP   "
					skipped++
				case im.Orphan:
					verdict = "ORPHAN "
				case im.Missing:
					verdict = "MISSING"
				case !im.OK:
					verdict = "BAD    "
				}
				what := "?"
				if im.Host != "" {
					what = fmt.Sprintf("%s:%s level %d of %s part %d", im.Host, im.Path, im.Level, im.Datestamp, im.Part)
				}
				fmt.Printf("%s file %d: %s: %s\n", verdict, im.FileNo, what, im.Detail)
			}
			if keyless > 0 {
				fmt.Printf("%d encrypted tape file(s): only their ciphertext was checked (SHA-256, age header); give --identity KEYFILE to check their frames and tar streams\n", keyless)
			}
			if n := res.Bad(); n > 0 {
				orphans := ""
				if k := res.Orphans(); k > 0 {
					orphans = fmt.Sprintf(" (%d of them not in the catalog: run `tapir admin rebuild`)", k)
				}
				return fmt.Errorf("volume %s: %d of %d tape file(s) failed verification%s; listed above", res.Label, n, len(res.Images)-skipped, orphans)
			}
			if skipped > 0 {
				fmt.Printf("volume %s: all %d image(s) verified; %d tape file(s) left by failed writes skipped\n", res.Label, len(res.Images)-skipped, skipped)
				return nil
			}
			fmt.Printf("volume %s: all %d image(s) verified\n", res.Label, len(res.Images))
			return nil
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&identity, "identity", "", "an age identity file (tapir key new) to decrypt encrypted images and read their tar streams")
	return c
}
