package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// `tapir version` and `tapir --version` print the same one line, exit 0,
// and say something useful even for a binary the toolchain stamped with
// no commit (this test's binary: go build under go test).
func TestVersionCommandAndFlag(t *testing.T) {
	out, stderr, code := run(t, "version")
	if code != 0 {
		t.Fatalf("tapir version: exit %d: %s", code, stderr)
	}
	flagOut, stderr, code := run(t, "--version")
	if code != 0 {
		t.Fatalf("tapir --version: exit %d: %s", code, stderr)
	}
	if out != flagOut {
		t.Errorf("tapir version says %q, tapir --version says %q", out, flagOut)
	}
	re := regexp.MustCompile(`^tapir \S+, commit (unknown|[0-9a-f]{40}[^,]*), go1\.\S+ \w+/\w+\n$`)
	if !re.MatchString(out) {
		t.Errorf("tapir version = %q, want it to match %s", out, re)
	}
	if _, stderr, code := run(t, "version", "extra"); code != 2 {
		t.Errorf("tapir version extra: exit %d, want 2 (%s)", code, stderr)
	}
}

func TestVersionLine(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name      string
		bi        *debug.BuildInfo
		want, not []string
	}{
		{"no build info", nil, []string{"(devel), commit unknown, go"}, nil},
		{"go run", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}},
			[]string{"(devel), commit unknown, go1.99 "}, nil},
		{"clean checkout", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v0.0.0-20261204101010-0123456789ab"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-04T10:10:10Z"}, {Key: "vcs.modified", Value: "false"}}},
			[]string{"v0.0.0-20261204101010-0123456789ab, commit " + rev + " (2026-12-04T10:10:10Z), go1.99 "}, []string{"uncommitted"}},
		{"dirty checkout", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			[]string{"v1.2.3+dirty, commit " + rev + " with uncommitted changes, go"}, nil},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			[]string{"v1.4.0, commit unknown"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionLine(tc.bi)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionLine = %q, want it to contain %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("versionLine = %q, must not contain %q", got, n)
				}
			}
		})
	}
}

// A binary built with plain `go build` in a git checkout names the commit
// it was built from. The checkout is a fresh clone of this repository's
// HEAD: the Go toolchain stamps nothing in a git worktree (.git is a file
// there), which is why scripts/deb stamps through the linker instead.
func TestVersionNamesCommitOfCheckout(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: cannot make a checkout to build from")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("the source is not a git checkout (%v): nothing to name", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "clone", "-q", "--shared", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	head, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tapir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tapir")
	build.Dir = clone
	// -buildvcs=auto is the toolchain's default; GOFLAGS may say false.
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=auto")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v: %s", clone, err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("tapir version: %v", err)
	}
	want := "commit " + strings.TrimSpace(string(head)) + " ("
	if !strings.Contains(string(out), want) || strings.Contains(string(out), "uncommitted") {
		t.Errorf("tapir version = %q, want it to contain %q and no uncommitted changes", out, want)
	}
	if strings.HasPrefix(string(out), "tapir (devel)") {
		t.Errorf("tapir version = %q: the toolchain stamps a pseudo-version in a checkout", out)
	}
}
