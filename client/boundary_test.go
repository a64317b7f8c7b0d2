package client

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

const secret = "TOP-SECRET-CONTENT"

// boundarySite builds
//
//	top/outside/etc/shadow        (holds secret; must never be read)
//	top/allowed/real/file.txt
//	top/allowed/inlink   -> real             (stays inside: fine)
//	top/allowed/rootlink -> /
//	top/allowed/outlink  -> top/outside      (absolute)
//	top/allowed/dotdot   -> ../outside       (.. leads out)
//	top/allowed/a/mid    -> ../../outside    (in the middle of a path)
//	top/allowlink        -> allowed          (an allow entry that is a symlink)
//
// and returns top.
func boundarySite(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	writeAt(t, filepath.Join(top, "outside/etc/shadow"), secret, time.Now())
	writeAt(t, filepath.Join(top, "outside/list"), "*.o\n", time.Now())
	writeAt(t, filepath.Join(top, "allowed/real/file.txt"), "fine", time.Now())
	must(t, os.MkdirAll(filepath.Join(top, "allowed/a"), 0o755))
	for link, target := range map[string]string{
		"allowed/inlink":   "real",
		"allowed/rootlink": "/",
		"allowed/outlink":  filepath.Join(top, "outside"),
		"allowed/dotdot":   "../outside",
		"allowed/a/mid":    "../../outside",
		"allowlink":        "allowed",
	} {
		must(t, os.Symlink(target, filepath.Join(top, link)))
	}
	return top
}

// agentRun asks the agent for req as the server would (check, then the
// operation) and returns the error text of each step that failed, the
// selfcheck problems, and the payload of a dump.
func agentRun(t *testing.T, a *Agent, req wire.Request) (refusal string, problems []string, dumpErr, estErr string, payload []byte) {
	t.Helper()
	req.Op = wire.OpDump
	opt, err := a.check(req)
	if err != nil {
		return err.Error(), nil, "", "", nil
	}
	var buf bytes.Buffer
	if _, err := Dump(context.Background(), req.DLE, opt, Sink{Payload: &buf}); err != nil {
		dumpErr = err.Error()
	}
	if _, err := Estimate(context.Background(), req.DLE, opt, []int{0}); err != nil {
		estErr = err.Error()
	}
	problems = a.selfcheck(wire.Request{Op: wire.OpSelfcheck, DLE: req.DLE, ExcludeList: req.ExcludeList}).Problems
	return "", problems, dumpErr, estErr, buf.Bytes()
}

// TestAllowIsABoundary: a DLE that reaches outside --allow through a
// symlink (to /, absolute, with .., in the middle of the path, below an
// allow entry that is itself a symlink) is refused by dump, estimate and
// selfcheck, with an error that names the DLE as requested and neither
// where the symlink led nor anything read there; symlinks that stay
// inside work.
func TestAllowIsABoundary(t *testing.T) {
	top := boundarySite(t)
	allowed := filepath.Join(top, "allowed")
	allowlink := filepath.Join(top, "allowlink")
	outside := filepath.Join(top, "outside")
	// rootlink/<top>/outside/etc is the same directory as outside/etc.
	viaRoot := filepath.Join(allowed, "rootlink", strings.TrimPrefix(outside, "/"), "etc")

	for _, tc := range []struct {
		allow string
		dle   string
	}{
		{allowed, viaRoot},
		{allowed, filepath.Join(allowed, "outlink")},
		{allowed, filepath.Join(allowed, "outlink/etc")},
		{allowed, filepath.Join(allowed, "dotdot/etc")},
		{allowed, filepath.Join(allowed, "a/mid/etc")},
		{allowlink, filepath.Join(allowlink, "rootlink", strings.TrimPrefix(outside, "/"), "etc")},
		{allowlink, filepath.Join(allowlink, "dotdot")},
		{allowlink, filepath.Join(allowlink, "a/mid")},
	} {
		a := &Agent{Allow: []string{tc.allow}}
		refusal, problems, dumpErr, estErr, payload := agentRun(t, a, wire.Request{DLE: tc.dle, Datestamp: "20260101000000"})
		if refusal != "" {
			t.Errorf("%s: refused at check (%s); want the open to refuse it", tc.dle, refusal)
			continue
		}
		if bytes.Contains(payload, []byte(secret)) {
			t.Errorf("%s: the dump streamed a file from outside --allow", tc.dle)
		}
		for what, msg := range map[string]string{"dump": dumpErr, "estimate": estErr, "selfcheck": strings.Join(problems, "\n")} {
			switch {
			case !strings.Contains(msg, "DLE "+tc.dle+" reaches outside"):
				t.Errorf("%s: %s error %q; want one saying that the DLE reaches outside", tc.dle, what, msg)
			case !strings.Contains(msg, "through a symlink"):
				t.Errorf("%s: %s error %q does not say how", tc.dle, what, msg)
			case strings.Contains(strings.ReplaceAll(msg, tc.dle, ""), outside), strings.Contains(msg, secret):
				t.Errorf("%s: %s error %q names where the symlink led or what is there", tc.dle, what, msg)
			}
		}
	}

	// '..' in the request itself is refused before anything is opened.
	a := &Agent{Allow: []string{allowed}}
	if refusal, _, _, _, _ := agentRun(t, a, wire.Request{DLE: allowed + "/../outside"}); !strings.Contains(refusal, "clean") {
		t.Errorf("DLE with ..: %q; want a refusal", refusal)
	}

	// Symlinks that stay inside are followed to the DLE, and an allow
	// entry may itself be a symlink.
	for _, tc := range []struct{ allow, dle string }{
		{allowed, filepath.Join(allowed, "inlink")},
		{allowed, filepath.Join(allowed, "real")},
		{allowlink, filepath.Join(allowlink, "real")},
		{allowlink, filepath.Join(allowlink, "inlink")},
		{allowlink, allowlink},
	} {
		a := &Agent{Allow: []string{tc.allow}}
		refusal, problems, dumpErr, estErr, payload := agentRun(t, a, wire.Request{DLE: tc.dle, Compress: "none", Datestamp: "20260101000000"})
		if refusal != "" || dumpErr != "" || estErr != "" || len(problems) != 1 { // the one problem: no --state-dir
			t.Errorf("%s below %s: refusal %q dump %q estimate %q problems %q", tc.dle, tc.allow, refusal, dumpErr, estErr, problems)
		}
		if !bytes.Contains(payload, []byte("fine")) {
			t.Errorf("%s below %s: file.txt not in the dump", tc.dle, tc.allow)
		}
		if bytes.Contains(payload, []byte(secret)) {
			t.Errorf("%s below %s: the dump holds a file from outside", tc.dle, tc.allow)
		}
	}

	// The most specific allow entry decides: allowing the symlink's
	// target too makes it dumpable under that name.
	a = &Agent{Allow: []string{allowed, filepath.Join(allowed, "outlink")}}
	if refusal, _, dumpErr, _, payload := agentRun(t, a, wire.Request{DLE: filepath.Join(allowed, "outlink/etc"), Compress: "none"}); refusal != "" || dumpErr != "" || !bytes.Contains(payload, []byte(secret)) {
		t.Errorf("explicitly allowed symlink: refusal %q dump %q", refusal, dumpErr)
	}
}

// TestExcludeListBoundary: an exclude list outside --allow, or reached
// through a symlink that leads out, is refused; a list with a bad line is
// refused naming the line by number, never quoting it; a FIFO is refused
// without blocking.
func TestExcludeListBoundary(t *testing.T) {
	top := boundarySite(t)
	allowed := filepath.Join(top, "allowed")
	dle := filepath.Join(allowed, "real")
	a := &Agent{Allow: []string{allowed}}

	refusal, _, _, _, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{filepath.Join(top, "outside/list")}})
	if !strings.Contains(refusal, "exclude list "+filepath.Join(top, "outside/list")+" is outside") {
		t.Errorf("exclude list outside --allow: %q; want a refusal", refusal)
	}
	if refusal, _, _, _, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{allowed + "/../outside/list"}}); !strings.Contains(refusal, "clean") {
		t.Errorf("exclude list with ..: %q; want a refusal", refusal)
	}

	for _, list := range []string{filepath.Join(allowed, "outlink/list"), filepath.Join(allowed, "dotdot/list"), filepath.Join(allowed, "a/mid/list")} {
		refusal, problems, dumpErr, estErr, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{list}})
		if refusal != "" {
			t.Fatalf("%s: refused at check: %s", list, refusal)
		}
		for what, msg := range map[string]string{"dump": dumpErr, "estimate": estErr, "selfcheck": strings.Join(problems, "\n")} {
			if !strings.Contains(msg, "exclude list "+list+" reaches outside") || strings.Contains(strings.ReplaceAll(msg, list, ""), filepath.Join(top, "outside")) {
				t.Errorf("%s: %s error %q; want a refusal naming the list as requested", list, what, msg)
			}
		}
	}

	bad := filepath.Join(allowed, "bad.list")
	must(t, os.WriteFile(bad, []byte("*.o\n\n"+secret+"[unterminated\n*.c\n"), 0o644))
	_, problems, dumpErr, estErr, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{bad}})
	for what, msg := range map[string]string{"dump": dumpErr, "estimate": estErr, "selfcheck": strings.Join(problems, "\n")} {
		if !strings.Contains(msg, bad+" line 3") || strings.Contains(msg, secret) || strings.Contains(msg, "unterminated[") {
			t.Errorf("bad exclude list: %s error %q; want line 3 named and the line not quoted", what, msg)
		}
	}
	long := filepath.Join(allowed, "long.list")
	must(t, os.WriteFile(long, []byte("*.o\n"+strings.Repeat("S", 100<<10)+"\n"), 0o644))
	if _, _, dumpErr, _, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{long}}); !strings.Contains(dumpErr, "line 2 is longer") || strings.Contains(dumpErr, "SSS") {
		t.Errorf("over-long exclude line: %q", dumpErr)
	}

	fifo := filepath.Join(allowed, "fifo.list")
	must(t, syscall.Mkfifo(fifo, 0o644))
	if _, _, dumpErr, _, _ := agentRun(t, a, wire.Request{DLE: dle, ExcludeList: []string{fifo}}); !strings.Contains(dumpErr, "not a regular file") {
		t.Errorf("FIFO as exclude list: %q", dumpErr)
	}

	// Inside --allow, through a symlink that stays inside: applied.
	must(t, os.WriteFile(filepath.Join(allowed, "good.list"), []byte("file.txt\n"), 0o644))
	must(t, os.Symlink("good.list", filepath.Join(allowed, "good.link")))
	if refusal, _, dumpErr, _, payload := agentRun(t, a, wire.Request{DLE: dle, Compress: "none", ExcludeList: []string{filepath.Join(allowed, "good.link")}}); refusal != "" || dumpErr != "" || bytes.Contains(payload, []byte("fine")) {
		t.Errorf("exclude list inside --allow: refusal %q dump %q, excluded file dumped: %v", refusal, dumpErr, bytes.Contains(payload, []byte("fine")))
	}
}

// TestWalkRaceNeverLeavesRoot: entries swapped between the listing of
// their directory and their opening — a directory for a symlink to
// outside, a file for a symlink to a secret file, a file for a FIFO, a
// directory for a file — are reported and skipped: nothing outside the
// root is streamed and the walk does not block. The hook makes the race
// deterministic.
func TestWalkRaceNeverLeavesRoot(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "dle")
	outside := filepath.Join(top, "outside")
	writeAt(t, filepath.Join(outside, "secret.txt"), secret, time.Now())
	writeAt(t, filepath.Join(outside, "sub/deeper.txt"), secret, time.Now())
	writeAt(t, filepath.Join(root, "sub/inner.txt"), "inner", time.Now())
	writeAt(t, filepath.Join(root, "file.txt"), "file", time.Now())
	writeAt(t, filepath.Join(root, "pipe.txt"), "pipe", time.Now())
	writeAt(t, filepath.Join(root, "todir/x"), "x", time.Now())
	writeAt(t, filepath.Join(root, "keep.txt"), "keep", time.Now())

	swapped := map[string]bool{}
	hook := func(rel string) {
		p := filepath.Join(root, rel)
		switch rel {
		case "sub":
			must(t, os.RemoveAll(p))
			must(t, os.Symlink(outside, p))
		case "file.txt":
			must(t, os.Remove(p))
			must(t, os.Symlink(filepath.Join(outside, "secret.txt"), p))
		case "pipe.txt":
			must(t, os.Remove(p))
			must(t, syscall.Mkfifo(p, 0o644))
		case "todir":
			must(t, os.RemoveAll(p))
			must(t, os.WriteFile(p, []byte("now a file"), 0o644))
		default:
			return
		}
		swapped[rel] = true
	}
	var buf bytes.Buffer
	var warns []string
	var names []string
	opt := DumpOptions{Comp: image.CompNone, Allow: []string{root}, beforeOpen: hook}
	_, err := Dump(context.Background(), root, opt, Sink{Payload: &buf,
		Index: func(r wire.IndexRecord) error { names = append(names, r.Path); return nil },
		Warn:  func(s string) { warns = append(warns, s) }})
	must(t, err)
	if len(swapped) != 4 {
		t.Fatalf("the hook swapped %v; want sub, file.txt, pipe.txt and todir", swapped)
	}
	if bytes.Contains(buf.Bytes(), []byte(secret)) {
		t.Fatalf("a file from outside the root was streamed")
	}
	joined := strings.Join(warns, "\n")
	for _, rel := range []string{"sub", "file.txt", "pipe.txt", "todir"} {
		if !strings.Contains(joined, filepath.Join(root, rel)+":") {
			t.Errorf("no warning names the swapped %s: %q", rel, warns)
		}
	}
	if strings.Contains(joined, outside) {
		t.Errorf("a warning names the outside: %q", warns)
	}
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	if !has["keep.txt"] || has["sub/deeper.txt"] || has["sub/secret.txt"] {
		t.Errorf("entries %q", names)
	}
}

// TestWarningFloodIsCapped: a dump with thousands of warnings sends at
// most MaxWarnings lines and MaxWarningBytes bytes of them, then one line
// that counts the rest; the image is still complete.
func TestWarningFloodIsCapped(t *testing.T) {
	root := t.TempDir()
	const n = 3 * MaxWarnings
	for i := range n {
		// Sockets are warned about and skipped; mknod makes them without
		// a listener.
		must(t, syscall.Mknod(filepath.Join(root, "sock-"+strings.Repeat("x", 100)+"-"+strconv.Itoa(i)), syscall.S_IFSOCK|0o600, 0))
	}
	writeAt(t, filepath.Join(root, "data.txt"), "data", time.Now())
	a := &Agent{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Allow: []string{root}}
	req := wire.Request{Op: wire.OpDump, DLE: root, Compress: "none"}
	opt, err := a.check(req)
	must(t, err)
	agentEnd, serverEnd := net.Pipe()
	defer serverEnd.Close()
	go func() {
		defer agentEnd.Close()
		a.dump(context.Background(), wire.NewConn(agentEnd), agentEnd, req, opt, nil, -1)
	}()
	c := wire.NewConn(serverEnd)
	var rep wire.Reply
	must(t, c.ReadMsg(&rep))
	if !rep.OK {
		t.Fatalf("dump refused: %s", rep.Error)
	}
	var warns []string
	var payload bytes.Buffer
	for {
		typ, b, err := c.ReadFrame()
		must(t, err)
		if typ == wire.FrameWarn {
			warns = append(warns, string(b))
			continue
		}
		if typ == wire.FrameData {
			payload.Write(b)
		}
		if typ == wire.FrameMsg {
			var d wire.Done
			must(t, wire.DecodeMsg(b, &d))
			if d.Error != "" {
				t.Fatalf("dump failed: %s", d.Error)
			}
			break
		}
	}
	if len(warns) > MaxWarnings+1 {
		t.Errorf("%d warning lines sent; at most %d and a summary", len(warns), MaxWarnings)
	}
	total := 0
	for _, w := range warns[:len(warns)-1] {
		total += len(w)
	}
	if total > MaxWarningBytes {
		t.Errorf("%d bytes of warnings sent; at most %d", total, MaxWarningBytes)
	}
	last := warns[len(warns)-1]
	if want := "and " + strconv.Itoa(n-(len(warns)-1)) + " more warnings not sent"; !strings.HasPrefix(last, want) {
		t.Errorf("last warning %q; want %q...", last, want)
	}
	if !bytes.Contains(payload.Bytes(), []byte("data")) {
		t.Error("the image lost data.txt")
	}
}

// TestWarnCapBoundsBytesAndLines: long warnings stop at the byte limit,
// one line is cut at MaxTextLen, and a newline in a file name cannot make
// a second line.
func TestWarnCapBoundsBytesAndLines(t *testing.T) {
	var sent []string
	c := &warnCap{send: func(s string) { sent = append(sent, s) }}
	c.warn("/data/evil\nFAILED everything: name with a newline")
	c.warn(strings.Repeat("é", 10<<10))
	for range 1000 {
		c.warn(strings.Repeat("w", 2000))
	}
	c.finish()
	if strings.Contains(sent[0], "\n") || !strings.Contains(sent[0], `evil\nFAILED`) {
		t.Errorf("newline not escaped: %q", sent[0])
	}
	if len(sent[1]) > MaxTextLen || !strings.HasSuffix(sent[1], cutMark) || !strings.HasPrefix(sent[1], "é") {
		t.Errorf("long line: %d bytes, ends %q", len(sent[1]), sent[1][len(sent[1])-10:])
	}
	total := 0
	for _, s := range sent[:len(sent)-1] {
		total += len(s)
	}
	if total > MaxWarningBytes || len(sent)-1 > MaxWarnings {
		t.Errorf("%d lines, %d bytes sent", len(sent)-1, total)
	}
	if want := "and " + strconv.Itoa(1002-(len(sent)-1)) + " more warnings not sent"; !strings.HasPrefix(sent[len(sent)-1], want) {
		t.Errorf("summary %q; want %q...", sent[len(sent)-1], want)
	}
	if got := errReply(strings.Repeat("x", 1<<20)).Error; len(got) > MaxTextLen {
		t.Errorf("failure text of %d bytes", len(got))
	}
}

// TestOneFilesystemStopsAtMounts: with OneFilesystem a mount point below
// the root is stored as an empty directory and not entered, by the dump
// and the estimate alike; without it, it is walked. Needs the right to
// mount a tmpfs (root); skipped otherwise.
func TestOneFilesystemStopsAtMounts(t *testing.T) {
	root := t.TempDir()
	mnt := filepath.Join(root, "d/mnt")
	must(t, os.MkdirAll(mnt, 0o755))
	if err := syscall.Mount("tapir-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): --one-file-system not tested", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	writeAt(t, filepath.Join(mnt, "inner.txt"), "inner", time.Now())
	writeAt(t, filepath.Join(root, "top.txt"), "top", time.Now())
	for _, one := range []bool{true, false} {
		names, warns := dumpNames(t, root, DumpOptions{OneFilesystem: one, Allow: []string{root}})
		got := strings.Join(names, " ")
		if want := "d d/mnt d/mnt/inner.txt top.txt"; one {
			want = "d d/mnt top.txt"
			if got != want {
				t.Errorf("one filesystem: %q, want %q", got, want)
			}
		} else if got != want {
			t.Errorf("all filesystems: %q, want %q", got, want)
		}
		if len(warns) > 0 {
			t.Errorf("warnings: %q", warns)
		}
		est, err := Estimate(context.Background(), root, DumpOptions{OneFilesystem: one, Allow: []string{root}}, []int{0})
		must(t, err)
		if est[0].Files != int64(len(names)) {
			t.Errorf("one filesystem %v: estimate counts %d files, the dump stored %d", one, est[0].Files, len(names))
		}
	}
}

// TestFileReplacedDuringWalk: a file renamed over between the listing and
// its opening (as editors save) is stored as it is now, with a warning,
// and the incremental state records the new file, so that the next
// level 1 does not store it again.
func TestFileReplacedDuringWalk(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "dle")
	st := &StateStore{Dir: filepath.Join(dir, "state")}
	writeAt(t, filepath.Join(root, "edited.txt"), "old version", time.Now().Add(-time.Hour))
	hook := func(rel string) {
		if rel == "edited.txt" {
			writeAt(t, filepath.Join(root, "new.tmp"), "new version", time.Now())
			must(t, os.Rename(filepath.Join(root, "new.tmp"), filepath.Join(root, "edited.txt")))
		}
	}
	var buf bytes.Buffer
	var warns []string
	_, err := Dump(context.Background(), root, DumpOptions{Comp: image.CompNone, State: st, Datestamp: "20260101000000", beforeOpen: hook},
		Sink{Payload: &buf, Warn: func(s string) { warns = append(warns, s) }})
	must(t, err)
	if !bytes.Contains(buf.Bytes(), []byte("new version")) || bytes.Contains(buf.Bytes(), []byte("old version")) {
		t.Errorf("the image does not hold the file as it is now")
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "edited.txt: replaced by another file") {
		t.Errorf("warnings %q", warns)
	}
	must(t, st.Promote(root, 0, "20260101000000"))
	l1 := dumpLevel(t, root, st, 1, "20260102000000", false)
	if l1.names["edited.txt"] {
		t.Error("level 1 stores the file again: the state recorded the file as listed, not as stored")
	}
}
