package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Status of one DLE in a run.
const (
	StatusOK      = "OK"
	StatusStrange = "STRANGE"
	StatusFailed  = "FAILED"
	StatusHolding = "HOLDING" // dumped, safe in holding, not yet on a volume
)

// Run is everything the report says about one night.
type Run struct {
	Org        string
	Config     string
	Datestamp  string
	Start, End time.Time
	Volumes    []Volume // volumes written, in order
	NextVolume string   // what the next run expects, in words
	DLEs       []DLE
	Notes      []string
}

// Volume is one volume used by the run.
type Volume struct {
	Label string
	Slot  int
	Files int
	Bytes int64
	New   bool // labelled by this run
}

// DLE is the outcome of one DLE.
type DLE struct {
	Host, Path string
	Level      int
	Status     string
	Reason     string   // why it failed (one line)
	Strange    []string // the lines that made it strange
	Files      int64
	OrigSize   int64 // tar bytes
	OutSize    int64 // payload bytes
	DumpTime   time.Duration
	TapeTime   time.Duration
	Volume     string
	FileNo     int64
	Flushed    string // datestamp of the earlier run that dumped it; "" when dumped by this run
}

// Failed reports whether any DLE failed.
func (r *Run) Failed() bool {
	for _, d := range r.DLEs {
		if d.Status == StatusFailed {
			return true
		}
	}
	return false
}

// Strange reports whether any DLE is strange or left in holding.
func (r *Run) Strange() bool {
	for _, d := range r.DLEs {
		if d.Status == StatusStrange || d.Status == StatusHolding {
			return true
		}
	}
	return false
}

// Subject is the mail subject line, flagged FAIL or STRANGE.
func (r *Run) Subject() string {
	flag := ""
	switch {
	case r.Failed():
		flag = "FAIL: "
	case r.Strange():
		flag = "STRANGE: "
	}
	return fmt.Sprintf("%s %sTAPIR MAIL REPORT FOR %s", r.Org, flag, r.Start.Format("January 2, 2006"))
}

// Text renders the report.
func (r *Run) Text() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n", r.Subject())
	w("Run %s of configuration %s, %s to %s (%s).\n\n", r.Datestamp, r.Config,
		r.Start.Format("15:04:05"), r.End.Format("15:04:05"), r.End.Sub(r.Start).Round(time.Second))

	if len(r.Volumes) == 0 {
		w("No volume was written.\n")
	}
	for _, v := range r.Volumes {
		nw := ""
		if v.New {
			nw = " (newly labelled)"
		}
		w("These dumps were to volume %s in slot %d%s: %d files, %s.\n", v.Label, v.Slot, nw, v.Files, HumanSize(v.Bytes))
	}
	if r.NextVolume != "" {
		w("The next run expects %s.\n", r.NextVolume)
	}

	var failed, strange []DLE
	for _, d := range r.DLEs {
		switch d.Status {
		case StatusFailed, StatusHolding:
			failed = append(failed, d)
		case StatusStrange:
			strange = append(strange, d)
		}
	}
	if len(failed) > 0 {
		w("\nFAILURE DUMP SUMMARY:\n")
		for _, d := range failed {
			w("  %s %s lev %d  %s: %s\n", d.Host, d.Path, d.Level, d.Status, d.Reason)
		}
	}
	if len(strange) > 0 {
		w("\nSTRANGE DUMP DETAILS:\n")
		for _, d := range strange {
			w("  /-- %s %s lev %d STRANGE\n", d.Host, d.Path, d.Level)
			for _, l := range d.Strange {
				w("  | %s\n", l)
			}
			w("  \\--------\n")
		}
	}

	var orig, out int64
	var n int
	var dumpT, tapeT time.Duration
	for _, d := range r.DLEs {
		if d.Status == StatusFailed {
			continue
		}
		n++
		orig += d.OrigSize
		out += d.OutSize
		dumpT += d.DumpTime
		tapeT += d.TapeTime
	}
	w("\nSTATISTICS:\n")
	w("  Run time (hrs:min)        %s\n", hm(r.End.Sub(r.Start)))
	w("  Dump time (hrs:min)       %s\n", hm(dumpT))
	w("  Tape time (hrs:min)       %s\n", hm(tapeT))
	w("  DLEs dumped               %d of %d\n", n, len(r.DLEs))
	w("  Original size             %s\n", HumanSize(orig))
	w("  Output size               %s\n", HumanSize(out))
	w("  Compressed to             %s of original\n", pct(out, orig))
	w("  Average dump rate         %s\n", rate(orig, dumpT))
	w("  Average tape rate         %s\n", rate(out, tapeT))

	if len(r.Notes) > 0 {
		w("\nNOTES:\n")
		for _, n := range r.Notes {
			w("  %s\n", n)
		}
	}

	w("\nDUMP SUMMARY:\n")
	w("%-16s %-24s %3s %12s %12s %6s %8s %10s %8s %10s\n", "HOST", "DISK", "LVL", "ORIG-KiB", "OUT-KiB", "COMP%", "DUMPTIME", "KiB/s", "TAPETIME", "KiB/s")
	dles := append([]DLE(nil), r.DLEs...)
	sort.SliceStable(dles, func(i, j int) bool {
		if dles[i].Host != dles[j].Host {
			return dles[i].Host < dles[j].Host
		}
		return dles[i].Path < dles[j].Path
	})
	for _, d := range dles {
		if d.Status == StatusFailed {
			w("%-16s %-24s %3s %12s\n", d.Host, d.Path, "", "FAILED")
			continue
		}
		if d.Flushed != "" {
			w("%-16s %-24s %3d %12d %12d %6s %8s %10s %8s %10s\n", d.Host, d.Path, d.Level,
				d.OrigSize/1024, d.OutSize/1024, pctNum(d.OutSize, d.OrigSize),
				"FLUSH", d.Flushed[:min(8, len(d.Flushed))], ms(d.TapeTime), kps(d.OutSize, d.TapeTime))
			continue
		}
		w("%-16s %-24s %3d %12d %12d %6s %8s %10s %8s %10s\n", d.Host, d.Path, d.Level,
			d.OrigSize/1024, d.OutSize/1024, pctNum(d.OutSize, d.OrigSize),
			ms(d.DumpTime), kps(d.OrigSize, d.DumpTime), ms(d.TapeTime), kps(d.OutSize, d.TapeTime))
	}
	return b.String()
}

// WriteTo writes the text report.
func (r *Run) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, r.Text())
	return int64(n), err
}

// HumanSize prints bytes with a binary unit.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EiB", f/unit)
}

func hm(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	return fmt.Sprintf("%d:%02d", m/60, m%60)
}

func ms(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func pct(a, b int64) string {
	if b == 0 {
		return "--"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func pctNum(a, b int64) string {
	if b == 0 {
		return "--"
	}
	return fmt.Sprintf("%.1f", 100*float64(a)/float64(b))
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "--"
	}
	return HumanSize(int64(float64(n)/d.Seconds())) + "/s"
}

func kps(n int64, d time.Duration) string {
	if d <= 0 {
		return "--"
	}
	return fmt.Sprintf("%.1f", float64(n)/1024/d.Seconds())
}
