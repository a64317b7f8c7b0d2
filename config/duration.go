package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time span. In TOML it is an integer (seconds) or a string:
// either a Go duration such as "30m" or "1h30m", or a number of seconds.
// Negative durations are rejected.
type Duration time.Duration

// String prints the Go duration form, e.g. "30m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a Duration as described for the type.
func ParseDuration(str string) (Duration, error) {
	s := strings.TrimSpace(str)
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q: want seconds or a duration such as \"30m\" or \"1h30m\"", str)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return secondsDuration(n)
	} else if allDigits(s) {
		return 0, fmt.Errorf("invalid duration %q: too long", str)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want seconds or a duration such as \"30m\" or \"1h30m\"", str)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", str)
	}
	return Duration(d), nil
}

func secondsDuration(n int64) (Duration, error) {
	if n < 0 {
		return 0, fmt.Errorf("invalid duration %d: must not be negative", n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("invalid duration %d seconds: too long", n)
	}
	return Duration(time.Duration(n) * time.Second), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
