package image

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The header carries its own checksum, and Marshal's output checks.
func TestHeaderSumWritten(t *testing.T) {
	b, err := sampleHeader().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	off := FindSumLine(b, HeaderSumKey)
	if off < 0 {
		t.Fatalf("no %s line:\n%s", HeaderSumKey, b[:bytes.IndexByte(b, 0)])
	}
	if got, want := string(b[off:off+SumHexLen]), BlockSum(b, off); got != want {
		t.Fatalf("header-sha256 %s, want %s", got, want)
	}
	if err := CheckHeaderSum(b); err != nil {
		t.Fatal(err)
	}
	// The line is among the keys, before the blank line.
	text := string(b[:bytes.IndexByte(b, 0)])
	if !strings.Contains(text, "\nblocksize: 262144\nheader-sha256: ") || strings.Index(text, "\n\n") < off {
		t.Errorf("header-sha256 is not the last key line:\n%s", text)
	}
	// Extra may not take the key.
	h := sampleHeader()
	h.Extra = map[string]string{HeaderSumKey: strings.Repeat("0", 64)}
	if _, err := h.Marshal(); err == nil {
		t.Error("Marshal accepted header-sha256 as an extra key")
	}
}

// A header without the line (as written before header checksums) is
// refused, and says why.
func TestHeaderSumMissing(t *testing.T) {
	b, _ := sampleHeader().Marshal()
	text := string(b[:bytes.IndexByte(b, 0)])
	i := strings.Index(text, HeaderSumKey)
	old := pad(text[:i] + text[i+len(sumLine):])
	if h, err := ParseHeaderUnchecked(old); err != nil || h.Level != 0 {
		t.Fatalf("ParseHeaderUnchecked of a header without checksum: %v", err)
	}
	_, err := ParseHeader(old)
	var se *HeaderSumError
	if !errors.Is(err, ErrHeaderChecksum) || !errors.As(err, &se) || !se.Missing {
		t.Fatalf("ParseHeader of a header without checksum: %v", err)
	}
	if !strings.Contains(err.Error(), "checksum missing") || !strings.Contains(err.Error(), "before header checksums") {
		t.Errorf("message: %v", err)
	}
	// Not a header at all stays "not a tapir image", not a checksum error.
	for _, b := range [][]byte{make([]byte, HeaderSize), pad("TAPIR TAPESTART X L\n")} {
		if err := CheckHeaderSum(b); err == nil || errors.Is(err, ErrHeaderChecksum) {
			t.Errorf("CheckHeaderSum(%q...): %v", b[:16], err)
		}
	}
}

// flip changes the byte at off (it must change).
func flipped(b []byte, off int, to byte) []byte {
	c := append([]byte(nil), b...)
	if c[off] == to {
		panic("test bug: the byte does not change")
	}
	c[off] = to
	return c
}

// TestHeaderEveryByteChecked: a flipped bit anywhere in the text, or a
// byte in the padding, makes ParseHeader fail with a checksum error, and
// for every byte of line 1 the diagnosis names that very byte.
func TestHeaderEveryByteChecked(t *testing.T) {
	h := sampleHeader()
	h.Path = "/srv/my files" // quoted
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.IndexByte(b, 0)
	nl := bytes.IndexByte(b, '\n')
	for off := 0; off <= end; off++ {
		for _, bit := range []byte{0x01, 0x10, 0x80} {
			c := flipped(b, off, b[off]^bit)
			_, err := ParseHeader(c)
			if err == nil {
				t.Fatalf("offset %d ^%#x: ParseHeader accepted the changed header", off, bit)
			}
			if off >= len(magicFile) && !errors.Is(err, ErrHeaderChecksum) {
				t.Fatalf("offset %d ^%#x: %v, want a checksum error", off, bit, err)
			}
			if off > nl || bit != 0x01 {
				continue
			}
			var se *HeaderSumError
			if !errors.As(err, &se) {
				continue // the magic itself: "not a tapir image" is right too
			}
			d := se.Damage()
			if !d.Exact || d.Offset != off || d.Line != 1 || d.Was != b[off] || d.Now != c[off] {
				t.Fatalf("offset %d: diagnosis %+v (%s)", off, d, d)
			}
		}
	}
	for _, off := range []int{end + 1, end + 100, HeaderSize / 2, HeaderSize - 1} {
		_, err := ParseHeader(flipped(b, off, 'x'))
		var se *HeaderSumError
		if !errors.As(err, &se) {
			t.Fatalf("padding offset %d: %v", off, err)
		}
		if d := se.Damage(); d.Field != "padding" || d.Offset != off {
			t.Errorf("padding offset %d: diagnosis %s", off, d)
		}
	}
}

// TestHeaderDiagnosisNamesTheField: a changed byte in each field of a
// header; ParseHeader fails with ErrHeaderChecksum and the message names
// the line and field.
func TestHeaderDiagnosisNamesTheField(t *testing.T) {
	h := sampleHeader()
	h.Level = 1
	h.Extra = map[string]string{"x-note": "hello"}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b[:bytes.IndexByte(b, 0)])
	at := func(s string, i int) int { // offset of byte i of the first s
		j := strings.Index(text, s)
		if j < 0 {
			t.Fatalf("test bug: %q not in the header", s)
		}
		return j + i
	}
	sumOff := FindSumLine(b, HeaderSumKey)
	tests := []struct {
		name string
		off  int
		to   byte   // 0: flip the lowest bit
		want string // in the message
	}{
		{"magic", at("TAPIR FILE", 3), 0, "line 1 (TAPIR FILE)"},
		{"datestamp digit", at("20250102030405", 13), 0, "line 1 (datestamp)"},
		{"datestamp by another digit", at("20250102030405", 3), '7', "line 1 (datestamp), offset 14: reads \"7\" where \"5\" was written"},
		{"host", at("client.example.org", 2), 0, "line 1 (host)"},
		{"path", at("/home", 1), 0, "line 1 (path)"},
		{"lev keyword", at(" lev ", 2), 0, "line 1 (level)"},
		{"level digit", at(" lev 1", 5), 0, "line 1 (level)"},
		{"level by another digit", at(" lev 1", 5), '2', "line 1 (level)"},
		{"part", at("part 1/1", 5), 0, "line 1 (part)"},
		{"parts", at("part 1/1", 7), 0, "line 1 (part)"},
		{"comp", at("comp zst", 6), 0, "line 1 (comp)"},
		{"a space", at(" lev", 0), 0, "line 1 (level)"},
		{"original-size", at("original-size: 123456", 16), 0, "line 2 (original-size)"},
		{"payload-size by another digit", at("payload-size: 7890", 15), '1', "line 3 (payload-size)"},
		{"sha256 digit", at("sha256: abab", 10), 0, "line 4 (sha256)"},
		{"sha256 by another hex digit", at("sha256: abab", 11), 'f', "line 4 (sha256)"},
		{"frame-size", at("frame-size: 1048576", 13), 0, "line 5 (frame-size)"},
		{"frames", at("frames: 1", 8), 0, "line 6 (frames)"},
		{"files", at("files: 42", 7), 0, "line 7 (files)"},
		{"encryption", at("encryption: none", 13), 0, "line 8 (encryption)"},
		{"blocksize", at("blocksize: 262144", 12), 0, "line 9 (blocksize)"},
		{"extra key", at("x-note: hello", 9), 0, "line 10 (x-note)"},
		{"a key's name", at("frames: 1", 2), 0, "line 6 (frames)"},
		{"checksum digit", sumOff + 5, 0, "line 11 (header-sha256)"},
		{"checksum key", sumOff - 4, 0, "line 11 (header-sha256)"},
		{"blank line", at("\n\nTo restore", 1), 0, "line 12 (blank line after the keys)"},
		{"human line", at("To restore from tape", 6), 0, "line 13 (restore instructions)"},
		{"human line, level hint", at("Level 1 is incremental", 6), 0, "restore instructions"},
		{"padding", len(text) + 40, 0, "padding at offset " + itoa(len(text)+40)},
		{"the first NUL", len(text), 0, "padding at offset " + itoa(len(text))},
		{"the last newline", len(text) - 1, 0, "restore instructions"},
		// Changes that are not one bit or digit: named by the structure.
		{"level not a number", at(" lev 1", 5), 'x', "line 1 (TAPIR FILE line): level"},
		{"size not a number", at("files: 42", 7), '-', "line 7 (files)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to
			if to == 0 {
				to = b[tc.off] ^ 1
			}
			c := flipped(b, tc.off, to)
			_, err := ParseHeader(c)
			if !errors.Is(err, ErrHeaderChecksum) {
				t.Fatalf("ParseHeader: %v, want a checksum error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "image header: checksum mismatch: the header was changed or damaged after it was written: ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error:\n%s\nwant it to contain %q", msg, tc.want)
			}
			if d := DiagnoseHeader(c); d.String() == "" || (d.Exact && (d.Offset != tc.off || d.Was != b[tc.off])) {
				t.Errorf("diagnosis %+v", d)
			}
		})
	}
	// Two digits changed in one value: no single byte explains it, and the
	// lines agree: it says so rather than guessing.
	c := []byte(string(b))
	copy(c[at("files: 42", 7):], "97")
	_, err = ParseHeader(c)
	if !errors.Is(err, ErrHeaderChecksum) || !strings.Contains(err.Error(), "which field cannot be told") {
		t.Errorf("two digits changed: %v", err)
	}
	// The checksum changed in several digits: the checksum line is named.
	c = []byte(string(b))
	copy(c[sumOff+10:], "0000")
	if c[sumOff+10] == b[sumOff+10] && c[sumOff+11] == b[sumOff+11] {
		copy(c[sumOff+10:], "ffff")
	}
	if _, err = ParseHeader(c); !strings.Contains(err.Error(), "line 11 (header-sha256)") {
		t.Errorf("checksum digits changed: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestHeaderSumByHand: the sed/sha256sum recipe of docs/format/image.md
// gives the value of the header-sha256 line, and tells a damaged header.
func TestHeaderSumByHand(t *testing.T) {
	for _, tool := range []string{"sh", "head", "sed", "sha256sum", "grep", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	// The recipe, as written in docs/format/image.md.
	const recipe = `head -c 32768 "$1" | sed -E "s/^(header-sha256: )[0-9a-f]{64}\$/\1$(printf '%064d' 0)/" | sha256sum | cut -c1-64; ` +
		`head -c 32768 "$1" | grep -a '^header-sha256: ' | cut -c16-`
	doc, err := os.ReadFile(filepath.Join("..", "docs", "format", "image.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), `sed -E "s/^(header-sha256: )[0-9a-f]{64}\$/\1$(printf '%064d' 0)/" | sha256sum`) {
		t.Fatal("docs/format/image.md does not give the recipe this test runs")
	}
	h := sampleHeader()
	h.Path = "/srv/a \"b\"" // quotes in the text
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "00001.client._srv.0")
	run := func(b []byte) []string {
		t.Helper()
		// The header followed by some payload, like a vtape file.
		if err := os.WriteFile(file, append(append([]byte(nil), b...), "payload bytes"...), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", "-c", recipe, "sh", file).Output()
		if err != nil {
			t.Fatalf("recipe: %v", err)
		}
		return strings.Fields(string(out))
	}
	got := run(b)
	if len(got) != 2 || got[0] != got[1] || got[0] != string(b[FindSumLine(b, HeaderSumKey):][:SumHexLen]) {
		t.Fatalf("by hand: computed and written differ for a good header: %q", got)
	}
	b[HeaderSize-7] = 'x' // deep in the padding
	if got := run(b); len(got) != 2 || got[0] == got[1] {
		t.Fatalf("by hand: a damaged header passes: %q", got)
	}
}

// FuzzDiagnoseHeader: the diagnosis of any header that fails its checksum
// never panics and always says something; when it names one changed byte,
// setting that byte back makes the header match its checksum.
func FuzzDiagnoseHeader(f *testing.F) {
	good, _ := sampleHeader().Marshal()
	text := good[:bytes.IndexByte(good, 0)]
	for _, off := range []int{3, 40, 100, len(text) - 1} {
		c := append([]byte(nil), text...)
		c[off] ^= 1
		f.Add(c)
	}
	f.Add(append(append([]byte(nil), text...), 'x'))
	f.Add([]byte(strings.Replace(string(text), "\n\n", "\nx: y\n\n", 1)))
	f.Fuzz(func(t *testing.T, text []byte) {
		if len(text) >= HeaderSize {
			return
		}
		b := make([]byte, HeaderSize)
		copy(b, text)
		var se *HeaderSumError
		if err := CheckHeaderSum(b); !errors.As(err, &se) {
			return
		}
		if se.Error() == "" {
			t.Fatal("empty message")
		}
		d := se.Damage() // DiagnoseHeader, done once by Error
		if d.String() == "" {
			t.Fatalf("empty diagnosis %+v", d)
		}
		if d.Exact {
			if d.Now != b[d.Offset] {
				t.Fatalf("diagnosis %+v: the byte at %d is %q", d, d.Offset, b[d.Offset])
			}
			b[d.Offset] = d.Was
			if err := CheckHeaderSum(b); err != nil {
				t.Fatalf("diagnosis %+v: setting the byte back gives %v", d, err)
			}
		}
	})
}
