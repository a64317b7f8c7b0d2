package recover

import (
	"database/sql"
	"errors"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"testing/quick"
	"unicode"
	"unicode/utf8"

	_ "github.com/mattn/go-sqlite3"
)

// randomName is a byte string biased towards what breaks quoting: blanks,
// quotes, backslashes, glob characters, control characters, '$', invalid
// UTF-8 and multibyte characters.
func randomName(r *rand.Rand) string {
	pieces := []string{" ", "\t", "\n", "\r", "'", `"`, `\`, `\x41`, "$", "$'", "*", "?", "[", "]", "-", "^", "/", "\xff", "\xfe", "\xc3",
		"\x1b[31m", "\x7f", "é", "日本", "\u200e", "\u0085", "a", "b", "x", "0", "name.txt", ";", "#"}
	var b strings.Builder
	for n := r.IntN(8); n >= 0; n-- {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(1 + r.IntN(255)))
		} else {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
	}
	return b.String()
}

// TestEscapeWordRoundTrip: any byte string, escaped as a word, reads back
// as one word of exactly those bytes, a literal pattern matching itself.
func TestEscapeWordRoundTrip(t *testing.T) {
	check := func(s string) bool {
		if s == "" {
			return true
		}
		ws, err := tokenize(EscapeWord(s))
		if err != nil || len(ws) != 1 || ws[0].Text != s || ws[0].Glob {
			t.Errorf("EscapeWord(%q) = %q reads back as %+v %v", s, EscapeWord(s), ws, err)
			return false
		}
		if cmds := splitScript(" add " + EscapeWord(s) + " ; "); len(cmds) != 1 {
			t.Errorf("EscapeWord(%q) = %q splits an -e script into %q", s, EscapeWord(s), cmds)
			return false
		} else if ws, err := tokenize(cmds[0]); err != nil || len(ws) != 2 || ws[1].Text != s {
			t.Errorf("EscapeWord(%q) = %q reads back from an -e script as %+v %v", s, EscapeWord(s), ws, err)
			return false
		}
		if ok, err := path.Match(ws[0].Pat, s); !ok || err != nil {
			t.Errorf("the pattern %q of %q does not match it: %v", ws[0].Pat, s, err)
			return false
		}
		return true
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		if !check(randomName(r)) {
			return
		}
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 5000}); err != nil {
		t.Error(err)
	}
}

// TestEscapeIsOneLineOfPrintableText: what ls and find print for a name
// is valid UTF-8 without control or unprintable characters (a newline in
// a name never makes two lines), and reads back as the name inside double
// quotes, so no two names look alike.
func TestEscapeIsOneLineOfPrintableText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		s := randomName(r)
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, e)
		}
		for _, c := range e {
			if !unicode.IsPrint(c) {
				t.Fatalf("Escape(%q) = %q holds %U", s, e, c)
			}
		}
		if strings.Contains(s, `"`) {
			continue
		}
		ws, err := tokenize(`"` + e + `"`)
		if err != nil || len(ws) != 1 || ws[0].Text != s {
			t.Fatalf("Escape(%q) = %q reads back as %+v %v", s, e, ws, err)
		}
	}
	for in, want := range map[string]string{
		"plain.txt": "plain.txt", "new name.txt": "new name.txt", "a\nb": `a\x0ab`, "\xff\xfe": `\xff\xfe`,
		`back\slash`: `back\\slash`, "été": "été", "esc\x1b[31m": `esc\x1b[31m`, "bidi\u200e": `bidi\xe2\x80\x8e`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"new name.txt": `new\ name.txt`, "star*q?br[": `star\*q\?br\[`, "a\nb": `a\x0ab`, `it's "$x"`: `it\'s\ \"\$x\"`,
	} {
		if got := EscapeWord(in); got != want {
			t.Errorf("EscapeWord(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []word
	}{
		{`add \xff\xFEz`, []word{{"add", "add", false}, {"\xff\xfez", "\xff\xfez", false}}},
		{`add \xg \x4`, []word{{"add", "add", false}, {"xg", "xg", false}, {"x4", "x4", false}}},
		{`ls $'a\nb\tc\x41\101\'\\\q'`, []word{{"ls", "ls", false}, {"a\nb\tcAA'\\\\q", "a\nb\tcAA'\\\\\\\\q", false}}},
		{`add star\*q\?br\[`, []word{{"add", "add", false}, {"star*q?br[", `star\*q\?br\[`, false}}},
		{`add "star*q?br["`, []word{{"add", "add", false}, {"star*q?br[", `star\*q\?br\[`, false}}},
		{`add 'a*'b*`, []word{{"add", "add", false}, {"a*b*", `a\*b*`, true}}},
		{`add "a\"b" 'c\d'`, []word{{"add", "add", false}, {`a"b`, `a"b`, false}, {`c\d`, `c\\d`, false}}},
		{`add "\x41"`, []word{{"add", "add", false}, {"A", "A", false}}},
		{`a\ b\\`, []word{{`a b\`, `a b\\`, false}}},
		{`end\`, []word{{`end\`, `end\\`, false}}},
		{`""`, []word{{"", "", false}}},
	} {
		got, err := tokenize(tc.in)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("tokenize(%q) = %+v %v, want %+v", tc.in, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("tokenize(%q) word %d = %+v, want %+v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
	for _, in := range []string{`"open`, `'open`, `$'open`, `$'open\'`} {
		if _, err := tokenize(in); err == nil {
			t.Errorf("tokenize(%q) accepted an unterminated quote", in)
		}
	}
	if got := splitScript(`add a\;b; add "c\";d"; add $'e\';f'; ls`); strings.Join(got, "|") != `add a\;b|add "c\";d"|add $'e\';f'|ls` {
		t.Errorf("splitScript = %q", got)
	}
}

// FuzzTokenize: no command line makes the tokenizer panic; every word's
// pattern, unescaped, is its text, and its text escaped reads back as it.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{`add \xff\xfe`, `ls $'a\n\x4\1777'`, `"a\"b" 'c' d\ e`, `$'`, `\`, `\x`, `add star\*q\?br\[`, "a\x00b", `find [\]-a]*`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ws, err := tokenize(s)
		if err != nil {
			return
		}
		for _, w := range ws {
			if unescapeGlob(w.Pat) != w.Text {
				t.Fatalf("tokenize(%q): pattern %q is not text %q", s, w.Pat, w.Text)
			}
			if w.Text == "" {
				continue
			}
			back, err := tokenize(EscapeWord(w.Text))
			if err != nil || len(back) != 1 || back[0].Text != w.Text {
				t.Fatalf("EscapeWord(%q) reads back as %+v %v", w.Text, back, err)
			}
			if w.Glob {
				if _, err := path.Match(w.Pat, ""); err == nil {
					if g, err := sqlGlob(w.Pat); err != nil {
						t.Fatalf("sqlGlob(%q) refused what path.Match takes: %v", w.Pat, err)
					} else {
						_ = g
					}
				}
			}
		}
	})
}

// TestSQLGlobAgreesWithPathMatch: a pattern (escapes included) selects
// the same names with path.Match in the shell as its sqlGlob form with
// SQLite's GLOB in the index server's find (real SQLite).
func TestSQLGlobAgreesWithPathMatch(t *testing.T) {
	db, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := []string{"star*q?br[", "starXqYbrZ", "star*qXbr[", "a]b", "a-b", "a^b", "a\\b", "abc", "a*c", "ac", "a[c", "é", "x",
		"new name.txt", "-", "]", "^", "a.txt", "b.txt", "[x]", "q?"}
	patterns := []string{`star\*q\?br\[`, `star*`, `star\**`, `a[\]]b`, `a[-]b`, `a[\-]b`, `a[\^]b`, `a[^\^]b`, `a\\b`, `a[b-c]c`, `a?c`, `a\?c`,
		`a[*]c`, `[\]]`, `[\^]`, `[\-\^]`, `[^a-z]`, `*.txt`, `\[x\]`, `[[]x[]]`, `q\?`, `?`, `[é]`, `[a-é]`, `*`, `a[\[]c`}
	r := rand.New(rand.NewPCG(5, 6))
	alpha := []string{`*`, `?`, `\*`, `\?`, `\[`, `a`, `b`, `]`, `-`, `^`, `[ab]`, `[^a]`, `[\]a]`, `[a-c]`, `\\`, `[-a]`}
	for range 300 {
		var b strings.Builder
		for n := 1 + r.IntN(4); n > 0; n-- {
			b.WriteString(alpha[r.IntN(len(alpha))])
		}
		patterns = append(patterns, b.String())
	}
	for range 200 {
		var b strings.Builder
		for n := 1 + r.IntN(4); n > 0; n-- {
			b.WriteString([]string{"a", "b", "c", "]", "-", "^", "*", "?", "[", "\\"}[r.IntN(10)])
		}
		names = append(names, b.String())
	}
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			continue // the shell refuses it before it is sent
		}
		g, err := sqlGlob(p)
		if err != nil {
			t.Errorf("sqlGlob(%q): %v", p, err)
			continue
		}
		for _, n := range names {
			want, _ := path.Match(p, n)
			var got bool
			if err := db.QueryRow(`SELECT ? GLOB ?`, n, g).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("name %q, pattern %q: path.Match says %v, SQLite GLOB %q says %v", n, p, want, g, got)
			}
		}
	}
}

// TestTidyServerMessage: a sentence of the server gets the request's
// names back (escaped where JSON had made them U+FFFD), control
// characters escaped, and datestamps in the shell's one date format;
// numbers that are not dates, and labels that end in digits, stay.
func TestTidyServerMessage(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"caf\ufffd/x is not in the backup of web1:/srv as of 2025-06-07 01:00:00", `caf\xe9/x is not in the backup of web1:/srv as of 2025-06-07 01:00:00`},
		{"no full image of web1:/srv at or before 20250606; the oldest full is of 20250607010000.", "no full image of web1:/srv at or before 2025-06-06; the oldest full is of 2025-06-07 01:00:00."},
		{"level 1 image 20250608010000 of web1:/srv (202506081200)", "level 1 image 2025-06-08 01:00:00 of web1:/srv (2025-06-08 12:00)"},
		{"volume DAILY-20250606 is in no slot; a request of 12345678 bytes; 20251399 is not a date", "volume DAILY-20250606 is in no slot; a request of 12345678 bytes; 20251399 is not a date"},
		{"bad\nname\x1b[2J here", `bad\x0aname\x1b[2J here`},
	} {
		if got := tidyServerMessage(tc.msg, "caf\xe9/x", "/srv", "bad\nname\x1b[2J"); got != tc.want {
			t.Errorf("tidyServerMessage(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// TestPrintable: control characters, unprintable characters and bytes
// that are not UTF-8 become \xHH; the rest, backslashes included, stays.
// An error of the shell keeps its lines.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain été": "plain été", "FAILED a\nb: x": `FAILED a\x0ab: x`, "\xff\x1b[2J\u0085": `\xff\x1b[2J\xc2\x85`, `a\x41`: `a\x41`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
	err := printableError{errors.Join(errors.New("first \x1b[31m"), errors.New("second"))}
	if got := err.Error(); got != "first \\x1b[31m\nsecond" {
		t.Errorf("printableError = %q", got)
	}
}
