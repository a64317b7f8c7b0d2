package bytesize

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1: "1 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 10 * mib: "10 MiB", 35 * mib: "35 MiB",
		310 * mib: "310 MiB", mib - 1: "1 MiB", 3 * gib / 2: "1.5 GiB", 1200 * gib: "1.2 TiB", -2 * gib: "-2 GiB",
		-1023: "-1023 B", 1 << 62: "4 EiB", math.MaxInt64: "8 EiB", math.MinInt64: "-8 EiB",
		99*kib + kib/2: "99.5 KiB", 100 * kib: "100 KiB", 1023 * kib: "1023 KiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

// Every size prints as a number of at most four digits (one decimal at
// most) and a unit, and a larger count never prints smaller.
func TestFormatShape(t *testing.T) {
	val := func(s string) float64 {
		num, unit, ok := strings.Cut(s, " ")
		if !ok {
			t.Fatalf("%q: no unit", s)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || len(strings.ReplaceAll(num, ".", "")) > 4 {
			t.Fatalf("%q: number %q", s, num)
		}
		for i, u := range units {
			if u == unit {
				return f * math.Pow(1024, float64(i))
			}
		}
		t.Fatalf("%q: unit %q", s, unit)
		return 0
	}
	prev := -1.0
	for n := int64(0); n < 1<<50; n = n*9/8 + 1 {
		v := val(Format(n))
		if v < prev {
			t.Fatalf("Format(%d) = %q is smaller than the size before", n, Format(n))
		}
		if math.Abs(v-float64(n)) > 0.05*float64(n)+0.5 {
			t.Fatalf("Format(%d) = %q is more than 5%% off", n, Format(n))
		}
		prev = v
	}
}
