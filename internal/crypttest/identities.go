package crypttest

import (
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image/crypt"
)

// Identities writes ids into one identity file (0600) in a temporary
// directory of t, as tapir key new writes them, and reads it back as
// --identity FILE does.
func Identities(t testing.TB, ids ...*age.X25519Identity) *crypt.Identities {
	t.Helper()
	var text []byte
	for _, id := range ids {
		text = append(text, crypt.IdentityFileText(id, time.Time{})...)
	}
	p := filepath.Join(t.TempDir(), "key.txt")
	if err := crypt.WriteIdentityFile(p, text); err != nil {
		t.Fatal(err)
	}
	out, err := crypt.ReadIdentities(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
