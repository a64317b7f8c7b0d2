package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var tapirBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapir-bin")
	if err != nil {
		panic(err)
	}
	tapirBin = filepath.Join(dir, "tapir")
	if out, err := exec.Command("go", "build", "-o", tapirBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(tapirBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestConfigErrors: a typo in a key, a wrong type and a missing file each
// give "tapir: <file>:<line>: <what>" and exit status 2.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"typo", write("typo.toml", "org = \"x\"\n\ndumpcyle = 7\n"), "typo.toml:3: "},
		{"type", write("type.toml", "org = \"x\"\ndumpcycle = \"seven\"\n"), "type.toml:2: "},
		{"missing", filepath.Join(dir, "nope.toml"), "nope.toml: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, "config", "check", "-c", tc.file)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			line := strings.TrimSpace(stderr)
			if !strings.HasPrefix(line, "tapir: ") || !strings.Contains(line, tc.want) || strings.Count(line, "\n") != 0 {
				t.Errorf("stderr %q, want one line starting with \"tapir: \" containing %q", stderr, tc.want)
			}
		})
	}
	_, stderr, code := run(t, "config", "check", "-c", write("ok.toml", "org = \"x\"\n[[dle]]\nhost = \"web1\"\npath = \"/etc\"\n"))
	if code != 0 {
		t.Errorf("valid config: exit %d: %s", code, stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	if _, _, code := run(t, "dump", "--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if _, stderr, code := run(t, "dump", "-c", "x.toml", "--format", "xml"); code != 2 || !strings.Contains(stderr, "want text or json") {
		t.Errorf("bad format: exit %d %q", code, stderr)
	}
	if _, stderr, code := run(t, "recover", "-c", "x.toml", "--host", "h"); code != 2 || !strings.Contains(stderr, "--path is required") {
		t.Errorf("missing flag: exit %d %q", code, stderr)
	}
}

func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := run(t, "ca", "init", "--dir", dir, "--server", "backup1"); code != 0 {
		t.Fatalf("ca init: %d %s", code, stderr)
	}
	if _, stderr, code := run(t, "ca", "issue", "web1", "--dir", dir, "--admin"); code != 0 {
		t.Fatalf("ca issue: %d %s", code, stderr)
	}
	for _, f := range []string{"ca.key", "backup1.key", "web1.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	if _, stderr, code := run(t, "ca", "init", "--dir", dir); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second ca init: exit %d %q", code, stderr)
	}
}
