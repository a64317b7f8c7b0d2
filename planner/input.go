package planner

import "time"

// MaxLevel is the highest dump level (GNU tar listed-incremental levels
// 0..9).
const MaxLevel = 9

// Strategy is a dumptype's schedule.
type Strategy string

// The strategies.
const (
	Standard Strategy = "standard" // fulls every dumpcycle, balanced; incrementals in between
	NoFull   Strategy = "nofull"   // level 1 every run; a full only when none is on record or forced
	NoInc    Strategy = "noinc"    // a full every run
	Skip     Strategy = "skip"     // never dumped
	IncrOnly Strategy = "incronly" // incrementals (bumped as usual); a full only when none is on record or forced
)

func (s Strategy) valid() bool {
	switch s {
	case Standard, NoFull, NoInc, Skip, IncrOnly:
		return true
	}
	return false
}

// fullsScheduled reports whether the planner schedules the DLE's fulls
// itself (due dates, promotion, balance).
func (s Strategy) fullsScheduled() bool { return s == Standard }

// Priority is a dumptype's priority: which DLEs go first and are delayed
// last.
type Priority string

// The priorities.
const (
	Low    Priority = "low"
	Medium Priority = "medium"
	High   Priority = "high"
)

// rank is Amanda's base priority: low 0, medium 1, high 2. An unknown
// value counts as medium (Plan notes it).
func (p Priority) rank() int {
	switch p {
	case Low:
		return 0
	case High:
		return 2
	}
	return 1
}

func (p Priority) valid() bool { return p == Low || p == Medium || p == High }

// DLE is one disk-list entry as the planner sees it: its dumptype's
// strategy and priority, whether `tapir admin force` asked for a full, its
// good dumps, and tonight's estimates.
type DLE struct {
	Host     string
	Path     string
	Strategy Strategy // "" = Standard
	Priority Priority // "" = Medium
	Forced   bool     // a full was requested with `tapir admin force`

	// History holds the good dumps: those safe on a volume or on the
	// holding disk. Any order; failed dumps must not be listed.
	History []Dump

	// CompRatio is the compression ratio to assume while the history tells
	// nothing (1 for a dumptype without compression); 0 = Config.CompRatio.
	CompRatio float64

	// Estimates maps a level to tonight's estimate from the client, in tar
	// bytes. A level the client did not size, or whose estimate failed, is
	// absent. Plan never picks a level without an estimate.
	Estimates map[int]int64

	// ChainAtRisk, when not empty, says why the DLE's newest chain (its
	// newest full and the incrementals after it) blocks a volume that the
	// next run must reuse, in words that complete "chain at risk: ", e.g.
	// "its last full (2025-03-01) is on Daily-001, which the next run must
	// reuse". The planner then gives the DLE a full tonight (KindChain),
	// so that a newer chain supersedes the old one before the volume is
	// needed; when the night cannot take that full, the reason and the
	// notes say that the chain stays at risk. It applies to every strategy
	// that dumps incrementals (standard, nofull, incronly); a DLE of
	// strategy skip is only named.
	ChainAtRisk string
}

// Dump is one good dump of a DLE.
type Dump struct {
	Time      time.Time // time of the run that made it
	Level     int       // 0..9
	OrigBytes int64     // tar bytes
	OutBytes  int64     // bytes written (compressed)
}

// Name is "host:path", as the report and the explanation print it.
func (d *DLE) Name() string { return d.Host + ":" + d.Path }
