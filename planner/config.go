package planner

import (
	"errors"
	"fmt"
	"math"
)

// Config holds the settings the planner needs. The server fills it from
// tapir's configuration; DefaultConfig gives Amanda's defaults.
type Config struct {
	Dumpcycle    int   // days between two fulls of a DLE, at most
	Runspercycle int   // runs per dumpcycle (7 for a nightly run and dumpcycle 7)
	Runtapes     int   // volumes one run may write, counted over all its drives
	Drives       int   // drives that write at once, each its own volume; 0 = 1
	TapeLength   int64 // bytes one volume holds (after drive compression, if any)

	// Bumping: an incremental at level L moves to level L+1 when it has run
	// at level L for Bumpdays runs and level L+1 is smaller than level L by
	// more than Bumpsize (or Bumppercent of the full, when Bumppercent > 0)
	// times Bumpmult^(L-1).
	Bumpsize    int64   // bytes
	Bumppercent float64 // percent of the full, 0..100; 0 = use Bumpsize
	Bumpdays    int     // runs at a level before a bump is considered
	Bumpmult    float64 // >= 1: the threshold grows by this factor per level

	// Maxpromoteday is how many days early a full may be promoted to
	// balance the cycle. Whatever its value, a full is never promoted to
	// less than half a dumpcycle after the previous full (see
	// MaxPromoteDays).
	Maxpromoteday int

	// CompRatio is the ratio of compressed to tar bytes assumed for a DLE
	// whose history tells nothing (0.5: half the size).
	CompRatio float64

	// ImageOverhead is what each image costs on a volume besides its
	// payload: the 32 KiB header, the padding of its last block and the
	// filemark.
	ImageOverhead int64

	// FutilePercent: an incremental whose estimate is at least this percent
	// of the full's is not worth dumping; the DLE gets its full instead
	// (when its strategy allows fulls). 0 turns the rule off.
	FutilePercent float64
}

// Sizes used by DefaultConfig.
const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
	tib = int64(1) << 40
)

// DefaultConfig returns Amanda's defaults: dumpcycle 7 with one run a day,
// one volume of 100 GiB per run, bumpsize 10 MiB, bumpdays 2, bumpmult
// 1.5, maxpromoteday 10000, a compression ratio of 0.5 for DLEs without
// history, 288 KiB of overhead per image (32 KiB header + one 256 KiB
// block), and an incremental of 90 % of the full or more counted futile.
func DefaultConfig() Config {
	return Config{
		Dumpcycle:     7,
		Runspercycle:  7,
		Runtapes:      1,
		TapeLength:    100 * gib,
		Bumpsize:      10 * mib,
		Bumppercent:   0,
		Bumpdays:      2,
		Bumpmult:      1.5,
		Maxpromoteday: 10000,
		CompRatio:     0.5,
		ImageOverhead: 32*kib + 256*kib,
		FutilePercent: 90,
	}
}

// Validate reports every setting out of range, one line each, naming the
// setting, the value and what is accepted.
func (c Config) Validate() error {
	var errs []error
	bad := func(name string, v any, want string) {
		errs = append(errs, fmt.Errorf("planner: %s = %v: %s", name, v, want))
	}
	if c.Dumpcycle < 1 || c.Dumpcycle > 10000 {
		bad("dumpcycle", c.Dumpcycle, "must be 1..10000 days")
	}
	if c.Runspercycle < 1 || c.Runspercycle > 10000 {
		bad("runspercycle", c.Runspercycle, "must be 1..10000 runs (usually the number of runs in dumpcycle days)")
	}
	if c.Runtapes < 1 || c.Runtapes > 1000 {
		bad("runtapes", c.Runtapes, "must be 1..1000 volumes")
	}
	if c.TapeLength <= 0 {
		bad("tape length", c.TapeLength, "must be more than 0 bytes; set length in the tapetype")
	}
	if c.Bumpsize < 0 {
		bad("bumpsize", c.Bumpsize, "must be 0 or more bytes")
	}
	if !(c.Bumppercent >= 0 && c.Bumppercent <= 100) {
		bad("bumppercent", c.Bumppercent, "must be 0..100 (0 = use bumpsize)")
	}
	if c.Bumpdays < 1 || c.Bumpdays > 10000 {
		bad("bumpdays", c.Bumpdays, "must be 1..10000 runs")
	}
	if !(c.Bumpmult >= 1 && c.Bumpmult <= 1000) {
		bad("bumpmult", c.Bumpmult, "must be 1..1000 (1 = the same threshold at every level)")
	}
	if c.Maxpromoteday < 0 {
		bad("maxpromoteday", c.Maxpromoteday, "must be 0 or more days (0 = never promote)")
	}
	if !(c.CompRatio > 0 && c.CompRatio <= 1.1) {
		bad("default compression ratio", c.CompRatio, "must be more than 0 and at most 1.1 (compressed bytes / tar bytes)")
	}
	if c.ImageOverhead < 0 {
		bad("image overhead", c.ImageOverhead, "must be 0 or more bytes")
	}
	if !(c.FutilePercent >= 0 && c.FutilePercent <= 100) {
		bad("futile percent", c.FutilePercent, "must be 0..100 (0 = always dump incrementals)")
	}
	return errors.Join(errs...)
}

// Capacity is what one run may write: Runtapes volumes of TapeLength.
func (c Config) Capacity() int64 {
	if c.TapeLength > 0 && int64(c.Runtapes) > math.MaxInt64/c.TapeLength {
		return math.MaxInt64
	}
	return int64(c.Runtapes) * c.TapeLength
}

// MaxPromoteDays is how many days early a full may be promoted: the
// smaller of Maxpromoteday and half the dumpcycle (rounded down), so that
// a promoted full always comes at least half a cycle after the previous
// one.
func (c Config) MaxPromoteDays() int {
	return min(c.Maxpromoteday, c.Dumpcycle/2)
}

// bumpThreshold is what level L+1 must save over level L for a bump:
// Bumpsize (or Bumppercent of the full) times Bumpmult^(L-1).
func (c Config) bumpThreshold(level int, fullOrig int64) int64 {
	base := float64(c.Bumpsize)
	if c.Bumppercent > 0 && fullOrig > 0 {
		base = float64(fullOrig) * c.Bumppercent / 100
	}
	t := base * math.Pow(c.Bumpmult, float64(level-1))
	if t > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(math.Round(t))
}
