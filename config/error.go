package config

import (
	"fmt"
	"sort"
)

// Error is a problem in a configuration file. Error() is
// "<file>:<line>: <msg>", or "<file>: <msg>" when Line is 0.
type Error struct {
	File string // the file name as given to Load or Parse
	Line int    // 1-based; 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// first returns the error with the smallest known line (errors without a
// line come last); ties keep their order of discovery.
func first(errs []*Error) *Error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Line, errs[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	return errs[0]
}
