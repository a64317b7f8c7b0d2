package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// visibleCommands is every command a person can see in `tapir help`, at
// every depth, root included; the hidden ones (man, index-server) and
// help are not.
func visibleCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		out = append(out, visibleCommands(sub)...)
	}
	return out
}

// Every visible subcommand gets a man page named after its path
// (tapir-admin-find.1), no hidden command gets one, and a page carries the
// command's flags.
func TestManPageForEveryCommand(t *testing.T) {
	root := newRootCommand(&globals{})
	root.InitDefaultCompletionCmd() // Execute adds it to the binary's tree
	var want []string
	for _, c := range visibleCommands(root) {
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
	}
	sort.Strings(want)
	if len(want) < 30 {
		t.Fatalf("only %d visible commands found: %v", len(want), want)
	}

	dir := filepath.Join(t.TempDir(), "man1")
	if _, stderr, code := run(t, "man", "--dir", dir); code != 0 {
		t.Fatalf("tapir man: exit %d: %s", code, stderr)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pages written:\n  %s\nwant one per visible command:\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	for _, name := range []string{"tapir-man.1", "tapir-index-server.1", "tapir-help.1"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written for a hidden command", name)
		}
	}
	for _, c := range []struct{ page, has string }{
		{"tapir.1", `.SH SEE ALSO`},
		{"tapir.1", `--version`},
		{"tapir.1", `Exit status: 0 success`},
		{"tapir-label.1", `--slot`},
		{"tapir-dump.1", `.TH "TAPIR-DUMP" "1"`},
		{"tapir-admin-find.1", `.SH NAME`},
		{"tapir-completion-bash.1", `bash`},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.page))
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.Contains(b, []byte(c.has)) {
			t.Errorf("%s does not contain %q", c.page, c.has)
		}
		if bytes.Contains(b, []byte("Auto generated")) {
			t.Errorf("%s carries cobra's auto-generated footer (it makes packages differ by date)", c.page)
		}
	}
	if _, _, code := run(t, "man"); code != 2 {
		t.Errorf("tapir man without --dir: exit %d, want 2", code)
	}
}

// With SOURCE_DATE_EPOCH set (as scripts/deb does) two generations are
// byte for byte the same, dated from the epoch, not from today.
func TestManPagesReproducible(t *testing.T) {
	gen := func() string {
		dir := t.TempDir()
		cmd := exec.Command(tapirBin, "man", "--dir", dir)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1577880000") // 2020-01-01
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tapir man: %v: %s", err, out)
		}
		return dir
	}
	a, b := gen(), gen()
	ents, _ := os.ReadDir(a)
	for _, e := range ents {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs (%v)", e.Name(), err)
		}
	}
	top, _ := os.ReadFile(filepath.Join(a, "tapir.1"))
	if !bytes.Contains(top, []byte(`"Jan 2020"`)) {
		t.Errorf("tapir.1 not dated from SOURCE_DATE_EPOCH:\n%.200s", top)
	}
}

// `tapir completion bash` is a script that, sourced by a real bash with
// Debian's bash-completion (as /usr/share/bash-completion/completions/tapir
// is), completes subcommands and flags by asking the binary; zsh gets a
// #compdef file.
func TestShellCompletion(t *testing.T) {
	zsh, _, code := run(t, "completion", "zsh")
	if code != 0 || !strings.HasPrefix(zsh, "#compdef tapir\n") {
		t.Errorf("tapir completion zsh: exit %d, starts %.40q", code, zsh)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skipf("%s is missing (apt-get install bash-completion): the script needs its _get_comp_words_by_ref", bashCompletion)
	}
	script := filepath.Join(t.TempDir(), "tapir.bash")
	out, stderr, code := run(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("tapir completion bash: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `
source "$1"
source "$2"
compopt() { :; } # bash allows it only while readline completes
COMP_LINE=$3
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_POINT=${#COMP_LINE}
__start_tapir tapir
printf '%s\n' "${COMPREPLY[@]}"`, "bash", bashCompletion, script, line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tapirBin)+":"+os.Getenv("PATH"))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v: %s", line, err, b)
		}
		return strings.Fields(string(b))
	}
	has := func(words []string, w string) bool {
		for _, x := range words {
			if x == w {
				return true
			}
		}
		return false
	}
	if got := complete("tapir adm"); len(got) != 1 || got[0] != "admin" {
		t.Errorf("tapir adm<TAB> = %q, want [admin]", got)
	}
	if got := complete("tapir admin "); !has(got, "find") || !has(got, "rebuild") {
		t.Errorf("tapir admin <TAB> = %q, want its subcommands", got)
	}
	if got := complete("tapir label --sl"); !has(got, "--slot") {
		t.Errorf("tapir label --sl<TAB> = %q, want --slot", got)
	}
	if got := complete("tapir ma"); has(got, "man") {
		t.Errorf("tapir ma<TAB> = %q offers the hidden man command", got)
	}
}
