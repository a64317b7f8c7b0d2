package recover

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/wire"
)

// world is a site with two runs of web1:/srv (a full, then a level 1 after
// a rename, a deletion, a change and an addition), an index server, and
// certificates for web1 and web2 (client role) and admin.
type world struct {
	site  *testsite.Site
	addr  string
	data  string // the tree as it is now (after the level 1)
	files map[string]wire.Files
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

// sharedWorld builds the world once per test binary (tests that change it
// build their own with newWorld).
func sharedWorld(t *testing.T) *world {
	worldOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tapir-recover-test")
		if err != nil {
			worldErr = err
			return
		}
		theWorld, worldErr = buildWorld(dir, false)
	})
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return theWorld
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range binDirs {
		os.RemoveAll(d)
	}
	if theWorld != nil {
		theWorld.site.Close()
		os.RemoveAll(theWorld.site.Dir)
	}
	os.Exit(code)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w, err := buildWorld(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.site.Close() })
	return w
}

func buildWorld(dir string, listings bool) (*world, error) {
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		return nil, err
	}
	ctx := context.Background()
	dle := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{dle}, testsite.RunOptions{Listings: listings}); err != nil {
		return nil, err
	}
	if err := testsite.Mutate(data); err != nil {
		return nil, err
	}
	dle.Level = 1
	if _, err := site.Run(ctx, "20250608010000", []testsite.DLE{dle}, testsite.RunOptions{Listings: listings}); err != nil {
		return nil, err
	}
	addr, _, err := site.StartServer(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	w := &world{site: site, addr: addr, data: data, files: map[string]wire.Files{}}
	for _, c := range []struct{ host, role string }{{"web1", wire.RoleClient}, {"web2", wire.RoleClient}, {"admin", wire.RoleAdmin}} {
		f, err := site.Issue(c.host, c.role)
		if err != nil {
			return nil, err
		}
		w.files[c.host] = f
	}
	return w, nil
}

func (w *world) dial(t *testing.T, who string) *Client {
	t.Helper()
	cfg, err := wire.ClientConfig(w.files[who], "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(context.Background(), w.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// shell returns a shell of who with its output in a buffer.
func (w *world) shell(t *testing.T, who string) (*Shell, *bytes.Buffer) {
	var out bytes.Buffer
	return &Shell{Client: w.dial(t, who), Out: &out, Lcd: t.TempDir()}, &out
}

// run executes commands, failing the test at the first error.
func run(t *testing.T, sh *Shell, out *bytes.Buffer, cmds ...string) string {
	t.Helper()
	out.Reset()
	for _, c := range cmds {
		if err := sh.Exec(c); err != nil {
			t.Fatalf("%s: %v\noutput so far:\n%s", c, err, out.String())
		}
	}
	return out.String()
}

// fails executes one command that must fail with an error containing want.
func fails(t *testing.T, sh *Shell, cmd, want string) {
	t.Helper()
	err := sh.Exec(cmd)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %v, want one containing %q", cmd, err, want)
	}
}

func TestShellBrowsesTheViewAtEachDate(t *testing.T) {
	w := sharedWorld(t)
	sh, out := w.shell(t, "web1")
	got := run(t, sh, out, "listhost", "sethost web1", "listdisk", "setdisk /srv", "ls")
	for _, want := range []string{"web1\n", "/srv\n", "using the images 2025-06-07 01:00:00 level 0, 2025-06-08 01:00:00 level 1",
		"2025-06-08 01:00:00  home/\n", "2025-06-07 01:00:00  empty.txt\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	got = run(t, sh, out, "cd home/bob", "pwd", "ls")
	if !strings.Contains(got, "/srv/home/bob\n") || !strings.Contains(got, "new name.txt") || strings.Contains(got, "old name.txt") || strings.Contains(got, "doomed") {
		t.Errorf("level 1 view of home/bob: want the renamed file only, no deleted one:\n%s", got)
	}
	got = run(t, sh, out, "setdate 2025-06-07", "ls")
	if !strings.Contains(got, "old name.txt") || !strings.Contains(got, "doomed.txt") || strings.Contains(got, "new name.txt") {
		t.Errorf("view of 7 June: want the old names:\n%s", got)
	}
	fails(t, sh, "setdate 2025-06-06", "no full image of web1:/srv at or before 2025-06-06; the oldest full is of 2025-06-07 01:00:00; the date stays 2025-06-07")
	if sh.Date != "20250607" {
		t.Errorf("a failed setdate changed the date to %q", sh.Date)
	}
	got = run(t, sh, out, "setdate 2025-06-08-12:00:00", "cd /srv/home", "ls", "history")
	for _, want := range []string{"carol/", "2025-06-08 01:00:00      1  good     TEST-002", "2025-06-07 01:00:00      0  good     TEST-001"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	got = run(t, sh, out, "find *.txt")
	for _, want := range []string{"/srv/home/carol/hello.txt", "/srv/home/bob/new name.txt", "/srv/empty.txt"} {
		if !strings.Contains(got, want) {
			t.Errorf("find lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "doomed") {
		t.Errorf("find shows a deleted file:\n%s", got)
	}
	fails(t, sh, "find nothing-like-this", `no name matches "nothing-like-this"`)
	got = run(t, sh, out, "find bob/*", "find /srv/etc/pass*")
	if !strings.Contains(got, "/srv/home/bob/new name.txt") || !strings.Contains(got, "/srv/etc/passwd.link") || strings.Contains(got, "carol") {
		t.Errorf("find with paths from /srv/home:\n%s", got)
	}
	fails(t, sh, "cd ../..", "leads above the top of the DLE")
	fails(t, sh, "cd /etc", "/etc is not inside the DLE /srv")
	fails(t, sh, "cd carol/hello.txt", "is not a directory")
	fails(t, sh, "cd nowhere", "not in the backup")
	fails(t, sh, "frobnicate", "no such command")
	fails(t, sh, "add nowhere*", "no match")
	fails(t, sh, "extract", "extraction list is empty")
}

func TestShellCompletion(t *testing.T) {
	w := sharedWorld(t)
	sh, out := w.shell(t, "web1")
	run(t, sh, out, "sethost web1", "setdisk /srv")
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"se", []string{"sethost ", "setdate ", "setdisk "}},
		{"cd ho", []string{"home/"}},
		{"cd home/b", []string{"home/bob/"}},
		{"add home/bob/n", []string{`home/bob/new\ name.txt `}},
		{`add home/bob/new\ n`, []string{`home/bob/new\ name.txt `}},
		{"lcd ho", nil}, // local paths are not completed from the backup
		{"sethost w", []string{"web1 "}},
		{"setdisk ", []string{"/srv "}},
		{"setdisk /x", nil},
	} {
		_, got, _ := sh.Complete(tc.line, len(tc.line))
		if strings.Join(got, "|") != strings.Join(tc.want, "|") && !(tc.line == "se" && len(got) == 3) {
			t.Errorf("complete %q = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestShellExtractRestoresFiles(t *testing.T) {
	w := sharedWorld(t)
	sh, out := w.shell(t, "web1")
	got := run(t, sh, out, "sethost web1", "setdisk /srv", "add etc bin home/alice/big.bin", "cd home", "add bob/new*", "list", "extract")
	for _, want := range []string{"Added directory /srv/etc", "Added file /srv/home/alice/big.bin", "Added file /srv/home/bob/new name.txt",
		"level 0 image of 2025-06-07 01:00:00: volume TEST-001 (slot 1)", "level 1 image of 2025-06-08 01:00:00: volume TEST-002 (slot 2)",
		"TEST-002 (slot 2)\nThe following tapes are needed: TEST-001 TEST-002\n",
		"Reading the level 0 image 2025-06-07 01:00:00 from volume TEST-001 file 1", "Restored 11 entries"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, rel := range []string{"etc/passwd", "etc/shadow", "etc/ssl/cert.pem", "etc/passwd.link", "bin/run.sh", "bin/run-again.sh", "home/alice/big.bin", "home/bob/new name.txt"} {
		sameEntry(t, filepath.Join(w.data, rel), filepath.Join(sh.Lcd, rel))
	}
	a, _ := os.Stat(filepath.Join(sh.Lcd, "bin/run.sh"))
	b, _ := os.Stat(filepath.Join(sh.Lcd, "bin/run-again.sh"))
	if !os.SameFile(a, b) {
		t.Errorf("bin/run.sh and bin/run-again.sh are not hard-linked after the restore")
	}
	if _, err := os.Stat(filepath.Join(sh.Lcd, "home/alice/notes.txt")); err == nil {
		t.Errorf("a file that was not selected was restored")
	}
	// Again into the same place: nothing is overwritten without a yes, and
	// a restore that restored nothing does not say success.
	run(t, sh, out, "cd", "add etc/passwd")
	err := sh.Exec("extract")
	if err == nil || !strings.Contains(err.Error(), "extract restored nothing") || !strings.Contains(out.String(), "Skipped 1 existing entry") {
		t.Errorf("extract over an existing file: %v\n%s", err, out.String())
	}
	sh.Ask = func(q string, def bool) bool { return true }
	os.WriteFile(filepath.Join(sh.Lcd, "etc/passwd"), []byte("changed"), 0o644)
	run(t, sh, out, "extract")
	sameEntry(t, filepath.Join(w.data, "etc/passwd"), filepath.Join(sh.Lcd, "etc/passwd"))
}

// TestShellExtractAtAnEarlierDate restores what a file was before a change,
// and a file deleted since.
func TestShellExtractAtAnEarlierDate(t *testing.T) {
	w := sharedWorld(t)
	sh, out := w.shell(t, "web1")
	run(t, sh, out, "sethost web1", "setdisk /srv", "setdate 2025-06-07", "add home/alice/notes.txt home/bob/doomed.txt", "extract")
	if os.Geteuid() == 0 {
		st, _ := os.Stat(filepath.Join(sh.Lcd, "home/alice/notes.txt"))
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 1234 || s.Gid != 5678 {
			t.Errorf("notes.txt restored with owner %d:%d, want 1234:5678", s.Uid, s.Gid)
		}
	}
	b, err := os.ReadFile(filepath.Join(sh.Lcd, "home/alice/notes.txt"))
	if err != nil || string(b) != "buy milk\n" {
		t.Errorf("notes.txt as of 7 June = %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(sh.Lcd, "home/bob/doomed.txt")); err != nil || string(b) != "to be deleted\n" {
		t.Errorf("doomed.txt as of 7 June = %q %v", b, err)
	}
	// A hard link alone: its target's data under its own name.
	run(t, sh, out, "add bin/run-again.sh", "extract")
	sameEntry(t, filepath.Join(w.data, "bin/run-again.sh"), filepath.Join(sh.Lcd, "bin/run-again.sh"))
	if _, err := os.Lstat(filepath.Join(sh.Lcd, "bin/run.sh")); err == nil {
		t.Errorf("the hard link's target was restored too")
	}
}

func TestShellAccessControl(t *testing.T) {
	w := sharedWorld(t)
	other, _ := w.shell(t, "web2")
	fails(t, other, "listhost", "no image of host web2 is in the catalog")
	fails(t, other, "sethost web1", "host web1 is not yours: the certificate of web2 (role tapir-client) may browse and restore only web2")
	// Even a hand-made request is refused by the server.
	if _, err := other.Client.List(Query{Host: "web1", DLE: "/srv"}, ""); err == nil || !strings.Contains(err.Error(), "not yours") {
		t.Errorf("ls of another host's DLE: %v", err)
	}
	if _, err := other.Client.Restore(context.Background(), Query{Host: "web1", DLE: "/srv"}, []string{"etc/shadow"}, RestoreOptions{To: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not yours") {
		t.Errorf("restore from another host: %v", err)
	}
	admin, out := w.shell(t, "admin")
	got := run(t, admin, out, "listhost", "sethost web1", "setdisk /srv", "ls etc")
	if !strings.Contains(got, "web1\n") || !strings.Contains(got, "passwd") {
		t.Errorf("admin session:\n%s", got)
	}
	if !admin.Client.Admin || admin.Client.Peer != "admin" {
		t.Errorf("hello: admin %v peer %q", admin.Client.Admin, admin.Client.Peer)
	}
	// A certificate of another CA is refused during the handshake.
	otherCA, err := wire.InitCA(filepath.Join(t.TempDir(), "ca"), "evil", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crt, key, _ := otherCA.Issue("web1", []string{wire.RoleClient}, otherCA.Dir, time.Now())
	cfg, err := wire.ClientConfig(wire.Files{CA: w.files["web1"].CA, Cert: crt, Key: key}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(context.Background(), w.addr, cfg); err == nil || !strings.Contains(err.Error(), "refused our certificate") {
		t.Errorf("a foreign certificate: %v", err)
	}
}

func TestShellErrorsAreExplicit(t *testing.T) {
	w := newWorld(t)
	cfg, _ := wire.ClientConfig(w.files["web1"], "localhost")
	if _, err := Dial(context.Background(), "localhost:1", cfg); err == nil || !strings.Contains(err.Error(), "index server localhost:1 is unreachable") {
		t.Errorf("unreachable server: %v", err)
	}
	sh, out := w.shell(t, "web1")
	fails(t, sh, "ls", "no host chosen")
	run(t, sh, out, "sethost web1")
	fails(t, sh, "setdisk /nothing", "/nothing is not a DLE of web1")
	run(t, sh, out, "setdisk /srv")

	// Names that would escape the target: a symlink planted where a
	// directory is restored.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(sh.Lcd, "etc"))
	run(t, sh, out, "add etc/passwd")
	err := sh.Exec("extract")
	if err == nil || !strings.Contains(out.String(), "FAILED etc/passwd: refusing to restore") || !strings.Contains(out.String(), "is a symlink") {
		t.Errorf("restore through a symlink: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(outside, "passwd")); err == nil {
		t.Errorf("a file was written through the symlink")
	}
	run(t, sh, out, "clear")

	// A damaged frame: flip bytes in the middle of the full's payload.
	vf, _ := filepath.Glob(filepath.Join(w.site.Vtapes, "slot1", "00001.*"))
	if len(vf) != 1 {
		t.Fatalf("vtape files %v", vf)
	}
	b, _ := os.ReadFile(vf[0])
	orig := append([]byte(nil), b...)
	for i := 32<<10 + 200; i < 32<<10+260; i++ {
		b[i] ^= 0x5a
	}
	os.WriteFile(vf[0], b, 0o640)
	run(t, sh, out, "lcd "+t.TempDir(), "add etc")
	err = sh.Exec("extract")
	if err == nil || !strings.Contains(out.String(), "is damaged") || !strings.Contains(out.String(), "checksum mismatch or corrupt data") {
		t.Errorf("damaged frame: %v\n%s", err, out.String())
	}
	os.WriteFile(vf[0], orig, 0o640)

	// A volume that is not in the changer.
	slot := filepath.Join(w.site.Vtapes, "slot1")
	if err := os.Rename(slot, slot+".away"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(slot, 0o750)
	run(t, sh, out, "lcd "+t.TempDir())
	if err := sh.Exec("extract"); err == nil || !strings.Contains(err.Error(), "extract cancelled; nothing was restored") {
		t.Errorf("extract with a missing volume, answer no: %v", err)
	}
	sh.Ask = func(q string, def bool) bool { return q == "Continue?" }
	err = sh.Exec("extract")
	if err == nil || !strings.Contains(out.String(), "volume TEST-001: NOT AVAILABLE: volume TEST-001 is in no slot of the changer: it was last seen in slot 1; put it back there") ||
		!strings.Contains(out.String(), "FAILED etc/passwd: volume TEST-001 is in no slot") {
		t.Errorf("missing volume: %v\n%s", err, out.String())
	}
	os.Remove(slot)
	os.Rename(slot+".away", slot)
	run(t, sh, out, "lcd "+t.TempDir(), "extract")
}

func TestRunShellScript(t *testing.T) {
	w := sharedWorld(t)
	cfg, _ := wire.ClientConfig(w.files["web1"], "localhost")
	lcd := t.TempDir()
	var out, errb bytes.Buffer
	err := RunShell(context.Background(), ShellOptions{Server: w.addr, TLS: cfg, Lcd: lcd, Out: &out, Err: &errb,
		Script: "pwd; add etc/passwd; extract"})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	// The host defaults to the certificate's, the disk to its only DLE.
	if !strings.Contains(out.String(), "Disk set to /srv") || !strings.Contains(out.String(), "Restored 1 entry") {
		t.Errorf("script output:\n%s", out.String())
	}
	sameEntry(t, filepath.Join(w.data, "etc/passwd"), filepath.Join(lcd, "etc/passwd"))
	out.Reset()
	err = RunShell(context.Background(), ShellOptions{Server: w.addr, TLS: cfg, Lcd: lcd, Out: &out, Err: &errb,
		Script: "cd nowhere; add etc"})
	if !errors.Is(err, ErrSessionFailed) || !strings.Contains(errb.String(), "nowhere is not in the backup") {
		t.Errorf("failing script: %v\n%s", err, errb.String())
	}
	// Plain lines on standard input.
	out.Reset()
	err = RunShell(context.Background(), ShellOptions{Server: w.addr, TLS: cfg, Lcd: lcd, Out: &out, Err: &errb,
		In: strings.NewReader("cd etc\nls\nquit\nls /nothing\n")})
	if err != nil || !strings.Contains(out.String(), "shadow") {
		t.Errorf("plain lines: %v\n%s", err, out.String())
	}
}

func TestParseDate(t *testing.T) {
	now := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"2025-06-07": "20250607", "2025-06-07-12:30:05": "20250607123005", "2025-06-07-12-30-05": "20250607123005",
		"2025-06-07-12:30": "202506071230", "--06-07": "20260607", "---09": "20260309", "now": "", "": "",
	} {
		if got, err := ParseDate(in, now); err != nil || got != want {
			t.Errorf("ParseDate(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"2025-13-01", "yesterday", "2025-06-07T12:00", "2025-06-07-25:00:00", "20250607"} {
		if _, err := ParseDate(in, now); err == nil {
			t.Errorf("ParseDate(%q) accepted", in)
		}
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`add "old name.txt" b`: {"add", "old name.txt", "b"},
		`add old\ name.txt`:    {"add", "old name.txt"},
		`  ls   `:              {"ls"},
		`add 'it''s'`:          {"add", "its"},
	} {
		got, err := splitWords(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitWords(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := splitWords(`add "x`); err == nil {
		t.Errorf("an unterminated quote was accepted")
	}
	if got := splitScript(`add "a;b"; ls ;; quit`); strings.Join(got, "|") != `add "a;b"|ls|quit` {
		t.Errorf("splitScript = %q", got)
	}
}

// sameEntry compares a restored entry with the original: type, content,
// mode and mtime (symlinks: target).
func sameEntry(t *testing.T, want, got string) {
	t.Helper()
	ws, err1 := os.Lstat(want)
	gs, err2 := os.Lstat(got)
	if err1 != nil || err2 != nil {
		t.Errorf("stat %s / %s: %v %v", want, got, err1, err2)
		return
	}
	if ws.Mode() != gs.Mode() {
		t.Errorf("%s: mode %v, want %v", got, gs.Mode(), ws.Mode())
	}
	if ws.Mode()&os.ModeSymlink != 0 {
		a, _ := os.Readlink(want)
		b, _ := os.Readlink(got)
		if a != b {
			t.Errorf("%s: symlink to %q, want %q", got, b, a)
		}
		return
	}
	if !ws.ModTime().Equal(gs.ModTime()) {
		t.Errorf("%s: mtime %v, want %v", got, gs.ModTime(), ws.ModTime())
	}
	if ws.Mode().IsRegular() {
		a, _ := os.ReadFile(want)
		b, _ := os.ReadFile(got)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: content differs (%d vs %d bytes)", got, len(b), len(a))
		}
	}
	if v, err := xattr(want); err == nil {
		if g, err := xattr(got); err != nil || g != v {
			t.Errorf("%s: xattr user.tapir.test = %q %v, want %q", got, g, err, v)
		}
	}
	if os.Geteuid() == 0 {
		wu, gu := ws.Sys().(*syscall.Stat_t), gs.Sys().(*syscall.Stat_t)
		if wu.Uid != gu.Uid || wu.Gid != gu.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", got, gu.Uid, gu.Gid, wu.Uid, wu.Gid)
		}
	}
}

func xattr(p string) (string, error) {
	b := make([]byte, 256)
	n, err := unix.Lgetxattr(p, "user.tapir.test", b)
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// TestShellExplainsCommandDLEs: a command DLE's images hold a command's
// output, nothing to browse: setdisk says so and how to restore one, ls
// and add refuse with the same sentence, history marks the images.
func TestShellExplainsCommandDLEs(t *testing.T) {
	w := newWorld(t)
	if _, err := w.site.Run(context.Background(), "20250609010000", []testsite.DLE{{Host: "web1", Path: "/db/main", Command: []byte("-- a database dump\n")}}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	sh, out := w.shell(t, "web1")
	got := run(t, sh, out, "sethost web1", "setdisk /db/main")
	if !strings.Contains(got, "/db/main is a command DLE") || !strings.Contains(got, "tapir recover -c FILE --host web1 --path /db/main --all --to FILE") {
		t.Errorf("setdisk:\n%s", got)
	}
	fails(t, sh, "ls", "is a command DLE")
	fails(t, sh, "add x", "is a command DLE")
	if got := run(t, sh, out, "history"); !strings.Contains(got, "command output") {
		t.Errorf("history:\n%s", got)
	}
	// The tar DLE beside it browses as before.
	if got := run(t, sh, out, "setdisk /srv", "ls"); !strings.Contains(got, "etc/") {
		t.Errorf("ls of /srv:\n%s", got)
	}
}
