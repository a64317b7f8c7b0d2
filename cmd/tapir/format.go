package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/report"
)

// addFormatFlag adds --format text|json to a command that prints a run
// report.
func addFormatFlag(c *cobra.Command, format *string) {
	c.Flags().StringVar(format, "format", "text", "how the report is printed: text (for people) or json (the same facts, for machines)")
}

func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return usageError{fmt.Errorf("--format %q: want text or json", format)}
	}
	return nil
}

// printJSON prints the JSON report of a run when asked for it, and passes
// the run's error on (the exit status still says whether every DLE is
// safe).
func printJSON(format string, rep *report.Run, runErr error) error {
	if format != "json" || rep == nil {
		return runErr
	}
	b, err := rep.JSON()
	if err != nil {
		return errors.Join(runErr, err)
	}
	os.Stdout.Write(append(b, '\n'))
	return runErr
}
