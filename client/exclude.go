package client

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// excluder matches names the way GNU tar matches --exclude patterns by
// default (--wildcards --no-anchored --wildcards-match-slash): a pattern
// excludes a member when it matches the member's whole archive name
// ("./a/b") or any tail of it that starts after a '/', and '*' and '?'
// match '/' too. As in GNU tar 1.34, a pattern with a trailing '/'
// matches nothing (member names carry no trailing slash). Matching an excluded
// directory excludes everything under it, because the walk never enters it.
type excluder struct{ pats []string }

// MaxExcludePatterns bounds the patterns of one dump (request and exclude
// lists together), so that a huge exclude list cannot exhaust the agent.
const MaxExcludePatterns = 65536

// newExcluder reads the patterns and the exclude lists, each opened
// beneath allow (see openExcludeList). A missing list is a warning; a
// list outside allow, reached through a symlink that leads out, or with a
// bad line is an error. Errors name a bad line by its number and never
// quote it: the list is a file on the client, and its contents are not
// the server's to read.
func newExcluder(patterns []string, lists []string, allow []string, warn func(string, ...any)) (*excluder, error) {
	e := &excluder{}
	for _, p := range patterns {
		if p == "" {
			continue
		}
		if err := checkPattern(p); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %v", p, err)
		}
		e.pats = append(e.pats, p)
	}
	for _, l := range lists {
		if err := e.readList(l, allow, warn); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *excluder) readList(l string, allow []string, warn func(string, ...any)) error {
	f, err := openExcludeList(l, allow)
	if errors.Is(err, fs.ErrNotExist) {
		warn("exclude list %s: %v (its patterns are not applied)", l, unwrapPath(err))
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		p := sc.Text()
		if p == "" {
			continue
		}
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("exclude list %s line %d: %v; fix or remove that line", l, n, err)
		}
		if len(e.pats) >= MaxExcludePatterns {
			return fmt.Errorf("exclude list %s: more than %d patterns in this dump; shorten it", l, MaxExcludePatterns)
		}
		e.pats = append(e.pats, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("exclude list %s line %d is longer than 64 KiB; is it really a list of patterns?", l, n+1)
		}
		return fmt.Errorf("exclude list %s: read after line %d: %v", l, n, unwrapPath(err))
	}
	return nil
}

// excluded reports whether rel (relative to the DLE root, no "./") is
// excluded.
func (e *excluder) excluded(rel string) bool {
	if e == nil || len(e.pats) == 0 {
		return false
	}
	name := "./" + rel
	for _, p := range e.pats {
		for s := name; ; {
			if wildmatch(p, s) {
				return true
			}
			i := strings.IndexByte(s, '/')
			if i < 0 {
				break
			}
			s = s[i+1:]
		}
	}
	return false
}

func checkPattern(p string) error {
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i == len(p)-1 {
				return fmt.Errorf("trailing backslash")
			}
			i++
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("unterminated '[' class")
	}
	return nil
}

// wildmatch is fnmatch(3) without FNM_PATHNAME: '*' matches any run of
// bytes including '/', '?' any one byte, [...] a class (with ! or ^ and
// ranges), '\' quotes the next byte. Iterative, linear in practice.
func wildmatch(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if ok, next, valid := matchClass(p, pi, s[si]); valid {
					if ok {
						pi = next
						si++
						continue
					}
				} else if s[si] == '[' { // not a class: a literal '['
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class starting at p[i] == '['. It
// returns whether c is in it, the index after the class, and whether the
// class is well formed.
func matchClass(p string, i int, c byte) (bool, int, bool) {
	j := i + 1
	neg := false
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		neg = true
		j++
	}
	in := false
	first := true
	for j < len(p) && (p[j] != ']' || first) {
		first = false
		lo := p[j]
		if lo == '\\' && j+1 < len(p) {
			j++
			lo = p[j]
		}
		hi := lo
		if j+2 < len(p) && p[j+1] == '-' && p[j+2] != ']' {
			hi = p[j+2]
			j += 2
		}
		if lo <= c && c <= hi {
			in = true
		}
		j++
	}
	if j >= len(p) {
		return false, 0, false
	}
	return in != neg, j + 1, true
}
