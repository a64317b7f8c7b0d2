package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/wire"
)

// payloadBytes reads a payload back to the bytes written into it, as a
// restore does (decrypted first when id is set).
func payloadBytes(t *testing.T, res dumpResult, comp string, id age.Identity) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(res.data)
	if id != nil {
		pr, err := crypt.NewReader(r, []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(pr)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(plain)
		// The frame records locate the frames in the plaintext.
		fr, err := image.NewReaderAt(bytes.NewReader(plain), image.Comp(comp), res.frames, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(fr)
		fr.Close()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sr, err := image.NewStreamReader(r, image.Comp(comp))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	b, err := io.ReadAll(sr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommandDLE: the payload of a command DLE is its command's
// standard output byte for byte, read back through the image framing
// for every compression and through client-side encryption; its
// standard error is in its run and one warning; no index records.
func TestCommandDLE(t *testing.T) {
	s := newHookSite(t, func(a *Agent) { a.Allow = []string{"/nowhere"} }) // a command DLE's name is not under --allow
	out := filepath.Join(s.record, "printed")
	// Binary, several frames, with a tail shorter than a frame.
	cmd := s.script(t, "dump", fmt.Sprintf(`head -c 700000 /dev/urandom > %s
printf 'abc\000\377' >> %s
cat %s
echo "dumped: $TAPIR_DLE level $TAPIR_LEVEL hook $TAPIR_HOOK" >&2`, out, out, out))
	id, _ := crypt.NewIdentity()
	for _, tc := range []struct {
		comp string
		enc  bool
		bw   int64
	}{{"zst", false, 0}, {"gz", false, 0}, {"none", false, 0}, {"zst", true, 0}, {"none", true, 0}, {"zst", false, 64 << 20}} {
		t.Run(fmt.Sprintf("%s/enc=%v/bw=%d", tc.comp, tc.enc, tc.bw), func(t *testing.T) {
			req := wire.Request{DLE: "/db/main", Datestamp: "20260102030405", Compress: tc.comp, FrameSize: 64 << 10, Command: []string{cmd}, Bandwidth: tc.bw}
			var ident age.Identity
			if tc.enc {
				req.Encrypt, req.Recipients = crypt.Name, []string{id.Recipient().String()}
				ident = id
			}
			res := remoteDump(t, s.r, req)
			if res.err != nil {
				t.Fatal(res.err)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := payloadBytes(t, res, tc.comp, ident); !bytes.Equal(got, want) {
				t.Fatalf("payload reads back as %d bytes, the command printed %d", len(got), len(want))
			}
			d := res.done
			if d.Files != 0 || res.index != 0 || d.OrigSize != int64(len(want)) || d.PayloadSize != int64(len(res.data)) || int64(len(res.frames)) != d.Frames || d.Frames < 2 {
				t.Errorf("Done %+v (%d index records, %d frame records, %d bytes)", d, res.index, len(res.frames), len(res.data))
			}
			if len(d.Hooks) != 1 || d.Hooks[0].Name != "command" || d.Hooks[0].Output != "dumped: /db/main level 0 hook command\n" {
				t.Errorf("hooks %+v", d.Hooks)
			}
			if len(res.warnings) != 1 || !strings.Contains(res.warnings[0], "dumped: /db/main level 0 hook command") {
				t.Errorf("warnings %q", res.warnings)
			}
		})
	}
}

// TestCommandDLEFails: a command that exits non-zero fails the dump
// with its standard error's last line; pre and post run around it.
func TestCommandDLEFails(t *testing.T) {
	s := newHookSite(t, nil)
	req := wire.Request{DLE: "/db/main", Datestamp: "20260102030405", Command: []string{s.script(t, "dump", "echo partial output\necho 'pg_dump: error: connection refused' >&2\nexit 1")},
		Pre: []string{s.envRecorder(t, "pre", 0)}, Post: []string{s.envRecorder(t, "post", 0)}}
	res := remoteDump(t, s.r, req)
	if res.err == nil || !strings.Contains(res.err.Error(), "command "+req.Command[0]+" exited 1: pg_dump: error: connection refused") {
		t.Fatalf("error %v", res.err)
	}
	if !slices.Equal(hookNames(res.done), []string{"pre", "command", "post"}) {
		t.Fatalf("Done %+v", res.done)
	}
	if s.recorded(t, "post")["TAPIR_RESULT"] != "failed" {
		t.Error("post not told the dump failed")
	}
}

// TestCommandDLERefusals: level > 0, an estimate and a resume of a
// command DLE are refused, saying why.
func TestCommandDLERefusals(t *testing.T) {
	s := newHookSite(t, nil)
	cmd := []string{s.script(t, "dump", "echo hi")}
	res := remoteDump(t, s.r, wire.Request{DLE: "/db/main", Level: 1, Datestamp: "20260102030405", Command: cmd})
	if res.err == nil || !strings.Contains(res.err.Error(), "a command DLE dumps level 0 only") {
		t.Errorf("level 1: %v", res.err)
	}
	_, err := s.r.Estimate(context.Background(), wire.Request{DLE: "/db/main", Levels: []int{0}, Command: cmd})
	if err == nil || !strings.Contains(err.Error(), "a command DLE has no estimate: the server uses its last size") {
		t.Errorf("estimate: %v", err)
	}
	res = remoteDump(t, s.r, wire.Request{DLE: "/db/main", Datestamp: "20260102030405", Command: cmd, Token: "0123456789abcdef0123456789abcdef",
		Resume: &wire.Resume{Frames: 1, PayloadOffset: 100}})
	if res.err == nil || !strings.Contains(res.err.Error(), errNoResume.Error()) {
		t.Errorf("resume: %v", res.err)
	}
	res = remoteDump(t, s.r, wire.Request{DLE: "db", Datestamp: "20260102030405", Command: cmd})
	if res.err == nil || !strings.Contains(res.err.Error(), "must be an absolute, clean path") {
		t.Errorf("relative name: %v", res.err)
	}
	// With a token it dumps, keeping no resume state.
	res = remoteDump(t, s.r, wire.Request{DLE: "/db/main", Datestamp: "20260102030405", Command: cmd, Token: "0123456789abcdef0123456789abcdef"})
	if res.err != nil {
		t.Fatal(res.err)
	}
	// The confirmation is answered: nothing is reported lost.
	if len(res.warnings) != 0 {
		t.Errorf("warnings %q", res.warnings)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.state, "resume")); len(ents) != 0 {
		t.Errorf("resume state kept for a command DLE: %v", ents)
	}
}

// TestCommandDLECutStreamKillsIt: when the server goes, the command is
// killed with its process group (its grandchild too) and post runs.
func TestCommandDLECutStreamKillsIt(t *testing.T) {
	s := newHookSite(t, nil)
	pidf := filepath.Join(s.record, "pid")
	cmd := s.script(t, "dump", fmt.Sprintf("yes tapir &\necho $! > %s\nwait", pidf))
	req := wire.Request{DLE: "/db/main", Datestamp: "20260102030405", Compress: "none", Command: []string{cmd}, Post: []string{s.envRecorder(t, "post", 0)}}
	n := len(s.log.messages())
	_, err := s.r.Dump(context.Background(), req, DumpHandler{
		Data:  func([]byte) error { return fmt.Errorf("server gives up") },
		Index: func(wire.IndexRecord) error { return nil },
		Frame: func(image.Frame) error { return nil },
		Warn:  func(string) {},
	})
	if err == nil {
		t.Fatal("the dump went on")
	}
	rec, _ := s.log.wait(t, n, "dump failed", nil)
	if !strings.Contains(rec.attrs["err"], "sending the output of command") {
		t.Errorf("dump failed with %q", rec.attrs["err"])
	}
	b, _ := os.ReadFile(pidf)
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid <= 0 || !gone(t, pid) {
		t.Errorf("the command's child %d lives on", pid)
	}
	if s.recorded(t, "post")["TAPIR_RESULT"] != "failed" {
		t.Error("post did not run, told the dump failed")
	}
}

// TestPostgresCommandDLE dumps a real database with pg_dump -Fc when
// TAPIR_TEST_POSTGRES names one (a libpq DSN); pg_restore lists what
// the payload reads back to.
func TestPostgresCommandDLE(t *testing.T) {
	dsn := os.Getenv("TAPIR_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("TAPIR_TEST_POSTGRES (a libpq DSN) not set")
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Skip("no pg_dump")
	}
	// Debian's pg_dump is a symlink to pg_wrapper, which looks at its
	// name: the agent runs it by the name the server gave.
	s := newHookSite(t, func(a *Agent) { a.AllowExec = []string{pgDump} })
	res := remoteDump(t, s.r, wire.Request{DLE: "/postgres/test", Datestamp: "20260102030405", Compress: "zst", Command: []string{pgDump, "-Fc", "-d", dsn}})
	if res.err != nil {
		t.Fatal(res.err)
	}
	got := payloadBytes(t, res, "zst", nil)
	if !bytes.HasPrefix(got, []byte("PGDMP")) {
		t.Fatalf("payload starts %q, not a pg_dump custom archive", got[:min(16, len(got))])
	}
	f := filepath.Join(t.TempDir(), "db.dump")
	must(t, os.WriteFile(f, got, 0o600))
	if out, err := exec.Command("pg_restore", "-l", f).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore -l: %v\n%s", err, out)
	}
}
