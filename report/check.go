package report

import (
	"strings"
	"time"
)

// Check is the outcome of a preflight check (tapir check), to be printed
// or mailed (amcheck -m): every problem a person should fix before the
// next run, and what the check found in order.
type Check struct {
	Org      string
	Config   string
	Hostname string // the backup server's host name
	Time     time.Time
	Problems []Problem
	// Warnings need a person's attention but do not stop the next run
	// (the age recipients of a DLE changed since its last full).
	Warnings []string
	Info     []string // what is fine and what the next run will do ("Will write to volume X in slot 2.")
	Summary  string   // one line, e.g. "12 hosts checked in 3 s."; optional
}

// Problem is one thing that will make the next run fail or degrade.
type Problem struct {
	Where string // what was checked: "holding disk /var/hold", "host db1", "volumes"
	What  string // what is wrong and what to do, one line
}

// Subject is amcheck's: "<org> TAPIR PROBLEM: FIX BEFORE RUN, IF POSSIBLE"
// when there are problems, else "<org> TAPIR CHECK: NO PROBLEMS FOUND".
func (c *Check) Subject() string {
	if len(c.Problems) > 0 {
		return clean(c.Org) + " TAPIR PROBLEM: FIX BEFORE RUN, IF POSSIBLE"
	}
	return clean(c.Org) + " TAPIR CHECK: NO PROBLEMS FOUND"
}

// Text renders the check: the subject, the header, one "ERROR:" line per
// problem, the information lines, and the count.
func (c *Check) Text() string {
	t := &textWriter{}
	t.line("%s", c.Subject())
	t.WriteByte('\n')
	if c.Hostname != "" {
		t.line("Hostname: %s", clean(c.Hostname))
	}
	t.line("Org     : %s", clean(c.Org))
	t.line("Config  : %s", clean(c.Config))
	if !c.Time.IsZero() {
		t.line("Date    : %s", c.Time.Format("January 2, 2006 15:04:05"))
	}
	if len(c.Problems) > 0 {
		t.section("PROBLEMS:")
		for _, p := range c.Problems {
			if p.Where == "" {
				t.line("  ERROR: %s", clean(p.What))
			} else {
				t.line("  ERROR: %s: %s", clean(p.Where), clean(p.What))
			}
		}
	}
	if len(c.Warnings) > 0 {
		t.section("WARNINGS:")
		for _, w := range c.Warnings {
			t.line("  WARNING: %s", clean(w))
		}
	}
	if len(c.Info) > 0 {
		t.section("CHECKED:")
		for _, i := range c.Info {
			t.line("  %s", clean(i))
		}
	}
	t.WriteByte('\n')
	if c.Summary != "" {
		t.line("%s", clean(c.Summary))
	}
	t.line("%s found.", strings.Replace(count(len(c.Problems), "problem"), "0 problems", "No problems", 1))
	if len(c.Problems) > 0 {
		t.line("Fix them, then run `tapir check -c %s` again.", clean(c.Config))
	}
	return t.String()
}
