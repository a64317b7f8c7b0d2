package planner

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tapir-backup/tapir/internal/bytesize"
)

// change remembers a DLE's decision before fit changed it, so that it can
// be put back when there is room after all.
type change struct {
	s                      *state
	level, fallback        int
	kind                   Kind
	why, delayWhy, skipWhy string
	skipCause              Cause
}

func remember(s *state) change {
	return change{s: s, level: s.level, fallback: s.fallback, kind: s.kind, why: s.why, delayWhy: s.delayWhy, skipWhy: s.skipWhy, skipCause: s.skipCause}
}

func (c change) restore() {
	s := c.s
	s.level, s.fallback, s.kind, s.why, s.delayWhy, s.skipWhy, s.skipCause = c.level, c.fallback, c.kind, c.why, c.delayWhy, c.skipWhy, c.skipCause
}

// delayGroup orders the fulls fit delays: first those that are not due
// (a futile incremental's full), then due fulls that fall back to an
// incremental, then fulls that have no incremental to fall back to (the
// DLE would not be dumped at all), then fulls that supersede a chain at
// risk (delaying one may cost the next run its volume), then first fulls
// of new DLEs, and forced fulls last.
func delayGroup(s *state) int {
	switch {
	case s.d.Forced:
		return 5
	case !s.hasFull:
		return 4
	case s.atRisk():
		return 3
	case s.fallback < 0:
		return 2
	case s.kind == KindFutile:
		return 0
	}
	return 1
}

// fit makes the night fit on the volumes of one run, as Amanda's
// delay_dumps does: while it does not fit, delay fulls (in delayGroup
// order; within a group the lowest priority, then the newest previous
// full, then the largest first), then drop incrementals (lowest priority,
// then largest first); finally put back, in the reverse order, every change
// that turns out not to be needed.
func (p *planner) fit(needed int64) {
	if p.total <= p.cap {
		return
	}
	over := fmt.Sprintf("the night needs %s, the run can write %s (%s)", bytesize.Format(needed), bytesize.Format(p.cap), tapesOf(p.cfg))
	var log []change

	var fulls []*state
	for _, s := range p.st {
		if s.level == 0 {
			fulls = append(fulls, s)
		}
	}
	slices.SortStableFunc(fulls, func(a, b *state) int {
		return cmp.Or(
			cmp.Compare(delayGroup(a), delayGroup(b)),
			cmp.Compare(a.rank, b.rank),
			cmp.Compare(a.sinceFull, b.sinceFull),
			cmp.Compare(p.cost(b, 0), p.cost(a, 0)),
		)
	})
	for _, s := range fulls {
		if p.total <= p.cap {
			break
		}
		log = append(log, remember(s))
		p.total -= p.cost(s, 0)
		if s.fallback >= 0 {
			s.delayWhy = fmt.Sprintf("%s, but delayed: %s; level %d instead, the full is tried again next run", s.why, over, s.fallback)
			s.level, s.kind, s.why, s.fallback = s.fallback, KindDelayed, s.delayWhy, -1
			p.total += p.cost(s, s.level)
			continue
		}
		switch {
		case !s.hasFull:
			s.skipWhy = fmt.Sprintf("%s, but its first full (%s) does not fit: %s; it is tried again next run", s.why, bytesize.Format(s.outOf(0)), over)
			s.skipCause = CauseFit
		default:
			s.skipWhy = fmt.Sprintf("%s, but the full (%s) does not fit and there is no incremental to dump instead: %s", s.why, bytesize.Format(s.outOf(0)), over)
			s.skipCause = CauseFit
		}
		s.level = -1
	}

	if p.total > p.cap {
		var incs []*state
		for _, s := range p.st {
			if s.level > 0 {
				incs = append(incs, s)
			}
		}
		slices.SortStableFunc(incs, func(a, b *state) int {
			return cmp.Or(cmp.Compare(a.prio, b.prio), cmp.Compare(p.cost(b, b.level), p.cost(a, a.level)))
		})
		for _, s := range incs {
			if p.total <= p.cap {
				break
			}
			log = append(log, remember(s))
			p.total -= p.cost(s, s.level)
			s.skipWhy = fmt.Sprintf("%s; not dumped: %s; once the fulls were delayed, incrementals were dropped, lowest priority and largest first", s.why, over)
			s.skipCause = CauseFit
			s.level, s.fallback = -1, -1
		}
	}

	for i := len(log) - 1; i >= 0; i-- {
		c := log[i]
		t := p.total - p.cost(c.s, c.s.level) + p.cost(c.s, c.level)
		if t <= p.cap {
			p.total = t
			c.restore()
		}
	}

	// Sum up for the report what fitting cost, once per DLE.
	var delayedN, droppedN int
	counted := map[*state]bool{}
	for _, c := range log {
		switch s := c.s; {
		case counted[s]:
		case s.level < 0:
			droppedN++
		case s.level > 0 && c.level == 0:
			delayedN++
		default:
			continue
		}
		counted[c.s] = true
	}
	if delayedN > 0 || droppedN > 0 {
		p.notes = append(p.notes, fmt.Sprintf("%s: %d %s delayed, %d %s not dumped; if this happens often, raise runtapes or use longer volumes",
			over, delayedN, plural(delayedN, "full", "fulls"), droppedN, plural(droppedN, "DLE", "DLEs")))
	}
}
