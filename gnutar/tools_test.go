package gnutar

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needTool returns the path of tool, installing Debian package pkg with
// apt-get when it is missing (scripts/test normally does that first). The
// test is skipped, with the reason, only when the install fails.
func needTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := installTool(tool, pkg)
	if err != nil {
		t.Skip(err)
	}
	return p
}

// haveTool is needTool for optional cross-checks: it reports false, with
// a log line, instead of skipping.
func haveTool(t *testing.T, tool, pkg string) bool {
	t.Helper()
	_, err := installTool(tool, pkg)
	if err != nil {
		t.Logf("cross-check skipped: %v", err)
	}
	return err == nil
}

// installTool finds tool, or installs Debian package pkg for it.
func installTool(tool, pkg string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	why := "not root"
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if p, lerr := exec.LookPath(tool); lerr == nil {
			return p, nil
		}
		why = strings.TrimSpace(string(out))
		if err != nil {
			why = err.Error() + ": " + why
		}
	}
	return "", fmt.Errorf("%s is missing and apt-get install %s failed (%s); install Debian package %s", tool, pkg, why, pkg)
}

// needGNUTar returns the path of GNU tar.
func needGNUTar(t *testing.T) string {
	t.Helper()
	p := needTool(t, "tar", "tar")
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !bytes.Contains(out, []byte("GNU tar")) {
		t.Skipf("%s is not GNU tar (%v); install Debian package tar", p, err)
	}
	return p
}

// run runs a program and returns its standard output; it fails the test
// with the program's output when it exits non-zero.
func run(t *testing.T, dir, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", prog, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// needXattrs skips the test when dir's filesystem cannot store user xattrs.
func needXattrs(t *testing.T, dir string) {
	t.Helper()
	if !xattrsSupported(t, dir) {
		t.Skipf("the filesystem of %s has no user xattr support", dir)
	}
}

// xattrsSupported reports whether dir's filesystem stores user xattrs.
func xattrsSupported(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	err := unix.Lsetxattr(p, "user.probe", []byte("1"), 0)
	if errors.Is(err, unix.ENOTSUP) {
		return false
	}
	if err != nil {
		t.Fatalf("probe xattr support in %s: %v", dir, err)
	}
	return true
}

// tarEntry is what archive/tar reads back of one member: the header, the
// SHA-256 of the data, and the data itself when it is small.
type tarEntry struct {
	hdr  *tar.Header
	sum  [sha256.Size]byte
	data []byte
}

// readTar reads a whole archive with archive/tar.
func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	tr := tar.NewReader(r)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("archive/tar: after %d entries: %v", len(out), err)
		}
		e := tarEntry{hdr: h}
		hash := sha256.New()
		var small bytes.Buffer
		w := io.Writer(hash)
		if h.Size <= 1<<20 {
			w = io.MultiWriter(hash, &small)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatalf("archive/tar: read %s: %v", h.Name, err)
		}
		copy(e.sum[:], hash.Sum(nil))
		e.data = small.Bytes()
		out = append(out, e)
	}
}
