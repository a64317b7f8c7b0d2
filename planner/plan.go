package planner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// Kind says why a DLE is dumped at its level tonight.
type Kind string

// The kinds of decisions.
const (
	KindDue         Kind = "due"              // full: dumpcycle days or more since the last full
	KindNew         Kind = "new"              // full: no full on record
	KindForced      Kind = "forced"           // full: requested with `tapir admin force`
	KindNoInc       Kind = "noinc"            // full: strategy noinc
	KindPromoted    Kind = "promoted"         // full: moved forward to balance the cycle
	KindChain       Kind = "chain-at-risk"    // full: promoted because the DLE's newest chain blocks a volume the next run must reuse (DLE.ChainAtRisk)
	KindFutile      Kind = "futile"           // full: the incremental would be about as big
	KindNoIncrEst   Kind = "no-incr-estimate" // full: no incremental level has an estimate
	KindIncremental Kind = "incremental"      // incremental, as scheduled
	KindDelayed     Kind = "delayed"          // incremental instead of a full that was wanted
)

// Entry is one dump of tonight's schedule.
type Entry struct {
	Host, Path string
	Level      int // 0 = full
	// Fallback is the incremental to dump instead of the full in degraded
	// mode (no usable volume, the full does not fit on the holding disk),
	// with its own estimates; -1 when there is none (the DLE is new, its
	// strategy is noinc, no incremental was sized, or Level is already an
	// incremental).
	Fallback                  int
	FallbackOrig, FallbackOut int64
	Priority                  int   // higher first: the driver starts dumps in this order
	EstOrig, EstOut           int64 // estimated tar bytes and bytes written for Level
	Kind                      Kind
	Reason                    string // the decision in words
}

// Delayed is a DLE whose full was wanted tonight but is postponed; it is
// dumped at Level instead (and also listed in Entries).
type Delayed struct {
	Host, Path string
	Level      int
	Reason     string
}

// Skipped is a DLE that is not dumped tonight.
type Skipped struct {
	Host, Path string
	Reason     string
	Cause      Cause
}

// ChainRisk is a DLE whose newest chain blocks a volume that the next run
// must reuse (DLE.ChainAtRisk), and whether tonight's plan saves it.
type ChainRisk struct {
	Host, Path string
	Risk       string // DLE.ChainAtRisk
	// Full says the DLE gets a full tonight: once it is on a volume, the
	// old chain is no longer the newest and the volume may be reused.
	// When false the chain stays at risk, and the DLE's reason says why.
	Full bool
}

// Cause is the kind of reason a DLE is not dumped.
type Cause string

// The causes.
const (
	CauseStrategy Cause = "strategy" // its dumptype says skip
	CauseFit      Cause = "fit"      // the night's volumes cannot take it
	CauseEstimate Cause = "estimate" // no estimate for a level it could be dumped at
	CauseInvalid  Cause = "invalid"  // the DLE cannot be planned (bad input)
)

// Schedule is tonight's plan.
type Schedule struct {
	Now    time.Time
	Config Config

	Entries []Entry     // the dumps, in dump order: priority, then size, largest first
	Delayed []Delayed   // by host and path
	Skipped []Skipped   // by host and path
	Notes   []string    // warnings for the report, in the order they arose
	Chains  []ChainRisk // the DLEs whose newest chain is at risk (DLE.ChainAtRisk), by host and path
	// Degraded, set by the caller, is why no volume is usable as things
	// stand: the night will be degraded (images stay on the holding disk,
	// a full that does not fit the holding reserve drops to its fallback).
	// "" when a volume is usable or nobody looked.
	Degraded string

	Capacity     int64 // Runtapes x TapeLength
	Needed       int64 // bytes the night needed before anything was delayed
	Total        int64 // bytes planned on volumes, ImageOverhead included
	FullOut      int64 // bytes of tonight's fulls
	IncrOut      int64 // bytes of tonight's incrementals
	Fulls, Incrs int
	CycleFull    int64 // sum of the expected fulls of the DLEs with scheduled fulls (and a full that fits in a run)
	Balanced     int64 // CycleFull / Runspercycle: the fulls a run should carry
}

// planner holds one planning pass.
type planner struct {
	cfg   Config
	now   time.Time
	today int
	st    []*state // sorted by host, path
	notes []string
	cap   int64
	total int64
	risks []ChainRisk
}

// Plan decides tonight's schedule. now is the time of the run; its time
// zone defines the calendar days. An invalid cfg is an error; a DLE that
// cannot be planned (no host, unknown strategy, a duplicate) is listed in
// Skipped with the reason, so that one bad entry never stops a night.
func Plan(cfg Config, dles []DLE, now time.Time) (*Schedule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := newPlanner(cfg, dles, now)
	for _, s := range p.st {
		p.choose(s)
	}
	p.oversize()
	needed := p.sum()
	p.fit(needed)
	p.promote()
	p.chainsAtRisk()
	return p.schedule(needed), nil
}

func newPlanner(cfg Config, dles []DLE, now time.Time) *planner {
	p := &planner{cfg: cfg, now: now, today: dayNumber(now, now.Location()), cap: cfg.Capacity()}
	order := make([]int, len(dles))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(dles[a].Host, dles[b].Host), cmp.Compare(dles[a].Path, dles[b].Path))
	})
	p.st = make([]*state, len(order))
	for i, j := range order {
		s := analyze(cfg, &dles[j], now, p.today, &p.notes)
		if i > 0 && s.invalid == "" && dles[order[i-1]].Host == s.d.Host && dles[order[i-1]].Path == s.d.Path {
			s.invalid = "listed twice (the first entry is planned)"
		}
		p.st[i] = s
	}
	return p
}

// cost is what dumping s at level costs on the volumes.
func (p *planner) cost(s *state, level int) int64 {
	if level < 0 {
		return 0
	}
	return s.outOf(level) + p.cfg.ImageOverhead
}

func (p *planner) sum() int64 {
	var t int64
	for _, s := range p.st {
		t += p.cost(s, s.level)
	}
	p.total = t
	return t
}

// choose makes the first decision for one DLE: the level its history and
// estimates ask for, before the night is fitted to the tapes.
func (p *planner) choose(s *state) {
	cfg := p.cfg
	if s.invalid != "" {
		s.skipWhy = "cannot be planned: " + s.invalid
		s.skipCause = CauseInvalid
		return
	}
	if s.strategy == Skip {
		s.skipWhy = "strategy skip"
		s.skipCause = CauseStrategy
		if s.d.Forced {
			s.skipWhy += " (the force flag is ignored)"
		}
		return
	}
	pickIncremental(cfg, s)
	s.prio = s.rank
	var want Kind
	var why string
	switch {
	case s.d.Forced:
		want, why = KindForced, "forced by tapir admin force"
		if s.hasFull {
			why += fmt.Sprintf(" (last full %s, %s ago)", dateOf(s.lastFull), daysWord(s.sinceFull))
		} else {
			why += " (no full on record)"
		}
		s.prio += cfg.Dumpcycle
	case !s.hasFull:
		want, why = KindNew, "new: no full on record"
		s.prio += cfg.Dumpcycle
	case s.strategy == NoInc:
		want, why = KindNoInc, "strategy noinc: a full every run"
	case s.strategy == Standard && s.sinceFull >= cfg.Dumpcycle:
		want = KindDue
		if s.sinceFull == cfg.Dumpcycle {
			why = fmt.Sprintf("due: last full %s, %s ago (dumpcycle %d)", dateOf(s.lastFull), daysWord(s.sinceFull), cfg.Dumpcycle)
		} else {
			why = fmt.Sprintf("overdue: last full %s, %s ago (dumpcycle %d)", dateOf(s.lastFull), daysWord(s.sinceFull), cfg.Dumpcycle)
		}
		s.prio += s.sinceFull - cfg.Dumpcycle
		if s.atRisk() {
			s.prio += cfg.Dumpcycle
		}
	case s.atRisk():
		want = KindChain
		why = fmt.Sprintf("promoted: chain at risk: %s (last full %s, %s ago); a full tonight starts a newer chain, so that the volume can be reused",
			s.d.ChainAtRisk, dateOf(s.lastFull), daysWord(s.sinceFull))
		s.prio += cfg.Dumpcycle
	}
	if want != "" {
		switch {
		case s.hasEst(0):
			s.level, s.kind, s.why, s.fallback = 0, want, why, s.inc
		case s.inc >= 0:
			s.level, s.kind, s.fallback = s.inc, KindDelayed, -1
			s.delayWhy = fmt.Sprintf("%s, but the level 0 estimate failed: level %d instead, the full is tried again next run", why, s.inc)
			s.why = s.delayWhy
		case !s.hasFull:
			s.skipWhy = fmt.Sprintf("%s, but the level 0 estimate failed: nothing can be dumped, it is tried again next run", why)
			s.skipCause = CauseEstimate
		default:
			s.skipWhy = fmt.Sprintf("%s, but the level 0 estimate failed and no incremental is possible (%s)", why, s.incWhy)
			s.skipCause = CauseEstimate
		}
		return
	}
	if s.inc < 0 {
		if s.strategy == Standard && s.hasEst(0) {
			s.level, s.kind, s.fallback = 0, KindNoIncrEst, -1
			s.why = fmt.Sprintf("no incremental is possible (%s): a full instead, whose estimate is known", s.incWhy)
			return
		}
		s.skipWhy = "no incremental is possible: " + s.incWhy
		s.skipCause = CauseEstimate
		return
	}
	if s.strategy == Standard && cfg.FutilePercent > 0 && s.est[0] > 0 &&
		float64(s.est[s.inc])*100 >= float64(s.est[0])*cfg.FutilePercent {
		s.level, s.kind, s.fallback = 0, KindFutile, s.inc
		s.why = fmt.Sprintf("level %d would be %s of a full (%s of %s): a full instead, it costs about the same and restores in one piece",
			s.inc, percent(s.est[s.inc], s.est[0]), bytesize.Format(s.est[s.inc]), bytesize.Format(s.est[0]))
		return
	}
	s.level, s.kind, s.fallback = s.inc, KindIncremental, -1
	s.why = fmt.Sprintf("level %d: %s", s.inc, s.incWhy)
	switch s.strategy {
	case Standard:
		due := s.lastFull + cfg.Dumpcycle
		s.why += fmt.Sprintf("; next full %s (in %s)", dateOf(due), daysWord(due-p.today))
	case IncrOnly:
		s.why += "; strategy incronly: no full is scheduled"
	}
}

// oversize handles the dumps that cannot fit even on an empty night: a
// full larger than all the volumes of one run falls back to its
// incremental, with a warning; anything else that large is skipped.
func (p *planner) oversize() {
	for _, s := range p.st {
		if s.level < 0 || p.cost(s, s.level) <= p.cap {
			continue
		}
		what := fmt.Sprintf("the %s one run may write (%s)", bytesize.Format(p.cap), tapesOf(p.cfg))
		if s.level == 0 {
			msg := fmt.Sprintf("full of %s (%s) is larger than %s", s.name, bytesize.Format(s.outOf(0)), what)
			if s.fallback >= 0 && p.cost(s, s.fallback) <= p.cap {
				s.delayWhy = fmt.Sprintf("%s: %s; level %d instead", s.why, msg, s.fallback)
				s.level, s.kind, s.why, s.fallback = s.fallback, KindDelayed, s.delayWhy, -1
				p.notes = append(p.notes, fmt.Sprintf("%s: dumped at level %d instead; raise runtapes or split the DLE", msg, s.level))
				continue
			}
			s.skipWhy = fmt.Sprintf("%s: %s and no incremental is possible; raise runtapes or split the DLE", s.why, msg)
			s.skipCause = CauseFit
			p.notes = append(p.notes, fmt.Sprintf("%s: not dumped; raise runtapes or split the DLE", msg))
		} else {
			s.skipWhy = fmt.Sprintf("level %d of %s (%s) is larger than %s; raise runtapes or split the DLE", s.level, s.name, bytesize.Format(s.outOf(s.level)), what)
			s.skipCause = CauseFit
			p.notes = append(p.notes, s.skipWhy)
		}
		s.level, s.fallback = -1, -1
	}
}

// chainsAtRisk runs once the night is decided. For every DLE whose newest
// chain is at risk it records whether tonight's plan saves it (a full), and
// when it does not (the full was delayed, its estimate failed, the DLE is
// not dumped) it says so in the DLE's reason and in the notes: the volume
// cannot be reused until a newer full of the DLE is on another one.
func (p *planner) chainsAtRisk() {
	for _, s := range p.st {
		if s.invalid != "" || s.d.ChainAtRisk == "" {
			continue
		}
		risk := s.d.ChainAtRisk
		cr := ChainRisk{Host: s.d.Host, Path: s.d.Path, Risk: risk, Full: s.level == 0}
		p.risks = append(p.risks, cr)
		if cr.Full {
			if s.kind != KindChain {
				s.why += "; this full also supersedes the newest chain, which was at risk: " + risk
			}
			continue
		}
		stays := "the chain stays at risk: " + risk
		why := &s.why
		if s.level < 0 {
			why = &s.skipWhy
		}
		if strings.Contains(*why, risk) {
			stays = "the chain stays at risk"
		}
		stays += "; that volume cannot be reused until a newer full of this DLE is on another volume"
		*why += "; " + stays
		if s.kind == KindDelayed && s.level > 0 {
			s.delayWhy = s.why
		}
		p.notes = append(p.notes, fmt.Sprintf("%s: no full tonight, so its newest chain stays at risk (%s); that volume cannot be reused until a newer full of %s is on another volume",
			s.name, risk, s.name))
	}
}

// schedule builds the result.
func (p *planner) schedule(needed int64) *Schedule {
	sc := &Schedule{Now: p.now, Config: p.cfg, Notes: p.notes, Capacity: p.cap, Needed: needed, Chains: p.risks}
	for _, s := range p.st {
		switch {
		case s.level >= 0:
			e := Entry{
				Host: s.d.Host, Path: s.d.Path, Level: s.level, Fallback: s.fallback,
				Priority: s.prio, EstOrig: s.est[s.level], EstOut: s.outOf(s.level), Kind: s.kind, Reason: s.why,
			}
			if s.fallback >= 0 {
				e.FallbackOrig, e.FallbackOut = s.est[s.fallback], s.outOf(s.fallback)
			}
			sc.Entries = append(sc.Entries, e)
			sc.Total += p.cost(s, s.level)
			if s.level == 0 {
				sc.Fulls++
				sc.FullOut += e.EstOut
			} else {
				sc.Incrs++
				sc.IncrOut += e.EstOut
			}
			if s.kind == KindDelayed {
				sc.Delayed = append(sc.Delayed, Delayed{Host: s.d.Host, Path: s.d.Path, Level: s.level, Reason: s.delayWhy})
			}
		default:
			sc.Skipped = append(sc.Skipped, Skipped{Host: s.d.Host, Path: s.d.Path, Reason: s.skipWhy, Cause: s.skipCause})
		}
		if s.balanced(p.cfg) {
			sc.CycleFull += s.fullOut()
		}
	}
	sc.Balanced = sc.CycleFull / int64(p.cfg.Runspercycle)
	slices.SortStableFunc(sc.Entries, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(b.EstOut, a.EstOut),
			cmp.Compare(a.Host, b.Host), cmp.Compare(a.Path, b.Path))
	})
	return sc
}
