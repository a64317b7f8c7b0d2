package planner

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsAmandas(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Bumpsize != 10*mib || c.Bumpdays != 2 || c.Bumpmult != 1.5 || c.Maxpromoteday != 10000 ||
		c.CompRatio != 0.5 || c.Dumpcycle != 7 || c.Runspercycle != 7 || c.Runtapes != 1 || c.Bumppercent != 0 {
		t.Errorf("DefaultConfig() = %+v, not Amanda's defaults", c)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"dumpcycle", func(c *Config) { c.Dumpcycle = 0 }, "dumpcycle = 0: must be 1..10000 days"},
		{"runspercycle", func(c *Config) { c.Runspercycle = -1 }, "runspercycle = -1"},
		{"runtapes", func(c *Config) { c.Runtapes = 0 }, "runtapes = 0"},
		{"length", func(c *Config) { c.TapeLength = 0 }, "tape length = 0: must be more than 0 bytes; set length in the tapetype"},
		{"bumpsize", func(c *Config) { c.Bumpsize = -1 }, "bumpsize = -1"},
		{"bumppercent", func(c *Config) { c.Bumppercent = 101 }, "bumppercent = 101: must be 0..100"},
		{"bumppercent NaN", func(c *Config) { c.Bumppercent = math.NaN() }, "bumppercent = NaN"},
		{"bumpdays", func(c *Config) { c.Bumpdays = 0 }, "bumpdays = 0"},
		{"bumpmult", func(c *Config) { c.Bumpmult = 0.9 }, "bumpmult = 0.9: must be 1..1000"},
		{"maxpromoteday", func(c *Config) { c.Maxpromoteday = -1 }, "maxpromoteday = -1"},
		{"ratio", func(c *Config) { c.CompRatio = 0 }, "default compression ratio = 0"},
		{"overhead", func(c *Config) { c.ImageOverhead = -5 }, "image overhead = -5"},
		{"futile", func(c *Config) { c.FutilePercent = 150 }, "futile percent = 150"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := Plan(c, nil, now); err == nil {
				t.Error("Plan accepted an invalid configuration")
			}
		})
	}
	c := DefaultConfig()
	c.Dumpcycle, c.Runtapes = 0, 0
	if err := c.Validate(); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two bad settings should give two lines, got %v", err)
	}
}

func TestBumpThreshold(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		level      int
		percent    float64
		mult       float64
		full, want int64
	}{
		{1, 0, 1.5, 0, 10 * mib},
		{2, 0, 1.5, 0, 15 * mib},
		{3, 0, 1.5, 0, 22*mib + 512*kib},
		{4, 0, 2, 0, 80 * mib},
		{3, 0, 1, 0, 10 * mib},
		{1, 10, 1.5, 10 * gib, gib},
		{2, 10, 1.5, 10 * gib, gib + 512*mib},
		{1, 10, 1.5, 0, 10 * mib}, // no full size known: bumpsize
	} {
		c.Bumppercent, c.Bumpmult = tc.percent, tc.mult
		if got := c.bumpThreshold(tc.level, tc.full); got != tc.want {
			t.Errorf("level %d, bumppercent %v, bumpmult %v, full %d: threshold %d, want %d", tc.level, tc.percent, tc.mult, tc.full, got, tc.want)
		}
	}
}

func TestMaxPromoteDays(t *testing.T) {
	for _, tc := range []struct{ cycle, maxp, want int }{
		{7, 10000, 3}, {7, 2, 2}, {7, 0, 0}, {14, 10000, 7}, {1, 10000, 0}, {2, 10000, 1},
	} {
		c := DefaultConfig()
		c.Dumpcycle, c.Maxpromoteday = tc.cycle, tc.maxp
		if got := c.MaxPromoteDays(); got != tc.want {
			t.Errorf("dumpcycle %d, maxpromoteday %d: %d, want %d", tc.cycle, tc.maxp, got, tc.want)
		}
	}
}

func TestCapacity(t *testing.T) {
	c := DefaultConfig()
	c.Runtapes, c.TapeLength = 3, 400*gib
	if c.Capacity() != 1200*gib {
		t.Errorf("Capacity() = %d", c.Capacity())
	}
	c.Runtapes, c.TapeLength = 1000, math.MaxInt64/10
	if c.Capacity() != math.MaxInt64 {
		t.Errorf("Capacity() overflowed: %d", c.Capacity())
	}
}

func TestDayNumber(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = tz // no tzdata: the fixed zone still tests the rest
	}
	for _, tc := range []struct {
		name string
		a, b time.Time
		want int
	}{
		{"00:55 then 01:05 a week later", time.Date(2026, 11, 24, 0, 55, 0, 0, tz), time.Date(2026, 12, 1, 1, 5, 0, 0, tz), 7},
		{"01:05 then 00:55 a week later", time.Date(2026, 11, 24, 1, 5, 0, 0, tz), time.Date(2026, 12, 1, 0, 55, 0, 0, tz), 7},
		{"23:59 then 00:01", time.Date(2026, 11, 30, 23, 59, 0, 0, tz), time.Date(2026, 12, 1, 0, 1, 0, 0, tz), 1},
		{"across the end of summer time", time.Date(2026, 10, 24, 1, 0, 0, 0, berlin), time.Date(2026, 10, 26, 1, 0, 0, 0, berlin), 2},
		{"across the start of summer time", time.Date(2026, 3, 28, 1, 0, 0, 0, berlin), time.Date(2026, 3, 30, 1, 0, 0, 0, berlin), 2},
		{"history in UTC, run in CET", time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC), time.Date(2026, 12, 1, 1, 0, 0, 0, tz), 0},
	} {
		loc := tc.b.Location()
		if got := dayNumber(tc.b, loc) - dayNumber(tc.a, loc); got != tc.want {
			t.Errorf("%s: %d days, want %d", tc.name, got, tc.want)
		}
	}
	if d := dateOf(dayNumber(now, tz)); d != "2026-12-01" {
		t.Errorf("dateOf = %s", d)
	}
}
