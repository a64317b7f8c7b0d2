package recover

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestShellInATerminal drives `tapir recover` in a real terminal (a PTY):
// sethost, setdisk, setdate, cd with TAB completion, ls, add with TAB
// completion, extract (answering its question), quit. The screen, as a
// terminal shows it, is compared with testdata/terminal-session.golden
// (go test -update rewrites it), and the extracted files with the
// originals.
func TestShellInATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tapir binary")
	}
	w := sharedWorld(t)
	bin := filepath.Join(t.TempDir(), "tapir")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tapir-backup/tapir/cmd/tapir").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lcd := t.TempDir()
	f := w.files["web1"]
	cmd := exec.Command(bin, "recover", "--server", w.addr, "--ca", f.CA, "--cert", f.Cert, "--key", f.Key, "--lcd", lcd, "--host", "web1", "--disk", "/srv")
	cmd.Env = append(os.Environ(), "TERM=xterm", "HOME="+t.TempDir())
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()

	var screen []byte
	chunks := make(chan []byte, 64)
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := tty.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				close(chunks)
				return
			}
		}
	}()
	// expect reads until the rendered screen's last part contains s.
	seen := 0
	expect := func(s string) {
		t.Helper()
		for { // a prompt that never comes is caught by go test -timeout
			if strings.Contains(render(screen[seen:]), s) {
				seen = len(screen)
				return
			}
			b, ok := <-chunks
			if !ok {
				t.Fatalf("the shell ended before %q appeared; screen:\n%s", s, render(screen))
			}
			screen = append(screen, b...)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := tty.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expect("recover> ")
	for _, step := range []struct{ keys, want string }{
		{"sethost web1\r", "recover> "},
		{"setdisk /srv\r", "recover> "},
		{"setdate 2025-06-08\r", "recover> "},
		{"cd ho\t", "cd home/"},
		{"b\t", "cd home/bob/"},
		{"\r", "recover> "},
		{"pwd\r", "recover> "},
		{"ls\r", "recover> "},
		{"add new\t", "add new\\ name.txt "},
		{"\r", "recover> "},
		{"cd /srv/etc\r", "recover> "},
		{"add pass\t", "add passwd"},
		{"\r", "recover> "},
		{"list\r", "recover> "},
		{"extract\r", "Continue? [Y/n] "},
		{"\r", "recover> "},
		{"quit\r", ""},
	} {
		send(step.keys)
		if step.want != "" {
			expect(step.want)
		}
	}
	// A shell that does not exit after quit is caught by go test -timeout.
	if err := <-done; err != nil {
		t.Fatalf("tapir recover exited with %v; screen:\n%s", err, render(screen))
	}
	for b := range chunks {
		screen = append(screen, b...)
	}
	got := render(screen)
	got = strings.ReplaceAll(got, w.addr, "localhost:PORT")
	got = strings.ReplaceAll(got, lcd, "LCD")
	got = regexp.MustCompile(`[ \t]+\n`).ReplaceAllString(got, "\n")
	golden := filepath.Join("testdata", "terminal-session.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("the terminal session differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, got, want)
	}
	for _, rel := range []string{"home/bob/new name.txt", "etc/passwd"} {
		sameEntry(t, filepath.Join(w.data, rel), filepath.Join(lcd, rel))
	}
}

var csi = regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)

// render plays terminal output onto a screen of lines, as a terminal
// would: carriage return, newline, erase to end of line, cursor moves
// (the sequences liner writes), and returns the text.
func render(b []byte) string {
	lines := [][]rune{{}}
	row, col := 0, 0
	s := string(b)
	for len(s) > 0 {
		if m := csi.FindStringSubmatch(s); m != nil {
			n, _ := strconv.Atoi(strings.Split(m[1], ";")[0])
			if n == 0 {
				n = 1
			}
			switch m[2] {
			case "K":
				if col < len(lines[row]) {
					lines[row] = lines[row][:col]
				}
			case "C":
				col += n
			case "D":
				col = max(0, col-n)
			case "G":
				col = n - 1
			case "A":
				row = max(0, row-n)
			case "J":
				lines = lines[:row+1]
				if col < len(lines[row]) {
					lines[row] = lines[row][:col]
				}
			}
			s = s[len(m[0]):]
			continue
		}
		r := []rune(s[:min(len(s), 4)])[0]
		size := len(string(r))
		switch {
		case r == '\r':
			col = 0
		case r == '\n':
			row++
			col = 0
			for len(lines) <= row {
				lines = append(lines, []rune{})
			}
		case r == '\x07' || r == '\x1b':
		case r == '\b':
			col = max(0, col-1)
		default:
			for len(lines[row]) < col {
				lines[row] = append(lines[row], ' ')
			}
			if col < len(lines[row]) {
				lines[row][col] = r
			} else {
				lines[row] = append(lines[row], r)
			}
			col++
		}
		s = s[size:]
	}
	var out strings.Builder
	for _, l := range lines {
		fmt.Fprintln(&out, string(l))
	}
	return out.String()
}
