package bytesize

import "strconv"

var units = [...]string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// Format formats a byte count for people, in binary units with at most
// one decimal and at most three digits before it: "0 B", "1023 B",
// "1 KiB", "1.5 KiB", "310 MiB", "1.2 TiB", "-2 GiB". Bytes are whole;
// a ".0" is left out.
func Format(n int64) string {
	neg := n < 0
	v := float64(n)
	if neg {
		v = -v
	}
	u := 0
	for (v >= 1024 || (u > 0 && v >= 1023.95)) && u < len(units)-1 {
		v /= 1024
		u++
	}
	var s string
	switch {
	case u == 0:
		s = strconv.FormatFloat(v, 'f', 0, 64)
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
