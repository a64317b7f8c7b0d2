package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image/crypt"
)

// ageRoundTrip encrypts msg with the real age CLI to recipient and
// decrypts it with identity file id; it returns what age -d printed.
func ageRoundTrip(t *testing.T, recipient, id string, msg []byte) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("age"); err != nil {
		t.Skip("the age CLI is not installed (scripts/test installs it)")
	}
	enc := exec.Command("age", "-r", recipient)
	enc.Stdin = bytes.NewReader(msg)
	ct, err := enc.Output()
	if err != nil {
		t.Fatalf("age -r %s: %v", recipient, err)
	}
	dec := exec.Command("age", "-d", "-i", id)
	dec.Stdin = bytes.NewReader(ct)
	var stderr bytes.Buffer
	dec.Stderr = &stderr
	out, err := dec.Output()
	if err != nil {
		return nil, &exec.ExitError{Stderr: stderr.Bytes()}
	}
	return out, nil
}

var recipientRE = regexp.MustCompile(`(?m)^recipient:\s+(age1[0-9a-z]+)$`)

// TestKeyNewPaperRoundTrip: tapir key new writes an identity (0600) that
// the real age CLI decrypts with; its paper form typed back with
// tapir key paper --read makes an identity that decrypts too.
func TestKeyNewPaperRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "backup.key")
	stdout, stderr, code := run(t, "key", "new", key)
	if code != 0 {
		t.Fatalf("key new: exit %d: %s", code, stderr)
	}
	m := recipientRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("key new printed no recipient:\n%s", stdout)
	}
	recipient := m[1]
	for _, want := range []string{"fingerprint: " + crypt.Fingerprint(recipient), "recipients = [\"" + recipient + "\"]", "tapir key paper " + key, "away from the backup server"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("key new output lacks %q:\n%s", want, stdout)
		}
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %04o, want 0600", fi.Mode().Perm())
	}
	msg := []byte("the payroll, 2026\n")
	if got, err := ageRoundTrip(t, recipient, key, msg); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("age -d -i %s: %q, %v", key, got, err)
	}

	// key show names the same recipient.
	stdout, stderr, code = run(t, "key", "show", key)
	if code != 0 || !strings.Contains(stdout, recipient) || !strings.Contains(stdout, crypt.Fingerprint(recipient)) {
		t.Errorf("key show: exit %d, %q %q", code, stdout, stderr)
	}

	// The paper form, typed back (here: copied; lower case and other
	// spacing, as a person may type it), makes a key age reads.
	paper, stderr, code := run(t, "key", "paper", key)
	if code != 0 {
		t.Fatalf("key paper: exit %d: %s", code, stderr)
	}
	keyText, _ := os.ReadFile(key)
	secret := regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`).Find(keyText)
	if secret == nil {
		t.Fatalf("no secret key in the identity file")
	}
	if strings.Contains(paper, string(secret)) {
		t.Errorf("the paper key holds the secret key in one piece; want groups of five:\n%s", paper)
	}
	if !strings.Contains(paper, recipient) {
		t.Errorf("the paper key does not name its recipient:\n%s", paper)
	}
	var typed strings.Builder
	for _, l := range strings.Split(paper, "\n") {
		if regexp.MustCompile(`^\s*\d+: `).MatchString(l) {
			typed.WriteString(strings.ToLower(strings.Join(strings.Fields(l), "  ")) + "\n")
		}
	}
	paperFile := filepath.Join(dir, "typed.txt")
	os.WriteFile(paperFile, []byte(typed.String()), 0o600)
	back := filepath.Join(dir, "back.key")
	stdout, stderr, code = run(t, "key", "paper", "--read", paperFile, "--out", back)
	if code != 0 {
		t.Fatalf("key paper --read: exit %d: %s\ntyped:\n%s", code, stderr, typed.String())
	}
	if !strings.Contains(stdout, recipient) {
		t.Errorf("key paper --read names another recipient: %s", stdout)
	}
	if fi, err := os.Stat(back); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key paper --read --out: %v, %v", fi, err)
	}
	if got, err := ageRoundTrip(t, recipient, back, msg); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("age -d -i %s (from paper): %q, %v", back, got, err)
	}
	// Without --out it prints the identity file, which age reads too.
	stdout, stderr, code = run(t, "key", "paper", "--read", paperFile)
	if code != 0 {
		t.Fatalf("key paper --read (stdout): exit %d: %s", code, stderr)
	}
	printed := filepath.Join(dir, "printed.key")
	os.WriteFile(printed, []byte(stdout), 0o600)
	if got, err := ageRoundTrip(t, recipient, printed, msg); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("age -d -i (printed by key paper --read): %q, %v", got, err)
	}

	// From standard input ("-").
	cmd := exec.Command(tapirBin, "key", "paper", "--read", "-")
	cmd.Stdin = strings.NewReader(typed.String())
	if b, err := cmd.Output(); err != nil || !bytes.Equal(b, []byte(stdout)) {
		t.Errorf("key paper --read - printed %q (%v), want %q", b, err, stdout)
	}

	// Another key does not decrypt: the round trip is not vacuous.
	other := filepath.Join(dir, "other.key")
	if _, stderr, code := run(t, "key", "new", other); code != 0 {
		t.Fatal(stderr)
	}
	if _, err := ageRoundTrip(t, recipient, other, msg); err == nil {
		t.Fatal("age -d with another identity succeeded")
	}
}

// TestKeyErrors: an existing FILE is never overwritten, a world-readable
// identity is refused, a mistyped paper line is named.
func TestKeyErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if _, stderr, code := run(t, "key", "new", key); code != 0 {
		t.Fatal(stderr)
	}
	before, _ := os.ReadFile(key)
	_, stderr, code := run(t, "key", "new", key)
	if code != 1 || !strings.Contains(stderr, "exists") || !strings.Contains(stderr, key) {
		t.Errorf("key new over an existing file: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("key new changed an existing identity file")
	}

	paper, _, code := run(t, "key", "paper", key)
	if code != 0 {
		t.Fatal("key paper failed")
	}
	os.Chmod(key, 0o644)
	stdout, stderr, code := run(t, "key", "paper", key)
	if code != 1 || !strings.Contains(stderr, "chmod 600") || strings.Contains(stdout, "AGE-S") {
		t.Errorf("key paper of a world-readable file: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stderr, code = run(t, "key", "show", key)
	if code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("key show of a world-readable file: exit %d, %q", code, stderr)
	}

	// One character of key line 2 mistyped.
	lines := strings.Split(paper, "\n")
	changed := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "2:") {
			j := strings.Index(l, ":") + 3
			c := byte('Q')
			if l[j] == 'Q' {
				c = 'P'
			}
			lines[i] = l[:j] + string(c) + l[j+1:]
			changed = true
		}
	}
	if !changed {
		t.Fatalf("no key line 2 in the paper key:\n%s", paper)
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o600)
	out := filepath.Join(dir, "out.key")
	_, stderr, code = run(t, "key", "paper", "--read", bad, "--out", out)
	if code != 1 || !strings.Contains(stderr, "key line 2") || !strings.Contains(stderr, "mistyped") {
		t.Errorf("mistyped paper line: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a mistyped paper key wrote an identity file")
	}
	// Usage: --out without --read.
	if _, _, code := run(t, "key", "paper", key, "--out", out); code != 2 {
		t.Errorf("--out without --read: exit %d, want 2", code)
	}
}
