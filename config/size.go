package config

import (
	"fmt"
	"math/big"
	"strings"
)

// Size is a byte count. In TOML it is written as an integer (bytes) or as a
// string with a unit: "512", "64k", "64 KiB", "1MiB", "10 GB", "12 TB".
// Units are case-insensitive; k, m, g, t, p and KiB, MiB, GiB, TiB, PiB are
// powers of 1024, kB, MB, GB, TB, PB are powers of 1000, b or no unit means
// bytes. A fraction is allowed when the result is a whole number of bytes
// ("1.5 GiB").
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
	PiB Size = 1 << 50
)

var sizeUnits = map[string]Size{
	"": 1, "b": 1,
	"k": KiB, "kib": KiB, "kb": 1e3,
	"m": MiB, "mib": MiB, "mb": 1e6,
	"g": GiB, "gib": GiB, "gb": 1e9,
	"t": TiB, "tib": TiB, "tb": 1e12,
	"p": PiB, "pib": PiB, "pb": 1e15,
}

// String returns the size exactly, in the unit that gives the shortest
// number: "256 KiB", "10 GiB", "12 TB", or a plain byte count such as
// "1234". ParseSize(s.String()) == s for every s >= 0.
func (s Size) String() string {
	if s <= 0 {
		return fmt.Sprintf("%d", int64(s))
	}
	best := fmt.Sprintf("%d", int64(s))
	bestN := s
	for _, units := range [][]struct {
		n    Size
		name string
	}{
		{{PiB, "PiB"}, {TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}},
		{{1e15, "PB"}, {1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"}},
	} {
		for _, u := range units {
			if s%u.n == 0 {
				if s/u.n < bestN {
					best, bestN = fmt.Sprintf("%d %s", int64(s/u.n), u.name), s/u.n
				}
				break
			}
		}
	}
	return best
}

// ParseSize parses a size as described for Size: "512", "64k", "64 KiB",
// "10 GB". Negative sizes are rejected.
func ParseSize(str string) (Size, error) {
	s := strings.TrimSpace(str)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", str)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" || strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes, optionally followed by a unit such as k, KiB, MB or GiB", str)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use b, k, KiB, kB, M, MiB, MB, G, GiB, GB, T, TiB, TB, P, PiB or PB)", str, strings.TrimSpace(s[i:]))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: %q is not a number", str, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(int64(mult)))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", str)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: too large", str)
	}
	return Size(n.Int64()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
