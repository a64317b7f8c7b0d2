package admin

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// catalog holds web1:/srv: two fulls and an incremental on volumes (the
// newer full spans two), a failed attempt, and an incremental on the
// holding disk; and web1:/etc with one full.
func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range []string{"DAILY-001", "DAILY-002", "DAILY-003"} {
		_, err := cat.AddVolume(t.Context(), catalog.Volume{Label: l, Slot: i + 1, Blocksize: 262144})
		must(err)
	}
	sha := strings.Repeat("cd", 32)
	type img struct {
		ds, path      string
		level         int
		orig, payload int64
		secs          int
		vols          []string
		fail          string
		hold          bool
	}
	started := map[string]bool{}
	for _, m := range []img{
		{"20250601010000", "/srv", 0, 10 << 30, 4 << 30, 400, []string{"DAILY-001"}, "", false},
		{"20250601010000", "/etc", 0, 2 << 20, 500 << 10, 2, []string{"DAILY-001"}, "", false},
		{"20250602010000", "/srv", 1, 300 << 20, 100 << 20, 20, []string{"DAILY-002"}, "", false},
		{"20250603010000", "/srv", 1, 0, 0, 0, nil, "client agent web1 is unreachable", false},
		{"20250604010000", "/srv", 0, 12 << 30, 5 << 30, 500, []string{"DAILY-002", "DAILY-003"}, "", false},
		{"20250605010000", "/srv", 1, 50 << 20, 20 << 20, 5, nil, "", true},
	} {
		ts, _ := time.Parse("20060102150405", m.ds)
		run, err := cat.Run(t.Context(), m.ds)
		var runID int64
		if err == nil {
			runID = run.ID
		} else {
			runID, err = cat.BeginRun(t.Context(), m.ds, "test", ts)
			must(err)
		}
		id, err := cat.CreateDump(t.Context(), &catalog.Dump{RunID: runID, Host: "web1", Path: m.path, Level: m.level, Started: ts})
		must(err)
		if m.fail != "" {
			must(cat.FailDump(t.Context(), id, m.fail))
			continue
		}
		must(cat.SetDumpHolding(t.Context(), id, m.orig, m.payload, sha, 10, "/holding/x", nil, ts.Add(time.Duration(m.secs)*time.Second)))
		if m.hold {
			continue
		}
		var parts []catalog.Part
		per := m.payload / int64(len(m.vols))
		for i, v := range m.vols {
			if !started[v] {
				_, err := cat.StartVolumeWrite(t.Context(), v, 1, 262144, m.ds)
				must(err)
				started[v] = true
			}
			n := per
			if i == len(m.vols)-1 {
				n = m.payload - per*int64(i)
			}
			parts = append(parts, catalog.Part{Volume: v, Part: i + 1, FileNo: int64(i + 1), LogicalPos: -1, Offset: per * int64(i), Length: n})
		}
		must(cat.CommitTaped(t.Context(), id, parts, ts.Add(time.Hour)))
	}
	must(cat.SetForce(t.Context(), "web1", "/srv", true))
	return cat
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestFindGolden(t *testing.T) {
	cat := testCatalog(t)
	var b bytes.Buffer
	if err := Find(t.Context(), &b, cat, "web1", ""); err != nil {
		t.Fatal(err)
	}
	golden(t, "find-web1.golden", b.Bytes())
	b.Reset()
	if err := Find(t.Context(), &b, cat, "web1", "/etc"); err != nil {
		t.Fatal(err)
	}
	golden(t, "find-web1-etc.golden", b.Bytes())
	for _, tc := range []struct{ host, path, want string }{
		{"web2", "", "no image of host web2 is in the catalog"},
		{"web1", "/nope", "no image of web1:/nope is in the catalog"},
	} {
		if err := Find(t.Context(), &b, cat, tc.host, tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("find %s %s: %v", tc.host, tc.path, err)
		}
	}
}

func TestInfoGolden(t *testing.T) {
	cat := testCatalog(t)
	var b bytes.Buffer
	if err := Info(t.Context(), &b, cat, "web1", "/srv"); err != nil {
		t.Fatal(err)
	}
	golden(t, "info-web1-srv.golden", b.Bytes())
}
