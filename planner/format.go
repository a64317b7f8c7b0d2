package planner

import (
	"strconv"
)

func itoa(n int) string { return strconv.Itoa(n) }

// percent formats part/whole as "42 %", or "-" when whole is 0.
func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(part)/float64(whole), 'f', 0, 64) + " %"
}
