package client

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// What the agent sends the server is bounded (docs/format/agent-protocol.md,
// "Limits"): a host with millions of unreadable files, or a failure
// that quotes a huge name, must not flood the server's memory or the
// report.
const (
	// MaxWarnings is the number of warning lines (W frames) sent per dump.
	MaxWarnings = 100
	// MaxWarningBytes bounds the warning text sent per dump, all lines
	// together.
	MaxWarningBytes = 64 << 10
	// MaxTextLen bounds one warning line, one failure text (Reply.Error,
	// Done.Error) and one selfcheck problem, in bytes.
	MaxTextLen = 4 << 10
)

const cutMark = " [cut]"

// oneLine makes s one line of at most max bytes for the server: control
// characters are escaped (a file name holding a newline cannot fake a
// line of the report), and a longer text is cut on a UTF-8 boundary and
// marked " [cut]".
func oneLine(s string, max int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, c)
			default:
				b.WriteByte(c)
			}
		}
		s = b.String()
	}
	if len(s) <= max {
		return s
	}
	n := max - len(cutMark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + cutMark
}

// warnCap passes the warnings of one dump to send until MaxWarnings lines
// or MaxWarningBytes bytes are sent, and counts the rest; finish sends one
// line that says how many were held back.
type warnCap struct {
	send    func(string)
	sent    int
	bytes   int
	dropped int
	// held, until release, keeps the warnings made before the reply: a
	// W frame never goes before the Reply message the server reads
	// first.
	held    []string
	holding bool
}

// hold keeps the warnings from now until release.
func (c *warnCap) hold() { c.holding = true }

// release sends the warnings held, in order, and stops holding.
func (c *warnCap) release() {
	c.holding = false
	for _, line := range c.held {
		c.send(line)
	}
	c.held = nil
}

func (c *warnCap) warn(msg string) {
	line := oneLine(msg, MaxTextLen)
	if c.dropped > 0 || c.sent >= MaxWarnings || c.bytes+len(line) > MaxWarningBytes {
		c.dropped++
		return
	}
	c.sent++
	c.bytes += len(line)
	if c.holding {
		c.held = append(c.held, line)
		return
	}
	c.send(line)
}

// finish sends the summary of the warnings held back, if any.
func (c *warnCap) finish() {
	if c.dropped == 0 {
		return
	}
	c.send(fmt.Sprintf("and %d more warnings not sent (the agent sends at most %d warnings, %d bytes of them, per dump)",
		c.dropped, MaxWarnings, MaxWarningBytes))
}
