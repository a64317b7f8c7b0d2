package planner

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// DueEntry says when one DLE gets its next full.
type DueEntry struct {
	Host, Path string
	LastFull   time.Time // the newest full on record; zero when there is none
	DueIn      int       // days until the next full: 0 = tonight, < 0 = overdue by -DueIn days
	Never      bool      // no full is scheduled (strategy skip, or nofull/incronly with a full on record); DueIn is 0
	Note       string    // why, when the cycle is not the reason: "new: no full on record", "forced", "strategy noinc: a full every run"...
}

// DueReport is the data of `tapir admin due`.
type DueReport struct {
	Now       time.Time
	Dumpcycle int
	Entries   []DueEntry // overdue first, then by days until due, then by host and path; Never last
}

// Due computes, for every DLE, the days until its next full as the cycle
// has it (tonight's estimates and the balancing of Plan can still move a
// full forward or delay it).
func Due(cfg Config, dles []DLE, now time.Time) (*DueReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := newPlanner(cfg, dles, now)
	r := &DueReport{Now: now, Dumpcycle: cfg.Dumpcycle}
	for _, s := range p.st {
		e := DueEntry{Host: s.d.Host, Path: s.d.Path}
		if s.hasFull {
			e.LastFull = s.lastTime
		}
		e.DueIn, e.Never, e.Note = s.nextFull(cfg)
		r.Entries = append(r.Entries, e)
	}
	slices.SortStableFunc(r.Entries, func(a, b DueEntry) int {
		return cmp.Or(cmpBool(a.Never, b.Never), cmp.Compare(a.DueIn, b.DueIn),
			cmp.Compare(a.Host, b.Host), cmp.Compare(a.Path, b.Path))
	})
	return r, nil
}

// nextFull is when the DLE gets its next full as the cycle has it: in
// dueIn days (0 tonight, < 0 overdue), or never; note says why when the
// cycle is not the reason. Due and Balance both ask it, so that `tapir
// admin due` and `tapir admin balance` put every full on the same day.
func (s *state) nextFull(cfg Config) (dueIn int, never bool, note string) {
	switch {
	case s.invalid != "":
		return 0, true, "cannot be planned: " + s.invalid
	case s.strategy == Skip:
		return 0, true, "strategy skip"
	case s.d.Forced:
		return 0, false, "forced by tapir admin force"
	case !s.hasFull:
		return 0, false, "new: no full on record"
	case s.strategy == NoInc:
		return 0, false, "strategy noinc: a full every run"
	case s.atRisk():
		if s.strategy == Standard {
			dueIn = min(s.dueIn(cfg), 0)
		}
		return dueIn, false, "chain at risk: " + s.d.ChainAtRisk
	case s.strategy == NoFull || s.strategy == IncrOnly:
		return 0, true, fmt.Sprintf("strategy %s: a full only when forced", s.strategy)
	}
	return s.dueIn(cfg), false, ""
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Write prints the report as the text of `tapir admin due`.
func (r *DueReport) Write(w io.Writer) error {
	var b strings.Builder
	today := dayNumber(r.Now, r.Now.Location())
	fmt.Fprintf(&b, "tapir due for %s (dumpcycle %s)\n\n", r.Now.Format("Mon 2006-01-02"), daysWord(r.Dumpcycle))
	t := [][]string{{"DLE", "LAST FULL", "NEXT FULL"}}
	overdue := 0
	for _, e := range r.Entries {
		last := "-"
		if !e.LastFull.IsZero() {
			last = e.LastFull.In(r.Now.Location()).Format(time.DateOnly)
		}
		var next string
		switch {
		case e.Never:
			next = "never"
		case e.DueIn < 0:
			next = fmt.Sprintf("OVERDUE by %s (due %s)", daysWord(-e.DueIn), dateOf(today+e.DueIn))
			overdue++
		case e.DueIn == 0:
			next = "tonight"
		default:
			next = fmt.Sprintf("in %s (%s)", daysWord(e.DueIn), dateOf(today+e.DueIn))
		}
		if e.Note != "" {
			next += " (" + e.Note + ")"
		}
		t = append(t, []string{e.Host + ":" + e.Path, last, next})
	}
	writeTable(&b, "", t, []bool{false, false, false})
	if len(r.Entries) == 0 {
		b.WriteString("(no DLE)\n")
	}
	if overdue > 0 {
		fmt.Fprintf(&b, "\n%d %s overdue: the night did not fit or the estimate failed; see the reports of the last runs\n",
			overdue, plural(overdue, "DLE is", "DLEs are"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
