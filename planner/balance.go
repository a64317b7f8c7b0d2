package planner

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// BalanceDay is the fulls expected on one day of the coming cycle.
type BalanceDay struct {
	Day   int    // 0 = tonight
	Date  string // YYYY-MM-DD
	DLEs  int
	Bytes int64    // expected bytes written by those fulls
	Names []string // the DLEs, host:path, sorted
}

// BalanceReport is the data of `tapir admin balance`.
type BalanceReport struct {
	Now          time.Time
	Dumpcycle    int
	Runspercycle int
	Days         []BalanceDay // Dumpcycle days from tonight; more when a full falls later (one dumped today is due in Dumpcycle days)
	CycleFull    int64        // sum of the fulls of the DLEs with scheduled fulls that fit in a run
	Balanced     int64        // CycleFull / Runspercycle
	EveryRun     int64        // fulls of strategy noinc, written every run besides Days
	Unknown      []string     // DLEs whose full size is not known (no full on record, no estimate)
}

// Balance computes the fulls expected on each day of the coming cycle if
// nothing moves them: due and overdue ones, new and forced DLEs and those
// whose newest chain is at risk tonight, the others on the day they fall
// due. Sizes are tonight's level 0 estimates when the DLEs carry them,
// else the size of the newest full.
func Balance(cfg Config, dles []DLE, now time.Time) (*BalanceReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := newPlanner(cfg, dles, now)
	r := &BalanceReport{Now: now, Dumpcycle: cfg.Dumpcycle, Runspercycle: cfg.Runspercycle}
	r.Days = make([]BalanceDay, cfg.Dumpcycle)
	for _, s := range p.st {
		if s.invalid != "" {
			continue
		}
		size := s.fullOut()
		known := s.hasEst(0) || s.hasFull
		// The day is admin due's (nextFull): tonight when overdue. A
		// full dumped today falls due in Dumpcycle days, past the
		// cycle: the chart grows a day rather than move it.
		dueIn, never, _ := s.nextFull(cfg)
		switch {
		case s.strategy == NoInc:
			// A full every run: besides the days, whatever due says.
			if !known {
				r.Unknown = append(r.Unknown, s.name)
			}
			r.EveryRun += size
			continue
		case never:
			continue
		case !known:
			r.Unknown = append(r.Unknown, s.name)
			continue
		}
		day := max(dueIn, 0)
		for len(r.Days) <= day {
			r.Days = append(r.Days, BalanceDay{})
		}
		r.Days[day].DLEs++
		r.Days[day].Bytes += size
		r.Days[day].Names = append(r.Days[day].Names, s.name)
		if s.balanced(cfg) {
			r.CycleFull += size
		}
	}
	for i := range r.Days {
		r.Days[i].Day, r.Days[i].Date = i, dateOf(p.today+i)
		slices.Sort(r.Days[i].Names)
	}
	r.Balanced = r.CycleFull / int64(cfg.Runspercycle)
	return r, nil
}

// barWidth is the length of the longest bar of the chart.
const barWidth = 40

// Write prints the report as the text of `tapir admin balance`: one line
// per day with a bar, '|' marking the balanced size.
func (r *BalanceReport) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tapir balance for %s: fulls expected per day of the next cycle (dumpcycle %s, %d runs per cycle)\n\n",
		r.Now.Format("Mon 2006-01-02"), daysWord(r.Dumpcycle), r.Runspercycle)
	top := r.Balanced
	for _, d := range r.Days {
		top = max(top, d.Bytes)
	}
	scale := func(n int64) int {
		if top <= 0 || n <= 0 {
			return 0
		}
		return min(barWidth, int(math.Round(float64(n)*barWidth/float64(top))))
	}
	mark := scale(r.Balanced)
	t := [][]string{{"DAY", "DATE", "DLES", "FULLS", "VS BALANCED", ""}}
	for _, d := range r.Days {
		day := "tonight"
		if d.Day > 0 {
			day = "+" + itoa(d.Day)
		}
		bar := []byte(strings.Repeat("#", scale(d.Bytes)) + strings.Repeat(" ", barWidth+1-scale(d.Bytes)))
		if r.Balanced > 0 {
			bar[mark] = '|'
		}
		vs := "-"
		if r.Balanced > 0 {
			vs = fmt.Sprintf("%+.0f %%", 100*float64(d.Bytes-r.Balanced)/float64(r.Balanced))
		}
		t = append(t, []string{day, weekdayOf(dayNumber(r.Now, r.Now.Location())+d.Day) + " " + d.Date, itoa(d.DLEs), bytesize.Format(d.Bytes), vs,
			strings.TrimRight(string(bar), " ")})
	}
	writeTable(&b, "", t, []bool{false, false, true, true, true, false})
	fmt.Fprintf(&b, "\nbalanced: %s per run (%s of fulls over %d runs), marked |\n", bytesize.Format(r.Balanced), bytesize.Format(r.CycleFull), r.Runspercycle)
	if r.EveryRun > 0 {
		fmt.Fprintf(&b, "plus %s of strategy noinc fulls every run\n", bytesize.Format(r.EveryRun))
	}
	if len(r.Unknown) > 0 {
		fmt.Fprintf(&b, "size unknown (no full on record, no estimate): %s\n", strings.Join(r.Unknown, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
