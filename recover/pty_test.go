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
	"sync"
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
	lcd := t.TempDir()
	f := w.files["web1"]
	tm := startTerminal(t, "--server", w.addr, "--ca", f.CA, "--cert", f.Cert, "--key", f.Key, "--lcd", lcd, "--host", "web1", "--disk", "/srv")
	tm.expect("recover> ")
	tm.steps([]step{
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
	})
	tm.check("terminal-session", w.addr, lcd)
	for _, rel := range []string{"home/bob/new name.txt", "etc/passwd"} {
		sameEntry(t, filepath.Join(w.data, rel), filepath.Join(lcd, rel))
	}
}

// TestShellInATerminalOddNames: in a real terminal, TAB completes names
// that are not UTF-8 or hold control or glob characters into their
// escaped spelling (never U+FFFD), ls shows them one line each, and what
// TAB wrote is added and extracted byte for byte.
func TestShellInATerminalOddNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tapir binary")
	}
	s := newOddSite(t)
	lcd := t.TempDir()
	tm := startTerminal(t, "--server", s.addr(), "--ca", s.files.CA, "--cert", s.files.Cert, "--key", s.files.Key, "--lcd", lcd)
	tm.expect("recover> ")
	tm.steps([]step{
		{"ls\r", "recover> "},
		{"cd caf\t", `cd caf\xe9/`},
		{"su\t", `cd caf\xe9/sub\ dir/`},
		{"\r", "recover> "},
		{"add a\t", `add a\*b.txt `},
		{"\r", "recover> "},
		{"cd /srv\r", "recover> "},
		{"add \\xff\t", `add \xff\xfe.bin `},
		{"\r", "recover> "},
		{"add star\\*\t", `add star\*q\?br\[ `},
		{"\r", "recover> "},
		{"add esc\t", `add esc\x1b\[31mred `},
		{"\r", "recover> "},
		{"add new\\x0a\t", `add new\x0aline.txt `},
		{"\r", "recover> "},
		{"sethost w\t", "sethost web1 "},
		{"\x15list\r", "recover> "},
		{"extract\r", "Continue? [Y/n] "},
		{"\r", "recover> "},
		{"quit\r", ""},
	})
	got := tm.check("terminal-odd-names", s.addr(), lcd)
	if strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("the terminal shows U+FFFD:\n%s", got)
	}
	for _, rel := range []string{"caf\xe9/sub dir/a*b.txt", "\xff\xfe.bin", "star*q?br[", "esc\x1b[31mred", "new\nline.txt"} {
		sameEntry(t, filepath.Join(s.data, rel), filepath.Join(lcd, rel))
	}
}

var (
	tapirBinOnce sync.Once
	tapirBin     string
	tapirBinErr  error
)

// buildTapir builds the tapir binary once per test binary.
func buildTapir(t *testing.T) string {
	tapirBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tapir-recover-bin")
		if err != nil {
			tapirBinErr = err
			return
		}
		binDirs = append(binDirs, dir)
		tapirBin = filepath.Join(dir, "tapir")
		if out, err := exec.Command("go", "build", "-o", tapirBin, "github.com/tapir-backup/tapir/cmd/tapir").CombinedOutput(); err != nil {
			tapirBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if tapirBinErr != nil {
		t.Fatal(tapirBinErr)
	}
	return tapirBin
}

// binDirs are removed by TestMain.
var binDirs []string

// terminal is `tapir recover` running in a PTY.
type terminal struct {
	t      *testing.T
	tty    *os.File
	done   chan error
	chunks chan []byte
	screen []byte
	seen   int
}

type step struct{ keys, want string }

func startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	bin := buildTapir(t)
	cmd := exec.Command(bin, append([]string{"recover"}, args...)...)
	cmd.Env = append(os.Environ(), "TERM=xterm", "HOME="+t.TempDir())
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	tm := &terminal{t: t, tty: tty, done: make(chan error, 1), chunks: make(chan []byte, 64)}
	t.Cleanup(func() { tty.Close() })
	go func() { tm.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := tty.Read(b)
			if n > 0 {
				tm.chunks <- b[:n]
			}
			if err != nil {
				close(tm.chunks)
				return
			}
		}
	}()
	return tm
}

// expect reads until the rendered screen's last part contains s.
func (tm *terminal) expect(s string) {
	tm.t.Helper()
	for { // a prompt that never comes is caught by go test -timeout
		if strings.Contains(render(tm.screen[tm.seen:]), s) {
			tm.seen = len(tm.screen)
			return
		}
		b, ok := <-tm.chunks
		if !ok {
			tm.t.Fatalf("the shell ended before %q appeared; screen:\n%s", s, render(tm.screen))
		}
		tm.screen = append(tm.screen, b...)
	}
}

func (tm *terminal) steps(steps []step) {
	tm.t.Helper()
	for _, st := range steps {
		if _, err := tm.tty.Write([]byte(st.keys)); err != nil {
			tm.t.Fatal(err)
		}
		if st.want != "" {
			tm.expect(st.want)
		}
	}
}

// check waits for the shell to exit, and compares the screen, as a
// terminal shows it, with testdata/NAME.golden (go test -update rewrites
// it); the server's address and the local directory are made stable.
func (tm *terminal) check(name, addr, lcd string) string {
	tm.t.Helper()
	// A shell that does not exit after quit is caught by go test -timeout.
	if err := <-tm.done; err != nil {
		tm.t.Fatalf("tapir recover exited with %v; screen:\n%s", err, render(tm.screen))
	}
	for b := range tm.chunks {
		tm.screen = append(tm.screen, b...)
	}
	got := render(tm.screen)
	got = strings.ReplaceAll(got, addr, "localhost:PORT")
	got = strings.ReplaceAll(got, lcd, "LCD")
	got = regexp.MustCompile(`[ \t]+\n`).ReplaceAllString(got, "\n")
	golden := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			tm.t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		tm.t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		tm.t.Errorf("the terminal session differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, got, want)
	}
	return got
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
