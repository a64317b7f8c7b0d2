package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// lineIndex maps key paths to the line where the key is written. Paths are
// joined with sep; an element of an array of tables has its index as a path
// component ("dle", "2", "path"). Keys inside an inline array of tables
// (dle = [{...}, {...}]) are recorded without the index, at their first
// occurrence.
type lineIndex struct {
	lines    map[string]int
	inline   map[string]bool // paths of inline arrays
	searched int             // bytes of src the key finder looked at (linear in len(src))
}

const sep = "\x00"

func joinPath(p []string) string { return strings.Join(p, sep) }

// buildLineIndex finds the line of every key of md in src. md.Keys() lists
// the keys in the order they appear in the file, so each key is searched
// forward from the end of the previous one; a key is recognised where it is
// written as a key (followed by '=', '.' or ']'), not inside a value.
func buildLineIndex(src string, md toml.MetaData) lineIndex {
	idx := lineIndex{lines: map[string]int{}, inline: map[string]bool{}}
	arrays := map[string]int{} // indexed path of an array of tables -> current element
	cursor, line := 0, 1
	budget := 16*len(src) + 1<<20
	kf := &keyFinder{src: src, budget: budget}
	for _, k := range md.Keys() {
		var ip []string
		for j, comp := range k {
			ip = append(ip, comp)
			if j < len(k)-1 {
				if n, ok := arrays[joinPath(ip)]; ok {
					ip = append(ip, strconv.Itoa(n))
				}
			}
		}
		if pos, end, ok := kf.find(cursor, k[len(k)-1]); ok {
			line += strings.Count(src[cursor:pos], "\n")
			cursor = end // a key never spans lines
		}
		kl := line
		typ := md.Type(k...)
		if typ == "Array" {
			idx.inline[joinPath(ip)] = true
		}
		if typ == "ArrayHash" {
			p := joinPath(ip)
			n, ok := arrays[p]
			if !ok {
				n = -1
				idx.lines[p] = kl
			}
			arrays[p] = n + 1
			ip = append(ip, strconv.Itoa(n+1))
		}
		if _, ok := idx.lines[joinPath(ip)]; !ok {
			idx.lines[joinPath(ip)] = kl
		}
	}
	idx.searched = budget - kf.budget
	return idx
}

// lookup returns the line of path, or of its earliest written descendant
// (for implicit tables such as "a" in "a.b = 1"), or of its nearest
// ancestor; 0 when nothing is known.
func (idx lineIndex) lookup(path []string) int {
	var norm []string
	for i, k := range path {
		if i > 0 && idx.inline[joinPath(norm)] && allDigits(k) {
			continue // an element of an inline array: not recorded
		}
		norm = append(norm, k)
	}
	path = norm
	for n := len(path); n > 0; n-- {
		p := joinPath(path[:n])
		if l, ok := idx.lines[p]; ok {
			return l
		}
		best := 0
		for k, l := range idx.lines {
			if strings.HasPrefix(k, p+sep) && (best == 0 || l < best) {
				best = l
			}
		}
		if best > 0 {
			return best
		}
	}
	return 0
}

// keyFinder finds keys in src. budget bounds the bytes searched in all, so
// that a file full of keys that cannot be found as written (escapes in
// quoted keys) costs linear time; past it, keys keep the line of the
// previous one.
type keyFinder struct {
	src    string
	budget int
}

// find finds name written as a key at or after from: bare, "quoted" or
// 'literal', preceded by the start of a line, '[', '.', '{' or ',' and
// followed by '=', '.' or ']' (blanks allowed around it). It returns the
// position of the key and the end of it.
func (kf *keyFinder) find(from int, name string) (pos, end int, ok bool) {
	forms := []string{}
	if isBareKey(name) {
		forms = append(forms, name)
	}
	if !strings.ContainsAny(name, "\"\\") {
		forms = append(forms, `"`+name+`"`)
	}
	if !strings.Contains(name, "'") {
		forms = append(forms, `'`+name+`'`)
	}
	best, limit := -1, len(kf.src)
	for _, f := range forms {
		// Only a match before the best one so far can improve on it.
		for at := from; at < limit && kf.budget > 0; {
			hay := kf.src[at:min(len(kf.src), limit-1+len(f))]
			i := strings.Index(hay, f)
			if i < 0 {
				kf.budget -= len(hay)
				break
			}
			kf.budget -= i + 1
			i += at
			if keyContext(kf.src, i, i+len(f)) {
				best, end, limit = i, i+len(f), i
				break
			}
			at = i + 1
		}
	}
	return best, end, best >= 0
}

func keyContext(src string, start, end int) bool {
	i := start - 1
	for i >= 0 && (src[i] == ' ' || src[i] == '\t') {
		i--
	}
	if i >= 0 && !strings.ContainsRune("\n[.{,", rune(src[i])) {
		return false
	}
	j := end
	for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
		j++
	}
	return j < len(src) && strings.ContainsRune("=.]", rune(src[j]))
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
