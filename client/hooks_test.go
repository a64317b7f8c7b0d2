package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
	"golang.org/x/sys/unix"
)

// logWatch is a slog handler the tests wait on: a test waits for the
// line an event logs, never for a while.
type logWatch struct {
	mu      sync.Mutex
	recs    []logRec
	changed chan struct{}
	attrs   []slog.Attr
	root    *logWatch
}

type logRec struct {
	msg   string
	attrs map[string]string
}

func newLogWatch() *logWatch {
	l := &logWatch{changed: make(chan struct{})}
	l.root = l
	return l
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{msg: r.Message, attrs: map[string]string{}}
	for _, a := range l.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	root := l.root
	root.mu.Lock()
	root.recs = append(root.recs, rec)
	close(root.changed)
	root.changed = make(chan struct{})
	root.mu.Unlock()
	return nil
}

func (l *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &logWatch{root: l.root, attrs: append(slices.Clip(l.attrs), as...)}
}

func (l *logWatch) WithGroup(string) slog.Handler { return l }

// wait returns the first record (from the n-th on) whose message is msg
// and whose attributes hold want, waiting for it to be logged.
func (l *logWatch) wait(t *testing.T, from int, msg string, want map[string]string) (logRec, int) {
	t.Helper()
	guard := time.NewTimer(5 * time.Minute) // a deadlock guard, not a time bound of the code
	defer guard.Stop()
	for {
		l.root.mu.Lock()
		ch := l.root.changed
		recs := l.root.recs
		l.root.mu.Unlock()
	next:
		for i := from; i < len(recs); i++ {
			if recs[i].msg != msg {
				continue
			}
			for k, v := range want {
				if recs[i].attrs[k] != v {
					continue next
				}
			}
			return recs[i], i
		}
		select {
		case <-ch:
		case <-guard.C:
			t.Fatalf("no log line %q %v; got %v", msg, want, recs)
		}
	}
}

func (l *logWatch) messages() []string {
	l.root.mu.Lock()
	defer l.root.mu.Unlock()
	var out []string
	for _, r := range l.root.recs {
		out = append(out, r.msg)
	}
	return out
}

// writeScript writes an executable shell script (mode 0755).
func writeScript(t *testing.T, p, body string) string {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	must(t, os.Chmod(p, 0o755)) // whatever the umask
	return p
}

// execDir is a directory for --allow-exec.
func execDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "exec")
	must(t, os.MkdirAll(d, 0o755))
	return d
}

// dumpResult is what a dump over the wire gave.
type dumpResult struct {
	done     *wire.Done
	err      error
	data     []byte
	warnings []string
	frames   []image.Frame
	index    int
}

func remoteDump(t *testing.T, r *Remote, req wire.Request) dumpResult {
	t.Helper()
	var res dumpResult
	var data bytes.Buffer
	res.done, res.err = r.Dump(context.Background(), req, DumpHandler{
		Data:  func(b []byte) error { data.Write(b); return nil },
		Index: func(wire.IndexRecord) error { res.index++; return nil },
		Frame: func(f image.Frame) error { res.frames = append(res.frames, f); return nil },
		Warn:  func(w string) { res.warnings = append(res.warnings, w) },
	})
	res.data = data.Bytes()
	return res
}

func hookNames(d *wire.Done) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, h := range d.Hooks {
		out = append(out, h.Name)
	}
	return out
}

// TestCheckArgv: only an executable below an --allow-exec entry runs;
// everything else is refused with a sentence that says what to do.
func TestCheckArgv(t *testing.T) {
	top := t.TempDir()
	allowed := filepath.Join(top, "exec")
	ok := writeScript(t, filepath.Join(allowed, "ok"), "exit 0")
	writeScript(t, filepath.Join(allowed, "sub", "deep"), "exit 0")
	outside := writeScript(t, filepath.Join(top, "outside", "evil"), "exit 0")
	must(t, os.Symlink(outside, filepath.Join(allowed, "escape")))
	must(t, os.Symlink("ok", filepath.Join(allowed, "inlink")))
	gw := writeScript(t, filepath.Join(allowed, "gw"), "exit 0")
	must(t, os.Chmod(gw, 0o775))
	ow := writeScript(t, filepath.Join(allowed, "ow"), "exit 0")
	must(t, os.Chmod(ow, 0o757))
	noexec := filepath.Join(allowed, "noexec")
	must(t, os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644))
	loose := writeScript(t, filepath.Join(allowed, "loose", "x"), "exit 0")
	must(t, os.Chmod(filepath.Dir(loose), 0o777))
	sticky := writeScript(t, filepath.Join(allowed, "sticky", "x"), "exit 0")
	must(t, os.Chmod(filepath.Dir(sticky), 0o777|os.ModeSticky))
	single := writeScript(t, filepath.Join(top, "single", "one"), "exit 0")
	writeScript(t, filepath.Join(top, "single", "other"), "exit 0")
	must(t, os.Symlink(allowed, filepath.Join(top, "allowlink")))
	allow := []string{allowed, single}
	for _, tc := range []struct {
		name  string
		argv  []string
		allow []string
		want  string // "" = allowed
	}{
		{"allowed", []string{ok, "arg"}, allow, ""},
		{"below a directory", []string{filepath.Join(allowed, "sub", "deep")}, allow, ""},
		{"a symlink that stays inside", []string{filepath.Join(allowed, "inlink")}, allow, ""},
		{"a file entry", []string{single}, allow, ""},
		{"an allow entry that is a symlink", []string{filepath.Join(top, "allowlink", "ok")}, []string{filepath.Join(top, "allowlink")}, ""},
		{"outside", []string{outside}, allow, "--allow-exec /etc/tapir/exec"},
		{"beside a file entry", []string{filepath.Join(top, "single", "other")}, allow, "outside the commands"},
		{"a symlink escaping", []string{filepath.Join(allowed, "escape")}, allow, "it leads to " + outside},
		{"relative", []string{"exec/ok"}, allow, "absolute, clean path"},
		{"bare name", []string{"sh"}, allow, "absolute, clean path"},
		{"unclean", []string{allowed + "/../exec/ok"}, allow, "absolute, clean path"},
		{"group-writable", []string{gw}, allow, "writable by group or others"},
		{"other-writable", []string{ow}, allow, "writable by group or others"},
		{"not executable", []string{noexec}, allow, "not executable"},
		{"in a world-writable directory", []string{loose}, allow, "its directory " + filepath.Dir(loose) + " is writable by group or others"},
		{"in a sticky directory", []string{sticky}, allow, ""},
		{"a directory", []string{filepath.Join(allowed, "sub")}, allow, "not a regular file"},
		{"missing", []string{filepath.Join(allowed, "nope")}, allow, "no such file"},
		{"no allow list", []string{ok}, nil, "runs no commands (no --allow-exec)"},
		{"empty", nil, allow, "empty command"},
		{"too many args", append([]string{ok}, make([]string, MaxArgs)...), allow, "at most 64"},
		{"long arg", []string{ok, strings.Repeat("x", MaxArgLen+1)}, allow, "at most 4096"},
		{"NUL", []string{ok, "a\x00b"}, allow, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkArgv("pre hook", tc.argv, tc.allow)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("allowed")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refusal %q does not say %q", err, tc.want)
			case err != nil && !strings.HasPrefix(err.Error(), "pre hook"):
				t.Fatalf("refusal %q does not name the hook", err)
			}
		})
	}
}

// TestRunExecEnvAndOutput: a command runs without a shell, with the
// minimal environment, stdin /dev/null; its output is kept bounded,
// its tail.
func TestRunExecEnvAndOutput(t *testing.T) {
	d := execDir(t)
	t.Setenv("TAPIR_SECRET_OF_THE_AGENT", "leak")
	p := writeScript(t, filepath.Join(d, "env"), `env | sort; read x && echo "stdin: $x"; echo "args: $#: $1"`)
	r, err := runExec(context.Background(), execSpec{name: "pre", what: "pre hook", path: p, argv: []string{p, "a b;c"}, env: []string{"TAPIR_DLE=/x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", "LANG=C\n", "TAPIR_DLE=/x\n", "args: 1: a b;c\n"} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Output)
		}
	}
	if strings.Contains(r.Output, "SECRET") || strings.Contains(r.Output, "stdin:") {
		t.Errorf("the agent's environment or a stdin reached the command:\n%s", r.Output)
	}
	if r.Name != "pre" || r.Exit != 0 || r.Command != p+" a b;c" {
		t.Errorf("run %+v", r)
	}

	big := writeScript(t, filepath.Join(d, "big"), `i=0; while [ $i -lt 2000 ]; do echo "line $i of the output"; i=$((i+1)); done; echo LAST-LINE >&2; exit 7`)
	r, err = runExec(context.Background(), execSpec{name: "post", what: "post hook", path: big, argv: []string{big}})
	if err == nil || !strings.Contains(err.Error(), "post hook "+big+" exited 7: LAST-LINE") {
		t.Fatalf("error %v does not name the hook, its exit and its last line", err)
	}
	if len(r.Output) > wire.MaxHookOutput || len(r.Output) < wire.MaxHookOutput-100 || !strings.HasSuffix(r.Output, "line 1999 of the output\nLAST-LINE\n") {
		t.Errorf("output of %d bytes (bound %d) ends %q", len(r.Output), wire.MaxHookOutput, r.Output[max(0, len(r.Output)-60):])
	}
	if r.Exit != 7 {
		t.Errorf("exit %d", r.Exit)
	}
}

// TestTailBuffer keeps the last bytes whatever the writes.
func TestTailBuffer(t *testing.T) {
	var all []byte
	tb := &tailBuffer{max: 100}
	for i := range 300 {
		b := []byte(strings.Repeat(strconv.Itoa(i), i%50))
		all = append(all, b...)
		tb.Write(b)
		want := all[max(0, len(all)-100):]
		if tb.String() != string(want) {
			t.Fatalf("after %d writes: %q, want %q", i, tb.String(), want)
		}
	}
}

// gone waits until pid has ended (exited or a zombie) and says whether
// it did: it waits on a pidfd, an event, never a duration, and gives up
// only at the test's own deadline. A pid that is already gone, or never
// was, counts as gone.
func gone(t *testing.T, pid int) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	wait := -1
	if d, ok := t.Deadline(); ok {
		wait = int(time.Until(d).Milliseconds()) - 5000
		if wait < 0 {
			wait = 0
		}
	}
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, wait)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1
	}
}

// TestHookTimeoutKillsTheGroup: a hook that blocks past its timeout is
// killed with its whole process group, a grandchild holding its output
// pipe included; one whose grandchild left the group and holds the pipe
// does not hold the agent either. No time bound is asserted.
func TestHookTimeoutKillsTheGroup(t *testing.T) {
	d := execDir(t)
	pidf := filepath.Join(t.TempDir(), "pid")
	p := writeScript(t, filepath.Join(d, "block"), fmt.Sprintf(`sleep 100000 &
echo $! > %s
echo waiting
wait`, pidf))
	r, err := runExec(context.Background(), execSpec{name: "pre", what: "pre hook", path: p, argv: []string{p}, timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "killed at its timeout of 1s") || !strings.Contains(err.Error(), ": waiting") {
		t.Fatalf("error %v", err)
	}
	if r.Exit != -1 || !strings.Contains(r.Error, "timeout") {
		t.Errorf("run %+v", r)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !gone(t, pid) {
		t.Errorf("the grandchild %d lives on", pid)
	}

	// A grandchild in a session of its own keeps the pipe: the agent
	// stops waiting for it after pipeGrace.
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	defer func(g time.Duration) { pipeGrace = g }(pipeGrace)
	pipeGrace = 100 * time.Millisecond
	p2 := writeScript(t, filepath.Join(d, "escape"), fmt.Sprintf(`setsid sleep 100000 &
echo $! > %s
sleep 100000`, pidf))
	_, err = runExec(context.Background(), execSpec{name: "pre", what: "pre hook", path: p2, argv: []string{p2}, timeout: time.Second})
	b, _ = os.ReadFile(pidf)
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v", err)
	}
}

// hookSite is an agent allowed to run the scripts of one directory, and
// a DLE.
type hookSite struct {
	r      *Remote
	a      *Agent
	log    *logWatch
	exec   string
	dle    string
	state  string
	record string // where the recording scripts write
}

func newHookSite(t *testing.T, cfg func(*Agent)) *hookSite {
	t.Helper()
	s := &hookSite{exec: execDir(t), dle: t.TempDir(), state: t.TempDir(), log: newLogWatch()}
	s.record = filepath.Join(t.TempDir(), "record")
	must(t, os.MkdirAll(s.record, 0o755))
	writeAt(t, filepath.Join(s.dle, "a.txt"), "alpha", time.Now())
	writeAt(t, filepath.Join(s.dle, "sub", "b.txt"), "beta", time.Now())
	s.r = agentPairWith(t, func(a *Agent) {
		a.AllowExec = []string{s.exec}
		a.StateDir = s.state
		a.Log = slog.New(s.log)
		if cfg != nil {
			cfg(a)
		}
		s.a = a
	})
	return s
}

// script writes a script into the allowed directory.
func (s *hookSite) script(t *testing.T, name, body string) string {
	return writeScript(t, filepath.Join(s.exec, name), body)
}

// envRecorder is a script that writes its environment to record/<name>.
func (s *hookSite) envRecorder(t *testing.T, name string, exit int) string {
	return s.script(t, name, fmt.Sprintf("env > %s/%s\necho %s ran\nexit %d", s.record, name, name, exit))
}

func (s *hookSite) recorded(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.record, name))
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func (s *hookSite) req(level int) wire.Request {
	return wire.Request{DLE: s.dle, Level: level, Datestamp: "20260102030405", Compress: "zst"}
}

// TestHooksRunAroundTheDump: pre runs before the walk, post after it
// with TAPIR_RESULT=ok; both are in Done.Hooks; the environment names
// the DLE, level, datestamp and hook.
func TestHooksRunAroundTheDump(t *testing.T) {
	s := newHookSite(t, nil)
	req := s.req(0)
	req.Pre = []string{s.envRecorder(t, "pre", 0)}
	req.Post = []string{s.envRecorder(t, "post", 0)}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := hookNames(res.done); !slices.Equal(got, []string{"pre", "post"}) {
		t.Fatalf("hooks %v", got)
	}
	if h := res.done.Hooks[0]; h.Exit != 0 || h.Output != "pre ran\n" || h.Command != req.Pre[0] {
		t.Errorf("pre run %+v", h)
	}
	if len(res.warnings) != 0 {
		t.Errorf("warnings %v", res.warnings)
	}
	pre, post := s.recorded(t, "pre"), s.recorded(t, "post")
	for k, v := range map[string]string{"TAPIR_DLE": s.dle, "TAPIR_LEVEL": "0", "TAPIR_DATESTAMP": "20260102030405", "TAPIR_HOOK": "pre"} {
		if pre[k] != v {
			t.Errorf("pre's %s=%q, want %q", k, pre[k], v)
		}
	}
	if _, ok := pre["TAPIR_RESULT"]; ok {
		t.Error("pre has a TAPIR_RESULT")
	}
	if post["TAPIR_RESULT"] != "ok" || post["TAPIR_HOOK"] != "post" {
		t.Errorf("post's environment %v", post)
	}
}

// TestPreFailsPostStillRuns: a failing pre hook fails the dump with a
// Done whose error names the hook, its exit and its last line, and the
// post hook still runs, told the dump failed. Nothing is dumped.
func TestPreFailsPostStillRuns(t *testing.T) {
	s := newHookSite(t, nil)
	req := s.req(0)
	req.Pre = []string{s.script(t, "pre", "echo checking\necho database is locked\nexit 3")}
	req.Post = []string{s.envRecorder(t, "post", 0)}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "pre hook "+req.Pre[0]+" exited 3: database is locked") {
		t.Fatalf("error %v", res.err)
	}
	if len(res.data) != 0 || res.index != 0 {
		t.Errorf("%d payload bytes, %d index records sent after a failed pre hook", len(res.data), res.index)
	}
	if res.done == nil || !slices.Equal(hookNames(res.done), []string{"pre", "post"}) {
		t.Fatalf("Done %+v", res.done)
	}
	if post := s.recorded(t, "post"); post["TAPIR_RESULT"] != "failed" {
		t.Errorf("post ran with %v, want TAPIR_RESULT=failed", post)
	}
}

// TestPostFailsIsStrange: a failing post hook makes the dump STRANGE (a
// warning naming it); the image is complete.
func TestPostFailsIsStrange(t *testing.T) {
	s := newHookSite(t, nil)
	req := s.req(0)
	req.Post = []string{s.script(t, "post", "echo could not thaw >&2\nexit 1")}
	res := remoteDump(t, s.r, req)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.warnings) != 1 || !strings.Contains(res.warnings[0], "post hook "+req.Post[0]+" exited 1: could not thaw") {
		t.Errorf("warnings %v", res.warnings)
	}
	if res.done.Files == 0 || len(res.data) == 0 || !slices.Equal(hookNames(res.done), []string{"post"}) {
		t.Errorf("Done %+v", res.done)
	}
}

// TestPreTimeoutFailsTheDump over the wire, with hook_timeout 1: the
// dump fails naming the timeout, and post runs.
func TestPreTimeoutFailsTheDump(t *testing.T) {
	s := newHookSite(t, nil)
	req := s.req(0)
	req.HookTimeout = 1
	req.Pre = []string{s.script(t, "pre", "sleep 100000 & wait")}
	req.Post = []string{s.envRecorder(t, "post", 0)}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "killed at its timeout of 1s") {
		t.Fatalf("error %v", res.err)
	}
	if post := s.recorded(t, "post"); post["TAPIR_RESULT"] != "failed" {
		t.Errorf("post ran with %v", post)
	}
}

// TestHookRefusals: commands outside --allow-exec, or any command of an
// agent without it, are refused before anything runs; a selfcheck says
// so as a problem; an estimate runs no hook.
func TestHookRefusals(t *testing.T) {
	s := newHookSite(t, nil)
	outside := writeScript(t, filepath.Join(t.TempDir(), "x"), fmt.Sprintf("touch %s/ran", s.record))
	inside := s.script(t, "touch", fmt.Sprintf("touch %s/ran", s.record))
	for _, tc := range []struct {
		name string
		mod  func(*wire.Request)
		want string
	}{
		{"pre outside", func(r *wire.Request) { r.Pre = []string{outside} }, "pre hook " + outside + " is outside"},
		{"post relative", func(r *wire.Request) { r.Post = []string{"touch"} }, "post hook \"touch\": the command must be an absolute"},
		{"command outside", func(r *wire.Request) { r.Command = []string{outside} }, "command " + outside + " is outside"},
		{"snapshot command outside", func(r *wire.Request) {
			r.Snapshot = &wire.Snapshot{Kind: wire.SnapshotCommand, Create: []string{outside}, Remove: []string{inside}}
		}, "snapshot create command " + outside + " is outside"},
		{"negative timeout", func(r *wire.Request) { r.Pre = []string{inside}; r.HookTimeout = -1 }, "hook timeout -1"},
		{"unknown snapshot", func(r *wire.Request) { r.Snapshot = &wire.Snapshot{Kind: "tape"} }, `snapshot kind "tape" unknown`},
		{"lvm without size", func(r *wire.Request) { r.Snapshot = &wire.Snapshot{Kind: wire.SnapshotLVM} }, "needs a size"},
		{"lvm bad size", func(r *wire.Request) { r.Snapshot = &wire.Snapshot{Kind: wire.SnapshotLVM, Size: "1G; rm"} }, "needs a size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := s.req(0)
			tc.mod(&req)
			res := remoteDump(t, s.r, req)
			if res.err == nil || !strings.Contains(res.err.Error(), "refused dump") || !strings.Contains(res.err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", res.err, tc.want)
			}
			req.Op = wire.OpSelfcheck
			if tc.name != "negative timeout" {
				rep := s.a.selfcheck(req)
				if !slices.ContainsFunc(rep.Problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
					t.Errorf("selfcheck problems %q lack %q", rep.Problems, tc.want)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(s.record, "ran")); err == nil {
		t.Fatal("a refused command ran")
	}
	// An estimate runs no hook.
	req := s.req(0)
	req.Levels = []int{0}
	req.Pre, req.Post = []string{inside}, []string{inside}
	if _, err := s.r.Estimate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.record, "ran")); err == nil {
		t.Fatal("an estimate ran a hook")
	}
	// No --allow-exec: nothing runs.
	s.a.AllowExec = nil
	req = s.req(0)
	req.Pre = []string{inside}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "start the agent with --allow-exec /etc/tapir/exec and put the script there") {
		t.Fatalf("got %v", res.err)
	}
	req.Op = wire.OpSelfcheck
	if rep := s.a.selfcheck(req); len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "no --allow-exec") {
		t.Errorf("selfcheck problems %q", rep.Problems)
	}
}

// TestFeaturesNameTheNewAbilities: the server asks only an agent with
// them.
func TestFeaturesNameTheNewAbilities(t *testing.T) {
	for _, f := range []string{"hooks", "command", "snapshot-btrfs", "snapshot-lvm", "snapshot-zfs", "snapshot-command"} {
		if !slices.Contains(Features, f) {
			t.Errorf("features %v lack %q", Features, f)
		}
	}
}
