package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image/crypt"
)

// TestEncryptErrors: every mistake in a dumptype's encryption is an error
// at the line of the key, saying what to do.
func TestEncryptErrors(t *testing.T) {
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	rcpt := id.Recipient().String()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret.recipients")
	if err := os.WriteFile(secretFile, []byte("# oops, the key itself\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goodFile := filepath.Join(dir, "good.recipients")
	if err := os.WriteFile(goodFile, []byte("# ok\n"+rcpt+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.recipients")
	const dle = "\n[[dle]]\nhost = \"a\"\npath = \"/\"\ndumptype = \"x\"\n"
	tests := []struct {
		name string
		src  string
		line int
		msg  []string // substrings of Msg
		not  string   // must not appear in the error
	}{
		{name: "none with recipients", src: "[dumptype.x]\nencrypt = \"none\"\nrecipients = [\"" + rcpt + "\"]\n" + dle,
			line: 2, msg: []string{`encrypt = "none"`, "remove recipients"}},
		{name: "client without recipients", src: "[dumptype.x]\ncompress = \"none\"\nencrypt = \"client\"\n" + dle,
			line: 3, msg: []string{`"client" needs recipients`, "tapir key new"}},
		{name: "server without recipients", src: "[dumptype.x]\nencrypt = \"server\"\n" + dle,
			line: 2, msg: []string{`"server" needs recipients`}},
		{name: "unknown mode", src: "[dumptype.x]\nencrypt = \"yes\"\nrecipients = [\"" + rcpt + "\"]\n" + dle,
			line: 2, msg: []string{"yes"}},
		{name: "bad recipient", src: "[dumptype.x]\n\nrecipients = [\"age1nope\"]\n" + dle,
			line: 3, msg: []string{"age1nope", "not an age recipient"}},
		{name: "secret key as recipient", src: "[dumptype.x]\nrecipients = [\"" + id.String() + "\"]\n" + dle,
			line: 2, msg: []string{"secret key", "never hold it"}, not: id.String()[20:]},
		{name: "recipient file holds a secret key", src: "[dumptype.x]\nencrypt = \"client\"\nrecipient_files = [\"" + secretFile + "\"]\n" + dle,
			line: 3, msg: []string{secretFile, "secret key"}, not: id.String()[20:]},
		{name: "missing recipient file", src: "[dumptype.x]\nencrypt = \"server\"\n\nrecipient_files = [\"" + missing + "\"]\n" + dle,
			line: 4, msg: []string{missing}},
		{name: "client encryption with server compression", src: "[dumptype.x]\ncompress = \"server-zstd\"\nencrypt = \"client\"\nrecipient_files = [\"" + goodFile + "\"]\n" + dle,
			line: 3, msg: []string{"server-zstd", `encrypt = "server"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := parseErr(t, tc.src)
			if e.Line != tc.line {
				t.Errorf("error at line %d, want %d: %v", e.Line, tc.line, e)
			}
			for _, m := range tc.msg {
				if !strings.Contains(e.Msg, m) {
					t.Errorf("error %q does not say %q", e.Msg, m)
				}
			}
			if tc.not != "" && strings.Contains(e.Error(), tc.not) {
				t.Errorf("error echoes the secret key: %v", e)
			}
		})
	}
}

// TestEncryptGood: recipients given make client-side encryption the
// default; server-side and a recipient file are read too.
func TestEncryptGood(t *testing.T) {
	id, _ := crypt.NewIdentity()
	id2, _ := crypt.NewIdentity()
	dir := t.TempDir()
	f := filepath.Join(dir, "r.txt")
	os.WriteFile(f, []byte(id2.Recipient().String()+"\n"), 0o644)
	src := "[dumptype.c]\nrecipients = [\"" + id.Recipient().String() + "\"]\n" +
		"[dumptype.s]\nencrypt = \"server\"\ncompress = \"server-zstd\"\nrecipient_files = [\"" + f + "\"]\nrecipients = [\"" + id.Recipient().String() + "\"]\n" +
		"[dumptype.n]\ncompress = \"none\"\n" +
		"[[dle]]\nhost = \"a\"\npath = \"/c\"\ndumptype = \"c\"\n[[dle]]\nhost = \"a\"\npath = \"/s\"\ndumptype = \"s\"\n[[dle]]\nhost = \"a\"\npath = \"/n\"\ndumptype = \"n\"\n"
	c, err := Parse("cfg.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Dumptypes["c"]; d.Encrypt != EncryptClient || len(d.AgeRecipients) != 1 || !d.Encrypted() {
		t.Errorf("dumptype c: %q %v", d.Encrypt, d.AgeRecipients)
	}
	if d := c.Dumptypes["s"]; d.Encrypt != EncryptServer || len(d.AgeRecipients) != 2 {
		t.Errorf("dumptype s: %q %v", d.Encrypt, d.AgeRecipients)
	}
	if d := c.Dumptypes["n"]; d.Encrypt != EncryptNone || d.Encrypted() || d.AgeRecipients != nil {
		t.Errorf("dumptype n: %q %v", d.Encrypt, d.AgeRecipients)
	}
}
