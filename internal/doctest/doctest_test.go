package doctest

import (
	"slices"
	"strings"
	"testing"
)

func TestAbsent(t *testing.T) {
	got := Absent(map[string]bool{"b": true, "a": true, "c": true}, map[string]bool{"c": true, "d": true})
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Absent = %q, want [a b]", got)
	}
	if got := Absent(nil, map[string]bool{"x": true}); len(got) != 0 {
		t.Errorf("Absent of nothing = %q", got)
	}
}

func TestFormat(t *testing.T) {
	if s := Format(t, "config.md"); !strings.Contains(s, "dumpcycle") {
		t.Errorf("docs/format/config.md read from internal/doctest lacks dumpcycle")
	}
}
