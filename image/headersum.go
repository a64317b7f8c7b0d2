package image

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// HeaderSumKey is the key of the line that carries the header's own
// checksum: the SHA-256 of the whole HeaderSize-byte header with the 64 hex
// digits of this line's value read as '0' characters (docs/format/image.md).
const HeaderSumKey = "header-sha256"

// ErrHeaderChecksum is matched (errors.Is) by every error about a header
// whose header-sha256 line is missing or does not match: the header was
// changed or damaged after it was written, and none of its fields can be
// trusted.
var ErrHeaderChecksum = errors.New("image header checksum mismatch")

// HeaderSumError is the error of ParseHeader and CheckHeaderSum for a
// header that fails its checksum. Its message names what was changed when
// that can be told (Damage); working that out costs up to about a tenth of
// a second, so it is done when the message or Damage is first asked for.
type HeaderSumError struct {
	Missing bool // the header has no header-sha256 line at all

	raw    []byte
	once   sync.Once
	damage HeaderDamage
}

// Damage says where the header was changed (DiagnoseHeader).
func (e *HeaderSumError) Damage() HeaderDamage {
	e.once.Do(func() { e.damage = DiagnoseHeader(e.raw) })
	return e.damage
}

func (e *HeaderSumError) Error() string {
	d := e.Damage()
	if e.Missing && !d.Exact {
		return fmt.Sprintf("image header: checksum missing: the header has no %s line: it was written by a tapir from before header checksums (such headers are refused) or that line was damaged (%s); none of its fields can be trusted",
			HeaderSumKey, d)
	}
	return fmt.Sprintf("image header: checksum mismatch: the header was changed or damaged after it was written: %s; none of its fields can be trusted", d)
}

// Is makes errors.Is(err, ErrHeaderChecksum) true.
func (e *HeaderSumError) Is(target error) bool { return target == ErrHeaderChecksum }

// CheckHeaderSum checks the header-sha256 line of a HeaderSize-byte header.
// It returns nil when the line is there and matches, a *HeaderSumError
// when it is missing or does not match, and another error when b is not an
// image header at all (wrong size, a volume label, something else).
func CheckHeaderSum(b []byte) error {
	if len(b) != HeaderSize {
		return fmt.Errorf("image header: got %d bytes, want exactly %d (truncated or not an image header)", len(b), HeaderSize)
	}
	off := FindSumLine(b, HeaderSumKey)
	if off < 0 {
		text := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			text = b[:i]
		}
		if err := checkMagic(string(text)); err != nil {
			return err
		}
		return &HeaderSumError{Missing: true, raw: append([]byte(nil), b...)}
	}
	if BlockSum(b, off) == string(b[off:off+SumHexLen]) {
		return nil
	}
	return &HeaderSumError{raw: append([]byte(nil), b...)}
}

// HeaderDamage is what DiagnoseHeader found in a header that fails its
// checksum.
type HeaderDamage struct {
	Exact  bool   // one changed byte explains the checksum: Offset, Was and Now are known
	Offset int    // offset of the changed byte in the header; -1 when not known
	Line   int    // line of the text (1 = "TAPIR FILE ..."); 0 for the padding or when not known
	Field  string // what is there: "level", "datestamp", "sha256", "header-sha256", "restore instructions", "padding", ...
	Was    byte   // when Exact: the byte as it was written
	Now    byte   // when Exact: the byte as it reads now
	Detail string // what is wrong, when not Exact
}

// String is the damage for a person: "line 1 (level), offset 57: reads "1"
// where "0" was written", "padding at offset 4000: ...", "line 3 (sha256):
// ...".
func (d HeaderDamage) String() string {
	where := ""
	switch {
	case d.Field == "padding" && d.Offset >= 0:
		where = fmt.Sprintf("padding at offset %d", d.Offset)
	case d.Line > 0 && d.Field != "":
		where = fmt.Sprintf("line %d (%s)", d.Line, d.Field)
		if d.Exact {
			where += fmt.Sprintf(", offset %d", d.Offset)
		}
	case d.Line > 0:
		where = fmt.Sprintf("line %d", d.Line)
	case d.Field != "":
		where = d.Field
	}
	what := d.Detail
	if d.Exact {
		what = fmt.Sprintf("reads %s where %s was written", byteName(d.Now), byteName(d.Was))
	}
	switch {
	case where == "":
		return what
	case what == "":
		return where
	}
	return where + ": " + what
}

func byteName(c byte) string {
	if c == 0 {
		return "a NUL"
	}
	return strconv.QuoteToASCII(string(rune(c)))
}

// DiagnoseHeader says where a header that fails its checksum was changed.
// It first looks for one changed byte that explains the checksum
// (FindChangedByte: exact, then it names the byte, its line and field);
// failing that it names the first line that does not parse, or that
// differs from what Marshal writes for the fields that parse, or stray
// bytes in the padding; failing that it says that no field can be named.
func DiagnoseHeader(b []byte) HeaderDamage {
	if len(b) != HeaderSize {
		return HeaderDamage{Offset: -1, Detail: fmt.Sprintf("the header is %d bytes, not %d", len(b), HeaderSize)}
	}
	st := structuralDamage(b)
	var first []int
	if st.Line > 0 {
		s, e := lineSpan(b, st.Line)
		for o := s; o <= e && o < len(b); o++ {
			first = append(first, o)
		}
	}
	if st.Offset >= 0 {
		first = append(first, st.Offset)
	}
	if off, was, ok := FindChangedByte(b, HeaderSumKey, first); ok {
		fixed := append([]byte(nil), b...)
		fixed[off] = was
		line, field := locate(fixed, off)
		return HeaderDamage{Exact: true, Offset: off, Line: line, Field: field, Was: was, Now: b[off]}
	}
	return st
}

// structuralDamage is the diagnosis from the text alone.
func structuralDamage(b []byte) HeaderDamage {
	d := HeaderDamage{Offset: -1}
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		d.Detail = "the header has no NUL padding"
		return d
	}
	if i := bytes.IndexFunc(b[end:], func(r rune) bool { return r != 0 }); i >= 0 {
		d.Field, d.Offset = "padding", end+i
		d.Detail = fmt.Sprintf("reads %s where only NULs were written", byteName(b[end+i]))
		return d
	}
	text := string(b[:end])
	lines := strings.Split(text, "\n")
	if !strings.HasSuffix(text, "\n") {
		d.Line, d.Field = len(lines), lineField(text, len(lines), 0)
		d.Detail = "the text does not end with a newline"
		return d
	}
	lines = lines[:len(lines)-1]
	sumOff := FindSumLine(b, HeaderSumKey)
	if sumOff < 0 {
		for i, l := range lines {
			if strings.HasPrefix(l, HeaderSumKey) {
				d.Line, d.Field = i+1, HeaderSumKey
				d.Detail = fmt.Sprintf("the checksum line %s is not %q followed by %d lower-case hex digits", clip(l), HeaderSumKey+": ", SumHexLen)
				return d
			}
		}
		d.Field = HeaderSumKey
		d.Detail = "there is no checksum line"
	}
	h, line, err := parseHeader(b)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "image header: ")
		if line == 0 {
			line = misspelledKey(lines)
		}
		if line > 0 {
			msg = strings.TrimPrefix(msg, fmt.Sprintf("line %d: ", line))
			d.Line, d.Field = line, lineField(text, line, -1)
		}
		d.Detail = msg
		return d
	}
	if sumOff < 0 {
		return d
	}
	// A changed checksum: the rest agrees with itself and the sum of it
	// differs from the line in a few digits only.
	stored, want := string(b[sumOff:sumOff+SumHexLen]), BlockSum(b, sumOff)
	if n := byteDiff(stored, want); n <= 8 {
		line := 1 + bytes.Count(b[:sumOff], []byte{'\n'})
		d.Line, d.Field = line, HeaderSumKey
		d.Detail = fmt.Sprintf("%d of the %d digits of the checksum itself were changed; the rest of the header matches the checksum it should have", n, SumHexLen)
		return d
	}
	m, err := h.Marshal()
	if err != nil {
		d.Detail = fmt.Sprintf("its fields do not make a header: %v", err)
		return d
	}
	mtext := string(m[:bytes.IndexByte(m, 0)])
	mlines := strings.Split(strings.TrimSuffix(mtext, "\n"), "\n")
	blank := blankLine(lines)
	for i := 0; i < max(len(lines), len(mlines)); i++ {
		var got, exp string
		if i < len(lines) {
			got = lines[i]
		}
		if i < len(mlines) {
			exp = mlines[i]
		}
		if strings.HasPrefix(got, HeaderSumKey+": ") && strings.HasPrefix(exp, HeaderSumKey+": ") {
			continue
		}
		if got == exp {
			continue
		}
		d.Line = i + 1
		if blank > 0 && d.Line > blank {
			d.Field = "restore instructions"
			d.Detail = fmt.Sprintf("reads %s where, for the fields above, tapir writes %s: this line or a field it follows (level, comp, blocksize or part) was changed", clip(got), clip(exp))
			return d
		}
		col := 0
		for col < len(got) && col < len(exp) && got[col] == exp[col] {
			col++
		}
		d.Field = lineField(text, d.Line, col)
		d.Detail = fmt.Sprintf("reads %s where tapir writes %s", clip(got), clip(exp))
		return d
	}
	d.Detail = "every line is well formed and agrees with the others, so a value was changed by more than one flipped bit or digit: which field cannot be told"
	return d
}

// misspelledKey is the line of a key that is not known but differs from a
// known key in one or two bytes (a changed key name makes "missing key"),
// 0 if none.
func misspelledKey(lines []string) int {
	for i := 1; i < len(lines) && lines[i] != ""; i++ {
		k, _, _ := strings.Cut(lines[i], ":")
		if isKnownKey(k) || k == HeaderSumKey {
			continue
		}
		for _, known := range append(knownKeys, HeaderSumKey) {
			if len(k) == len(known) && byteDiff(k, known) <= 2 {
				return i + 1
			}
		}
	}
	return 0
}

func byteDiff(a, b string) int {
	n := 0
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// blankLine is the number of the empty line after the keys, 0 if none.
func blankLine(lines []string) int {
	for i := 1; i < len(lines); i++ {
		if lines[i] == "" {
			return i + 1
		}
	}
	return 0
}

// lineSpan is the offsets of the first and last byte of a line (its
// newline included) in a header.
func lineSpan(b []byte, line int) (int, int) {
	start := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			return len(b), len(b)
		}
		start += i + 1
	}
	end := bytes.IndexByte(b[start:], '\n')
	if end < 0 {
		return start, len(b) - 1
	}
	return start, start + end
}

// locate names the line and field of offset off of a header.
func locate(b []byte, off int) (int, string) {
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		end = len(b)
	}
	if off >= end {
		return 0, "padding"
	}
	text := string(b[:end])
	line := 1 + strings.Count(text[:off], "\n")
	start := strings.LastIndexByte(text[:off], '\n') + 1
	return line, lineField(text, line, off-start)
}

// lineField names what is at column col of a line of a header's text
// (col < 0: the line as a whole).
func lineField(text string, line, col int) string {
	lines := strings.Split(text, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	l := lines[line-1]
	if line == 1 {
		if col < 0 {
			return "TAPIR FILE line"
		}
		return firstLineField(l, col)
	}
	if b := blankLine(lines); b > 0 {
		switch {
		case line == b:
			return "blank line after the keys"
		case line > b:
			return "restore instructions"
		}
	}
	k, _, ok := strings.Cut(l, ": ")
	if !ok {
		k, _, _ = strings.Cut(l, ":")
	}
	if k == "" || len(k) > 64 {
		return "key line"
	}
	return strings.ToValidUTF8(k, "?")
}

// firstLineField names the field of line 1 at column col.
func firstLineField(l string, col int) string {
	if col < len(magicFile)-1 {
		return "TAPIR FILE"
	}
	names := []string{"datestamp", "host", "path", "level", "level", "part", "part", "comp", "comp"}
	p, i := len(magicFile), 0
	for p < len(l) && i < len(names) {
		e := p
		if l[p] == '"' {
			if q, err := strconv.QuotedPrefix(l[p:]); err == nil {
				e = p + len(q)
			} else {
				e = len(l)
			}
		} else if j := strings.IndexByte(l[p:], ' '); j >= 0 {
			e = p + j
		} else {
			e = len(l)
		}
		if col < e || (col == e && i+1 == len(names)) {
			return names[i]
		}
		p, i = e+1, i+1
		if col < p { // the space before the next field
			return names[min(i, len(names)-1)]
		}
	}
	return names[min(i, len(names)-1)]
}
