package recover

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// oddNames are the names of the odd tree: glob characters, bytes that
// are not UTF-8, control characters, blanks, a backslash; and a decoy
// that a pattern would match but the escaped name must not.
var oddNames = map[string]string{
	"star*q?br[":              "the literal star\n",
	"starXqYbrZ":              "a decoy\n",
	"caf\xe9/menu.txt":        "latin-1 directory\n",
	"\xff\xfe.bin":            "not UTF-8\n",
	"new\nline.txt":           "a newline in the name\n",
	"tab\there":               "a tab\n",
	`back\slash`:              "a backslash\n",
	"new name.txt":            "a blank\n",
	"esc\x1b[31mred":          "an escape sequence\n",
	"[x]":                     "brackets\n",
	"caf\xe9/sub dir/a*b.txt": "deeper\n",
}

// oddSite is a site with one full image of web1:/srv holding oddNames,
// and an index server that a test stops and starts again on its port.
type oddSite struct {
	site  *testsite.Site
	data  string
	files wire.Files
	port  string
	stop  func()
}

func newOddSite(t *testing.T) *oddSite {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	data := filepath.Join(dir, "data")
	mt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	for name, content := range oddNames {
		p := filepath.Join(data, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	if _, err := site.Run(context.Background(), "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := site.Issue("web1", wire.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	s := &oddSite{site: site, data: data, files: f}
	s.start(t)
	t.Cleanup(func() { s.stop() })
	return s
}

// start runs the index server, on the port of the last one if there was
// one (a restarted server).
func (s *oddSite) start(t *testing.T) {
	t.Helper()
	tlsCfg, err := wire.ServerConfig(s.site.ServerFiles(), wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+s.port)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := taper.NewDiskChanger(s.site.Vtapes, s.site.Slots, s.site.Capacity, s.site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &indexd.Server{Catalog: s.site.Catalog, TLS: tlsCfg, Volumes: &indexd.DiskVolumes{Changer: ch, Catalog: s.site.Catalog},
		Holding: []string{s.site.Holding}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	_, s.port, _ = net.SplitHostPort(ln.Addr().String())
	s.stop = func() { cancel(); <-done; s.stop = func() {} }
}

func (s *oddSite) addr() string { return "localhost:" + s.port }

func (s *oddSite) shell(t *testing.T) (*Shell, *bytes.Buffer) {
	t.Helper()
	cfg, err := wire.ClientConfig(s.files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(context.Background(), s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	var out bytes.Buffer
	return &Shell{Client: cl, Out: &out, Lcd: t.TempDir(), Ask: func(string, bool) bool { return true }}, &out
}

// transcript records a session as a person would see it: each command
// after the prompt, its output, and its error; "#" lines are notes (what
// the test did meanwhile), "TAB LINE" shows what completion offers.
type transcript struct {
	t   *testing.T
	sh  *Shell
	out *bytes.Buffer
	b   strings.Builder
}

func (tr *transcript) run(cmds ...string) {
	for _, c := range cmds {
		tr.out.Reset()
		err := tr.sh.Exec(c)
		fmt.Fprintf(&tr.b, "recover> %s\n%s", c, tr.out.String())
		if err != nil {
			fmt.Fprintf(&tr.b, "%v\n", err)
		}
	}
}

func (tr *transcript) tab(line string) {
	_, got, _ := tr.sh.Complete(line, len(line))
	fmt.Fprintf(&tr.b, "recover> %s<TAB>\n", line)
	for _, c := range got {
		fmt.Fprintf(&tr.b, "  %s|\n", c)
	}
}

func (tr *transcript) note(s string) { fmt.Fprintf(&tr.b, "# %s\n", s) }

// check compares the transcript with testdata/NAME.golden (go test
// -update rewrites it), with the server's port and the local directory
// made stable.
func (tr *transcript) check(name string, replace ...string) {
	tr.t.Helper()
	got := tr.b.String()
	for i := 0; i+1 < len(replace); i += 2 {
		got = strings.ReplaceAll(got, replace[i], replace[i+1])
	}
	golden := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			tr.t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		tr.t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		tr.t.Errorf("the session differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// TestShellOddNamesTranscript: names with bytes that are not UTF-8,
// control characters and glob characters are shown escaped (one line
// each), completed escaped, typed back with \xHH, quotes or $'...', and
// matched literally when escaped, by add, delete and find (on the
// server); the extract restores exactly those bytes.
func TestShellOddNamesTranscript(t *testing.T) {
	s := newOddSite(t)
	sh, out := s.shell(t)
	tr := &transcript{t: t, sh: sh, out: out}
	tr.run("sethost web1", "setdisk /srv", "ls")
	tr.tab("cd caf")
	tr.tab("add new")
	tr.tab("add star")
	tr.tab("add \\xff")
	tr.tab("add $'tab")
	tr.run(`cd caf\xe9`, "pwd", "ls", `cd "sub dir"`, "ls", "cd /srv")
	tr.run(`add star\*q\?br\[`, `add "star*q?br["`, `add star[*]q*`, `add 'star*q?br['`, `add star*q?br[`, "list", "clear")
	tr.run(`find star\*`, `find star\**`, `find 'star*'*`, `find star*`, `find \[x\]`, `find [x]`, `find caf\xe9/sub\ dir/a\*b.txt`, `find 'a*'*`)
	tr.run(`add star\*q\?br\[ \xff\xfe.bin $'new\nline.txt' tab\x09here back\\slash esc\x1b[31mred`, `add esc\x1b\[31mred`)
	tr.run(`add \[x\] "new name.txt" caf\xe9/sub\ dir/a\*b.txt`, "list")
	tr.run(`delete $'new\x0aline.txt' [x]`, `delete \[x\]`, `delete caf\xe9/sub\ dir/a*`, "list")
	tr.run(`add ./new\ line.txt`, `cd nowhere\xff`, `add nothing\*`)
	tr.run("extract", "help")
	tr.check("odd-names", s.addr(), "localhost:PORT", sh.Lcd, "LCD")
	if !strings.Contains(tr.b.String(), "extract   [-o]") {
		t.Errorf("help does not list extract -o")
	}
	for _, name := range []string{"star*q?br[", "\xff\xfe.bin", "tab\there", `back\slash`, "esc\x1b[31mred", "new name.txt"} {
		sameEntry(t, filepath.Join(s.data, name), filepath.Join(sh.Lcd, name))
	}
	for _, name := range []string{"starXqYbrZ", "new\nline.txt", "[x]", "caf\xe9"} {
		if _, err := os.Lstat(filepath.Join(sh.Lcd, name)); err == nil {
			t.Errorf("%q was restored though it was not (or no longer) selected", name)
		}
	}
}

// TestShellReconnectsTranscript: the index server stops and starts again
// on its port; the shell says so in one line, keeps host, disk, date,
// directory and extraction list, and runs the command again once; while
// the server is down, it says the server cannot be reached and what to
// do.
func TestShellReconnectsTranscript(t *testing.T) {
	s := newOddSite(t)
	sh, out := s.shell(t)
	tr := &transcript{t: t, sh: sh, out: out}
	tr.run("sethost web1", "setdisk /srv", "setdate 2025-06-07", `cd caf\xe9`, "add menu.txt")
	s.stop()
	tr.note("the index server stopped")
	tr.run("ls")
	tr.run("ls", "pwd", "list", "lpwd")
	if err := sh.Exec("quit"); err != ErrQuit {
		t.Errorf("quit while the index server is away: %v", err)
	}
	s.start(t)
	tr.note("the index server started again on its port")
	tr.run("ls", "pwd", "list")
	s.stop()
	s.start(t)
	tr.note("the index server restarted while the shell was idle")
	tr.run(`add "sub dir"`)
	s.stop()
	s.start(t)
	tr.note("the index server restarted while the shell was idle")
	tr.tab("cd ")
	tr.run("extract")
	tr.check("reconnect", s.addr(), "localhost:PORT", "port "+s.port+" open", "port PORT open", sh.Lcd, "LCD")
	sameEntry(t, filepath.Join(s.data, "caf\xe9/menu.txt"), filepath.Join(sh.Lcd, "caf\xe9/menu.txt"))
	sameEntry(t, filepath.Join(s.data, "caf\xe9/sub dir/a*b.txt"), filepath.Join(sh.Lcd, "caf\xe9/sub dir/a*b.txt"))
}

// TestRunShellScriptHonoursBackslashes: -e reads names as the shell
// does: a backslash keeps a ';' or a quote in a word, \xHH is a byte,
// and an escaped glob character matches itself.
func TestRunShellScriptHonoursBackslashes(t *testing.T) {
	s := newOddSite(t)
	cfg, err := wire.ClientConfig(s.files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	lcd := t.TempDir()
	var out, errb bytes.Buffer
	err = RunShell(context.Background(), ShellOptions{Server: s.addr(), TLS: cfg, Lcd: lcd, Out: &out, Err: &errb,
		Script: `add star\*q\?br\[ "new\"name\;x"; add caf\xe9/sub\ dir/a\*b.txt; add $'tab\there'; add \xff\xfe.bin; extract -o`})
	if err == nil || !strings.Contains(errb.String(), `new"name;x is not in the backup`) {
		t.Errorf("a quoted ';' and '\"' in a script: %v\n%s%s", err, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	err = RunShell(context.Background(), ShellOptions{Server: s.addr(), TLS: cfg, Lcd: lcd, Out: &out, Err: &errb,
		Script: `add star\*q\?br\[; add caf\xe9/sub\ dir/a\*b.txt; add $'tab\the'*; add \xff\xfe.bin; extract -o`})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	for _, name := range []string{"star*q?br[", "caf\xe9/sub dir/a*b.txt", "tab\there", "\xff\xfe.bin"} {
		sameEntry(t, filepath.Join(s.data, name), filepath.Join(lcd, name))
	}
	if _, err := os.Lstat(filepath.Join(lcd, "starXqYbrZ")); err == nil {
		t.Errorf("the decoy was restored")
	}
}
