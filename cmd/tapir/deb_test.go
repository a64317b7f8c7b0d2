package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The package TestDebPackage inspects, kept for TestDebReproducible to
// compare with a second build (in TestMain's directory, removed at exit).
var (
	sharedDebOnce sync.Once
	sharedDeb     string
)

func sharedDebPackage(t *testing.T) string {
	t.Helper()
	needDebTools(t)
	sharedDebOnce.Do(func() {
		out := filepath.Join(filepath.Dir(tapirBin), "deb")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		sharedDeb = buildDeb(t, out)
	})
	if sharedDeb == "" {
		t.Fatal("the first build of the package failed (see the test that ran it)")
	}
	return sharedDeb
}

// needDebTools skips a test, saying why, where scripts/deb cannot run.
func needDebTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "dpkg", "bash", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: scripts/deb needs it (apt-get install dpkg-dev git)", tool)
		}
	}
	if err := exec.Command("git", "rev-parse", "HEAD").Run(); err != nil {
		t.Skipf("not a git checkout (%v): scripts/deb names the commit it packages", err)
	}
}

// buildDeb builds the package with scripts/deb into out.
func buildDeb(t *testing.T, out string) string {
	t.Helper()
	cmd := exec.Command("bash", "../../scripts/deb", "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/deb: %v\n%s", err, stderr.String())
	}
	deb := strings.TrimSpace(stdout.String())
	if filepath.Dir(deb) != out || !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("scripts/deb printed %q, want the path of a .deb in %s", deb, out)
	}
	return deb
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

type debEntry struct{ mode, owner string }

// TestDebPackage builds the .deb and checks what dpkg-deb says of it:
// every promised file at its place with its mode, owned by root, nothing
// else; the control data and maintainer scripts; the units pointing at
// the binary, the man pages and the docs the package holds; the binary
// naming the commit; man pages compressed reproducibly. Where the test
// runs as root it installs the package with dpkg into a private root
// (dpkg --root, the maintainer scripts run with DPKG_ROOT), then upgrades
// and purges it there.
func TestDebPackage(t *testing.T) {
	deb := sharedDebPackage(t)

	// Contents: `dpkg-deb -c` lines are "mode owner/group size date time ./path".
	entries := map[string]debEntry{}
	sc := bufio.NewScanner(strings.NewReader(output(t, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", sc.Text())
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		entries[p] = debEntry{f[0], f[1]}
	}
	want := map[string]string{
		"/usr/bin/tapir": "-rwxr-xr-x",
		"/lib/systemd/system/tapir-server.service":      "-rw-r--r--",
		"/lib/systemd/system/tapir-client.service":      "-rw-r--r--",
		"/etc/tapir/tapir.toml":                         "-rw-r--r--",
		"/usr/share/bash-completion/completions/tapir":  "-rw-r--r--",
		"/usr/share/zsh/vendor-completions/_tapir":      "-rw-r--r--",
		"/usr/share/doc/tapir/copyright":                "-rw-r--r--",
		"/usr/share/doc/tapir/changelog.Debian.gz":      "-rw-r--r--",
		"/usr/share/doc/tapir/README.md":                "-rw-r--r--",
		"/usr/share/doc/tapir/guide.md":                 "-rw-r--r--",
		"/usr/share/doc/tapir/packaging.md":             "-rw-r--r--",
		"/usr/share/doc/tapir/recover.md":               "-rw-r--r--",
		"/usr/share/doc/tapir/keys.md":                  "-rw-r--r--",
		"/usr/share/doc/tapir/format/config.md":         "-rw-r--r--",
		"/usr/share/doc/tapir/format/agent-protocol.md": "-rw-r--r--",
	}
	root := newRootCommand(&globals{})
	root.InitDefaultCompletionCmd()
	for _, c := range visibleCommands(root) {
		want["/usr/share/man/man1/"+strings.ReplaceAll(c.CommandPath(), " ", "-")+".1.gz"] = "-rw-r--r--"
	}
	for p, mode := range want {
		e, ok := entries[p]
		if !ok {
			t.Errorf("%s is not in the package", p)
			continue
		}
		if e.mode != mode {
			t.Errorf("%s has mode %s, want %s", p, e.mode, mode)
		}
	}
	allowed := regexp.MustCompile(`^(/usr/bin/tapir|/lib/systemd/system/tapir-(server|client)\.service|/etc/tapir(/tapir\.toml)?|/usr/share/man/man1/tapir[a-z-]*\.1\.gz|/usr/share/bash-completion/completions/tapir|/usr/share/zsh/vendor-completions/_tapir|/usr/share/doc/tapir(/format)?(/[a-z-]+\.md|/README\.md|/copyright|/changelog\.Debian\.gz)?|/usr(/share(/man(/man1)?|/doc|/bash-completion(/completions)?|/zsh(/vendor-completions)?)?|/bin)?|/lib(/systemd(/system)?)?|/etc|)$`)
	for p, e := range entries {
		if !allowed.MatchString(p) {
			t.Errorf("%s (%s) is in the package but nowhere promised", p, e.mode)
		}
		if e.owner != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", p, e.owner)
		}
		if e.mode[0] == 'd' && e.mode != "drwxr-xr-x" {
			t.Errorf("directory %s has mode %s, want drwxr-xr-x", p, e.mode)
		}
		if e.mode[5] == 'w' || e.mode[8] == 'w' || strings.ContainsAny(e.mode, "sStT") {
			t.Errorf("%s has mode %s: writable by others or set-id", p, e.mode)
		}
	}

	// Control data: `dpkg-deb -I` and the control archive itself.
	info := output(t, "dpkg-deb", "-I", deb)
	arch := strings.TrimSpace(output(t, "dpkg", "--print-architecture"))
	for _, w := range []string{" Package: tapir\n", " Architecture: " + arch + "\n", " Depends: libc6, passwd\n", " Section: admin\n", "conffiles", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, w) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", w, info)
		}
	}
	version := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Version"))
	if !strings.Contains(filepath.Base(deb), "_"+version+"_"+arch+".deb") {
		t.Errorf("package file %s does not carry its version %s and architecture %s", deb, version, arch)
	}
	ctrl := t.TempDir()
	output(t, "dpkg-deb", "-e", deb, ctrl)
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(b) != "/etc/tapir/tapir.toml\n" {
		t.Errorf("conffiles = %q, want the sample configuration alone", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctrl, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", s, fi.Mode().Perm())
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v: %s", s, err, out)
		}
	}

	// The files themselves.
	x := t.TempDir()
	output(t, "dpkg-deb", "-x", deb, x)
	commit := strings.TrimSpace(output(t, "git", "rev-parse", "HEAD"))
	if v := output(t, filepath.Join(x, "usr/bin/tapir"), "version"); !strings.Contains(v, "commit "+commit) {
		t.Errorf("the packaged tapir says %q, want commit %s", v, commit)
	}
	checkUnits(t, x)
	for p := range want {
		if !strings.HasSuffix(p, ".1.gz") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(x, p))
		if err != nil {
			t.Error(err)
			continue
		}
		// gzip -n: no file name (FLG.FNAME) and no time (MTIME) in the header.
		if len(b) < 10 || b[3]&0x08 != 0 || !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) {
			t.Errorf("%s: gzip header carries a name or a time (want gzip -9n)", p)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		page, err := io.ReadAll(zr)
		if err != nil || !bytes.Contains(page, []byte("\n.TH \"TAPIR")) {
			t.Errorf("%s is no man page (%v): %.80q", p, err, page)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(x, "usr/share/doc/tapir/copyright")); !bytes.Contains(b, []byte("Files: vendored Go module github.com/mattn/go-sqlite3 ")) || !bytes.Contains(b, []byte("Built from commit "+commit)) {
		t.Errorf("copyright does not name the linked modules and the commit:\n%.300s", b)
	}

	installIntoPrivateRoot(t, deb)
}

// Two builds of one commit on one machine are the same bytes: file dates
// from SOURCE_DATE_EPOCH, root ownership, gzip -n, -trimpath, man pages
// dated from the commit.
func TestDebReproducible(t *testing.T) {
	first := sharedDebPackage(t)
	second := buildDeb(t, t.TempDir())
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(first) != filepath.Base(second) || !bytes.Equal(a, b) {
		t.Errorf("two builds differ: %s (%d bytes) and %s (%d bytes); compare with diffoscope", first, len(a), second, len(b))
	}
}

// checkUnits: the packaged units run the packaged binary, point only at
// documentation the package installs, and the client sees the real /tmp.
func checkUnits(t *testing.T, x string) {
	docRef := regexp.MustCompile(`^(file://(/\S+)|man:([a-z-]+)\(1\))$`)
	for _, unit := range []string{"tapir-server.service", "tapir-client.service"} {
		b, err := os.ReadFile(filepath.Join(x, "lib/systemd/system", unit))
		if err != nil {
			t.Error(err)
			continue
		}
		text := string(b)
		docs := 0
		for _, line := range strings.Split(text, "\n") {
			if !strings.HasPrefix(line, "#") && strings.Contains(line, "/usr/local/") {
				t.Errorf("%s: %s: the package installs nothing under /usr/local", unit, line)
			}
			if rest, ok := strings.CutPrefix(line, "ExecStart="); ok && !strings.HasPrefix(rest, "/usr/bin/tapir ") {
				t.Errorf("%s: ExecStart=%s, want /usr/bin/tapir", unit, rest)
			}
			rest, ok := strings.CutPrefix(line, "Documentation=")
			if !ok {
				continue
			}
			for _, ref := range strings.Fields(rest) {
				docs++
				m := docRef.FindStringSubmatch(ref)
				switch {
				case m == nil:
					t.Errorf("%s: Documentation %s is neither a file:// nor a man: reference", unit, ref)
				case m[2] != "":
					if _, err := os.Stat(filepath.Join(x, m[2])); err != nil {
						t.Errorf("%s: Documentation %s is not in the package", unit, ref)
					}
				default:
					if _, err := os.Stat(filepath.Join(x, "usr/share/man/man1", m[3]+".1.gz")); err != nil {
						t.Errorf("%s: Documentation %s is not in the package", unit, ref)
					}
				}
			}
		}
		if docs == 0 {
			t.Errorf("%s has no Documentation=", unit)
		}
	}
	client, _ := os.ReadFile(filepath.Join(x, "lib/systemd/system/tapir-client.service"))
	for _, hide := range []string{"PrivateTmp=true", "PrivateTmp=yes", "ProtectHome=", "PrivateDevices=", "InaccessiblePaths=", "TemporaryFileSystem="} {
		if bytes.Contains(client, []byte("\n"+hide)) {
			t.Errorf("tapir-client.service sets %s: it hides files the agent must back up", hide)
		}
	}
	server, _ := os.ReadFile(filepath.Join(x, "lib/systemd/system/tapir-server.service"))
	if !bytes.Contains(server, []byte("\nUser=tapir\n")) {
		t.Error("tapir-server.service does not run as user tapir")
	}

	// systemd's own reading of the units: every key known, every value
	// valid. The copies run this test's tapir, since /usr/bin/tapir is not
	// installed here.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the units are not verified by systemd")
		return
	}
	dir := t.TempDir()
	var units []string
	for _, unit := range []string{"tapir-server.service", "tapir-client.service"} {
		b, err := os.ReadFile(filepath.Join(x, "lib/systemd/system", unit))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, unit)
		os.WriteFile(p, bytes.ReplaceAll(b, []byte("/usr/bin/tapir "), []byte(tapirBin+" ")), 0o644)
		units = append(units, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// installIntoPrivateRoot runs dpkg -i for real, but into a directory with
// its own dpkg database and passwd files instead of this machine: the
// maintainer scripts run outside a chroot (--force-script-chrootless)
// with DPKG_ROOT set and create the user with useradd --root there.
// --force-depends: the private root has no libc6 or passwd package.
func installIntoPrivateRoot(t *testing.T, deb string) {
	if os.Getuid() != 0 {
		t.Log("not root: the package is built and listed, not installed (dpkg --root needs root to chown)")
		return
	}
	for _, tool := range []string{"useradd", "usermod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s is not installed: the package is not installed", tool)
			return
		}
	}
	r := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\ntape:x:26:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\ntape:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(r, name), []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + r, "--force-script-chrootless", "--force-depends"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	type want struct {
		mode      os.FileMode
		user, grp string
		dir       bool
	}
	passwdID := func(file, name string) string {
		b, _ := os.ReadFile(filepath.Join(r, "etc", file))
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Split(line, ":"); len(f) > 3 && f[0] == name {
				return f[2]
			}
		}
		return ""
	}
	checkOwned := func(p string, w want) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(r, p))
		if err != nil {
			t.Errorf("after install: %v", err)
			return
		}
		wantMode := w.mode
		if w.dir {
			wantMode |= os.ModeDir
		}
		if fi.Mode() != wantMode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), wantMode)
		}
		uid, gid := ownerOf(fi)
		if uid != passwdID("passwd", w.user) || gid != passwdID("group", w.grp) {
			t.Errorf("%s: owner %s:%s, want %s:%s (%s:%s)", p, uid, gid, w.user, w.grp, passwdID("passwd", w.user), passwdID("group", w.grp))
		}
	}

	out := dpkg("-i", deb)
	if !strings.Contains(out, "nothing is enabled yet") {
		t.Errorf("first install did not say what to do next:\n%s", out)
	}
	pw, _ := os.ReadFile(filepath.Join(r, "etc/passwd"))
	if !regexp.MustCompile(`(?m)^tapir:x:\d+:\d+:[^:]*:/var/lib/tapir:/usr/sbin/nologin$`).Match(pw) {
		t.Errorf("no system user tapir (home /var/lib/tapir, no login) in passwd:\n%s", pw)
	}
	if uid := passwdID("passwd", "tapir"); uid == "" || uid == "0" || len(uid) > 3 {
		t.Errorf("tapir has uid %q, want a system uid", uid)
	}
	gr, _ := os.ReadFile(filepath.Join(r, "etc/group"))
	if !regexp.MustCompile(`(?m)^tape:x:26:tapir$`).Match(gr) || !regexp.MustCompile(`(?m)^tapir:x:\d+:$`).Match(gr) {
		t.Errorf("groups: want tapir in tape and a group tapir:\n%s", gr)
	}
	checkOwned("etc/tapir", want{0o750, "root", "tapir", true})
	checkOwned("etc/tapir/tls", want{0o750, "root", "tapir", true})
	checkOwned("etc/tapir/tapir.toml", want{0o640, "root", "tapir", false})
	checkOwned("var/lib/tapir", want{0o750, "tapir", "tapir", true})
	checkOwned("var/spool/tapir", want{0o750, "tapir", "tapir", true})
	checkOwned("usr/bin/tapir", want{0o755, "root", "root", false})

	// The admin edits the configuration, the server writes a catalog, a
	// key is made; the same package is installed again (an upgrade's path
	// through the scripts): one user, the edit kept.
	conf := filepath.Join(r, "etc/tapir/tapir.toml")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# the admin's edit\n")
	f.Close()
	os.WriteFile(filepath.Join(r, "var/lib/tapir/catalog.db"), []byte("catalog"), 0o640)
	os.WriteFile(filepath.Join(r, "etc/tapir/tls/server.key"), []byte("key"), 0o600)
	if out := dpkg("-i", deb); !strings.Contains(out, "upgraded from") {
		t.Errorf("reinstall did not say to restart the server:\n%s", out)
	}
	if b, _ := os.ReadFile(conf); !bytes.HasSuffix(b, []byte("# the admin's edit\n")) {
		t.Error("reinstalling lost the admin's edit of /etc/tapir/tapir.toml")
	}
	pw, _ = os.ReadFile(filepath.Join(r, "etc/passwd"))
	if n := strings.Count(string(pw), "\ntapir:"); n != 1 {
		t.Errorf("%d users tapir after a reinstall", n)
	}

	// The admin deletes the configuration: a reinstall leaves it deleted
	// (dpkg's rule for conffiles) and the scripts do not put anything there.
	os.Remove(conf)
	dpkg("-i", deb)
	if fi, err := os.Lstat(conf); err == nil {
		t.Errorf("after the admin deleted it and a reinstall, %s is there again (%v)", conf, fi.Mode())
	}

	// Purge: the package's files go, the backups and keys stay.
	dpkg("--purge", "tapir")
	for _, gone := range []string{"usr/bin/tapir", "lib/systemd/system/tapir-server.service", "etc/tapir/tapir.toml", "usr/share/doc/tapir"} {
		if _, err := os.Lstat(filepath.Join(r, gone)); err == nil {
			t.Errorf("%s is still there after purge", gone)
		}
	}
	for _, kept := range []string{"var/lib/tapir/catalog.db", "etc/tapir/tls/server.key", "var/spool/tapir"} {
		if _, err := os.Lstat(filepath.Join(r, kept)); err != nil {
			t.Errorf("purge removed %s: %v", kept, err)
		}
	}
}

// ownerOf is a file's numeric uid and gid, as the passwd files under the
// private root name them.
func ownerOf(fi os.FileInfo) (string, string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?", "?"
	}
	return strconv.FormatUint(uint64(st.Uid), 10), strconv.FormatUint(uint64(st.Gid), 10)
}

// scripts/deb refuses what it cannot do before building anything, in one
// line a person can act on: an unknown argument, an output directory it
// cannot make, a DEB_VERSION or DEB_MAINTAINER that would inject lines into
// the control file.
func TestDebScriptRefuses(t *testing.T) {
	needDebTools(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"unknown argument", []string{"--bogus"}, "", "scripts/deb: unknown argument --bogus"},
		{"out under a file", []string{"--out", filepath.Join(file, "dist")}, "", "scripts/deb: cannot create the output directory"},
		{"version with a newline", []string{"--out", t.TempDir()}, "DEB_VERSION=1.0\nDepends: evil", "is not a Debian version"},
		{"version with a space", []string{"--out", t.TempDir()}, "DEB_VERSION=1.0 beta", "is not a Debian version"},
		{"maintainer with a newline", []string{"--out", t.TempDir()}, "DEB_MAINTAINER=Eve <e@x>\nEssential: yes", "is not one line"},
		{"maintainer without address", []string{"--out", t.TempDir()}, "DEB_MAINTAINER=Eve", "is not one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("bash", append([]string{"../../scripts/deb"}, tc.args...)...)
			if tc.env != "" {
				cmd.Env = append(os.Environ(), tc.env)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("err %v, stderr %q, want a failure saying %q", err, stderr.String(), tc.want)
			}
			if stdout.Len() != 0 || strings.Contains(stderr.String(), "building tapir") {
				t.Errorf("it went on: stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}
