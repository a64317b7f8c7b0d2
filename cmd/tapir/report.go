package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
	"github.com/tapir-backup/tapir/server"
)

func init() { extraCommands = append(extraCommands, newReportCommand) }

func newReportCommand(g *globals) *cobra.Command {
	var file, format string
	c := &cobra.Command{
		Use:   "report -c FILE [RUN] [--format text|json]",
		Short: "print the report of a past run from the catalog (RUN: a datestamp or its first digits; default the newest)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("at most one RUN, got %d arguments", len(args))}
			}
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("--format %q: want text or json", format)}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			want := ""
			if len(args) == 1 {
				want = args[0]
			}
			out, err := pastReport(c.Context(), cfg, want, format)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(out)
			return err
		},
	}
	addConfigFlag(c, &file)
	c.Flags().StringVar(&format, "format", "text", "text (as mailed) or json (for machines)")
	return c
}

// pastReport finds a run in the catalog (want: a datestamp, the first
// digits of one, or "" for the newest finished run) and renders its report.
func pastReport(ctx context.Context, cfg *config.Config, want, format string) ([]byte, error) {
	if _, err := os.Stat(cfg.Catalog); !config.IsPostgresDSN(cfg.Catalog) && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("catalog %s does not exist: no run has been recorded with %s yet", config.MaskDSN(cfg.Catalog), cfg.File)
	}
	cat, err := server.OpenCatalog(cfg)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	runs, err := cat.Runs(ctx) // newest first
	if err != nil {
		return nil, err
	}
	var match []catalog.Run
	for _, r := range runs {
		if (want == "" && !r.Finished.IsZero()) || (want != "" && strings.HasPrefix(r.Datestamp, want)) {
			match = append(match, r)
		}
	}
	switch {
	case len(match) == 0 && want == "":
		return nil, fmt.Errorf("catalog %s holds no finished run yet", config.MaskDSN(cfg.Catalog))
	case len(match) == 0:
		var recent []string
		for _, r := range runs[:min(5, len(runs))] {
			recent = append(recent, r.Datestamp)
		}
		return nil, fmt.Errorf("no run %s in catalog %s; the newest are: %s", want, config.MaskDSN(cfg.Catalog), strings.Join(recent, ", "))
	case want != "" && len(match) > 1:
		var names []string
		for _, r := range match[:min(10, len(match))] {
			names = append(names, r.Datestamp)
		}
		return nil, fmt.Errorf("run %s matches %d runs (%s): give more digits", want, len(match), strings.Join(names, ", "))
	}
	r := match[0]
	if r.Finished.IsZero() {
		return nil, fmt.Errorf("run %s is still running (or was killed and not yet cleaned up by the next run): it has no report yet", r.Datestamp)
	}
	out, err := report.Render([]byte(r.Report), format)
	if err != nil {
		return nil, fmt.Errorf("report of run %s: %w", r.Datestamp, err)
	}
	return out, nil
}
