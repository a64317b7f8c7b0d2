package planner

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// state is what the planner knows and decides about one DLE.
type state struct {
	d        *DLE
	name     string
	strategy Strategy
	rank     int    // base priority: low 0, medium 1, high 2
	invalid  string // non-empty: the DLE cannot be planned, and why

	hasFull   bool
	lastFull  int // day number of the newest full
	lastTime  time.Time
	hasPrev   bool
	prevFull  int // day number of the full before it (an earlier day)
	sinceFull int // days since the newest full
	lastLevel int // level of the newest dump, -1 when there is none
	runsAtLvl int // consecutive newest dumps at lastLevel

	fullRatio, incrRatio float64 // compressed / tar bytes
	lastFullOut          int64   // bytes written by the newest full

	est [MaxLevel + 1]int64 // tonight's estimates in tar bytes, -1 = none

	inc    int    // the incremental level for tonight, -1 when none is possible
	incWhy string // why that level (or why none)

	// The decision.
	level     int // -1 = not dumped
	kind      Kind
	why       string
	fallback  int
	prio      int
	delayWhy  string // the full was delayed: why (level is then the incremental)
	skipWhy   string // not dumped: why
	skipCause Cause  // not dumped: the kind of reason
}

func (s *state) hasEst(level int) bool {
	return level >= 0 && level <= MaxLevel && s.est[level] >= 0
}

// outOf estimates the bytes written for level, from its tar estimate.
func (s *state) outOf(level int) int64 {
	if !s.hasEst(level) {
		return 0
	}
	r := s.incrRatio
	if level == 0 {
		r = s.fullRatio
	}
	return int64(math.Round(float64(s.est[level]) * r))
}

// fullOut is the expected size of the DLE's next full on a volume:
// tonight's level 0 estimate when there is one, else the newest full's.
func (s *state) fullOut() int64 {
	if s.hasEst(0) {
		return s.outOf(0)
	}
	return s.lastFullOut
}

// balanced reports whether the DLE's fulls count in the balance of the
// cycle: its strategy schedules fulls and its full fits in one run (a full
// larger than that is never dumped, so it cannot be balanced).
func (s *state) balanced(cfg Config) bool {
	return s.invalid == "" && s.strategy.fullsScheduled() && s.fullOut()+cfg.ImageOverhead <= cfg.Capacity()
}

// fullOrig is the tar size of a full, for bumppercent.
func (s *state) fullOrig() int64 {
	if s.hasEst(0) {
		return s.est[0]
	}
	return 0
}

// dueIn is the number of days until the DLE's next full (0 = tonight,
// negative = overdue); only meaningful for a DLE with a full on record.
func (s *state) dueIn(cfg Config) int { return cfg.Dumpcycle - s.sinceFull }

// atRisk reports whether the DLE's newest chain blocks a volume the next
// run must reuse and a full can supersede it: the DLE has a full on record
// and a strategy that dumps incrementals (noinc gets a full every run
// anyway; skip is never dumped).
func (s *state) atRisk() bool {
	if s.invalid != "" || s.d.ChainAtRisk == "" || !s.hasFull {
		return false
	}
	switch s.strategy {
	case Standard, NoFull, IncrOnly:
		return true
	}
	return false
}

// lastEarly reports whether the newest full came less than a dumpcycle
// after the one before it (it was promoted, forced, or done instead of a
// futile incremental): such a DLE is not promoted again this cycle.
func (s *state) lastEarly(cfg Config) bool {
	return s.hasPrev && s.lastFull-s.prevFull < cfg.Dumpcycle
}

// analyze reads one DLE's history and estimates. Entries it cannot use are
// ignored and reported in notes.
func analyze(cfg Config, d *DLE, now time.Time, today int, notes *[]string) *state {
	loc := now.Location()
	s := &state{d: d, name: d.Name(), strategy: d.Strategy, lastLevel: -1, inc: -1, level: -1, fallback: -1}
	if s.strategy == "" {
		s.strategy = Standard
	}
	s.rank = d.Priority.rank()
	for i := range s.est {
		s.est[i] = -1
	}
	switch {
	case strings.TrimSpace(d.Host) == "":
		s.invalid = "the DLE has no host"
	case strings.TrimSpace(d.Path) == "":
		s.invalid = "the DLE has no path"
	case !s.strategy.valid():
		s.invalid = fmt.Sprintf("unknown strategy %q (want standard, nofull, noinc, skip or incronly)", string(d.Strategy))
	}
	if d.Priority != "" && !d.Priority.valid() {
		*notes = append(*notes, fmt.Sprintf("%s: unknown priority %q counted as medium (want low, medium or high)", s.name, string(d.Priority)))
	}

	var ignored []string
	levels := make([]int, 0, len(d.Estimates))
	for lv := range d.Estimates {
		levels = append(levels, lv)
	}
	slices.Sort(levels)
	for _, lv := range levels {
		b := d.Estimates[lv]
		if lv < 0 || lv > MaxLevel || b < 0 || b > maxBytes {
			ignored = append(ignored, fmt.Sprintf("estimate %d bytes for level %d", b, lv))
			continue
		}
		s.est[lv] = b
	}

	// A first pass over the history finds the newest dump, the newest full,
	// and the three newest fulls and incrementals with sizes (for the
	// compression ratios); the next ones count the runs at the newest
	// dump's level and find the full before the newest.
	var newest, newestFull *Dump
	var fulls, incrs top3
	for i := range d.History {
		h := &d.History[i]
		switch {
		case h.Level < 0 || h.Level > MaxLevel:
			ignored = append(ignored, fmt.Sprintf("dump of %s at level %d (levels are 0..9)", h.Time.Format(time.DateOnly), h.Level))
			continue
		case h.Time.IsZero():
			ignored = append(ignored, fmt.Sprintf("level %d dump without a date", h.Level))
			continue
		case h.Time.After(now):
			ignored = append(ignored, fmt.Sprintf("level %d dump dated %s, after this run (clock skew?)", h.Level, h.Time.In(loc).Format(time.DateTime)))
			continue
		case h.OrigBytes < 0 || h.OutBytes < 0 || h.OrigBytes > maxBytes || h.OutBytes > maxBytes:
			ignored = append(ignored, fmt.Sprintf("level %d dump of %s with an impossible size (%d bytes, %d written)", h.Level, h.Time.Format(time.DateOnly), h.OrigBytes, h.OutBytes))
			continue
		}
		if newest == nil || newer(h, newest) {
			newest = h
		}
		if h.Level == 0 {
			if newestFull == nil || h.Time.After(newestFull.Time) {
				newestFull = h
			}
			fulls.add(h)
		} else {
			incrs.add(h)
		}
	}
	if len(ignored) > 0 {
		*notes = append(*notes, fmt.Sprintf("%s: ignored %s", s.name, strings.Join(ignored, "; ")))
	}
	if newest != nil {
		s.lastLevel = newest.Level
		var other time.Time // newest dump at another level
		for i := range d.History {
			h := &d.History[i]
			if usable(h, now) && h.Level != newest.Level && h.Time.After(other) {
				other = h.Time
			}
		}
		for i := range d.History {
			h := &d.History[i]
			if usable(h, now) && h.Level == newest.Level && h.Time.After(other) {
				s.runsAtLvl++
			}
		}
	}
	if newestFull != nil {
		s.hasFull = true
		s.lastTime = newestFull.Time
		s.lastFull = dayNumber(newestFull.Time, loc)
		s.sinceFull = today - s.lastFull
		s.lastFullOut = newestFull.OutBytes
		for i := range d.History {
			h := &d.History[i]
			if !usable(h, now) || h.Level != 0 {
				continue
			}
			if day := dayNumber(h.Time, loc); day < s.lastFull && (!s.hasPrev || day > s.prevFull) {
				s.hasPrev, s.prevFull = true, day
			}
		}
	}
	fr, fok := fulls.ratio()
	ir, iok := incrs.ratio()
	switch {
	case fok && iok:
		s.fullRatio, s.incrRatio = fr, ir
	case fok:
		s.fullRatio, s.incrRatio = fr, fr
	case iok:
		s.fullRatio, s.incrRatio = ir, ir
	default:
		r := cfg.CompRatio
		if s.d.CompRatio > 0 && s.d.CompRatio <= 1.1 {
			r = s.d.CompRatio
		}
		s.fullRatio, s.incrRatio = r, r
	}
	return s
}

// maxBytes is the largest size the planner believes: an estimate or a dump
// of more than 1 PiB is an error somewhere (and sums of such sizes over a
// site would overflow).
const maxBytes = int64(1) << 50

// usable repeats analyze's checks of a history entry.
func usable(h *Dump, now time.Time) bool {
	return h.Level >= 0 && h.Level <= MaxLevel && !h.Time.IsZero() && !h.Time.After(now) &&
		h.OrigBytes >= 0 && h.OutBytes >= 0 && h.OrigBytes <= maxBytes && h.OutBytes <= maxBytes
}

// newer orders dumps by time; at the same time the lower level wins (a
// full and an incremental of one run cannot both be newest).
func newer(a, b *Dump) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return a.Level < b.Level
}

// top3 keeps the three newest dumps with sizes, for a compression ratio
// that follows the data without jumping on one odd dump.
type top3 struct {
	d [3]*Dump
	n int
}

func (t *top3) add(h *Dump) {
	if h.OrigBytes <= 0 || h.OutBytes <= 0 {
		return
	}
	i := t.n
	if t.n < len(t.d) {
		t.n++
	} else if !h.Time.After(t.d[len(t.d)-1].Time) {
		return
	} else {
		i = len(t.d) - 1
	}
	for i > 0 && h.Time.After(t.d[i-1].Time) {
		t.d[i] = t.d[i-1]
		i--
	}
	t.d[i] = h
}

// ratio is the compression ratio of the kept dumps, weighted by size and
// capped at 1.5 (data that grows by half when compressed is an error
// somewhere, not a reason to plan for it).
func (t *top3) ratio() (float64, bool) {
	var orig, out float64
	for _, h := range t.d[:t.n] {
		orig += float64(h.OrigBytes)
		out += float64(h.OutBytes)
	}
	if orig <= 0 {
		return 0, false
	}
	return min(out/orig, 1.5), true
}

// pickIncremental decides the incremental level the DLE would dump
// tonight: 1 after a full; otherwise the current level, bumped to the next
// when it has run bumpdays times and the next level saves more than the
// threshold. It only returns a level that has an estimate.
func pickIncremental(cfg Config, s *state) {
	switch {
	case !s.hasFull:
		s.inc, s.incWhy = -1, "no full on record"
		return
	case s.strategy == NoInc:
		s.inc, s.incWhy = -1, "strategy noinc"
		return
	case s.strategy == NoFull:
		if s.hasEst(1) {
			s.inc, s.incWhy = 1, "strategy nofull: level 1 every run"
		} else {
			s.inc, s.incWhy = -1, "the level 1 estimate failed"
		}
		return
	}
	if s.lastLevel <= 0 {
		switch {
		case s.hasEst(1):
			s.inc, s.incWhy = 1, "first incremental after the full"
		case s.hasEst(2):
			s.inc, s.incWhy = 2, "the level 1 estimate failed; level 2 (the same changes, since the full) has one"
		default:
			s.inc, s.incWhy = -1, "the level 1 estimate failed"
		}
		return
	}
	l := s.lastLevel
	var stay string
	switch {
	case l >= MaxLevel:
		stay = fmt.Sprintf("level %d is the highest", MaxLevel)
	case s.runsAtLvl < cfg.Bumpdays:
		stay = fmt.Sprintf("%s at level %d (bumpdays %d)", runsWord(s.runsAtLvl), l, cfg.Bumpdays)
	case s.hasEst(l) && s.hasEst(l+1):
		saves := s.est[l] - s.est[l+1]
		th := cfg.bumpThreshold(l, s.fullOrig())
		if saves > th {
			s.inc = l + 1
			s.incWhy = fmt.Sprintf("bumped after %s at level %d, saves %s (threshold %s)", runsWord(s.runsAtLvl), l, bytesize.Format(saves), bytesize.Format(th))
			return
		}
		stay = fmt.Sprintf("level %d would save %s, not more than the threshold %s", l+1, bytesize.Format(max(saves, 0)), bytesize.Format(th))
	case s.hasEst(l):
		stay = fmt.Sprintf("level %d was not sized", l+1)
	}
	switch {
	case s.hasEst(l):
		s.inc, s.incWhy = l, stay
	case l < MaxLevel && s.hasEst(l+1):
		s.inc, s.incWhy = l+1, fmt.Sprintf("the level %d estimate failed; level %d has one", l, l+1)
	default:
		s.inc, s.incWhy = -1, fmt.Sprintf("the level %d estimate failed", l)
	}
}

// runsWord is "1 run" or "n runs".
func runsWord(n int) string {
	if n == 1 {
		return "1 run"
	}
	return itoa(n) + " runs"
}
