package planner

import (
	"strconv"
)

func itoa(n int) string { return strconv.Itoa(n) }

// Size formats a byte count for people, in binary units with at most one
// decimal: "0 B", "512 B", "1.5 KiB", "310 MiB", "1.2 TiB".
func Size(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	v := float64(n)
	for (v >= 1024 || (u > 0 && v >= 1023.95)) && u < len(units)-1 {
		v /= 1024
		u++
	}
	var s string
	switch {
	case u == 0:
		s = strconv.FormatInt(n, 10)
	case v >= 99.95:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 1, 64)
		if len(s) > 2 && s[len(s)-2:] == ".0" {
			s = s[:len(s)-2]
		}
	}
	if neg {
		s = "-" + s
	}
	return s + " " + units[u]
}

// percent formats part/whole as "42 %", or "-" when whole is 0.
func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(part)/float64(whole), 'f', 0, 64) + " %"
}
