package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The checker walks the raw TOML tree (as decoded into map[string]any)
// alongside the Go types of Config. It reports, with their lines, every key
// that Config does not know (keys are case-sensitive) and every value of the
// wrong type, so that the struct decoding that follows cannot fail.

var (
	sizeType     = reflect.TypeOf(Size(0))
	durationType = reflect.TypeOf(Duration(0))
	configType   = reflect.TypeOf(Config{})
	vaultType    = reflect.TypeOf(Vault{})
)

type checker struct {
	file  string
	lines lineIndex
	errs  []*Error
}

func (c *checker) add(path []string, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: c.lines.lookup(path), Msg: fmt.Sprintf(format, args...)})
}

// tomlFields maps the toml tags of t's fields to their types.
func tomlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		m[strings.Split(tag, ",")[0]] = f.Type
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// walk checks value v found at path (disp is the key as shown to people,
// table the table it is in, e.g. "[[dle]]") against type t.
func (c *checker) walk(path []string, disp, table string, v any, t reflect.Type) {
	switch t {
	case sizeType:
		switch x := v.(type) {
		case int64:
			if x < 0 {
				c.add(path, "%s: must not be negative, got %d", disp, x)
			}
		case string:
			if _, err := ParseSize(x); err != nil {
				c.add(path, "%s: %v", disp, err)
			}
		default:
			c.add(path, "%s: expected a size (an integer number of bytes or a string such as \"64 KiB\"), got %s", disp, describe(v))
		}
		return
	case durationType:
		switch x := v.(type) {
		case int64:
			if _, err := secondsDuration(x); err != nil {
				c.add(path, "%s: %v", disp, err)
			}
		case string:
			if _, err := ParseDuration(x); err != nil {
				c.add(path, "%s: %v", disp, err)
			}
		default:
			c.add(path, "%s: expected a duration (an integer number of seconds or a string such as \"30m\"), got %s", disp, describe(v))
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.add(path, "%s: expected a string, got %s", disp, describe(v))
		}
	case reflect.Int:
		x, ok := v.(int64)
		if !ok {
			c.add(path, "%s: expected an integer, got %s", disp, describe(v))
		} else if int64(int(x)) != x {
			c.add(path, "%s: %d is out of range", disp, x)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.add(path, "%s: expected a boolean (true or false), got %s", disp, describe(v))
		}
	case reflect.Pointer:
		c.walk(path, disp, table, v, t.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			var elems []any
			switch x := v.(type) {
			case []map[string]any:
				for _, m := range x {
					elems = append(elems, m)
				}
			case []any:
				elems = x
			default:
				c.add(path, "%s: expected an array of tables ([[%s]]), got %s", disp, disp, describe(v))
				return
			}
			for i, e := range elems {
				c.walk(append(path[:len(path):len(path)], strconv.Itoa(i)), disp, "[["+disp+"]]", e, t.Elem())
			}
			return
		}
		x, ok := v.([]any)
		if !ok {
			c.add(path, "%s: expected an array of strings, got %s", disp, describe(v))
			return
		}
		for i, e := range x {
			if _, ok := e.(string); !ok {
				c.add(path, "%s: element %d: expected a string, got %s", disp, i+1, describe(e))
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "%s: expected a table ([%s.NAME]), got %s", disp, disp, describe(v))
			return
		}
		for _, k := range sortedKeys(m) {
			d := disp + "." + quoteKey(k)
			c.walk(append(path[:len(path):len(path)], k), d, "["+d+"]", m[k], t.Elem())
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "%s: expected a table ([%s]), got %s", disp, disp, describe(v))
			return
		}
		fields := tomlFields(t)
		for _, k := range sortedKeys(m) {
			p := append(path[:len(path):len(path)], k)
			ft, ok := fields[k]
			if !ok {
				c.add(p, "%s", unknownKey(k, table, fields))
				continue
			}
			d := quoteKey(k)
			if disp != "" {
				d = disp + "." + d
			}
			tbl := table
			if ft.Kind() == reflect.Struct && ft != sizeType {
				tbl = "[" + d + "]"
			}
			c.walk(p, d, tbl, m[k], ft)
		}
	}
}

func unknownKey(k, table string, fields map[string]reflect.Type) string {
	msg := fmt.Sprintf("unknown key %q", k)
	if table != "" {
		msg += " in " + table
	}
	if s := suggest(k, fields); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	homes := keyHomes()[k]
	if len(homes) > 0 {
		return msg + fmt.Sprintf("; %q belongs in %s", k, strings.Join(homes, " or "))
	}
	return msg
}

// keyHomes maps every key of the schema to the tables it belongs in.
var keyHomes = sync.OnceValue(func() map[string][]string {
	homes := map[string][]string{}
	var add func(t reflect.Type, table string)
	add = func(t reflect.Type, table string) {
		fields := tomlFields(t)
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			ft := fields[k]
			homes[k] = append(homes[k], table)
			switch {
			case ft.Kind() == reflect.Struct && ft != sizeType:
				add(ft, "["+k+"]")
			case ft.Kind() == reflect.Map:
				add(ft.Elem(), "["+k+".NAME]")
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				add(ft.Elem(), "[["+k+"]]")
			}
		}
	}
	add(configType, "the top level (before any [table])")
	return homes
})

// suggest returns the known key closest to k (edit distance <= 2, or equal
// ignoring case), or "".
func suggest(k string, fields map[string]reflect.Type) string {
	if len(k) > 64 {
		return ""
	}
	best, bestD := "", 3
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(n, k) {
			return n
		}
		if d := editDistance(strings.ToLower(k), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// describe names the TOML type of a decoded value, with the value when short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "a string (" + preview(x) + ")"
	case int64:
		return fmt.Sprintf("an integer (%d)", x)
	case float64:
		return fmt.Sprintf("a float (%v)", x)
	case bool:
		return fmt.Sprintf("a boolean (%v)", x)
	case time.Time:
		return "a date-time"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a value of type %T", v)
}

func preview(s string) string {
	if utf8.RuneCountInString(s) > 40 {
		s = string([]rune(s)[:40]) + "..."
	}
	return strconv.Quote(s)
}

// quoteKey writes a key component as TOML would: bare when possible.
func quoteKey(k string) string {
	if isBareKey(k) {
		return k
	}
	return quoteString(k)
}

// quoteString writes s as a TOML basic string.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
