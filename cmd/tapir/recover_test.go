package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/gnutar"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover/recovertest"
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

// TestRecoverEncrypted: the real binary restores from an encrypted L0 and
// L1 with --identity: one file through the index server (the shell), one
// file and the whole DLE on the server (-c); without --identity each says
// which image needs a key and restores nothing.
func TestRecoverEncrypted(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := testsite.MakeTree(tree); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	rcpt := recovertest.NewKey(t, key)
	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l0 := recovertest.DumpEncrypted(t, site, "20261201010000", "web1", "/srv", tree, 0, 16<<10, []string{rcpt})
	if _, err := site.Tape(ctx, "20261201020000", []int64{l0}); err != nil {
		t.Fatal(err)
	}
	if err := testsite.Mutate(tree); err != nil {
		t.Fatal(err)
	}
	l1 := recovertest.DumpEncrypted(t, site, "20261202010000", "web1", "/srv", tree, 1, 16<<10, []string{rcpt})
	if _, err := site.Tape(ctx, "20261202020000", []int64{l1}); err != nil {
		t.Fatal(err)
	}
	// The index server needs the L1's directory listings, which the run
	// records from the agent's index (the server cannot read them).
	if err := site.Catalog.SetListings(ctx, l1, listingsOf(t, tree)); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := site.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	files, err := site.Issue("web1", "tapir-client")
	if err != nil {
		t.Fatal(err)
	}
	shell := func(lcd string, more ...string) (string, string, int) {
		args := append([]string{"recover", "--server", addr, "--ca", files.CA, "--cert", files.Cert, "--key", files.Key, "--lcd", lcd, "--disk", "/srv"}, more...)
		return run(t, args...)
	}
	want, _ := os.ReadFile(filepath.Join(tree, "home/alice/notes.txt"))

	lcd := t.TempDir()
	out, stderr, code := shell(lcd, "-e", "add home/alice/notes.txt; extract")
	if code != 1 || !strings.Contains(stderr, "level 1 image 20261202010000 of web1:/srv is encrypted (age, recipients "+crypt.Fingerprint(rcpt)+"): give --identity FILE") {
		t.Errorf("shell without --identity: exit %d\n%s%s", code, out, stderr)
	}
	if ents, _ := os.ReadDir(lcd); len(ents) != 0 {
		t.Errorf("the shell wrote %d entries without a key", len(ents))
	}
	out, stderr, code = shell(lcd, "--identity", key, "-e", "history; add home/alice/notes.txt; extract")
	if got, _ := os.ReadFile(filepath.Join(lcd, "home/alice/notes.txt")); code != 0 || !bytes.Equal(got, want) {
		t.Errorf("shell with --identity: exit %d, restored %q\n%s%s", code, got, out, stderr)
	}
	if !strings.Contains(out, "(encrypted, age to "+crypt.Fingerprint(rcpt)+")") {
		t.Errorf("history does not mark the encrypted images:\n%s", out)
	}

	site.Close()
	cfg := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfg, testsite.DLE{Host: "web1", Path: "/srv"}); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "all")
	out, stderr, code = run(t, "recover", "-c", cfg, "--host", "web1", "--path", "/srv", "--all", "--to", to)
	if code != 1 || !strings.Contains(stderr, "level 0 image 20261201010000 of web1:/srv is encrypted") || !strings.Contains(stderr, "nothing was restored") {
		t.Errorf("--all without --identity: exit %d\n%s%s", code, out, stderr)
	}
	if ents, _ := os.ReadDir(to); len(ents) != 0 {
		t.Errorf("--all wrote %d entries without a key", len(ents))
	}
	if out, stderr, code = run(t, "recover", "-c", cfg, "--host", "web1", "--path", "/srv", "--all", "--to", to, "--identity", key); code != 0 {
		t.Fatalf("--all --identity: exit %d\n%s%s", code, out, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(to, "home/alice/notes.txt")); !bytes.Equal(got, want) {
		t.Errorf("--all restored notes.txt as %q", got)
	}
	for _, gone := range []string{"home/bob/doomed.txt", "home/bob/old name.txt"} {
		if _, err := os.Lstat(filepath.Join(to, gone)); err == nil {
			t.Errorf("--all: %s is there; the L1 deleted it", gone)
		}
	}
	to = filepath.Join(dir, "one")
	out, stderr, code = run(t, "recover", "-c", cfg, "--host", "web1", "--path", "/srv", "--file", "home/alice/notes.txt", "--to", to, "--identity", key)
	if got, _ := os.ReadFile(filepath.Join(to, "home/alice/notes.txt")); code != 0 || !bytes.Equal(got, want) {
		t.Errorf("--file --identity: exit %d, %q\n%s%s", code, got, out, stderr)
	}
}

// listingsOf is the GNU.dumpdir listing of every directory under root,
// as the agent's index gives it to the run.
func listingsOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		var lst []gnutar.DirEntry
		for _, e := range ents {
			k := byte('Y')
			if e.IsDir() {
				k = 'D'
			}
			lst = append(lst, gnutar.DirEntry{Kind: k, Name: e.Name()})
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		out[rel] = gnutar.EncodeDumpdir(lst)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
