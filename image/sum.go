package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// The checksum rule shared by image headers and volume labels (the taper's
// label uses the same helpers with its own key): a block of text and NUL
// padding carries one line "<key>: <64 lower-case hex digits>", and those
// digits are the SHA-256 of the whole block with the digits themselves read
// as '0' characters. So every byte is covered, the first line, the keys,
// the lines for people and the padding, and a person can check it with
// sed and sha256sum (docs/format/image.md).

// SumHexLen is the number of hex digits of a checksum line's value.
const SumHexLen = 64

// sumSearchLimit and sumSearchBudget bound FindChangedByte: only the first
// bytes of a block's text are searched (a header's text is well under
// this), with at most so many SHA-256 sums (all the changes tried in a
// header of 700 bytes of text take about 10000).
const (
	sumSearchLimit  = 4096
	sumSearchBudget = 12000
)

// FindSumLine returns the offset in b of the 64 hex digits of the first
// line of b's text (the bytes before the first NUL) that is exactly
// "<key>: <64 lower-case hex digits>", or -1 if there is none.
func FindSumLine(b []byte, key string) int {
	text := b
	if i := bytes.IndexByte(b, 0); i >= 0 {
		text = b[:i]
	}
	prefix := key + ": "
	for start := 0; start < len(text); {
		end := bytes.IndexByte(text[start:], '\n')
		if end < 0 {
			return -1 // a line without its newline is not a line
		}
		line := text[start : start+end]
		if len(line) == len(prefix)+SumHexLen && string(line[:len(prefix)]) == prefix && isLowerHex(line[len(prefix):]) {
			return start + len(prefix)
		}
		start += end + 1
	}
	return -1
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

var zeroDigits = bytes.Repeat([]byte{'0'}, SumHexLen)

// BlockSum returns the lower-case hex SHA-256 of b with the SumHexLen bytes
// at valueOff read as '0' characters: the value a checksum line at valueOff
// must hold. b is not changed.
func BlockSum(b []byte, valueOff int) string {
	h := sha256.New()
	h.Write(b[:valueOff])
	h.Write(zeroDigits)
	h.Write(b[valueOff+SumHexLen:])
	return hex.EncodeToString(h.Sum(nil))
}

// CheckBlockSum looks for the checksum line key in b and checks it: found
// says whether b has such a line, ok whether its value is b's BlockSum.
func CheckBlockSum(b []byte, key string) (found, ok bool) {
	off := FindSumLine(b, key)
	if off < 0 {
		return false, false
	}
	return true, BlockSum(b, off) == string(b[off:off+SumHexLen])
}

// FindChangedByte looks for one byte of b whose change explains why b does
// not carry a matching checksum line key: a byte that, set back to some
// other value, makes CheckBlockSum(b, key) true. It tries single flipped
// bits, a decimal or hex digit changed into another, a NUL that replaced a
// byte of text and a stray byte in the NUL padding; first at the offsets in
// first (the places a caller suspects), then at every offset of the text
// (up to 4096 bytes). It returns the offset and the byte as it was written.
// The search costs up to 12000 SHA-256 sums of the block (a fifth of a
// second for a 32 KiB block on a CPU with SHA instructions); a change of
// more than one byte, or one it does not try, is not found. SHA-256 makes
// a wrong answer practically impossible: a byte it names was changed.
func FindChangedByte(b []byte, key string, first []int) (off int, was byte, ok bool) {
	c := append([]byte(nil), b...)
	textEnd := bytes.IndexByte(c, 0)
	if textEnd < 0 {
		textEnd = len(c)
	}
	// lineStart[o] is where the line of offset o of the text starts.
	limit := min(textEnd+1, len(c), sumSearchLimit)
	lineStart := make([]int, limit)
	for o, ls := 0, 0; o < limit; o++ {
		lineStart[o] = ls
		if c[o] == '\n' {
			ls = o + 1
		}
	}
	lastNL := bytes.LastIndexByte(c[:textEnd], '\n')
	// Where the checksum line is, unless a change moves line boundaries or
	// is in a line of exactly a checksum line's length (which it may make
	// one, or unmake).
	base := FindSumLine(c, key)
	sumLineLen := len(key) + 2 + SumHexLen
	budget := sumSearchBudget
	tried := map[int]bool{}
	try := func(o int) (byte, bool) {
		if o < 0 || o >= len(c) || o >= limit && o <= textEnd || tried[o] {
			return 0, false
		}
		tried[o] = true
		orig := c[o]
		defer func() { c[o] = orig }()
		maySumLine := false
		if o < limit {
			if le := bytes.IndexByte(c[o:], '\n'); le >= 0 {
				maySumLine = o+le-lineStart[o] == sumLineLen
			}
		}
		for _, v := range alternatives(orig, o, textEnd, lastNL, c) {
			if budget <= 0 {
				return 0, false
			}
			c[o] = v
			at := base
			if maySumLine || orig == '\n' || v == '\n' || orig == 0 || v == 0 {
				at = FindSumLine(c, key)
			}
			if at < 0 {
				continue
			}
			budget--
			if BlockSum(c, at) == string(c[at:at+SumHexLen]) {
				return v, true
			}
		}
		return 0, false
	}
	for _, o := range first {
		if v, ok := try(o); ok {
			return o, v, true
		}
	}
	// Stray bytes in the padding, then every offset of the text.
	for o := textEnd + 1; o < len(c); o++ {
		if c[o] != 0 {
			if v, ok := try(o); ok {
				return o, v, true
			}
			break
		}
	}
	// Only the text can have held other bytes (a NUL that replaced one
	// ends it early: textEnd itself is tried).
	for o := 0; o < limit; o++ {
		if v, ok := try(o); ok {
			return o, v, true
		}
	}
	return -1, 0, false
}

// alternatives are the values FindChangedByte tries for the byte cur at
// offset o of c, whose text ends at textEnd, its last newline at lastNL.
func alternatives(cur byte, o, textEnd, lastNL int, c []byte) []byte {
	var seen [256]bool
	seen[cur] = true
	var out []byte
	add := func(v byte) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	switch {
	case cur == 0 && o == textEnd && o+1 < len(c) && c[o+1] != 0:
		// The text seems to go on after this NUL: any byte may have been
		// replaced by it.
		for v := 1; v < 256; v++ {
			add(byte(v))
		}
		return out
	case cur == 0 && o == textEnd:
		add('\n') // the last newline of the text
	case cur != 0 && (o > textEnd || o > lastNL):
		add(0) // a stray byte in the padding, or one that ended the text early
	}
	for bit := 0; bit < 8; bit++ {
		add(cur ^ 1<<bit)
	}
	const hexDigits = "0123456789abcdef"
	switch {
	case inHexRun(c, o):
		for i := 0; i < 16; i++ {
			add(hexDigits[i])
		}
	case '0' <= cur && cur <= '9':
		for i := 0; i < 10; i++ {
			add(hexDigits[i])
		}
	}
	return out
}

// inHexRun reports whether offset o of c is inside a run of at least 32
// lower-case hex digits (a SHA-256 value).
func inHexRun(c []byte, o int) bool {
	isHex := func(i int) bool { return i >= 0 && i < len(c) && isLowerHex(c[i:i+1]) }
	if !isHex(o) {
		return false
	}
	s, e := o, o
	for isHex(s - 1) {
		s--
	}
	for isHex(e + 1) {
		e++
	}
	return e-s+1 >= 32
}
