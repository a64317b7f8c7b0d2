package catalog

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Run statuses.
const (
	RunRunning  = "running"
	RunOK       = "ok"
	RunStrange  = "strange"
	RunFailed   = "failed"
	RunDegraded = "degraded"
)

// Dump statuses. See docs/format/catalog.md for the life cycle.
const (
	DumpDumping = "dumping" // the image is arriving
	DumpHolding = "holding" // the image is complete on the holding disk (or handed to the taper)
	DumpGood    = "good"    // every part is on a volume and committed
	DumpFailed  = "failed"  // the dump failed; no file or frame rows are kept
	DumpPartial = "partial" // reserved: not set by this package today
)

// datestampLayout is the time layout of a run datestamp, YYYYMMDDhhmmss.
const datestampLayout = "20060102150405"

// checkDatestamp reports whether s is a valid run datestamp.
func checkDatestamp(s string) error {
	if len(s) != 14 || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("datestamp %q is not YYYYMMDDhhmmss (14 digits)", s)
	}
	if _, err := time.Parse(datestampLayout, s); err != nil {
		return fmt.Errorf("datestamp %q is not a valid date and time (YYYYMMDDhhmmss)", s)
	}
	return nil
}

// normalizeAsOf turns an "as of" bound into a datestamp upper bound for
// string comparison. "" means no limit. A shorter prefix of digits (at least
// the year) means the end of that period: "20250301" includes every run of
// 1 March 2025.
func normalizeAsOf(s string) (string, error) {
	if s == "" {
		return "99999999999999", nil
	}
	if len(s) < 4 || len(s) > 14 || strings.Trim(s, "0123456789") != "" {
		return "", fmt.Errorf("as-of date %q is not a datestamp prefix (YYYY[MM[DD[hh[mm[ss]]]]], digits only)", s)
	}
	return s + strings.Repeat("9", 14-len(s)), nil
}

func checkRunStatus(s string, allowRunning bool) error {
	switch s {
	case RunOK, RunStrange, RunFailed, RunDegraded:
		return nil
	case RunRunning:
		if allowRunning {
			return nil
		}
	}
	return fmt.Errorf("run status %q is not one of ok, strange, failed, degraded", s)
}

func checkDumpStatus(s string) error {
	switch s {
	case DumpDumping, DumpHolding, DumpGood, DumpFailed, DumpPartial:
		return nil
	}
	return fmt.Errorf("dump status %q is not one of dumping, holding, good, failed, partial", s)
}

// checkName checks a host name, DLE path or volume label: not empty, no
// control characters; labels and hosts also without spaces (they are
// space-separated words in image headers).
func checkName(what, s string, spaces bool) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) || (!spaces && unicode.IsSpace(r)) {
			return fmt.Errorf("%s %q contains a control or blank character", what, s)
		}
	}
	return nil
}

// splitPath checks a path relative to the DLE root, as stored in the index
// ('/'-separated, no leading "/" or "./", no trailing "/", no empty, "." or
// ".." component, no NUL) and splits it into its directory ("" for the DLE
// root) and its last component.
func splitPath(p string) (dir, name string, err error) {
	if err := checkRelPath(p); err != nil {
		return "", "", err
	}
	if p == "" {
		return "", "", fmt.Errorf("path is empty (the DLE root itself has no index entry)")
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, nil
	}
	return p[:i], p[i+1:], nil
}

// checkRelPath checks a relative directory or file path; "" (the DLE root)
// is valid.
func checkRelPath(p string) error {
	if p == "" {
		return nil
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q contains a NUL byte", p)
	}
	if p[0] == '/' {
		return fmt.Errorf("path %q starts with '/': index paths are relative to the DLE root", p)
	}
	if p[len(p)-1] == '/' {
		return fmt.Errorf("path %q ends with '/': index paths have no trailing slash", p)
	}
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "":
			return fmt.Errorf("path %q has an empty component (\"//\")", p)
		case ".", "..":
			return fmt.Errorf("path %q has a %q component: index paths are clean and stay inside the DLE", p, c)
		}
	}
	return nil
}

// cleanLookup makes a path typed by a person or a shell acceptable for a
// lookup: leading "/" and "./" and trailing "/" are dropped. The result is
// then checked like a stored path.
func cleanLookup(p string) (string, error) {
	for {
		switch {
		case strings.HasPrefix(p, "./"):
			p = p[2:]
		case strings.HasPrefix(p, "/"):
			p = p[1:]
		default:
			p = strings.TrimRight(p, "/")
			if p == "." {
				p = ""
			}
			return p, checkRelPath(p)
		}
	}
}

func validType(t byte) bool {
	switch t {
	case '0', '1', '2', '3', '4', '5', '6', 'D':
		return true
	}
	return false
}
