package main

import "github.com/spf13/cobra"

func newCACommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ca",
		Short: "manage the certificate authority that signs every tapir host",
	}
	c.AddCommand(newCAInitCommand(g), newCAIssueCommand(g))
	return c
}
