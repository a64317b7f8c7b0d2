package client

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

func writeTree(t *testing.T) string {
	root := t.TempDir()
	mt := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	for rel, size := range map[string]int{"a.txt": 10, "d/b.bin": 200 << 10, "d/e/c": 0, "skip.o": 5, strings.Repeat("n", 150): 3} {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(size)}, size), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	os.Symlink("a.txt", filepath.Join(root, "sym"))
	os.Link(filepath.Join(root, "a.txt"), filepath.Join(root, "hard"))
	return root
}

func TestDumpIndexPointsAtEntries(t *testing.T) {
	root := writeTree(t)
	var payload bytes.Buffer
	var recs []wire.IndexRecord
	var warns []string
	res, err := Dump(context.Background(), root, DumpOptions{Comp: image.CompZstd, FrameSize: 64 << 10, Exclude: []string{"*.o"}},
		Sink{Payload: &payload, Index: func(r wire.IndexRecord) error { recs = append(recs, r); return nil }, Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if res.Files != int64(len(recs)) {
		t.Errorf("files %d, records %d", res.Files, len(recs))
	}
	names := map[string]wire.IndexRecord{}
	for _, r := range recs {
		names[r.Path] = r
	}
	if _, ok := names["skip.o"]; ok {
		t.Error("excluded file dumped")
	}
	if r := names["hard"]; r.Type != tar.TypeLink && names["a.txt"].Type != tar.TypeLink {
		t.Errorf("hard link not stored as a link: %+v", r)
	}
	if names["sym"].Type != tar.TypeSymlink || names["sym"].Link != "a.txt" {
		t.Errorf("symlink: %+v", names["sym"])
	}
	if names["d/e"].Type != tar.TypeDir {
		t.Errorf("dir: %+v", names["d/e"])
	}
	frames, err := image.ReadSeekTable(bytes.NewReader(payload.Bytes()), int64(payload.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		rc, err := image.NewReaderAt(bytes.NewReader(payload.Bytes()), image.CompZstd, frames, r.TarOffset)
		if err != nil {
			t.Fatal(err)
		}
		h, err := tar.NewReader(rc).Next()
		rc.Close()
		if err != nil {
			t.Fatalf("%s at %d: %v", r.Path, r.TarOffset, err)
		}
		if got := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"); got != r.Path {
			t.Errorf("offset %d: entry %q, index says %q", r.TarOffset, got, r.Path)
		}
		if h.Typeflag == tar.TypeReg && !h.ModTime.Equal(time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)) {
			t.Errorf("%s: mtime %v lost its nanoseconds", h.Name, h.ModTime)
		}
	}
	// The whole stream reads as one tar.
	rc, err := image.NewStreamReader(bytes.NewReader(payload.Bytes()), image.CompZstd)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, rc)
	if n != res.Summary.OriginalSize {
		t.Errorf("stream %d bytes, summary %d", n, res.Summary.OriginalSize)
	}
}

func TestEstimateMatchesDumpSize(t *testing.T) {
	root := writeTree(t)
	est, err := Estimate(context.Background(), root, DumpOptions{}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Dump(context.Background(), root, DumpOptions{Comp: image.CompNone}, Sink{Payload: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	got, want := est[0].Bytes, res.Summary.OriginalSize
	if got < want*8/10 || got > want*12/10 {
		t.Errorf("estimate %d bytes, dump %d bytes: off by more than 20%%", got, want)
	}
	if _, err := Estimate(context.Background(), root, DumpOptions{}, []int{1}); err == nil {
		t.Error("level 1 estimate accepted by a level-0-only agent")
	}
}

func TestAgentRefusesBadRequests(t *testing.T) {
	a := &Agent{Allow: []string{"/srv/data"}}
	for _, req := range []wire.Request{
		{Op: "rm"},
		{Op: wire.OpDump, DLE: "relative"},
		{Op: wire.OpDump, DLE: "/srv/data/../etc"},
		{Op: wire.OpDump, DLE: "/etc"},
		{Op: wire.OpDump, DLE: "/srv/data", Level: 12},
		{Op: wire.OpDump, DLE: "/srv/data", Compress: "lzma"},
		{Op: wire.OpDump, DLE: "/srv/data", FrameSize: 10},
		{Op: wire.OpDump, DLE: "/srv/data", Exclude: []string{"["}},
	} {
		if _, err := a.check(req); err == nil {
			t.Errorf("request %+v accepted", req)
		}
	}
	if _, err := a.check(wire.Request{Op: wire.OpDump, DLE: "/srv/data/sub"}); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
}
