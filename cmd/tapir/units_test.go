package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd units in etc/ start tapir with flags it knows: each
// ExecStart, with --help added, must parse.
func TestSystemdUnitsParse(t *testing.T) {
	units, _ := filepath.Glob("../../etc/*.service")
	if len(units) < 2 {
		t.Fatalf("units: %v", units)
	}
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "ExecStart=")
			if !ok {
				continue
			}
			found = true
			args := strings.Fields(line)
			if args[0] != "/usr/local/bin/tapir" {
				t.Errorf("%s: ExecStart runs %s", u, args[0])
			}
			_, stderr, code := run(t, append(args[1:], "--help")...)
			if code != 0 {
				t.Errorf("%s: %s: exit %d: %s", u, line, code, stderr)
			}
		}
		f.Close()
		if !found {
			t.Errorf("%s has no ExecStart", u)
		}
	}
}
