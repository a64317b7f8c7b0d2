package server

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/internal/crypttest"
	"github.com/tapir-backup/tapir/internal/testsite"
)

// encryptedVerifySite: an encrypted L0 of two DLEs, the second in two
// parts on TEST-001 and TEST-002, and an encrypted L1 on TEST-003; the
// configuration to verify it and the identity that opens it.
func encryptedVerifySite(t *testing.T) (*testsite.Site, *config.Config, *age.X25519Identity) {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Slots: 4, Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	key, _ := crypt.NewIdentity()
	other, _ := crypt.NewIdentity()
	recips := []string{key.Recipient().String(), other.Recipient().String()}
	ctx := context.Background()
	srv := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	home := testsite.DLE{Host: "db1", Path: "/home", Root: filepath.Join(data, "home"), Comp: image.CompNone}
	if _, err := crypttest.Run(ctx, site, "20250607010000", []testsite.DLE{srv, home}, recips, crypttest.Options{SplitAt: 100000}); err != nil {
		t.Fatal(err)
	}
	testsite.Mutate(data)
	srv.Level = 1
	if _, err := crypttest.Run(ctx, site, "20250608010000", []testsite.DLE{srv}, recips, crypttest.Options{}); err != nil {
		t.Fatal(err)
	}
	site.Close()
	path := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(path, srv, home); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return site, cfg, key
}

func verifyDetails(res *VerifyResult) string {
	var b strings.Builder
	for _, im := range res.Images {
		b.WriteString(im.Host + ":" + im.Path + " " + im.Detail + "\n")
	}
	return b.String()
}

// TestVerifyEncrypted: without a key, verify checks the ciphertext (the
// SHA-256, the recipients, the age header against the catalog) and says
// that is all it checked; with the key it decrypts every chunk and reads
// the tar streams (all the parts of the image that spans two volumes); a
// wrong key is BAD naming the fingerprints; a flipped ciphertext byte is
// caught by the SHA-256 without a key, and with the key also named as the
// chunk that fails.
func TestVerifyEncrypted(t *testing.T) {
	site, cfg, key := encryptedVerifySite(t)
	ctx := context.Background()
	verify := func(label string, ids *crypt.Identities) *VerifyResult {
		t.Helper()
		res, err := VerifyWith(ctx, cfg, label, VerifyOptions{Identities: ids}, Deps{Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := verify("TEST-001", nil)
	if res.Bad() != 0 || len(res.Images) != 2 {
		t.Fatalf("verify without a key: %d bad of %d:\n%s", res.Bad(), len(res.Images), verifyDetails(res))
	}
	for _, im := range res.Images {
		if !im.Encrypted || !strings.Contains(im.Detail, "encrypted: SHA-256 checked; give --identity FILE to check the frames and the tar stream") || im.Files != 0 {
			t.Errorf("without a key, %s:%s: %+v", im.Host, im.Path, im)
		}
	}

	good := crypttest.Identities(t, key)
	for _, label := range []string{"TEST-001", "TEST-002", "TEST-003"} {
		res := verify(label, good)
		if res.Bad() != 0 || len(res.Images) == 0 {
			t.Fatalf("verify %s with the key: %d bad:\n%s", label, res.Bad(), verifyDetails(res))
		}
		for _, im := range res.Images {
			if !strings.Contains(im.Detail, "decrypted with "+good.File+", every chunk authentic") || im.Files == 0 {
				t.Errorf("with the key, %s %s:%s: %+v", label, im.Host, im.Path, im)
			}
			if label == "TEST-002" && !strings.Contains(im.Detail, "(all 2 parts)") {
				t.Errorf("the image spanning TEST-001 and TEST-002 was not read whole: %s", im.Detail)
			}
		}
	}

	wrong, _ := crypt.NewIdentity()
	bad := crypttest.Identities(t, wrong)
	res = verify("TEST-003", bad)
	if res.Bad() != 1 {
		t.Fatalf("verify with a wrong key: %d bad:\n%s", res.Bad(), verifyDetails(res))
	}
	d := res.Images[0].Detail
	for _, want := range []string{"SHA-256 matches", bad.File, crypt.Fingerprint(wrong.Recipient().String()), "is not one of its recipients", crypt.Fingerprint(key.Recipient().String())} {
		if !strings.Contains(d, want) {
			t.Errorf("wrong key: %q lacks %q", d, want)
		}
	}

	// A flipped ciphertext byte in the middle of the L1's payload (past
	// its first chunk, inside the plaintext).
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot3", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("slot 3 holds %v", files)
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)-200] ^= 0x01
	os.WriteFile(files[0], b, 0o640)
	res = verify("TEST-003", nil)
	if res.Bad() != 1 || !strings.Contains(res.Images[0].Detail, "SHA-256 mismatch") {
		t.Errorf("flipped byte without a key:\n%s", verifyDetails(res))
	}
	res = verify("TEST-003", good)
	if d := res.Images[0].Detail; res.Bad() != 1 || !strings.Contains(d, "SHA-256 mismatch") || !strings.Contains(d, "; decrypting it: ") || !strings.Contains(d, "encrypted payload damaged: chunk 0 (payload bytes") {
		t.Errorf("flipped byte with the key:\n%s", verifyDetails(res))
	}
}

// TestVerifyEncryptedAgainstCatalog: the header's recipients and the age
// header at the start of the payload are checked against the catalog
// without a key; the catalog's frames against the plaintext with it.
func TestVerifyEncryptedAgainstCatalog(t *testing.T) {
	site, cfg, key := encryptedVerifySite(t)
	ctx := context.Background()
	db, err := sql.Open("sqlite3", site.CatalogDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// A frame of the L1 moved in the catalog: without a key nothing
	// reads the plaintext; with it the frame list is checked against it.
	exec(`UPDATE frames SET "offset" = "offset" + 1, size = size - 1 WHERE idx = 0 AND dump_id = (SELECT id FROM dumps WHERE level = 1)`)
	res, err := Verify(ctx, cfg, "TEST-003", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 {
		t.Errorf("a moved frame without a key:\n%s", verifyDetails(res))
	}
	res, err = VerifyWith(ctx, cfg, "TEST-003", VerifyOptions{Identities: crypttest.Identities(t, key)}, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || !strings.Contains(res.Images[0].Detail, "the catalog's frame 0 (payload offset 1) does not start a frame of the payload") {
		t.Errorf("a moved frame with the key:\n%s", verifyDetails(res))
	}
	exec(`UPDATE frames SET "offset" = "offset" - 1, size = size + 1 WHERE idx = 0 AND dump_id = (SELECT id FROM dumps WHERE level = 1)`)

	// The L1 gets the L0's age header in the catalog: a valid header, not
	// the one on the volume.
	exec(`UPDATE dumps SET crypt_header = (SELECT crypt_header FROM dumps WHERE level = 0 AND host = 'web1') WHERE level = 1`)
	res, err = Verify(ctx, cfg, "TEST-003", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || !strings.Contains(res.Images[0].Detail, "another age header than the one the catalog recorded") {
		t.Errorf("another age header in the catalog:\n%s", verifyDetails(res))
	}
	// Other recipients in the catalog.
	exec(`UPDATE dumps SET recipients = '0123456789abcdef' WHERE level = 1`)
	res, err = Verify(ctx, cfg, "TEST-003", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || !strings.Contains(res.Images[0].Detail, "header field recipients says ") || !strings.Contains(res.Images[0].Detail, "the catalog says 0123456789abcdef") {
		t.Errorf("other recipients in the catalog:\n%s", verifyDetails(res))
	}
	// No encryption in the catalog.
	exec(`UPDATE dumps SET encryption = 'none', recipients = '', crypt_header = NULL WHERE level = 1`)
	res, err = Verify(ctx, cfg, "TEST-003", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 1 || !strings.Contains(res.Images[0].Detail, "header field encryption says age, the catalog records no encryption") {
		t.Errorf("no encryption in the catalog:\n%s", verifyDetails(res))
	}
}

// TestVerifyPlainFrames: the catalog's frame list of a plain image is
// checked against its payload too (zstd frames, gzip members), and a
// frame past the end of the payload is named.
func TestVerifyPlainFrames(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	testsite.MakeTree(data)
	ctx := context.Background()
	srv := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	gz := testsite.DLE{Host: "web2", Path: "/etc", Root: filepath.Join(data, "etc"), Comp: image.CompGzip}
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{srv, gz}, testsite.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	site.Close()
	path := filepath.Join(dir, "tapir.toml")
	site.WriteConfig(path, srv, gz)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", site.CatalogDB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	verify := func() *VerifyResult {
		t.Helper()
		res, err := Verify(ctx, cfg, "TEST-001", Deps{Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verify(); res.Bad() != 0 {
		t.Fatalf("a good volume:\n%s", verifyDetails(res))
	}
	for _, tc := range []struct{ host, set, want string }{
		{"web1", `"offset" = "offset" + 3`, "does not start a frame of the payload"},
		{"web2", `"offset" = "offset" + 1`, "does not start a frame of the payload"},
		{"web1", `size = size + 1000000`, "past the"},
	} {
		q := `UPDATE frames SET ` + tc.set + ` WHERE dump_id = (SELECT id FROM dumps WHERE host = ?) AND idx = (SELECT max(idx) FROM frames f JOIN dumps d ON f.dump_id = d.id WHERE d.host = ?)`
		if _, err := db.Exec(q, tc.host, tc.host); err != nil {
			t.Fatal(err)
		}
		res := verify()
		found := false
		for _, im := range res.Images {
			if im.Host == tc.host && !im.OK && strings.Contains(im.Detail, "SHA-256 matches and the tar stream is whole") && strings.Contains(im.Detail, tc.want) {
				found = true
			}
		}
		if res.Bad() != 1 || !found {
			t.Errorf("%s: frame changed (%s):\n%s", tc.host, tc.set, verifyDetails(res))
		}
		undo := strings.NewReplacer("+ 3", "- 3", "+ 1000000", "- 1000000", "+ 1", "- 1").Replace(tc.set)
		if _, err := db.Exec(`UPDATE frames SET `+undo+` WHERE dump_id = (SELECT id FROM dumps WHERE host = ?) AND idx = (SELECT max(idx) FROM frames f JOIN dumps d ON f.dump_id = d.id WHERE d.host = ?)`, tc.host, tc.host); err != nil {
			t.Fatal(err)
		}
	}
	if res := verify(); res.Bad() != 0 {
		t.Fatalf("the volume again, the catalog repaired:\n%s", verifyDetails(res))
	}
}
