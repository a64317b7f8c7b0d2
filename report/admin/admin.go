package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/bytesize"
)

// Find writes every image of host (of one DLE when path is not ""), newest
// first: one line per part for images on volumes, one line for images on
// the holding disk and for failed attempts. When images of other tapir
// servers sharing the catalog are among them, a last column names the
// server of every image. An unknown host or DLE is an error that says
// which hosts and DLEs there are.
func Find(ctx context.Context, w io.Writer, cat *catalog.Catalog, host, path string) error {
	dumps, err := cat.Dumps(ctx, host, path)
	if err != nil {
		return err
	}
	if len(dumps) == 0 {
		return notFound(ctx, cat, host, path)
	}
	servers := false
	for _, d := range dumps {
		servers = servers || (d.Server != "" && d.Server != cat.ServerName())
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "date\thost\tpath\tlevel\tstatus\tvolume\tfile\tpart\tstored"
	if servers {
		head += "\tserver"
	}
	fmt.Fprintln(tw, head)
	for _, d := range dumps {
		parts, err := cat.Parts(ctx, d.ID)
		if err != nil {
			return err
		}
		tail := "\n"
		if servers {
			tail = "\t" + cmp.Or(d.Server, "-") + "\n"
		}
		status := d.Status
		if len(parts) == 0 {
			where := "-"
			if d.Status == catalog.DumpHolding {
				where = "(holding disk)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t-\t-\t%s", stamp(d.Datestamp), d.Host, d.Path, d.Level, status, where, bytesize.Format(d.PayloadSize))
			fmt.Fprint(tw, tail)
			continue
		}
		for _, p := range parts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d/%d\t%s", stamp(d.Datestamp), d.Host, d.Path, d.Level, status, p.Volume, p.FileNo, p.Part, len(parts), bytesize.Format(p.Length))
			fmt.Fprint(tw, tail)
		}
	}
	return tw.Flush()
}

func notFound(ctx context.Context, cat *catalog.Catalog, host, path string) error {
	all, err := cat.Dumps(ctx, host, "")
	if err != nil {
		return err
	}
	if path != "" && len(all) > 0 {
		seen := map[string]bool{}
		var dles []string
		for _, d := range all {
			if !seen[d.Path] {
				seen[d.Path] = true
				dles = append(dles, d.Path)
			}
		}
		return fmt.Errorf("no image of %s:%s is in the catalog %s; %s has images of %s", host, path, cat.Path(), host, strings.Join(dles, ", "))
	}
	hosts, err := cat.Hosts(ctx)
	if err != nil {
		return err
	}
	known := "none yet"
	if len(hosts) > 0 {
		known = strings.Join(hosts, ", ")
	}
	return fmt.Errorf("no image of host %s is in the catalog %s; hosts with images: %s", host, cat.Path(), known)
}

// Info writes the history of one DLE with average sizes, rates and
// compression for fulls and incrementals.
func Info(ctx context.Context, w io.Writer, cat *catalog.Catalog, host, path string) error {
	if path == "" {
		return errors.New("info needs a host and a DLE path")
	}
	dumps, err := cat.Dumps(ctx, host, path)
	if err != nil {
		return err
	}
	if len(dumps) == 0 {
		return notFound(ctx, cat, host, path)
	}
	forced, err := cat.Forced(ctx)
	if err != nil {
		return err
	}
	isForced := false
	for _, f := range forced {
		if f.Host == host && f.Path == path {
			isForced = true
		}
	}
	type agg struct {
		n                 int
		orig, stored      int64
		secs              float64
		lastDate, lastVol string
	}
	var full, incr agg
	for _, d := range dumps {
		if d.Status != catalog.DumpGood && d.Status != catalog.DumpHolding {
			continue
		}
		a := &incr
		if d.Level == 0 {
			a = &full
		}
		a.n++
		a.orig += d.OrigSize
		a.stored += d.PayloadSize
		a.secs += duration(d).Seconds()
		if a.lastDate == "" {
			a.lastDate = stamp(d.Datestamp)
			a.lastVol = volumesOf(ctx, cat, d)
		}
	}
	fmt.Fprintf(w, "%s:%s\n", host, path)
	line := func(what string, a agg) {
		if a.n == 0 {
			fmt.Fprintf(w, "  %-13s none\n", what+":")
			return
		}
		rate := "-"
		if a.secs > 0 {
			rate = bytesize.Format(int64(float64(a.stored)/a.secs)) + "/s"
		}
		fmt.Fprintf(w, "  %-13s %d, average %s stored of %s (%s), %s; newest %s on %s\n", what+":", a.n,
			bytesize.Format(a.stored/int64(a.n)), bytesize.Format(a.orig/int64(a.n)), ratio(a.stored, a.orig), rate, a.lastDate, a.lastVol)
	}
	line("fulls", full)
	line("incrementals", incr)
	f := "no"
	if isForced {
		f = "yes: the next run dumps a full (tapir admin unforce cancels)"
	}
	fmt.Fprintf(w, "  %-13s %s\n\n", "forced:", f)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "date\tlevel\tstatus\toriginal\tstored\tratio\ttime\trate\tvolumes")
	for _, d := range dumps {
		t := duration(d)
		rate, tm := "-", "-"
		if t > 0 {
			tm = t.Round(time.Second).String()
			rate = bytesize.Format(int64(float64(d.PayloadSize)/t.Seconds())) + "/s"
		}
		vols := volumesOf(ctx, cat, d)
		if d.Status == catalog.DumpFailed {
			vols = "failed: " + firstLine(d.Error)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(d.Datestamp), d.Level, d.Status, bytesize.Format(d.OrigSize), bytesize.Format(d.PayloadSize), ratio(d.PayloadSize, d.OrigSize), tm, rate, vols)
	}
	return tw.Flush()
}

func duration(d catalog.Dump) time.Duration {
	if d.Started.IsZero() || d.Finished.IsZero() || d.Finished.Before(d.Started) {
		return 0
	}
	return d.Finished.Sub(d.Started)
}

func volumesOf(ctx context.Context, cat *catalog.Catalog, d catalog.Dump) string {
	parts, err := cat.Parts(ctx, d.ID)
	if err != nil || len(parts) == 0 {
		if d.Status == catalog.DumpHolding {
			return "(holding disk)"
		}
		return "-"
	}
	var vs []string
	for _, p := range parts {
		vs = append(vs, fmt.Sprintf("%s:%d", p.Volume, p.FileNo))
	}
	return strings.Join(vs, " ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func stamp(ds string) string {
	t, err := time.Parse("20060102150405", ds)
	if err != nil {
		return ds
	}
	return t.Format("2006-01-02 15:04:05")
}

func ratio(stored, orig int64) string {
	if orig <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(stored)/float64(orig))
}
