package report

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// A DLE's warnings (recipients changed since its full) are in the text's
// NOTES, in the JSON, and survive the catalog's round trip; a check's
// warnings have their own section and do not count as problems.
func TestDLEWarnings(t *testing.T) {
	r := normalNight()
	const w = "recipients of db1:/var changed since its full of 20250101010000 (was 0123456789abcdef, now fedcba9876543210): restoring the chain needs the old keys too; `tapir admin force db1 /var` starts a chain under the new keys"
	r.DLEs[0].Warnings = []string{w}
	d := r.DLEs[0]
	txt := r.Text()
	line := "warning: " + d.Host + " " + d.Path + " lev " + strconv.Itoa(d.Level) + ": " + w
	if !strings.Contains(txt, "NOTES:") || !strings.Contains(txt, line) {
		t.Errorf("text lacks %q:\n%s", line, txt)
	}
	b, back := roundTrip(t, r)
	if !bytes.Contains(b, []byte(`"warnings": [`)) {
		t.Errorf("JSON lacks the warnings:\n%s", b)
	}
	if got := back.DLEs[0].Warnings; len(got) != 1 || got[0] != w {
		t.Errorf("warnings after JSON: %q", got)
	}
	// A DLE without warnings writes no key (older readers, same JSON).
	if n := bytes.Count(b, []byte(`"warnings"`)); n != 1 {
		t.Errorf("%d warnings keys in the JSON, want 1", n)
	}

	c := checkFixture()
	c.Problems = nil
	c.Warnings = []string{w}
	ct := c.Text()
	if !strings.Contains(ct, "WARNINGS:\n  WARNING: "+w) || !strings.Contains(ct, "No problems found") {
		t.Errorf("check text:\n%s", ct)
	}
}
