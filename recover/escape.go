package recover

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The shell's one spelling of names (docs/recover.md, "Names"). A name in
// a backup is any byte string without NUL; what a person reads and what
// they type must be able to say every one of them:
//
//   - Escape renders a name for output (ls, find, list, history, error
//     messages): printable UTF-8 as it is, a backslash as \\, every other
//     byte (control characters, invalid UTF-8, unprintable characters) as
//     \xHH. A newline in a name never starts a new line of output.
//   - EscapeWord renders a name as one word of input (completion): Escape,
//     plus a backslash before blanks, quotes, '$', ';' and the glob
//     characters * ? [, so that the word reads back as exactly that name,
//     in the shell and in an -e script.
//   - tokenize reads a command line back: blanks separate words; \xHH is
//     a byte, a backslash before any other character takes it literally;
//     "..." keeps blanks (with the same backslash escapes); '...' keeps
//     everything as it is; $'...' reads C escapes (\n \t \r \a \b \e \f \v
//     \\ \' \" \xHH \ooo). A glob character that is escaped or quoted
//     matches itself.

// Escape renders a name for a person: printable UTF-8 unchanged, '\' as
// `\\`, any other byte as `\xHH`. tokenize reads the result back as the
// same bytes.
func Escape(s string) string { return escapeName(s, false) }

// EscapeWord renders a name as one word of shell input: as Escape, and
// blanks, quotes, '$', ';' and the glob characters * ? [ behind a
// backslash.
func EscapeWord(s string) string { return escapeName(s, true) }

// wordSpecial are the characters EscapeWord puts behind a backslash: the
// blank, quotes and '$' (tokenize), ';' (splitScript: -e), and the glob
// characters.
const wordSpecial = " '\";$*?["

func escapeName(s string, word bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' || (word && strings.IndexByte(wordSpecial, c) >= 0) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && n == 1, !unicode.IsPrint(r) && r != ' ':
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		case word && r < utf8.RuneSelf && strings.IndexByte(wordSpecial, byte(r)) >= 0:
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// word is one word of a command line: Text is what it says (quotes and
// escapes undone), Pat the same as a path.Match pattern (every glob
// character or backslash that was quoted or escaped is behind a
// backslash), Glob whether it holds an unescaped glob character.
type word struct {
	Text, Pat string
	Glob      bool
}

// tokenize splits a command line into words (see the top of this file).
// An unterminated quote is an error; a line ending in a lone backslash
// keeps it as a backslash.
func tokenize(line string) ([]word, error) {
	var out []word
	var text, pat strings.Builder
	in, glob := false, false
	lit := func(c byte) { // a byte that stands for itself
		text.WriteByte(c)
		if c == '*' || c == '?' || c == '[' || c == '\\' {
			pat.WriteByte('\\')
		}
		pat.WriteByte(c)
		in = true
	}
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				out = append(out, word{text.String(), pat.String(), glob})
				text.Reset()
				pat.Reset()
				in, glob = false, false
			}
			i++
		case c == '\\':
			if b, n, ok := hexByte(line[i+1:]); ok {
				lit(b)
				i += 1 + n
			} else if i+1 < len(line) {
				lit(line[i+1])
				i += 2
			} else {
				lit('\\')
				i++
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' quote (a name with a ' in it: write \\' or \"'\")")
			}
			for _, b := range []byte(line[i+1 : i+1+j]) {
				lit(b)
			}
			in = true
			i += j + 2
		case c == '"':
			i++
			closed := false
			for i < len(line) {
				d := line[i]
				if d == '"' {
					closed = true
					i++
					break
				}
				if d == '\\' && i+1 < len(line) {
					if b, n, ok := hexByte(line[i+1:]); ok {
						lit(b)
						i += 1 + n
						continue
					}
					lit(line[i+1])
					i += 2
					continue
				}
				lit(d)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated \" quote")
			}
			in = true
		case c == '$' && i+1 < len(line) && line[i+1] == '\'':
			n, err := ansiC(line[i+2:], lit)
			if err != nil {
				return nil, err
			}
			in = true
			i += 2 + n
		default:
			text.WriteByte(c)
			pat.WriteByte(c)
			if c == '*' || c == '?' || c == '[' {
				glob = true
			}
			in = true
			i++
		}
	}
	if in {
		out = append(out, word{text.String(), pat.String(), glob})
	}
	return out, nil
}

// hexByte reads "xHH" (exactly two hex digits) at the start of s.
func hexByte(s string) (byte, int, bool) {
	if len(s) < 3 || s[0] != 'x' {
		return 0, 0, false
	}
	h, ok1 := unhex(s[1])
	l, ok2 := unhex(s[2])
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return h<<4 | l, 3, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ansiC reads the body of $'...' up to its closing quote, passing each
// byte to lit, and returns how many bytes of s it used (the quote
// included).
func ansiC(s string, lit func(byte)) (int, error) {
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\'' {
			return i + 1, nil
		}
		if c != '\\' || i+1 >= len(s) {
			lit(c)
			i++
			continue
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'n':
			lit('\n')
		case 't':
			lit('\t')
		case 'r':
			lit('\r')
		case 'a':
			lit('\a')
		case 'b':
			lit('\b')
		case 'e', 'E':
			lit(0x1b)
		case 'f':
			lit('\f')
		case 'v':
			lit('\v')
		case '\\', '\'', '"', '?':
			lit(e)
		case 'x':
			v, n := 0, 0
			for n < 2 && i+n < len(s) {
				d, ok := unhex(s[i+n])
				if !ok {
					break
				}
				v = v<<4 | int(d)
				n++
			}
			if n == 0 {
				lit('\\')
				lit('x')
				continue
			}
			lit(byte(v))
			i += n
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v, n := int(e-'0'), 0
			for n < 2 && i+n < len(s) && '0' <= s[i+n] && s[i+n] <= '7' {
				v = v<<3 | int(s[i+n]-'0')
				n++
			}
			lit(byte(v))
			i += n
		default: // as bash: an unknown escape stays as it is
			lit('\\')
			lit(e)
		}
	}
	return 0, fmt.Errorf("unterminated $' quote")
}

// escapeGlob makes a literal string a path.Match pattern matching exactly
// it.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeGlob undoes escapeGlob on a pattern part without glob
// characters.
func unescapeGlob(p string) string {
	if strings.IndexByte(p, '\\') < 0 {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// sqlGlob turns a path.Match pattern (backslash escapes) into the SQLite
// GLOB pattern of the index server's find, which has no escape character:
// an escaped * ? [ becomes a class holding just it ([*] [?] [[]), a class
// is rewritten with ']' first and '-' last when they are members. It
// fails on a pattern path.Match would refuse.
func sqlGlob(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '\\':
			if i+1 >= len(p) {
				return "", fmt.Errorf("pattern ends in a lone backslash")
			}
			i++
			switch p[i] {
			case '*', '?', '[':
				b.WriteString("[" + p[i:i+1] + "]")
			default:
				b.WriteByte(p[i])
			}
		case '[':
			cls, n, err := sqlClass(p[i+1:])
			if err != nil {
				return "", err
			}
			b.WriteString(cls)
			i += n
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// sqlClass rewrites the class whose body starts s (after '['), returning
// the GLOB class and how many bytes of s it used. Members are runes, as
// for path.Match and SQLite.
func sqlClass(s string) (string, int, error) {
	i, neg := 0, false
	if i < len(s) && s[i] == '^' {
		neg, i = true, 1
	}
	var members strings.Builder
	bracket, dash, caret := false, false, false
	item := func() (rune, error) {
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated [ in the pattern (a literal [ is written \\[)")
		}
		if s[i] == '\\' {
			i++
			if i >= len(s) {
				return 0, fmt.Errorf("unterminated [ in the pattern (a literal [ is written \\[)")
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			// A byte that is not UTF-8 is a member by itself.
			r = rune(s[i]) | invalidByte
		}
		i += n
		return r, nil
	}
	// add writes the members lo..hi, keeping ']', '-' and '^' aside (they
	// have a place of their own in a GLOB class).
	add := func(lo, hi rune) {
		from := lo
		flush := func(to rune) {
			switch {
			case from > to:
			case from == to:
				members.WriteString(runeBytes(from))
			default:
				members.WriteString(runeBytes(from) + "-" + runeBytes(to))
			}
		}
		for _, sp := range []rune{'-', ']', '^'} {
			if lo <= sp && sp <= hi {
				flush(sp - 1)
				from = sp + 1
				switch sp {
				case '-':
					dash = true
				case ']':
					bracket = true
				case '^':
					caret = true
				}
			}
		}
		flush(hi)
	}
	for first := true; ; first = false {
		if i < len(s) && s[i] == ']' {
			if first {
				return "", 0, fmt.Errorf("empty [] in the pattern (a literal [ is written \\[)")
			}
			i++
			break
		}
		lo, err := item()
		if err != nil {
			return "", 0, err
		}
		hi := lo
		if i < len(s) && s[i] == '-' {
			i++
			if hi, err = item(); err != nil {
				return "", 0, err
			}
			if hi < lo || (lo|hi)&invalidByte != 0 && lo != hi {
				return "", 0, fmt.Errorf("range %s-%s in the pattern goes backwards or is not of characters", Escape(runeBytes(lo)), Escape(runeBytes(hi)))
			}
		}
		add(lo, hi)
	}
	if caret && !neg && !bracket && members.Len() == 0 {
		// '^' first would negate: '-' goes first (literal there), or
		// the class is the one character.
		if !dash {
			return "^", i, nil
		}
		return "[-^]", i, nil
	}
	var b strings.Builder
	b.WriteByte('[')
	if neg {
		b.WriteByte('^')
	}
	if bracket {
		b.WriteByte(']')
	}
	b.WriteString(members.String())
	if caret {
		b.WriteByte('^')
	}
	if dash {
		b.WriteByte('-')
	}
	b.WriteByte(']')
	return b.String(), i, nil
}

// invalidByte marks a class member that is a byte of invalid UTF-8.
const invalidByte = 1 << 30

func runeBytes(r rune) string {
	if r&invalidByte != 0 {
		return string([]byte{byte(r)})
	}
	return string(r)
}

// datestampRE finds a datestamp or a prefix of one (8, 10, 12 or 14
// digits of a year 19xx or 20xx) standing alone in a sentence of the
// server: the shell shows every date as YYYY-MM-DD hh:mm:ss.
var datestampRE = regexp.MustCompile(`(^|[\s(])(19|20)\d{6}(\d\d){0,3}($|[\s),.;:])`)

// tidyServerMessage makes an error sentence of the index server fit to
// print: the names of the request, which JSON turned into U+FFFD where
// they were not UTF-8, are put back as Escape spells them, and what is
// left of control or unprintable characters is escaped as \xHH (a name in
// a sentence never starts a new line or moves the cursor). Datestamps
// read as the shell writes dates (showDate).
func tidyServerMessage(msg string, names ...string) string {
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		if n == "" || Escape(n) == n {
			continue
		}
		var back string
		if b, err := json.Marshal(n); err == nil && json.Unmarshal(b, &back) == nil && back != "" {
			msg = strings.ReplaceAll(msg, back, Escape(n))
		}
	}
	msg = datestampRE.ReplaceAllStringFunc(msg, func(m string) string {
		i := strings.IndexFunc(m, func(r rune) bool { return '0' <= r && r <= '9' })
		j := i + strings.LastIndexFunc(m[i:], func(r rune) bool { return '0' <= r && r <= '9' }) + 1
		ds := m[i:j]
		if _, err := time.Parse("20060102150405"[:len(ds)], ds); err != nil {
			return m
		}
		return m[:i] + showDate(ds) + m[j:]
	})
	return printable(msg)
}

// printable escapes what must not reach a terminal as it is: control and
// unprintable characters and bytes that are not UTF-8, as \xHH. Unlike
// Escape it leaves backslashes alone: it is for sentences that may hold
// names Escape already spelled (an error, a FAILED line), never the only
// spelling of a name.
func printable(msg string) string {
	ok := true
	for _, r := range msg {
		if !unicode.IsPrint(r) && r != ' ' {
			ok = false
			break
		}
	}
	if ok {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		r, n := utf8.DecodeRuneInString(msg[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) && r != ' ' {
			for _, c := range []byte(msg[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		} else {
			b.WriteString(msg[i : i+n])
		}
		i += n
	}
	return b.String()
}

// printableError is an error whose sentence is printable (for the shell's
// output); errors.Is and errors.As see the error inside.
type printableError struct{ err error }

func (e printableError) Error() string {
	// Lines stay lines (errors.Join, a hint on its own line); the names
	// in them were spelled by Escape or tidyServerMessage.
	lines := strings.Split(e.err.Error(), "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}
func (e printableError) Unwrap() error { return e.err }
