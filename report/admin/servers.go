package admin

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tapir-backup/tapir/index/catalog"
)

// Servers writes the tapir servers sharing the catalog: name, the host it
// last ran on, the address of its index server (where the others fetch
// its volumes' frames), when it last started a run, its runs and the
// volumes it owns. The catalog's own server is marked with a "*".
func Servers(ctx context.Context, w io.Writer, cat *catalog.Catalog) error {
	ss, err := cat.Servers(ctx)
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		_, err := fmt.Fprintf(w, "no tapir server has run with the catalog %s yet\n", cat.Path())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "server\thost\tindex address\tlast seen\truns\tvolumes")
	for _, s := range ss {
		name := s.Name
		if name == cat.ServerName() {
			name += " *"
		}
		seen := "-"
		if !s.Seen.IsZero() {
			seen = s.Seen.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", name, dash(s.Host), dash(s.IndexAddr), seen, s.Runs, s.Volumes)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
