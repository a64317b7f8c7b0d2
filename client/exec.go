package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tapir-backup/tapir/wire"
)

// The commands the server asks the agent to run (a DLE's pre and post
// hooks, a command DLE's command, a command snapshot's create and
// remove) are a second boundary next to --allow: the server is not
// trusted to run anything it likes on a client. Only an executable that
// the administrator put below an --allow-exec entry runs, without a
// shell, with a minimal environment, in its own process group (a timeout
// or a cancelled dump kills the group), its output bounded.

// Bounds of an argv the server sends.
const (
	MaxArgs   = 64
	MaxArgLen = 4096
)

// DefaultHookTimeout bounds a hook (and a snapshot tool) when the request
// does not say (wire.Request.HookTimeout 0).
const DefaultHookTimeout = 300 * time.Second

// MaxHookTimeout bounds wire.Request.HookTimeout.
const MaxHookTimeout = 24 * time.Hour

// execPATH is the PATH of every command the agent runs.
const execPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// pipeGrace bounds the wait for a command's output pipes once it exited
// or was killed: a grandchild that left the process group and holds them
// open does not hold the dump.
var pipeGrace = 5 * time.Second

// allowExecHint is what a refusal tells the administrator to do.
const allowExecHint = "start the agent with --allow-exec /etc/tapir/exec and put the script there"

// checkArgv validates an argv the server sent (what names it, e.g. "pre
// hook") against the allow list, and returns the executable to run:
// argv[0] as given, whose real path (symlinks resolved) is what was
// checked. It is run by the name given, so that a program that looks at
// its own name (pg_dump is Debian's pg_wrapper) sees it.
func checkArgv(what string, argv []string, allow []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("%s: empty command", what)
	}
	if len(argv) > MaxArgs {
		return "", fmt.Errorf("%s: %d arguments, at most %d", what, len(argv), MaxArgs)
	}
	for i, a := range argv {
		if len(a) > MaxArgLen {
			return "", fmt.Errorf("%s: argument %d is %d bytes long, at most %d", what, i, len(a), MaxArgLen)
		}
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("%s: argument %d holds a NUL byte", what, i)
		}
	}
	name := oneLine(argv[0], 256)
	if !filepath.IsAbs(argv[0]) || filepath.Clean(argv[0]) != argv[0] {
		return "", fmt.Errorf("%s %q: the command must be an absolute, clean path (no shell, no PATH lookup)", what, name)
	}
	if len(allow) == 0 {
		return "", fmt.Errorf("%s %s: this agent runs no commands (no --allow-exec): %s", what, name, allowExecHint)
	}
	real, err := filepath.EvalSymlinks(argv[0])
	if err != nil {
		return "", fmt.Errorf("%s %s: %v on the client", what, name, unwrapPath(err))
	}
	inside := false
	var entry string
	for _, al := range allow {
		ra, err := filepath.EvalSymlinks(al)
		if err != nil {
			continue
		}
		if real == ra || strings.HasPrefix(real, strings.TrimSuffix(ra, "/")+"/") {
			inside, entry = true, ra
			break
		}
	}
	if !inside {
		where := ""
		if real != argv[0] {
			where = " (it leads to " + oneLine(real, 256) + ")"
		}
		return "", fmt.Errorf("%s %s%s is outside the commands this agent may run (--allow-exec %s): %s", what, name, where, strings.Join(allow, ", "), allowExecHint)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s %s: %v on the client", what, name, unwrapPath(err))
	}
	switch {
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s %s is not a regular file on the client", what, name)
	case fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("%s %s is not executable on the client (chmod 755 it)", what, name)
	case fi.Mode().Perm()&0o022 != 0:
		return "", fmt.Errorf("%s %s is writable by group or others (mode %04o): anyone in them could change what runs; chmod go-w it", what, name, fi.Mode().Perm())
	}
	// The directories between the entry and the file: one that group or
	// others may write to (without the sticky bit) lets them swap it.
	top := filepath.Dir(entry)
	if entry != real {
		top = entry
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		if di, err := os.Stat(d); err == nil && di.Mode().Perm()&0o022 != 0 && di.Mode()&os.ModeSticky == 0 {
			return "", fmt.Errorf("%s %s: its directory %s is writable by group or others (mode %04o): anyone in them could swap what runs; chmod go-w it", what, name, d, di.Mode().Perm())
		}
		if d == top || d == "/" || d == "." {
			break
		}
	}
	return argv[0], nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.b = append(t.b[:0], p[len(p)-t.max:]...)
		t.cut = true
		return n, nil
	}
	if over := len(t.b) + len(p) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
		t.cut = true
	}
	t.b = append(t.b, p...)
	return n, nil
}

// String is the tail, starting on a UTF-8 boundary when it was cut.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if t.cut {
		for i := 0; i < len(b) && i < utf8.UTFMax && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return string(b)
}

// lastLine is the last non-empty line of s, one bounded line.
func lastLine(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return oneLine(strings.TrimSpace(s), 512)
}

// execSpec is one command to run.
type execSpec struct {
	name string   // the HookRun's name
	what string   // names it in errors: "pre hook", "command"
	path string   // the executable (checkArgv's result, or a tool found on PATH)
	argv []string // argv[0] as the server (or the agent) named it
	env  []string // added to the minimal environment
	// timeout bounds the run; 0: only ctx does.
	timeout time.Duration
	// stdout, when set, gets the standard output (a command DLE's
	// payload); the HookRun's output is then the standard error only.
	stdout io.Writer
}

// runExec runs s and returns its HookRun and, when it did not exit 0, an
// error that names it, its exit and the last line of its output.
func runExec(ctx context.Context, s execSpec) (wire.HookRun, error) {
	run := wire.HookRun{Name: s.name, Command: oneLine(strings.Join(s.argv, " "), MaxTextLen)}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	out := &tailBuffer{max: wire.MaxHookOutput}
	cmd := exec.CommandContext(ctx, s.path)
	cmd.Args = s.argv
	cmd.Env = append([]string{execPATH, "LANG=C"}, s.env...)
	cmd.Dir = "/"
	cmd.Stdin = nil // /dev/null
	cmd.Stderr = out
	cmd.Stdout = out
	if s.stdout != nil {
		cmd.Stdout = s.stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a script's children too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = pipeGrace
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		run.Exit = -1
		run.Error = oneLine(fmt.Sprintf("cannot start: %v", unwrapPath(err)), 512)
		return run, fmt.Errorf("%s %s cannot start: %v", s.what, oneLine(s.argv[0], 256), unwrapPath(err))
	}
	err = cmd.Wait()
	run.Seconds = time.Since(start).Seconds()
	run.Output = out.String()
	run.Exit = cmd.ProcessState.ExitCode()
	last := lastLine(run.Output)
	tail := ""
	if last != "" {
		tail = ": " + last
	}
	name := oneLine(s.argv[0], 256)
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) && s.timeout > 0 && run.Exit != 0:
		run.Exit = -1
		run.Error = fmt.Sprintf("killed at its timeout of %s", s.timeout)
		return run, fmt.Errorf("%s %s %s (raise hook_timeout if it needs longer)%s", s.what, name, run.Error, tail)
	case ctx.Err() != nil && run.Exit != 0:
		run.Exit = -1
		run.Error = "killed: the dump was cancelled"
		return run, fmt.Errorf("%s %s %s%s", s.what, name, run.Error, tail)
	case errors.Is(err, exec.ErrWaitDelay):
		// It exited 0 but something it started still holds its output.
		run.Error = fmt.Sprintf("exited 0, but a process it started kept its output open; stopped reading after %s", pipeGrace)
		if s.stdout != nil {
			return run, fmt.Errorf("%s %s exited, but a process it started kept its standard output open: the output may be incomplete", s.what, name)
		}
		return run, nil
	case err != nil && run.Exit > 0:
		return run, fmt.Errorf("%s %s exited %d%s", s.what, name, run.Exit, tail)
	case err != nil:
		run.Exit = -1
		run.Error = oneLine(err.Error(), 512)
		return run, fmt.Errorf("%s %s failed (%v)%s", s.what, name, err, tail)
	}
	return run, nil
}

// toolPath finds one of the agent's own tools (btrfs, zfs, lvm's) on its
// PATH, or says how to get it.
func toolPath(tool, kind string) (string, error) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("snapshot = %q needs %s on the agent's PATH (%v): install it", kind, tool, unwrapPath(err))
	}
	if !filepath.IsAbs(p) {
		if p, err = filepath.Abs(p); err != nil {
			return "", err
		}
	}
	return p, nil
}
