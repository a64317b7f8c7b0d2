package planner

import "time"

// dayNumber numbers the calendar day of t in loc: consecutive days get
// consecutive numbers, whatever the hour, daylight saving time included.
func dayNumber(t time.Time, loc *time.Location) int {
	y, m, d := t.In(loc).Date()
	return int(time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Unix() / 86400)
}

// dateOf is the calendar date of day number n, as YYYY-MM-DD.
func dateOf(n int) string {
	return time.Unix(int64(n)*86400+12*3600, 0).UTC().Format("2006-01-02")
}

// weekdayOf is the short weekday name of day number n.
func weekdayOf(n int) string {
	return time.Unix(int64(n)*86400+12*3600, 0).UTC().Format("Mon")
}

// daysWord is "1 day" or "n days".
func daysWord(n int) string {
	if n == 1 || n == -1 {
		return itoa(n) + " day"
	}
	return itoa(n) + " days"
}
