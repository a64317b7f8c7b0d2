package planner

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// Explain writes the text of `tapir plan --explain`: a header, one line
// per DLE (by host and path) with its level, fallback, priority, sizes and
// the reason, then the delayed and skipped DLEs, the chains at risk, the
// notes, and the totals
// against the capacity of the run. The text is deterministic.
func (sc *Schedule) Explain(w io.Writer) error {
	cfg := sc.Config
	var b strings.Builder
	fmt.Fprintf(&b, "tapir plan for %s\n", sc.Now.Format("Mon 2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "dumpcycle %s, %d runs per cycle, %s per run (%s)\n\n",
		daysWord(cfg.Dumpcycle), cfg.Runspercycle, bytesize.Format(sc.Capacity), tapesOf(cfg))
	if sc.Degraded != "" {
		fmt.Fprintf(&b, "DEGRADED: no usable volume as things stand: %s\n", oneLine(sc.Degraded))
		b.WriteString("Unless a volume is ready by then, the night keeps its images on the holding disk, and a full that does not fit the holding reserve is dumped at its FALLBACK level instead (not at all without one).\n\n")
	}

	type row struct {
		host, path string
		cells      []string
	}
	var rows []row
	for _, e := range sc.Entries {
		fb := "-"
		if e.Fallback >= 0 {
			fb = itoa(e.Fallback)
		}
		lvl := itoa(e.Level)
		if e.Kind == KindDelayed {
			lvl += "*"
		}
		rows = append(rows, row{e.Host, e.Path, []string{e.Host + ":" + e.Path, lvl, fb, itoa(e.Priority), bytesize.Format(e.EstOrig), bytesize.Format(e.EstOut), e.Reason}})
	}
	for _, s := range sc.Skipped {
		rows = append(rows, row{s.Host, s.Path, []string{s.Host + ":" + s.Path, "-", "-", "-", "-", "-", "not dumped: " + s.Reason}})
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.path, b.path)) })
	t := [][]string{{"DLE", "LEVEL", "FALLBACK", "PRIO", "ORIG", "OUT", "WHY"}}
	for _, r := range rows {
		t = append(t, r.cells)
	}
	writeTable(&b, "", t, []bool{false, true, true, true, true, true, false})
	if len(rows) == 0 {
		b.WriteString("(no DLE)\n")
	}

	if len(sc.Delayed) > 0 {
		fmt.Fprintf(&b, "\ndelayed fulls (%d, marked * above; dumped at an incremental level instead):\n", len(sc.Delayed))
		var t [][]string
		for _, d := range sc.Delayed {
			t = append(t, []string{d.Host + ":" + d.Path, "level " + itoa(d.Level)})
		}
		writeTable(&b, "  ", t, []bool{false, false})
	}
	if len(sc.Skipped) > 0 {
		fmt.Fprintf(&b, "\nnot dumped tonight (%d):\n", len(sc.Skipped))
		for _, s := range sc.Skipped {
			fmt.Fprintf(&b, "  %s:%s\n", s.Host, s.Path)
		}
	}
	if len(sc.Chains) > 0 {
		fmt.Fprintf(&b, "\nchains at risk (%d; each DLE's newest chain is on a volume the next run must reuse):\n", len(sc.Chains))
		var t [][]string
		for _, c := range sc.Chains {
			what := "full tonight"
			if !c.Full {
				what = "STAYS AT RISK, no full tonight"
			}
			t = append(t, []string{c.Host + ":" + c.Path, what + ": " + c.Risk})
		}
		writeTable(&b, "  ", t, []bool{false, false})
	}
	if len(sc.Notes) > 0 {
		b.WriteString("\nnotes:\n")
		for _, n := range sc.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}

	b.WriteString("\n")
	fmt.Fprintf(&b, "tonight: %d %s %s + %d %s %s = %s with %s of headers, of %s (%s)\n",
		sc.Fulls, plural(sc.Fulls, "full", "fulls"), bytesize.Format(sc.FullOut),
		sc.Incrs, plural(sc.Incrs, "incremental", "incrementals"), bytesize.Format(sc.IncrOut),
		bytesize.Format(sc.Total), bytesize.Format(sc.Total-sc.FullOut-sc.IncrOut), bytesize.Format(sc.Capacity), percent(sc.Total, sc.Capacity))
	if sc.Needed > sc.Capacity {
		fmt.Fprintf(&b, "before fitting, the night needed %s: %s over\n", bytesize.Format(sc.Needed), bytesize.Format(sc.Needed-sc.Capacity))
	}
	fmt.Fprintf(&b, "balance: %s of fulls tonight, %s per run balanced (%s of fulls over %d runs)\n",
		bytesize.Format(sc.FullOut), bytesize.Format(sc.Balanced), bytesize.Format(sc.CycleFull), cfg.Runspercycle)
	_, err := io.WriteString(w, b.String())
	return err
}

// tapesOf describes the volumes of a run: "2 volumes of 400 GiB",
// "4 volumes of 400 GiB over 2 drives".
func tapesOf(cfg Config) string {
	s := fmt.Sprintf("%d volumes of %s", cfg.Runtapes, bytesize.Format(cfg.TapeLength))
	if cfg.Runtapes == 1 {
		s = "1 volume of " + bytesize.Format(cfg.TapeLength)
	}
	if d := min(cfg.Drives, cfg.Runtapes); d > 1 {
		s += fmt.Sprintf(" over %d drives", d)
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// writeTable writes rows as aligned columns separated by two spaces; right
// says which columns are right-aligned. The last column is not padded.
func writeTable(b *strings.Builder, indent string, rows [][]string, right []bool) {
	if len(rows) == 0 {
		return
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		line.WriteString(indent)
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			last := i == len(r)-1
			switch {
			case right[i]:
				line.WriteString(pad + c)
			case last:
				line.WriteString(c)
			default:
				line.WriteString(c + pad)
			}
			if !last {
				line.WriteString("  ")
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
}

// oneLine is s with its control characters (a newline from a changer's
// message) written as spaces: the explanation keeps one line per fact.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
