package recover

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover/recovertest"
	"github.com/tapir-backup/tapir/wire"
)

// bigWorld is a site with web1:/srv dumped at level 0 and 1 in small
// frames (4 KiB of tar each: hundreds of frames, decompressed several at
// once by the shell's extract), an index server and web1's certificate.
type bigWorld struct {
	site *testsite.Site
	addr string
	data string
	cfg  wire.Files
}

func newBigWorld(t *testing.T) *bigWorld {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	names, files := someFiles(7, "many/d", 150, 12000)
	mt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	for _, n := range names {
		p := filepath.Join(data, n)
		if strings.HasSuffix(n, "/") {
			os.MkdirAll(p, 0o755)
			continue
		}
		if err := os.WriteFile(p, files[n], 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	filepath.WalkDir(filepath.Join(data, "many"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chtimes(p, mt, mt)
		}
		return err
	})
	ctx := context.Background()
	dle := testsite.DLE{Host: "web1", Path: "/srv", Root: data, FrameSize: 4096}
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{dle}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testsite.Mutate(data); err != nil {
		t.Fatal(err)
	}
	dle.Level = 1
	if _, err := site.Run(ctx, "20250608010000", []testsite.DLE{dle}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	addr, _, err := site.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := site.Issue("web1", wire.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	return &bigWorld{site: site, addr: addr, data: data, cfg: f}
}

func (w *bigWorld) shell(t *testing.T) (*Shell, *bytes.Buffer) {
	t.Helper()
	cfg, err := wire.ClientConfig(w.cfg, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(context.Background(), w.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	var out bytes.Buffer
	return &Shell{Client: cl, Out: &out, Lcd: t.TempDir()}, &out
}

// ctimeRE drops what no two restores share from a Snapshot line.
var ctimeRE = regexp.MustCompile(` ctime=[0-9.]+`)

// sameTrees fails the test where the trees under a and b differ (type,
// mode, owner, size, links, mtime, content, symlink target, xattrs; the
// roots themselves aside).
func sameTrees(t *testing.T, what string, a, b string) {
	t.Helper()
	rel := func(root string) map[string]string {
		m := map[string]string{}
		for p, v := range recovertest.Snapshot(t, root, "") {
			if p == root {
				continue
			}
			r, _ := filepath.Rel(root, p)
			m[r] = ctimeRE.ReplaceAllString(v, "")
		}
		return m
	}
	ma, mb := rel(a), rel(b)
	var diffs []string
	for p, v := range ma {
		if w, ok := mb[p]; !ok {
			diffs = append(diffs, "only in the shell's: "+p)
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("%s:\n    shell %s\n    tar   %s", p, v, w))
		}
	}
	for p := range mb {
		if _, ok := ma[p]; !ok {
			diffs = append(diffs, "missing from the shell's: "+p)
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: %d differences, e.g.\n%s", what, len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	if len(ma) < 150 {
		t.Errorf("%s: only %d entries restored", what, len(ma))
	}
}

// TestShellExtractOfAWholeDLEIsTars: `add .` then `extract` of the full
// restores what `dd | zstd -dc | tar --xattrs -xpf -` of its vtape file does,
// every entry alike; its hundreds of frames are decompressed several at
// once and written in order. A flipped byte in the image is reported,
// never restored.
func TestShellExtractOfAWholeDLEIsTars(t *testing.T) {
	for _, tool := range []string{"dd", "zstd", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; scripts/test installs it", tool)
		}
	}
	w := newBigWorld(t)
	sh, out := w.shell(t)
	got := run(t, sh, out, "sethost web1", "setdisk /srv", "setdate 2025-06-07", "add .", "extract")
	if !regexp.MustCompile(`Restored \d+ entries`).MatchString(got) {
		t.Fatalf("extract said:\n%s", got)
	}
	vf, _ := filepath.Glob(filepath.Join(w.site.Vtapes, "slot1", "00001.*"))
	if len(vf) != 1 {
		t.Fatalf("vtape files %v", vf)
	}
	tarDir := t.TempDir()
	cmd := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | zstd -qdc | tar --xattrs --xattrs-include='*' -xpf - -C '%s'", vf[0], tarDir))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar: %v\n%s", err, b)
	}
	sameTrees(t, "level 0", sh.Lcd, tarDir)

	// One flipped byte in the middle of the image: the frame is reported
	// damaged, the entries from it on fail, and every file restored is
	// the one tar restored from the undamaged image.
	b, err := os.ReadFile(vf[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(vf[0], b, 0o640); err != nil {
		t.Fatal(err)
	}
	run(t, sh, out, "lcd "+t.TempDir(), "add .")
	err = sh.Exec("extract")
	got = out.String()
	if err == nil || !regexp.MustCompile(`FAILED \S+: frame \d+ of the level 0 image 2025-06-07 01:00:00 is damaged \(.*\): checksum mismatch or corrupt data; restore these files from another image \(setdate\) or check the volume with .tapir verify.`).MatchString(got) {
		t.Fatalf("extract of a damaged image: %v\n%s", err, got)
	}
	restored := 0
	filepath.WalkDir(sh.Lcd, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		r, _ := filepath.Rel(sh.Lcd, p)
		want, _ := os.ReadFile(filepath.Join(tarDir, r))
		if have, _ := os.ReadFile(p); !bytes.Equal(have, want) {
			t.Errorf("%s restored from a damaged image with the wrong content", r)
		}
		restored++
		return nil
	})
	if restored == 0 || !strings.Contains(got, "FAILED") {
		t.Errorf("%d files restored before the damaged frame:\n%s", restored, got)
	}
}

// TestShellExtractOfAWholeDLEChain: the whole DLE as it is now (the full,
// then the level 1 over it) is the tree as it was dumped last.
func TestShellExtractOfAWholeDLEChain(t *testing.T) {
	w := newBigWorld(t)
	sh, out := w.shell(t)
	got := run(t, sh, out, "sethost web1", "setdisk /srv", "add /srv", "extract")
	if !strings.Contains(got, "Reading the level 1 image 2025-06-08 01:00:00 from volume TEST-002 file 1") {
		t.Errorf("extract said:\n%s", got)
	}
	n := 0
	err := filepath.WalkDir(w.data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == w.data {
			return err
		}
		r, _ := filepath.Rel(w.data, p)
		sameEntry(t, p, filepath.Join(sh.Lcd, r))
		n++
		return nil
	})
	if err != nil || n < 150 {
		t.Fatalf("compared %d entries: %v", n, err)
	}
	if _, err := os.Lstat(filepath.Join(sh.Lcd, "home/bob/doomed.txt")); err == nil {
		t.Errorf("a file deleted before the level 1 was restored")
	}

	// Again into the same directory: every file is found there (the
	// lookups skip only directories that are not there), and none is
	// overwritten without a yes.
	nondirs := 0
	filepath.WalkDir(w.data, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			nondirs++
		}
		return err
	})
	var asked []string
	sh.Ask = func(q string, def bool) bool { asked = append(asked, q); return q == "Continue?" }
	os.WriteFile(filepath.Join(sh.Lcd, "many/d00/f000"), []byte("mine"), 0o644)
	run(t, sh, out, "add /srv")
	if err := sh.Exec("extract"); err == nil || !strings.Contains(out.String(), fmt.Sprintf("Skipped %d existing entries", nondirs)) ||
		!strings.Contains(out.String(), fmt.Sprintf("%d entries already exist under %s", nondirs, sh.Lcd)) || len(asked) != 2 {
		t.Errorf("extract over a whole restore: %v, asked %q\n%s", err, asked, out.String())
	}
	if b, _ := os.ReadFile(filepath.Join(sh.Lcd, "many/d00/f000")); string(b) != "mine" {
		t.Errorf("a file was overwritten without a yes")
	}
}
