package config

import "strings"

// maxNesting bounds how deeply arrays and inline tables may nest. The toml
// package takes time quadratic in the depth; tapir needs three levels.
const maxNesting = 32

// tooDeep returns the line where arrays and inline tables nest deeper than
// maxNesting, or 0. It skips comments and strings as TOML defines them; a
// file it misreads is one the toml parser rejects anyway.
func tooDeep(src string) int {
	depth, line := 0, 1
	for i := 0; i < len(src); i++ {
		switch ch := src[i]; ch {
		case '\n':
			line++
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i-- // let the loop see the newline
		case '"', '\'':
			q := string(ch)
			if strings.HasPrefix(src[i:], q+q+q) {
				end := strings.Index(src[i+3:], q+q+q)
				if ch == '"' {
					end = indexUnescaped(src[i+3:], q+q+q)
				}
				if end < 0 {
					return 0
				}
				end += i + 3 + 3
				for end < len(src) && src[end] == ch { // """a"""" ends with a quote
					end++
				}
				line += strings.Count(src[i:end], "\n")
				i = end - 1
				continue
			}
			j := i + 1
			for j < len(src) && src[j] != ch && src[j] != '\n' {
				if ch == '"' && src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) || src[j] == '\n' {
				return 0 // unterminated: a syntax error
			}
			i = j
		case '[', '{':
			depth++
			if depth > maxNesting {
				return line
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0
}

// indexUnescaped finds sep in s, skipping backslash escapes.
func indexUnescaped(s, sep string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if strings.HasPrefix(s[i:], sep) {
			return i
		}
	}
	return -1
}
