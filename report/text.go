package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// maxDetailLines is how many lines of one DLE's output the details
// section shows (amreport's limit).
const maxDetailLines = 100

// Text renders the report as plain text in the spirit of amreport: the
// subject on the first line, then the header, the volumes, FAILURE DUMP
// SUMMARY, STRANGE DUMP SUMMARY, PROBLEMS, STATISTICS, USAGE BY VOLUME, FAILED AND
// STRANGE DUMP DETAILS, NOTES and DUMP SUMMARY. Sections with nothing to
// say are left out (STATISTICS and DUMP SUMMARY never are). The output
// depends on r only, lines end in "\n" and carry no trailing blanks.
func (r *Run) Text() string {
	n := r.normalized()
	t := &textWriter{}
	t.line("%s", n.Subject())
	n.header(t)
	n.volumes(t)
	n.failures(t)
	n.strangeSummary(t)
	n.problems(t)
	n.statistics(t)
	n.usage(t)
	n.details(t)
	n.commands(t)
	n.notes(t)
	n.dumpSummary(t)
	return t.String()
}

type textWriter struct{ strings.Builder }

// line writes one line, trailing blanks removed.
func (t *textWriter) line(format string, a ...any) {
	t.WriteString(strings.TrimRight(fmt.Sprintf(format, a...), " "))
	t.WriteByte('\n')
}

func (t *textWriter) section(title string) {
	t.WriteByte('\n')
	t.line("%s", title)
}

func (r *Run) header(t *textWriter) {
	t.WriteByte('\n')
	if r.Hostname != "" {
		t.line("Hostname: %s", clean(r.Hostname))
	}
	t.line("Org     : %s", clean(r.Org))
	if r.Server != "" && r.Server != r.Org {
		t.line("Server  : %s", clean(r.Server))
	}
	t.line("Config  : %s", clean(r.Config))
	t.line("Date    : %s", r.date().Format("January 2, 2006"))
	run := fmt.Sprintf("Run     : %s (%s)", clean(r.Datestamp), clean(r.Kind))
	if !r.Start.IsZero() && !r.End.IsZero() {
		run += fmt.Sprintf(", %s to %s", r.Start.Format("15:04:05"), r.End.Format("15:04:05"))
		var phases []string
		for _, p := range []struct {
			name string
			d    time.Duration
		}{{"estimate", r.EstimateTime}, {"dump", r.DumpTime}, {"tape", r.TapeTime}} {
			if p.d > 0 {
				phases = append(phases, p.name+" "+hm(p.d))
			}
		}
		if len(phases) > 0 {
			run += " (" + strings.Join(phases, ", ") + ")"
		}
	}
	t.line("%s", run)
}

// volumes writes what was written where, what stays on the holding disk
// and what the next run needs.
func (r *Run) volumes(t *textWriter) {
	t.WriteByte('\n')
	if r.Aborted != "" {
		t.line("*** THE RUN WAS ABORTED: %s", clean(r.Aborted))
	}
	for _, x := range r.Refused {
		t.line("*** REFUSED TO OVERWRITE %s: nothing newer could restore it; insert a new volume, or see `tapir tape next -c %s --explain`", clean(x), clean(r.Config))
	}
	if d := r.Degraded; d != nil {
		t.line("*** NO VOLUME WAS WRITTEN: %s", clean(d.Reason))
		if d.Expected != "" && d.Expected != d.Insert {
			t.line("*** The run expected %s.", clean(d.Expected))
		}
	}
	if len(r.Volumes) > 0 {
		var vs []string
		for _, v := range r.Volumes {
			var what []string
			if v.Slot > 0 {
				what = append(what, fmt.Sprintf("slot %d", v.Slot))
			}
			if v.Drive != "" {
				what = append(what, "by "+clean(v.Drive))
			}
			if v.New {
				what = append(what, "newly labelled")
			}
			s := clean(v.Label)
			if len(what) > 0 {
				s += " (" + strings.Join(what, ", ") + ")"
			}
			vs = append(vs, s)
		}
		noun := "volume"
		if len(vs) > 1 {
			noun = "volumes"
		}
		t.line("These dumps were to %s %s.", noun, joinAnd(vs))
	} else if r.Degraded == nil {
		t.line("No volume was written.")
	}

	// Images of earlier runs put on a volume tonight, by run.
	flushed := map[string][]DLE{}
	for _, d := range r.DLEs {
		if d.Flushed != "" && onVolume(d) {
			flushed[d.Flushed] = append(flushed[d.Flushed], d)
		}
	}
	for _, ds := range sortedKeys(flushed) {
		t.line("Flushed from the holding disk: %s of run %s (%s).", count(len(flushed[ds]), "image"), clean(ds), bytesize.Format(outSum(flushed[ds])))
	}

	var held []DLE
	for _, d := range sortedDLEs(r.DLEs) {
		if d.Status == StatusHolding {
			held = append(held, d)
		}
	}
	if r.Degraded != nil {
		if len(held) == 0 {
			t.line("No image could be kept on the holding disk.")
		} else {
			t.line("Instead, %s (%s) stay on the holding disk, to go to a volume later:", count(len(held), "image"), bytesize.Format(outSum(held)))
			for _, d := range held {
				s := fmt.Sprintf("  %s %s lev %d", clean(d.Host), clean(d.Path), d.Level)
				if d.Flushed != "" {
					s += ", dumped by run " + clean(d.Flushed)
				}
				if d.Demoted != "" {
					s += " (" + clean(d.Demoted) + ")"
				}
				t.line("%s", s)
			}
		}
		switch {
		case r.Degraded.Insert != "":
			t.line("Insert %s before the next run; the images on the holding disk go to it with `tapir flush -c %s`, or with the next run when autoflush is on.",
				clean(r.Degraded.Insert), clean(r.Config))
		case len(held) > 0:
			t.line("Once a volume is ready, the images on the holding disk go to it with `tapir flush -c %s`, or with the next run when autoflush is on.", clean(r.Config))
		}
	} else if len(held) > 0 {
		t.line("%s (%s) stay on the holding disk, not on a volume: run `tapir flush -c %s` once a volume is ready, or let the next run flush them (autoflush).",
			capitalize(count(len(held), "image")), bytesize.Format(outSum(held)), clean(r.Config))
	}

	switch len(r.NextVolumes) {
	case 0:
	case 1:
		t.line("The next volume tapir expects to use is: %s.", clean(r.NextVolumes[0]))
	default:
		var vs []string
		for _, v := range r.NextVolumes {
			vs = append(vs, clean(v))
		}
		t.line("The next %d volumes tapir expects to use are: %s.", len(vs), strings.Join(vs, ", "))
	}
}

// failures writes FAILURE DUMP SUMMARY: what failed, stays on the holding
// disk only, or was delayed, and every retried attempt.
func (r *Run) failures(t *textWriter) {
	type entry struct{ host, disk, rest string }
	var es []entry
	for _, d := range sortedDLEs(r.DLEs) {
		h, p := clean(d.Host), clean(d.Path)
		for _, a := range d.Retries {
			es = append(es, entry{h, p, fmt.Sprintf("lev %d  FAILED%s", a.Level, bracket(a.Reason))})
		}
		for _, rs := range d.Resumes {
			agent := ""
			if rs.AgentSent >= 0 {
				agent = fmt.Sprintf(", %s written by the agent past it", bytesize.Format(rs.AgentSent))
			}
			es = append(es, entry{h, p, fmt.Sprintf("lev %d  RESUMED after %d frames (%s kept, %s received again%s)%s", rs.Level, rs.Frames,
				bytesize.Format(rs.Bytes), bytesize.Format(rs.Resent), agent, bracket(rs.Reason))})
		}
		switch d.Status {
		case StatusFailed, StatusHolding, StatusDelayed:
			es = append(es, entry{h, p, fmt.Sprintf("lev %d  %s%s", d.Level, clean(d.Status), bracket(d.Reason))})
		default:
			if len(d.Retries) > 0 {
				es = append(es, entry{h, p, fmt.Sprintf("lev %d  was successfully retried", d.Level)})
			}
		}
	}
	if len(es) == 0 {
		return
	}
	t.section("FAILURE DUMP SUMMARY:")
	hw, dw := 0, 0
	for _, e := range es {
		hw, dw = max(hw, width(e.host)), max(dw, width(e.disk))
	}
	for _, e := range es {
		t.line("  %s %s %s", pad(e.host, hw), pad(e.disk, dw), e.rest)
	}
}

// problems writes PROBLEMS: what the run found wrong beyond its DLEs
// (Run.Problems), one line each.
func (r *Run) problems(t *textWriter) {
	if len(r.Problems) == 0 {
		return
	}
	t.section("PROBLEMS:")
	for _, p := range r.Problems {
		if p.Where == "" {
			t.line("  %s", clean(p.What))
		} else {
			t.line("  %s: %s", clean(p.Where), clean(p.What))
		}
	}
}

func (r *Run) strangeSummary(t *textWriter) {
	var ds []DLE
	for _, d := range sortedDLEs(r.DLEs) {
		if d.Status == StatusStrange {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return
	}
	t.section("STRANGE DUMP SUMMARY:")
	hw, dw := 0, 0
	for _, d := range ds {
		hw, dw = max(hw, width(clean(d.Host))), max(dw, width(clean(d.Path)))
	}
	for _, d := range ds {
		why := " (see below)"
		if len(d.Strange) == 0 {
			why = bracket(d.Reason)
		}
		t.line("  %s %s lev %d  STRANGE%s", pad(clean(d.Host), hw), pad(clean(d.Path), dw), d.Level, why)
	}
}

// tally is one column of STATISTICS.
type tally struct {
	dumped, taped, parts        int
	dumpedBy, tapedBy, partsBy  map[int]int
	orig, out, tapeBytes        int64
	dumpTime, tapeTime, starved time.Duration
	usedLength                  int64
}

func newTally() *tally {
	return &tally{dumpedBy: map[int]int{}, tapedBy: map[int]int{}, partsBy: map[int]int{}}
}

func (x *tally) add(d DLE) {
	if d.Flushed == "" && (d.Status == StatusOK || d.Status == StatusStrange || d.Status == StatusHolding) {
		x.dumped++
		x.dumpedBy[d.Level]++
		x.orig += d.OrigSize
		x.out += d.OutSize
		x.dumpTime += d.DumpTime
	}
	if onVolume(d) {
		x.taped++
		x.tapedBy[d.Level]++
	}
	for _, p := range d.Parts {
		x.parts++
		x.partsBy[d.Level]++
		x.tapeBytes += p.Bytes
	}
	if len(d.Parts) > 0 {
		x.tapeTime += d.TapeTime
		x.starved += d.Starved
	}
}

func (r *Run) statistics(t *textWriter) {
	total, full, incr := newTally(), newTally(), newTally()
	for _, d := range r.DLEs {
		total.add(d)
		if d.Level == 0 {
			full.add(d)
		} else {
			incr.add(d)
		}
	}
	var length int64
	known := len(r.Volumes) > 0
	for _, v := range r.Volumes {
		if v.Length <= 0 {
			known = false
		}
		length += v.Length
	}
	cols := []*tally{total, full, incr}
	t.section("STATISTICS:")
	const lw = 23
	t.line("%*s %10s %10s %10s  %s", lw, "", "Total", "Full", "Incr.", "Level:#")
	t.line("%*s %10s %10s %10s  %s", lw, "", "--------", "--------", "--------", "--------")
	row := func(label string, f func(x *tally) string, levels func(x *tally) map[int]int) {
		s := fmt.Sprintf("%-*s", lw, label)
		for _, c := range cols {
			s += fmt.Sprintf(" %10s", f(c))
		}
		if levels != nil {
			s += "  " + byLevel(levels(incr))
		}
		t.line("%s", s)
	}
	only := func(label, v string) { t.line("%-*s %10s", lw, label, v) }

	only("Estimate Time (hrs:min)", hm(r.EstimateTime))
	runTime := "--"
	if !r.Start.IsZero() && !r.End.IsZero() && !r.End.Before(r.Start) {
		runTime = hm(r.End.Sub(r.Start))
	}
	only("Run Time (hrs:min)", runTime)
	row("Dump Time (hrs:min)", func(x *tally) string { return hm(x.dumpTime) }, nil)
	row("Output Size (MiB)", func(x *tally) string { return mib(x.out) }, nil)
	row("Original Size (MiB)", func(x *tally) string { return mib(x.orig) }, nil)
	row("Avg Compressed Size (%)", func(x *tally) string { return pct(x.out, x.orig) }, nil)
	row("DLEs Dumped", func(x *tally) string { return strconv.Itoa(x.dumped) }, func(x *tally) map[int]int { return x.dumpedBy })
	row("DLEs Taped", func(x *tally) string { return strconv.Itoa(x.taped) }, func(x *tally) map[int]int { return x.tapedBy })
	row("Parts Taped", func(x *tally) string { return strconv.Itoa(x.parts) }, func(x *tally) map[int]int { return x.partsBy })
	row("Avg Dump Rate (KiB/s)", func(x *tally) string { return kps(x.out, x.dumpTime) }, nil)
	row("Tape Time (hrs:min)", func(x *tally) string { return hm(x.tapeTime) }, nil)
	row("Avg Tape Rate (KiB/s)", func(x *tally) string { return kps(x.tapeBytes, x.tapeTime) }, nil)
	row("Drive Starved (s)", func(x *tally) string { return secs(x.starved) }, nil)
	row("Tape Used (%)", func(x *tally) string {
		if !known {
			return "--"
		}
		return pct(x.tapeBytes, length)
	}, nil)
}

// usage writes USAGE BY VOLUME.
func (r *Run) usage(t *textWriter) {
	if len(r.Volumes) == 0 {
		return
	}
	dles := map[string]int{}
	for _, d := range r.DLEs {
		seen := map[string]bool{}
		for _, p := range d.Parts {
			if !seen[p.Volume] {
				seen[p.Volume] = true
				dles[p.Volume]++
			}
		}
	}
	rows := [][]string{{"Label", "Time", "Size", "%", "DLEs", "Parts", "Starved"}}
	for _, v := range r.Volumes {
		used := "--"
		if v.Length > 0 {
			used = pct(v.Bytes, v.Length)
		}
		rows = append(rows, []string{clean(v.Label), hm(v.Time), bytesize.Format(v.Bytes), used,
			strconv.Itoa(dles[v.Label]), strconv.Itoa(v.Files), secs(v.Starved) + " s"})
	}
	t.section("USAGE BY VOLUME:")
	table(t, "  ", rows, 1)
	r.driveUsage(t)
}

// driveUsage writes USAGE BY DRIVE when several drives wrote: each
// drive's volumes, time in the drive, bytes, rate and time starved.
func (r *Run) driveUsage(t *textWriter) {
	type drive struct {
		vols          []string
		bytes         int64
		time, starved time.Duration
	}
	by := map[string]*drive{}
	var order []string
	for _, v := range r.Volumes {
		if v.Drive == "" {
			continue
		}
		d := by[v.Drive]
		if d == nil {
			d = &drive{}
			by[v.Drive] = d
			order = append(order, v.Drive)
		}
		d.vols = append(d.vols, clean(v.Label))
		d.bytes += v.Bytes
		d.time += v.Time
		d.starved += v.Starved
	}
	if len(order) == 0 {
		return
	}
	rows := [][]string{{"Drive", "Volumes", "Time", "Size", "KiB/s", "Starved"}}
	for _, name := range order {
		d := by[name]
		rows = append(rows, []string{clean(name), strings.Join(d.vols, " "), hm(d.time), bytesize.Format(d.bytes), kps(d.bytes, d.time), secs(d.starved) + " s"})
	}
	t.section("USAGE BY DRIVE:")
	table(t, "  ", rows, 1)
}

// details writes FAILED AND STRANGE DUMP DETAILS: the lines of every DLE
// that printed any, at most maxDetailLines each.
func (r *Run) details(t *textWriter) {
	var ds []DLE
	for _, d := range sortedDLEs(r.DLEs) {
		if len(d.Strange) > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return
	}
	t.section("FAILED AND STRANGE DUMP DETAILS:")
	for i, d := range ds {
		if i > 0 {
			t.WriteByte('\n')
		}
		t.line("/-- %s %s lev %d %s", clean(d.Host), clean(d.Path), d.Level, clean(d.Status))
		for _, l := range d.Strange[:min(len(d.Strange), maxDetailLines)] {
			t.line("| %s", clean(l))
		}
		if extra := len(d.Strange) - maxDetailLines; extra > 0 {
			t.line("\\-------- (%s not shown)", count(extra, "more line"))
		} else {
			t.line("\\--------")
		}
	}
}

// commands writes COMMANDS RUN ON CLIENTS: for every DLE whose agent ran
// commands for its dump (hooks, snapshot, a command DLE's command), each
// with its exit status, time and the lines it printed (at most
// maxDetailLines each), and the snapshot the image was read from.
func (r *Run) commands(t *textWriter) {
	var ds []DLE
	for _, d := range sortedDLEs(r.DLEs) {
		if len(d.Hooks) > 0 || d.Snapshot != "" {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return
	}
	t.section("COMMANDS RUN ON CLIENTS:")
	for i, d := range ds {
		if i > 0 {
			t.WriteByte('\n')
		}
		t.line("/-- %s %s lev %d %s", clean(d.Host), clean(d.Path), d.Level, clean(d.Status))
		if d.Snapshot != "" {
			t.line("| read from snapshot %s", clean(d.Snapshot))
		}
		nw := 0
		for _, h := range d.Hooks {
			nw = max(nw, width(clean(h.Name)))
		}
		for _, h := range d.Hooks {
			verdict := fmt.Sprintf("exit %d", h.Exit)
			if h.Error != "" {
				verdict = clean(h.Error)
			}
			t.line("| %s %s, %.1fs: %s", pad(clean(h.Name), nw), verdict, h.Seconds, clean(h.Command))
			lines := strings.Split(strings.TrimRight(h.Output, "\n"), "\n")
			if h.Output == "" {
				lines = nil
			}
			for _, l := range lines[:min(len(lines), maxDetailLines)] {
				t.line("|   %s", clean(l))
			}
			if extra := len(lines) - maxDetailLines; extra > 0 {
				t.line("|   (%s not shown)", count(extra, "more line"))
			}
		}
		t.line("\\--------")
	}
}

func (r *Run) notes(t *textWriter) {
	var ns []string
	for _, p := range r.Preflight {
		if p.Where == "" {
			ns = append(ns, "check: "+clean(p.What))
		} else {
			ns = append(ns, "check: "+clean(p.Where)+": "+clean(p.What))
		}
	}
	for _, n := range r.Notes {
		ns = append(ns, clean(n))
	}
	if r.Degraded == nil {
		for _, d := range sortedDLEs(r.DLEs) {
			if d.Demoted != "" {
				ns = append(ns, fmt.Sprintf("planner: %s %s lev %d: %s", clean(d.Host), clean(d.Path), d.Level, clean(d.Demoted)))
			}
		}
	}
	for _, d := range sortedDLEs(r.DLEs) {
		for _, w := range d.Warnings {
			ns = append(ns, fmt.Sprintf("warning: %s %s lev %d: %s", clean(d.Host), clean(d.Path), d.Level, clean(w)))
		}
	}
	if len(ns) == 0 {
		return
	}
	t.section("NOTES:")
	for _, n := range ns {
		t.line("  %s", n)
	}
}

// dumpSummary writes DUMP SUMMARY, one row per DLE, every column as wide
// as its widest cell.
func (r *Run) dumpSummary(t *textWriter) {
	t.section("DUMP SUMMARY:")
	rows := [][]string{{"HOSTNAME", "DISK", "L", "ORIG-KiB", "OUT-KiB", "COMP%", "DUMP-MM:SS", "KiB/s", "TAPE-MM:SS", "KiB/s"}}
	words := map[int]string{} // row -> status word in place of the numbers
	for _, d := range sortedDLEs(r.DLEs) {
		lead := []string{clean(d.Host), clean(d.Path), strconv.Itoa(d.Level)}
		switch d.Status {
		case StatusOK, StatusStrange, StatusHolding:
		default:
			words[len(rows)] = clean(d.Status)
			rows = append(rows, lead)
			continue
		}
		dumpT, dumpR := mmss(d.DumpTime), kps(d.OutSize, d.DumpTime)
		if d.Flushed != "" {
			dumpT, dumpR = "FLUSHED", ""
		}
		var taped int64
		for _, p := range d.Parts {
			taped += p.Bytes
		}
		tapeT, tapeR := mmss(d.TapeTime), kps(taped, d.TapeTime)
		if d.Status == StatusHolding {
			tapeT, tapeR = "HOLDING", ""
		}
		rows = append(rows, append(lead, kib(d.OrigSize), kib(d.OutSize), pct(d.OutSize, d.OrigSize), dumpT, dumpR, tapeT, tapeR))
	}
	w := widths(rows)
	dash := make([]string, len(w))
	for i := range w {
		dash[i] = strings.Repeat("-", w[i])
	}
	for i, row := range rows {
		if word, ok := words[i]; ok {
			t.line("%s %s", formatRow(row, w, 2), word)
			continue
		}
		t.line("%s", formatRow(row, w, 2))
		if i == 0 {
			t.line("%s", strings.Join(dash, " "))
		}
	}
	if len(rows) == 1 {
		t.line("(no DLE in this run)")
	}
}

// table writes rows (the first is the header) with columns sized to their
// content; the first left columns are left-aligned, the rest right-aligned.
func table(t *textWriter, indent string, rows [][]string, left int) {
	w := widths(rows)
	for _, row := range rows {
		t.line("%s%s", indent, formatRow(row, w, left))
	}
}

func widths(rows [][]string) []int {
	var w []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(w) {
				w = append(w, 0)
			}
			w[i] = max(w[i], width(c))
		}
	}
	return w
}

func formatRow(row []string, w []int, left int) string {
	cells := make([]string, len(row))
	for i, c := range row {
		if i < left {
			cells[i] = pad(c, w[i])
		} else {
			cells[i] = strings.Repeat(" ", w[i]-width(c)) + c
		}
	}
	return strings.TrimRight(strings.Join(cells, " "), " ")
}

// width is the number of runes of s (the report is read in a fixed-width
// font; wide characters are rare in host and path names).
func width(s string) int { return len([]rune(s)) }

func pad(s string, w int) string { return s + strings.Repeat(" ", max(0, w-width(s))) }

// sortedDLEs orders DLEs by host, path, then flushed images (oldest run
// first) before tonight's dump.
func sortedDLEs(ds []DLE) []DLE {
	out := append([]DLE(nil), ds...)
	key := func(d DLE) string {
		if d.Flushed == "" {
			return "~"
		}
		return d.Flushed
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return key(a) < key(b)
	})
	return out
}

// onVolume reports whether the whole image is on a volume.
func onVolume(d DLE) bool {
	return (d.Status == StatusOK || d.Status == StatusStrange) && len(d.Parts) > 0
}

func outSum(ds []DLE) int64 {
	var n int64
	for _, d := range ds {
		n += d.OutSize
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func byLevel(m map[int]int) string {
	var levels []int
	for l, n := range m {
		if n > 0 {
			levels = append(levels, l)
		}
	}
	sort.Ints(levels)
	var s []string
	for _, l := range levels {
		s = append(s, fmt.Sprintf("%d:%d", l, m[l]))
	}
	return strings.Join(s, " ")
}

// bracket is " [reason]", or "" without a reason.
func bracket(reason string) string {
	if reason == "" {
		return ""
	}
	return " [" + clean(reason) + "]"
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// hm is hours:minutes, rounded to the minute.
func hm(d time.Duration) string {
	m := int64(d.Round(time.Minute) / time.Minute)
	return fmt.Sprintf("%d:%02d", m/60, m%60)
}

// mmss is minutes:seconds, rounded to the second.
func mmss(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func kib(n int64) string { return strconv.FormatInt(n/1024, 10) }

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func pct(a, b int64) string {
	if b <= 0 {
		return "--"
	}
	return fmt.Sprintf("%.1f", 100*float64(a)/float64(b))
}

// kps is KiB per second, "--" when no time was measured.
func kps(n int64, d time.Duration) string {
	if d <= 0 {
		return "--"
	}
	return fmt.Sprintf("%.1f", float64(n)/1024/d.Seconds())
}

// secs is seconds with one decimal: "0.0", "12.3".
func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
