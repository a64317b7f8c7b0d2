package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/testsite"
)

// hostileTar is a tar stream a hostile client could send.
func hostileTar(t *testing.T, hdrs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.Format, h.ModTime = tar.FormatPAX, time.Date(2025, 6, 7, 1, 0, 0, 0, time.UTC)
		data := ""
		if h.Typeflag == tar.TypeReg {
			data = "owned by the client\n"
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRecoverServerSideAttacks runs `tapir recover -c ... --all` and
// `--file` on the backup server over images a hostile client sent: the
// restore never writes outside --to (a "." symlink is refused, exit 1,
// one line naming the entry and --to), --all refuses a directory that
// is not empty unless --overwrite, and a client's device nodes and setuid
// bits are left out, each listed, unless --same-privileges.
func TestRecoverServerSideAttacks(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	dles := []testsite.DLE{
		{Host: "evil", Path: "/dot", Tar: hostileTar(t,
			tar.Header{Name: ".", Typeflag: tar.TypeSymlink, Linkname: outside},
			tar.Header{Name: "./victim", Typeflag: tar.TypeReg, Mode: 0o644})},
		{Host: "evil", Path: "/priv", Tar: hostileTar(t,
			tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o777},
			tar.Header{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755},
			tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
			tar.Header{Name: "./su", Typeflag: tar.TypeReg, Mode: 0o4755})},
	}
	if _, err := site.Run(context.Background(), "20250607010000", dles, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	site.Close()
	cfg := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfg, testsite.DLE{Host: "evil", Path: "/dot"}); err != nil {
		t.Fatal(err)
	}
	recoverArgs := func(path, to string, more ...string) []string {
		return append([]string{"recover", "-c", cfg, "--host", "evil", "--path", path, "--to", to}, more...)
	}

	// A "." symlink: refused, nothing written through it, the target
	// still a directory.
	to := filepath.Join(dir, "r1")
	out, stderr, code := run(t, recoverArgs("/dot", to, "--all")...)
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, `refusing to restore "." (a symlink to "`+outside+`") into `+to) {
		t.Errorf("--all of a \".\" symlink: exit %d\n%s%s", code, out, stderr)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file outside --to was overwritten: %q", b)
	}
	if fi, err := os.Lstat(to); err != nil || !fi.IsDir() {
		t.Errorf("--to is no longer a directory: %v %v", fi.Mode(), err)
	}

	// A target that is not empty: refused unless --overwrite.
	to = filepath.Join(dir, "r2")
	os.MkdirAll(to, 0o755)
	os.WriteFile(filepath.Join(to, "mine"), []byte("mine\n"), 0o644)
	out, stderr, code = run(t, recoverArgs("/priv", to, "--all")...)
	if code != 1 || !strings.Contains(stderr, "the target "+to+" is not empty (it holds mine)") || !strings.Contains(stderr, "--overwrite") {
		t.Errorf("--all into a non-empty directory: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(to, "mine")); err != nil {
		t.Errorf("the target's own file: %v", err)
	}
	if out, stderr, code = run(t, recoverArgs("/priv", to, "--all", "--overwrite")...); code != 0 {
		t.Errorf("--all --overwrite: exit %d\n%s%s", code, out, stderr)
	}

	// Privileges: left out and listed; the target keeps its mode.
	to = filepath.Join(dir, "r3")
	os.MkdirAll(to, 0o750)
	os.Chmod(to, 0o750)
	out, stderr, code = run(t, recoverArgs("/priv", to, "--all")...)
	if code != 0 {
		t.Fatalf("--all: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"left out: dev/null: character device 1,3 not created\n", "left out: su: setuid bit left out (mode 4755 restored as 0755)\n", "2 entries had device nodes, setuid/setgid bits", "--same-privileges"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Lstat(filepath.Join(to, "dev/null")); err == nil {
		t.Error("dev/null was created")
	}
	if fi, _ := os.Lstat(filepath.Join(to, "su")); fi == nil || fi.Mode() != 0o755 {
		t.Errorf("su: %v, want 0755", fi)
	}
	if fi, _ := os.Lstat(to); fi == nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("--to was re-moded by the image's \".\" entry: %v", fi)
	}
	out, stderr, code = run(t, recoverArgs("/priv", filepath.Join(dir, "r4"), "--file", "su")...)
	if code != 0 || !strings.Contains(out, "left out: su: setuid bit left out") {
		t.Errorf("--file su: exit %d\n%s%s", code, out, stderr)
	}

	if os.Geteuid() != 0 {
		return
	}
	to = filepath.Join(dir, "r5")
	out, stderr, code = run(t, recoverArgs("/priv", to, "--all", "--same-privileges", "--target-meta")...)
	if code != 0 || strings.Contains(out, "left out") {
		t.Errorf("--same-privileges: exit %d\n%s%s", code, out, stderr)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(to, "dev/null"), &st); err != nil || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("--same-privileges: dev/null %v rdev %d", err, st.Rdev)
	}
	if fi, _ := os.Lstat(filepath.Join(to, "su")); fi == nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("--same-privileges: su %v", fi)
	}
	if fi, _ := os.Lstat(to); fi == nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("--target-meta: --to is %v, want the image's 0777", fi)
	}
}

// TestRecoverIdentityFile: --identity reads the key before anything else,
// for the shell and for -c alike: a key file others may read is refused
// (chmod 600 it), a missing one named.
func TestRecoverIdentityFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, crypt.IdentityFileText(id, time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o644)
	for _, args := range [][]string{
		{"recover", "-c", filepath.Join(dir, "none.toml"), "--host", "h", "--path", "/p", "--file", "f", "--to", dir, "--identity", key},
		{"recover", "--server", "127.0.0.1:1", "--identity", key, "-e", "listhost"},
	} {
		out, stderr, code := run(t, args...)
		if code == 0 || !strings.Contains(stderr, "identity file "+key+" may be read by others (mode 0644): run chmod 600 "+key) {
			t.Errorf("%q with a world-readable key: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	out, stderr, code := run(t, "recover", "--server", "127.0.0.1:1", "--identity", filepath.Join(dir, "absent"), "-e", "listhost")
	if code == 0 || !strings.Contains(stderr, "identity file") || !strings.Contains(stderr, "absent") {
		t.Errorf("a missing key file: exit %d\n%s%s", code, out, stderr)
	}
}
