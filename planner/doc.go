// Package planner decides tonight's schedule: for every DLE the level to
// dump (a full or an incremental), the incremental to dump instead when the
// night runs in degraded mode, the order of the dumps, and the reason of
// each decision in words; plus the DLEs whose full is delayed or that are
// not dumped at all, and why.
//
// It keeps the ideas of Amanda's planner (fulls due every dumpcycle days,
// bumping to higher incremental levels when that saves enough, promoting
// fulls early to balance the cycle, delaying fulls when the night does not
// fit on the tapes) and fixes what Amanda's users complain of: it never
// promotes one DLE twice in a row or to less than half a cycle after its
// previous full, it never dumps at a level that has no estimate, and it
// never dumps an incremental that would be about as big as a full. It also
// looks one run ahead for the volumes: a DLE whose newest chain blocks a
// volume the next run must reuse (DLE.ChainAtRisk, set by the server) gets
// a full tonight, so that the chain is superseded before the volume is
// needed (chains are sacred), and the plan says when the night cannot take
// that full. The rules are written down for administrators in
// docs/format/planner.md.
//
// The package is pure: no I/O, no clock (the time of the run is an input),
// no import of other tapir packages but internal/bytesize (the size
// formatter, pure itself). The server maps the configuration into
// a Config and the catalog and tonight's estimates into DLEs, and calls
//
//	EstimateLevels(cfg, dle, now)  the levels to ask each client to size
//	Plan(cfg, dles, now)           tonight's schedule; Explain prints it
//	Due(cfg, dles, now)            days until each DLE's next full
//	Balance(cfg, dles, now)        expected fulls per day of the next cycle
//	                               (on the day Due says: one rule, nextFull)
//
// The server sets Schedule.Degraded when no volume is usable, and Explain
// says first that the night will be degraded.
//
// A "day" is a calendar day in the time zone of now: a DLE whose last full
// ran 7 calendar days ago with dumpcycle 7 is due tonight, whatever the
// minutes of the two runs. Same input, same output: every list is sorted,
// no map order leaks.
package planner
