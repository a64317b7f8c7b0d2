package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tapir vault: bad usage exits 2; a configuration without [vault], or a
// vault onto its own labels, exits non-zero with a line saying what to do;
// with nothing to copy it says so and exits 0.
func TestVaultCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const base = "org = \"x\"\nstatedir = \"state\"\n[[dle]]\nhost = \"web1\"\npath = \"/etc\"\n"
	if _, _, code := run(t, "vault", "-c", "x.toml", "a", "b", "c"); code != 2 {
		t.Errorf("three arguments: exit %d, want 2", code)
	}
	_, stderr, code := run(t, "vault", "-c", write("novault.toml", base))
	if code != 1 || !strings.Contains(stderr, "has no [vault] section") {
		t.Errorf("no [vault]: exit %d %q", code, stderr)
	}
	_, stderr, code = run(t, "vault", "-c", write("same.toml", base+"[vault]\nlabelstr = \"^x-[0-9]{3}$\"\nautolabel = \"x-%%%\"\n"))
	if code != 2 || !strings.Contains(stderr, "same.toml:7: ") || !strings.Contains(stderr, "is labelstr itself") {
		t.Errorf("vault onto the source labels: exit %d %q", code, stderr)
	}
	os.MkdirAll(filepath.Join(dir, "state", "offsite"), 0o750)
	stdout, stderr, code := run(t, "vault", "-c", write("ok.toml", base+"[vault]\n"), "--fulls-only", "--since", "2026-01-01")
	if code != 0 || !strings.Contains(stdout, "0 image(s) copied") || !strings.Contains(stdout, "nothing to copy") {
		t.Errorf("empty catalog: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Several vaults: all of them, or the one --to names; JSON is an
	// array of them, or the one object.
	os.MkdirAll(filepath.Join(dir, "state", "dr"), 0o750)
	two := write("two.toml", base+"[[vault]]\n[[vault]]\nname = \"dr\"\n")
	stdout, stderr, code = run(t, "vault", "-c", two, "--format", "json")
	var all []map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &all) != nil || len(all) != 2 || all[1]["Vault"] != "dr" {
		t.Errorf("two vaults, json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = run(t, "vault", "-c", two, "--to", "dr", "--format", "json")
	var one map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &one) != nil || one["Vault"] != "dr" {
		t.Errorf("--to dr, json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	_, stderr, code = run(t, "vault", "-c", two, "--to", "nope")
	if code != 1 || !strings.Contains(stderr, `no vault named "nope" (it has offsite, dr)`) {
		t.Errorf("--to nope: exit %d %q", code, stderr)
	}
}
