package admin

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/catalog"
)

func TestVersions(t *testing.T) {
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mt := time.Date(2025, 5, 1, 12, 0, 0, 0, time.Local)
	for _, img := range []struct {
		ds    string
		level int
		recs  []catalog.FileRecord
	}{
		{"20250601010000", 0, []catalog.FileRecord{{Path: "etc", Type: '5'}, {Path: "etc/app.conf", Type: '0', Size: 100, Mtime: mt}, {Path: "etc/other", Type: '0', Size: 5}}},
		{"20250602010000", 1, []catalog.FileRecord{{Path: "etc", Type: '5'}, {Path: "etc/app.conf", Type: '0', Size: 2048, Mtime: mt.Add(24 * time.Hour)}}},
	} {
		ts, _ := time.Parse("20060102150405", img.ds)
		run, err := cat.BeginRun(t.Context(), img.ds, "test", ts)
		must(err)
		id, err := cat.CreateDump(t.Context(), &catalog.Dump{RunID: run, Host: "web1", Path: "/srv", Level: img.level, Started: ts})
		must(err)
		fw, err := cat.NewFileWriter(t.Context(), id, 1<<20)
		must(err)
		for j, r := range img.recs {
			r.TarOffset = int64(j) * 1024
			must(fw.Add(t.Context(), r))
		}
		must(fw.Commit(t.Context()))
		must(cat.SetDumpHolding(t.Context(), id, 10, 10, strings.Repeat("cd", 32), int64(len(img.recs)), "/holding/x", nil, ts.Add(time.Minute)))
	}
	var b bytes.Buffer
	must(Versions(t.Context(), &b, cat, "web1", "/srv", "*.conf", 0))
	want := "path          date                 level  status   type  size   modified             image\n" +
		"etc/app.conf  2025-06-01 01:00:00  0      holding  file  100 B  2025-05-01 12:00:00  1\n" +
		"etc/app.conf  2025-06-02 01:00:00  1      holding  file  2 KiB  2025-05-02 12:00:00  2\n"
	if b.String() != want {
		t.Errorf("versions of *.conf:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	must(Versions(t.Context(), &b, cat, "web1", "/srv", "etc/*", 1))
	if !strings.Contains(b.String(), "(more versions than the 1 shown") || strings.Count(b.String(), "\n") != 3 {
		t.Errorf("versions with a limit:\n%s", b.String())
	}
	if err := Versions(t.Context(), &b, cat, "web1", "/srv", "nothing", 0); err == nil || !strings.Contains(err.Error(), `no file of web1:/srv matches "nothing"`) {
		t.Errorf("a pattern that matches nothing: %v", err)
	}
}
