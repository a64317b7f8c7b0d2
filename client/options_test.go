package client

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

func dumpNames(t *testing.T, root string, opt DumpOptions) ([]string, []string) {
	t.Helper()
	var names, warns []string
	if opt.Comp == "" {
		opt.Comp = image.CompNone
	}
	_, err := Dump(context.Background(), root, opt, Sink{Payload: io.Discard,
		Index: func(r wire.IndexRecord) error { names = append(names, r.Path); return nil },
		Warn:  func(s string) { warns = append(warns, s) }})
	must(t, err)
	sort.Strings(names)
	return names, warns
}

// TestExcludeMatchesGNUTar: the same patterns exclude the same members as
// GNU tar's --exclude does.
func TestExcludeMatchesGNUTar(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"a.o", "src/b.o", "src/b.c", ".cache/x", "home/.cache/y", "web/node_modules/m/i.js",
		"web/app.js", "logs/2026/x.log", "tmp/keep", "deep/tmp/file", "[x].txt", "core", "src/core.c"} {
		writeAt(t, filepath.Join(root, p), "x", time.Now())
	}
	for _, pats := range [][]string{
		{"*.o"},
		{"./.cache"},
		{".cache"},
		{"*/node_modules"},
		{"logs/*"},
		{"./tmp"},
		{"tmp"},
		{"core"},
		{"\\[x\\].txt"},
		{"src/*.c", "*.log"},
		{"deep/"},
	} {
		var args []string
		for _, p := range pats {
			args = append(args, "--exclude="+p)
		}
		out, err := exec.Command("tar", append(append([]string{"-cf", "/dev/null", "-v", "-C", root}, args...), ".")...).Output()
		must(t, err)
		var want []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			l = strings.TrimSuffix(strings.TrimPrefix(l, "./"), "/")
			if l != "" && l != "." {
				want = append(want, l)
			}
		}
		sort.Strings(want)
		got, _ := dumpNames(t, root, DumpOptions{Exclude: pats})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("exclude %q:\n tapir   %q\n GNU tar %q", pats, got, want)
		}
	}
	// An exclude list file, and a missing one (a warning, not a failure).
	list := filepath.Join(t.TempDir(), "excl")
	must(t, os.WriteFile(list, []byte("*.o\n\nweb\n"), 0o644))
	got, warns := dumpNames(t, root, DumpOptions{ExcludeLists: []string{list, "/no/such/list"}})
	for _, n := range got {
		if strings.HasSuffix(n, ".o") || strings.HasPrefix(n, "web") {
			t.Errorf("exclude list not applied: %s dumped", n)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "/no/such/list") {
		t.Errorf("warnings %q; want one naming the missing exclude list", warns)
	}
}

// TestTroubleWithFilesIsStrangeNotFatal: unreadable files and files that
// change while read give warnings naming them; the image stays valid.
func TestTroubleWithFilesIsStrangeNotFatal(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads mode-000 files; use a file that vanishes instead.
		t.Log("running as root: unreadable-file case uses a dangling path")
	}
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "ok.txt"), "fine", time.Now())
	big := filepath.Join(root, "growing.bin")
	must(t, os.WriteFile(big, bytes.Repeat([]byte("g"), 8<<20), 0o644))
	locked := filepath.Join(root, "locked.txt")
	must(t, os.WriteFile(locked, []byte("secret"), 0o000))

	var warns []string
	var buf bytes.Buffer
	stop := make(chan struct{})
	go func() { // keep appending to growing.bin while the dump reads it
		f, _ := os.OpenFile(big, os.O_WRONLY|os.O_APPEND, 0)
		defer f.Close()
		for {
			select {
			case <-stop:
				return
			default:
				f.Write(bytes.Repeat([]byte("h"), 4096))
			}
		}
	}()
	_, err := Dump(context.Background(), root, DumpOptions{Comp: image.CompZstd, Bandwidth: 64 << 20},
		Sink{Payload: &buf, Warn: func(s string) { warns = append(warns, s) }})
	close(stop)
	must(t, err)
	joined := strings.Join(warns, "\n")
	if !strings.Contains(joined, "growing.bin") {
		t.Errorf("no warning names the file that changed while read: %q", warns)
	}
	if os.Geteuid() != 0 && !strings.Contains(joined, "locked.txt") {
		t.Errorf("no warning names the unreadable file: %q", warns)
	}
	cmd := exec.Command("sh", "-c", "zstd -dc | tar -tf - >/dev/null")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("image with troubled files is not a valid tar stream: %v\n%s", err, out)
	}
}

// TestBandwidthLimit: a dumptype's bandwidth bounds the payload rate.
func TestBandwidthLimit(t *testing.T) {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, "r.bin"), randomBytes(3<<20), 0o644))
	start := time.Now()
	_, err := Dump(context.Background(), root, DumpOptions{Comp: image.CompNone, Bandwidth: 2 << 20}, Sink{Payload: io.Discard})
	must(t, err)
	// 3 MiB at 2 MiB/s with one second of initial credit: at least 0.4 s.
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("3 MiB at 2 MiB/s took %v", el)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
