package main

import (
	"github.com/spf13/cobra"
)

func newKeyPaperCommand(g *globals) *cobra.Command {
	var read, out string
	c := &cobra.Command{
		Use:   "paper FILE | paper --read PAPERFILE [--out FILE]",
		Short: "print an identity as a paper key to keep in a safe, or read a typed-back paper key",
		Long: `tapir key paper FILE prints the identity in FILE as a text block: the recipient and
fingerprint it opens, then the secret key in groups of five characters, each line
ending with four check digits. Print it and keep it in a safe. FILE must not be
readable by others (chmod 600).

tapir key paper --read PAPERFILE reads the numbered lines typed back from the paper
("-" reads standard input) and prints the identity file, or writes it to --out FILE
(mode 0600, never overwritten). A mistyped character is an error naming its line.`,
		RunE: func(c *cobra.Command, args []string) error {
			if read != "" {
				if err := cobra.NoArgs(c, args); err != nil {
					return usageError{err}
				}
				return runKeyPaperRead(read, out, c.InOrStdin(), c.OutOrStdout())
			}
			if out != "" {
				return usageError{errMsg("--out goes with --read")}
			}
			if err := exactArgs(1)(c, args); err != nil {
				return err
			}
			return runKeyPaper(args[0], c.OutOrStdout())
		},
	}
	c.Flags().StringVar(&read, "read", "", "read a typed-back paper key from this file (- for standard input)")
	c.Flags().StringVar(&out, "out", "", "with --read: write the identity to this file (mode 0600) instead of printing it")
	return c
}

func newKeyShowCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "print the recipient and fingerprint of the identity in FILE",
		Args:  exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runKeyShow(args[0], c.OutOrStdout())
		},
	}
}

type errMsg string

func (e errMsg) Error() string { return string(e) }
