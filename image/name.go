package image

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name returns the file name stem "<host>.<escaped path>.<level>" used for
// holding files and vtape files, e.g. "web1._etc.0" as Amanda names them. The path is escaped so that names never collide
// and never contain '/': '%' -> "%25", '_' -> "%5F", '/' -> '_', and space,
// control bytes, non-printable runes and invalid UTF-8 are %XX-escaped
// byte by byte (upper-case hex). The host is escaped the same way except
// that '/' becomes "%2F", so the host never contains '_' and the first "._"
// in a stem is the separator.
//
// Very long paths give stems longer than a file system allows (255 bytes);
// callers creating files must check.
func (h *Header) Name() string {
	return nameOf(h.Host, h.Path, h.Level)
}

func nameOf(host, path string, level int) string {
	var b strings.Builder
	escapeName(&b, host, false)
	b.WriteByte('.') // an absolute path starts with '/', escaped '_': "web1._etc.0", as Amanda names it
	escapeName(&b, path, true)
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(level))
	return b.String()
}

const hexUpper = "0123456789ABCDEF"

func escapeName(b *strings.Builder, s string, isPath bool) {
	pct := func(c byte) {
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&15])
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			pct(s[i])
		case r == '/' && isPath:
			b.WriteByte('_')
		case r == '%' || r == '_' || r == '/' || r == ' ' || r < 0x20 || r == 0x7f:
			pct(byte(r))
		case r >= 0x80 && !unicode.IsPrint(r):
			for k := 0; k < size; k++ {
				pct(s[i+k])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
}

func unescapeName(s string, isPath bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated %%-escape at byte %d", i)
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("bad %%-escape %q at byte %d: want %%XX with upper-case hex", s[i:i+3], i)
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		case c == '_' && isPath:
			b.WriteByte('/')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ParseName is the inverse of Header.Name. It accepts only the canonical
// form Name produces, so two different stems never parse to the same DLE.
func ParseName(stem string) (host, path string, level int, err error) {
	fail := func(format string, a ...any) (string, string, int, error) {
		return "", "", 0, fmt.Errorf("image name %q: "+format, append([]any{stem}, a...)...)
	}
	i := strings.Index(stem, "._")
	if i < 0 {
		return fail("no \"._\" between host and path; want <host>._<path>.<level>")
	}
	hostEnc, rest := stem[:i], stem[i+1:]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return fail("no .<level> at the end; want <host>._<path>.<level>")
	}
	pathEnc, levStr := rest[:j], rest[j+1:]
	lev, perr := parseNum(levStr)
	if perr != nil || lev > MaxLevel {
		return fail("level %q: want a number 0..%d", levStr, MaxLevel)
	}
	if hostEnc == "" {
		return fail("empty host")
	}
	if pathEnc == "" {
		return fail("empty path")
	}
	if host, err = unescapeName(hostEnc, false); err != nil {
		return fail("host: %v", err)
	}
	if path, err = unescapeName(pathEnc, true); err != nil {
		return fail("path: %v", err)
	}
	if canon := nameOf(host, path, int(lev)); canon != stem {
		return fail("not in canonical form (expected %q)", canon)
	}
	return host, path, int(lev), nil
}
