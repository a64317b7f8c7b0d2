package config

import (
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/internal/doctest"
)

// TestConfigDoc checks docs/format/config.md against the TOML schema, the
// toml tags of Config read recursively: every key has a row in the table of
// its section ("## Top level", "## `[tls]`", "## `[tapetype.NAME]`",
// "## `[[holding]]`", ...), every table has its section, and every row of
// such a section is a key of the schema.
func TestConfigDoc(t *testing.T) {
	raw := doctest.Format(t, "config.md")
	// The doc's sections, by heading, each with the keys of its table rows.
	sections := map[string]map[string]bool{}
	var cur map[string]bool
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|")
	for _, line := range strings.Split(string(raw), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = map[string]bool{}
			sections[strings.TrimSpace(h)] = cur
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != nil {
			cur[m[1]] = true
		}
	}

	// The schema's sections, by the heading the doc gives them.
	schema := map[string]map[string]bool{}
	var walk func(heading string, typ reflect.Type)
	walk = func(heading string, typ reflect.Type) {
		// A table inside a table ([vault.changer]) is headed with its
		// parent's name.
		prefix := ""
		if p, ok := strings.CutPrefix(heading, "`["); ok && !strings.HasPrefix(p, "[") && !strings.Contains(p, ".NAME") {
			prefix = strings.TrimSuffix(p, "]`") + "."
		}
		keys := map[string]bool{}
		schema[heading] = keys
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer && isTable(ft.Elem()) {
				ft = ft.Elem() // an optional table ([vault])
			}
			switch {
			case isTable(ft):
				walk("`["+prefix+name+"]`", ft)
			case ft.Kind() == reflect.Map && isTable(ft.Elem()):
				walk("`["+name+".NAME]`", ft.Elem())
			case ft.Kind() == reflect.Slice && isTable(ft.Elem()):
				walk("`[["+name+"]]`", ft.Elem())
			default:
				keys[name] = true
			}
		}
	}
	walk("Top level", reflect.TypeOf(Config{}))
	// catalog is a string or a table, read by the finisher, not decoded.
	schema["Top level"]["catalog"] = true
	schema["`[catalog]`"] = map[string]bool{"url": true, "path": true, "password_file": true}

	var problems []string
	var headings []string
	for h := range schema {
		headings = append(headings, h)
	}
	sort.Strings(headings)
	for _, h := range headings {
		doc, ok := sections[h]
		if !ok {
			problems = append(problems, "no section \"## "+h+"\"")
			continue
		}
		if missing := doctest.Absent(schema[h], doc); len(missing) > 0 {
			problems = append(problems, "keys of "+h+" without a row: "+strings.Join(missing, ", "))
		}
		if extra := doctest.Absent(doc, schema[h]); len(extra) > 0 {
			problems = append(problems, "rows of "+h+" that are no key of the schema: "+strings.Join(extra, ", "))
		}
	}
	if len(problems) > 0 {
		t.Errorf("docs/format/config.md does not match the schema (config.Config):\n%s", strings.Join(problems, "\n"))
	}
}

// isTable says whether t is a struct of the schema (it has toml-tagged
// fields), as opposed to a value such as Size or Duration.
func isTable(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			return true
		}
	}
	return false
}
