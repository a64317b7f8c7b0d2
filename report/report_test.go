package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -update rewrites it):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

func TestGoldenText(t *testing.T) {
	for name, r := range fixtures() {
		t.Run(name, func(t *testing.T) {
			golden(t, name+".golden", []byte(r.Text()))
		})
	}
}

func TestGoldenJSON(t *testing.T) {
	for name, r := range fixtures() {
		t.Run(name, func(t *testing.T) {
			b, err := r.JSON()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".json.golden", b)
		})
	}
}

func TestGoldenCheck(t *testing.T) {
	golden(t, "check.golden", []byte(checkFixture().Text()))
	ok := checkFixture()
	ok.Problems = nil
	golden(t, "check-ok.golden", []byte(ok.Text()))
}

// roundTrip writes r as JSON and reads it back; the text must not change.
func roundTrip(t *testing.T, r *Run) ([]byte, *Run) {
	t.Helper()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.Text(), r.Text(); got != want {
		t.Errorf("text after JSON differs:\n--- got\n%s\n--- want\n%s", got, want)
	}
	return b, back
}

// The JSON kept in the catalog renders exactly the text of the night, and
// says the same again when written back.
func TestJSONRoundTrip(t *testing.T) {
	for name, r := range fixtures() {
		t.Run(name, func(t *testing.T) {
			b, back := roundTrip(t, r)
			b2, err := back.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Errorf("JSON after a round trip differs:\n%s\n%s", b, b2)
			}
			if got, want := inUTC(back.normalized()), inUTC(r.normalized()); !reflect.DeepEqual(got, want) {
				t.Errorf("run after JSON differs:\n%+v\n%+v", got, want)
			}
		})
	}
}

// inUTC drops the zone names that JSON does not keep (it keeps offsets).
func inUTC(r *Run) *Run {
	r.Start, r.End = r.Start.UTC(), r.End.UTC()
	return r
}

func TestSubjectAndStatus(t *testing.T) {
	day := "March 4, 2025"
	tests := []struct {
		name    string
		edit    func(r *Run)
		subject string
		status  string
	}{
		{"all fine", func(r *Run) {}, "DailySet1 TAPIR MAIL REPORT FOR " + day, RunOK},
		{"one failed", func(r *Run) { r.DLEs[0].Status = StatusFailed }, "DailySet1 FAIL: TAPIR MAIL REPORT FOR " + day, RunFailed},
		{"failed beats strange", func(r *Run) { r.DLEs[0].Status = StatusFailed; r.DLEs[1].Status = StatusStrange },
			"DailySet1 FAIL: TAPIR MAIL REPORT FOR " + day, RunFailed},
		{"strange", func(r *Run) { r.DLEs[1].Status = StatusStrange }, "DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunStrange},
		{"holding only", func(r *Run) { r.DLEs[1].Status = StatusHolding }, "DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunStrange},
		{"delayed", func(r *Run) { r.DLEs[1].Status = StatusDelayed }, "DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunStrange},
		{"skipped is on purpose", func(r *Run) { r.DLEs[1].Status = StatusSkipped }, "DailySet1 TAPIR MAIL REPORT FOR " + day, RunOK},
		{"retried and fine", func(r *Run) { r.DLEs[1].Retries = []Attempt{{Level: 1, Reason: "x"}} }, "DailySet1 TAPIR MAIL REPORT FOR " + day, RunOK},
		{"degraded", func(r *Run) { r.Degraded = &Degraded{Reason: "no volume"} }, "DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunDegraded},
		{"problems: never ok", func(r *Run) { r.Problems = []Problem{{Where: "/hold/x", What: "damaged"}} }, "DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunStrange},
		{"degraded beats problems", func(r *Run) { r.Problems = []Problem{{What: "x"}}; r.Degraded = &Degraded{Reason: "no volume"} },
			"DailySet1 STRANGE: TAPIR MAIL REPORT FOR " + day, RunDegraded},
		{"failed beats problems", func(r *Run) { r.Problems = []Problem{{What: "x"}}; r.DLEs[0].Status = StatusFailed },
			"DailySet1 FAIL: TAPIR MAIL REPORT FOR " + day, RunFailed},
		{"aborted: nothing saved", func(r *Run) { r.Aborted = "catalog is read-only" }, "DailySet1 FAIL: TAPIR MAIL REPORT FOR " + day, RunFailed},
		{"aborted beats degraded", func(r *Run) { r.Aborted = "x"; r.Degraded = &Degraded{} }, "DailySet1 FAIL: TAPIR MAIL REPORT FOR " + day, RunFailed},
		// The date is the datestamp's, in the configuration's zone, even
		// when the start time is in another zone.
		{"date from datestamp", func(r *Run) { r.Start = time.Date(2025, 3, 3, 23, 30, 0, 0, time.UTC) },
			"DailySet1 TAPIR MAIL REPORT FOR " + day, RunOK},
		{"no datestamp: start", func(r *Run) { r.Datestamp = "" }, "DailySet1 TAPIR MAIL REPORT FOR " + day, RunOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base("20250304003000", 4)
			r.DLEs = []DLE{{Host: "a", Path: "/x", Status: StatusOK}, {Host: "b", Path: "/y", Level: 1, Status: StatusOK}}
			tc.edit(r)
			if got := r.Subject(); got != tc.subject {
				t.Errorf("Subject() = %q, want %q", got, tc.subject)
			}
			if got := r.Status(); got != tc.status {
				t.Errorf("Status() = %q, want %q", got, tc.status)
			}
			if first, _, _ := strings.Cut(r.Text(), "\n"); first != tc.subject {
				t.Errorf("first line of Text() = %q, want the subject %q", first, tc.subject)
			}
		})
	}
}

// A run filled through the deprecated fields (NextVolume, DLE.Volume and
// FileNo, as the server does today) renders as one filled the new way.
func TestDeprecatedFields(t *testing.T) {
	r := normalNight()
	r.NextVolume, r.NextVolumes = r.NextVolumes[0], nil
	for i := range r.DLEs {
		d := &r.DLEs[i]
		d.Volume, d.FileNo, d.Parts = d.Parts[0].Volume, d.Parts[0].FileNo, nil
	}
	if got, want := r.Text(), normalNight().Text(); got != want {
		t.Errorf("deprecated fields render differently:\n--- got\n%s\n--- want\n%s", got, want)
	}
	b1, _ := r.JSON()
	b2, _ := normalNight().JSON()
	if !bytes.Equal(b1, b2) {
		t.Errorf("deprecated fields give other JSON:\n%s\n%s", b1, b2)
	}
}

// Names and tool output can hold anything; the report never passes a
// control character or invalid UTF-8 through, and stays one line per fact.
func TestUnprintable(t *testing.T) {
	r := normalNight()
	r.DLEs[0].Path = "/srv/evil\nFAILURE DUMP SUMMARY:"
	r.DLEs[0].Status = StatusStrange
	r.DLEs[0].Strange = []string{"tar: ./\x1b[31mred\x1b[0m: file changed", "tar: ./caf\xe9: invalid name\r"}
	r.Notes = append(r.Notes, "note with a \x00 NUL and a \u2028 separator")
	text := r.Text()
	for _, bad := range []string{"\x1b", "\x00", "\r", "\u2028", "\xe9"} {
		if strings.Contains(text, bad) {
			t.Errorf("text contains %q", bad)
		}
	}
	for _, want := range []string{`/srv/evil\nFAILURE DUMP SUMMARY:`, `| tar: ./\x1b[31mred\x1b[0m: file changed`, `| tar: ./caf\xe9: invalid name\r`, `a \x00 NUL and a \u2028 separator`} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "FAILURE DUMP SUMMARY:") {
			t.Errorf("a path starts a line of its own: %q", l)
		}
	}
	roundTrip(t, r)
}

// Every full row of DUMP SUMMARY ends in the same column, however long a
// host or disk name is.
func TestDumpSummaryAligned(t *testing.T) {
	r := failedNight()
	r.DLEs = append(r.DLEs, DLE{Host: "a-very-long-host-name.example.com", Path: "/x", Level: 9, Status: StatusOK,
		OrigSize: 1 << 40, OutSize: 1 << 39, DumpTime: 100 * time.Hour, TapeTime: time.Second, Parts: part1("DailySet1-006", 4, 1<<39)})
	text := r.Text()
	_, sum, _ := strings.Cut(text, "\nDUMP SUMMARY:\n")
	lines := strings.Split(strings.TrimSuffix(sum, "\n"), "\n")
	width := len([]rune(lines[0]))
	if len([]rune(lines[1])) != width {
		t.Errorf("dash line is %d wide, header %d", len([]rune(lines[1])), width)
	}
	full := 0
	for _, l := range lines[2:] {
		if strings.Contains(l, "FAILED") || strings.Contains(l, "SKIPPED") || strings.Contains(l, "DELAYED") {
			continue
		}
		full++
		if len([]rune(l)) != width {
			t.Errorf("row is %d wide, header %d:\n%s\n%s", len([]rune(l)), width, lines[0], l)
		}
	}
	if full != 4 {
		t.Errorf("%d full rows, want 4:\n%s", full, sum)
	}
}

func TestParseJSONErrors(t *testing.T) {
	good, err := normalNight().JSON()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(good), old) {
			t.Fatalf("fixture JSON lacks %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	tests := []struct{ name, in, want string }{
		{"empty", "", "empty input"},
		{"not JSON", "FAIL: TAPIR MAIL REPORT", "not valid JSON at byte 1"},
		{"two values", string(good) + "{}", "more than one JSON value"},
		{"array", "[]", "expected report.jsonRun"},
		{"no version", edit(`"version": 1`, `"version": 0`), "version: missing"},
		{"newer version", edit(`"version": 1`, `"version": 7`), "version 7 is newer than this tapir understands (1)"},
		{"bad datestamp", edit(`"datestamp": "20250302010000"`, `"datestamp": "2025-03-02"`), `datestamp: "2025-03-02" is not YYYYMMDDhhmmss`},
		{"bad kind", edit(`"kind": "dump"`, `"kind": "vault"`), `kind: "vault" is neither`},
		{"bad status", edit(`"status": "OK"`, `"status": "MAYBE"`), `dles[0].status: "MAYBE" is not one of OK, STRANGE, FAILED, HOLDING, SKIPPED, DELAYED`},
		{"negative size", edit(`"orig_bytes": 51539607552`, `"orig_bytes": -1`), "dles[0].orig_bytes: -1 is negative"},
		{"size not a number", edit(`"orig_bytes": 51539607552`, `"orig_bytes": "big"`), "dles.orig_bytes: expected int64, got JSON string"},
		{"huge duration", edit(`"dump_seconds": 3150`, `"dump_seconds": 1e300`), "dles[0].dump_seconds: 1e+300 seconds is out of range"},
		{"negative duration", edit(`"estimate_seconds": 132`, `"estimate_seconds": -5`), "estimate_seconds: -5 seconds is out of range"},
		{"bad level", edit(`"level": 0`, `"level": 100`), "dles[0].level: 100 is not a dump level"},
		{"part zero", edit(`"part": 1`, `"part": 0`), "dles[0].parts[0].part: 0; parts are numbered from 1"},
		{"bad time", edit(`"start": "2025-03-02T01:00:00+01:00"`, `"start": "yesterday"`), `start: "yesterday" is not an RFC 3339 time`},
		{"no host", edit(`"host": "db1"`, `"host": ""`), "dles[0].host: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseJSON error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	r := failedNight()
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	legacy := []byte("DailySet1 TAPIR MAIL REPORT FOR March 1, 2025\nold text\n")
	tests := []struct {
		name, format string
		stored       []byte
		want         string
		err          string
	}{
		{"json as text", "text", js, r.Text(), ""},
		{"json as json", "json", js, string(js), ""},
		{"legacy text as text", "text", legacy, string(legacy), ""},
		{"legacy text as json", "json", legacy, "", "kept as text only"},
		{"no report", "text", nil, "", "interrupted before it finished"},
		{"bad format", "html", js, "", `report format "html": want text or json`},
		{"damaged json", "text", js[:len(js)/2], "", "report JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.stored, tc.format)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Render error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Render = %s, want %s", got, tc.want)
			}
		})
	}
}

// FuzzParseJSON: whatever the catalog holds, reading it never panics, and
// what it accepts renders and survives a round trip unchanged.
func FuzzParseJSON(f *testing.F) {
	for _, r := range fixtures() {
		b, err := r.JSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"datestamp":"20250101000000","kind":"dump","dles":[{"host":"h","path":"/\u0000","level":0,"status":"OK","parts":[{"volume":"v","file":1,"part":1,"bytes":5}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseJSON(b)
		if err != nil {
			return
		}
		text := r.Text()
		out, err := r.JSON()
		if err != nil {
			t.Fatalf("JSON of a parsed report: %v", err)
		}
		back, err := ParseJSON(out)
		if err != nil {
			t.Fatalf("the JSON tapir wrote does not parse: %v\n%s", err, out)
		}
		if back.Text() != text {
			t.Fatalf("text changed across a round trip:\n%s\n%s", back.Text(), text)
		}
	})
}

// A degraded night says the volume to insert once: "The run expected"
// only when it differs from the one to insert, and without a volume to
// name it still says how the held images reach a volume.
func TestDegradedSaysItOnce(t *testing.T) {
	r := degradedNight()
	r.Degraded.Expected = r.Degraded.Insert
	text := r.Text()
	if strings.Contains(text, "*** The run expected") || strings.Count(text, r.Degraded.Insert) != 1 {
		t.Errorf("the volume to insert is not said once:\n%s", text)
	}
	r.Degraded.Expected, r.Degraded.Insert = "", ""
	text = r.Text()
	if !strings.Contains(text, "Once a volume is ready, the images on the holding disk go to it with `tapir flush -c /etc/tapir/DailySet1/tapir.toml`") {
		t.Errorf("no volume to name, and no word of how the images reach one:\n%s", text)
	}
}
