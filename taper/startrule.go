package taper

import "time"

// StartMargin is how much larger than its estimate an image is assumed to
// be when deciding whether to start taping it while it is dumped: an
// estimate that is a little short must not make the drive catch up.
const StartMargin = 1.10

// StartNow is the rule by which the taper starts writing an image that
// the dumper is still writing to the holding disk. written bytes are
// there, written at dumpRate (bytes per second, measured so far); the
// image is estimated at estimate bytes (StartMargin is added); the drive
// writes driveRate bytes per second when fed.
//
// Started now, the drive has written driveRate·t bytes at time t and the
// dumper written + dumpRate·t; the dumper ends when it has written
// remaining = estimate − written more, at t_end = remaining/dumpRate. A
// drive faster than the dumper catches up at t_c = written/(driveRate −
// dumpRate). The rule says start when t_c ≥ t_end, that is
//
//	written · dumpRate ≥ remaining · (driveRate − dumpRate)
//
// and always when the drive is no faster than the dumper (it never
// catches up) or the image has reached its estimate. A drive that matches
// its speed to the data down to minRate (0: it does not) never stops
// while the dumper feeds it at least minRate: taping starts at once; a
// dumper slower than that is buffered on the holding disk first, by the
// rule above. With nothing written, no measured rate or no estimate it
// says wait: the image is taped once it is complete.
func StartNow(written, estimate int64, dumpRate, driveRate, minRate float64) bool {
	if written <= 0 || estimate <= 0 || !(dumpRate > 0) || !(driveRate > 0) {
		return false
	}
	if minRate > 0 && dumpRate >= minRate {
		return true
	}
	remaining := float64(estimate)*StartMargin - float64(written)
	if remaining <= 0 || driveRate <= dumpRate {
		return true
	}
	return float64(written)*dumpRate >= remaining*(driveRate-dumpRate)
}

// Rate is bytes per second over d; 0 when d is not positive.
func Rate(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds()
}
