package recover

import (
	"strings"
	"testing"
	"time"
)

// FuzzShellInput: command lines, scripts and dates typed by a person never
// panic; what splitWords accepts, escape makes read back the same.
func FuzzShellInput(f *testing.F) {
	for _, s := range []string{`add "old name.txt" b\ c`, `setdate 2025-06-07-12:00:00`, `cd ../..; ls`, `'unterminated`, "---31", "--02-30", `a\`} {
		f.Add(s)
	}
	now := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err == nil {
			for _, w := range words {
				back, err := splitWords(escape(w))
				if w != "" && (err != nil || len(back) != 1 || back[0] != w) {
					t.Fatalf("escape(%q) reads back as %q %v", w, back, err)
				}
			}
		}
		splitScript(s)
		wordStart(s)
		unescape(s)
		if ds, err := ParseDate(s, now); err == nil && ds != "" && strings.Trim(ds, "0123456789") != "" {
			t.Fatalf("ParseDate(%q) = %q: not digits", s, ds)
		}
	})
}
