package rebuild

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/crypttest"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/taper"
)

// cryptAnswers is what a catalog says of the encryption of its images.
func cryptAnswers(t *testing.T, cat *catalog.Catalog) []string {
	t.Helper()
	dumps, err := cat.Dumps(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dumps {
		out = append(out, fmt.Sprintf("%s:%s L%d %s: %s %v %s", d.Host, d.Path, d.Level, d.Datestamp, d.Encryption, d.Recipients, hex.EncodeToString(d.CryptHeader)))
	}
	sort.Strings(out) // same-datestamp dumps come in id order
	return out
}

// encryptedSite: encrypted images as a night with client-side encryption
// leaves them: an L0 of three DLEs (zstd, gzip, and uncompressed in two
// parts on two volumes), an L1, an L2, and a gzip L1 left on the holding
// disk.
func encryptedSite(t *testing.T) (*testsite.Site, *age.X25519Identity) {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	key, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := crypt.NewIdentity()
	recips := []string{key.Recipient().String(), other.Recipient().String()}
	ctx := context.Background()
	srv := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	gz := testsite.DLE{Host: "web2", Path: "/etc", Root: filepath.Join(data, "etc"), Comp: image.CompGzip}
	none := testsite.DLE{Host: "db1", Path: "/home", Root: filepath.Join(data, "home"), Comp: image.CompNone}
	run := func(ds string, o crypttest.Options, dles ...testsite.DLE) {
		t.Helper()
		if _, err := crypttest.Run(ctx, site, ds, dles, recips, o); err != nil {
			t.Fatal(err)
		}
	}
	run("20250607010000", crypttest.Options{SplitAt: 70000}, srv, gz, none)
	testsite.Mutate(data)
	srv.Level = 1
	run("20250608010000", crypttest.Options{}, srv)
	os.Remove(filepath.Join(data, "home/carol/hello.txt"))
	srv.Level = 2
	run("20250609010000", crypttest.Options{}, srv)
	gz.Level = 1
	run("20250609020000", crypttest.Options{HoldingOnly: true}, gz)
	return site, key
}

func compare(t *testing.T, what string, got, want answers) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		g, w := gv.Field(i).Interface().([]string), wv.Field(i).Interface().([]string)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s differ:\n got %d: %s\nwant %d: %s", what, gv.Type().Field(i).Name, len(g), strings.Join(g, "\n     "), len(w), strings.Join(w, "\n     "))
		}
	}
}

// TestRebuildEncrypted: encrypted images come back without a key as dumps
// and parts (encryption, recipients and age header from the media, the
// SHA-256 of the ciphertext checked), without frames or file index, and
// the result says so; with a wrong key the same, counted as a wrong key;
// rebuilt again with the right identity, the catalog answers every
// question as the original did, the multi-part and holding images too.
func TestRebuildEncrypted(t *testing.T) {
	site, key := encryptedSite(t)
	ctx := context.Background()
	want := collect(t, site.Catalog)
	wantCrypt := cryptAnswers(t, site.Catalog)
	if len(want.Dumps) != 6 || len(want.Parts) != 6 {
		ds, _ := site.Catalog.Dumps(ctx, "", "")
		for _, d := range ds {
			t.Logf("%s:%s L%d %d", d.Host, d.Path, d.Level, d.PayloadSize)
		}
	}
	if len(want.Dumps) != 6 || len(want.Parts) != 6 || len(want.Finds) == 0 {
		t.Fatalf("the site has %d dumps, %d parts", len(want.Dumps), len(want.Parts))
	}
	for _, c := range wantCrypt {
		if !strings.Contains(c, ": age [") {
			t.Fatalf("test bug: an image is not encrypted: %s", c)
		}
	}
	site.Close()
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Remove(site.CatalogDB + suf)
	}
	ch, err := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	opt := Options{Catalog: site.CatalogDB, Changer: ch, Holding: []string{site.Holding}, Org: site.Org, Loc: time.UTC,
		Progress: func(s string) { lines = append(lines, s) }}
	open := func() *catalog.Catalog {
		t.Helper()
		cat, err := catalog.Open(site.CatalogDB)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cat.Close() })
		return cat
	}

	// Without a key.
	res, err := Rebuild(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dumps != 6 || res.Parts != 6 || res.Encrypted != 6 || len(res.NoIndex) != 6 || res.WrongKey != 0 || len(res.Problems) != 0 || res.Files != 0 {
		t.Fatalf("rebuild without a key: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	if !strings.Contains(res.NoIndex[0], "no identity given") || !strings.Contains(strings.Join(lines, "\n"), "encrypted; dump and parts recorded from") {
		t.Errorf("rebuild without a key says %q\n%s", res.NoIndex, strings.Join(lines, "\n"))
	}
	cat := open()
	got := collect(t, cat)
	if !reflect.DeepEqual(got.Parts, want.Parts) || !reflect.DeepEqual(got.Runs, want.Runs) || !reflect.DeepEqual(got.Volumes, want.Volumes) {
		t.Errorf("without a key, runs, volumes or parts differ:\n got %q\nwant %q", got, want)
	}
	if c := cryptAnswers(t, cat); !reflect.DeepEqual(c, wantCrypt) {
		t.Errorf("without a key, the encryption differs:\n got %q\nwant %q", c, wantCrypt)
	}
	dumps, _ := cat.Dumps(ctx, "", "")
	for _, d := range dumps {
		frames, _ := cat.Frames(ctx, d.ID)
		if len(frames) != 0 || d.Files != 0 || d.SHA256 == "" {
			t.Errorf("without a key, %s:%s L%d has %d frames, %d files, sha %q", d.Host, d.Path, d.Level, len(frames), d.Files, d.SHA256)
		}
	}
	if _, err := cat.FindFile(ctx, "web1", "/srv", "etc/passwd", ""); err == nil {
		t.Error("without a key, the rebuilt catalog finds a file: where did its index come from?")
	}
	cat.Close()

	// A wrong key: the same, and said.
	wrong, _ := crypt.NewIdentity()
	opt.Force = true
	opt.Identities = crypttest.Identities(t, wrong)
	lines = nil
	res, err = Rebuild(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dumps != 6 || res.Encrypted != 6 || res.WrongKey != 6 || len(res.NoIndex) != 6 || len(res.Problems) != 0 {
		t.Fatalf("rebuild with a wrong key: %+v", res)
	}
	fp := crypt.Fingerprint(wrong.Recipient().String())
	if n := res.NoIndex[0]; !strings.Contains(n, opt.Identities.File) || !strings.Contains(n, "is not one of its recipients") || !strings.Contains(n, fp) ||
		!strings.Contains(n, crypt.Fingerprint(key.Recipient().String())) {
		t.Errorf("rebuild with a wrong key says %q", n)
	}

	// The right key (in a file with the wrong one): everything back.
	opt.Identities = crypttest.Identities(t, wrong, key)
	lines = nil
	res, err = Rebuild(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dumps != 6 || res.Encrypted != 6 || res.WrongKey != 0 || len(res.NoIndex) != 0 || len(res.Problems) != 0 || res.Files == 0 {
		t.Fatalf("rebuild with the key: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	cat = open()
	compare(t, "rebuilt with the key", collect(t, cat), want)
	if c := cryptAnswers(t, cat); !reflect.DeepEqual(c, wantCrypt) {
		t.Errorf("with the key, the encryption differs:\n got %q\nwant %q", c, wantCrypt)
	}
}

// TestRebuildEncryptedDamage: a flipped ciphertext byte leaves the image
// out, with or without a key, naming it; the others are recorded.
func TestRebuildEncryptedDamage(t *testing.T) {
	site, key := encryptedSite(t)
	site.Close()
	ctx := context.Background()
	// The L2 of web1 is alone on slot 4.
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot4", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("slot 4 holds %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[image.HeaderSize+(len(b)-image.HeaderSize)/2] ^= 0x20
	os.WriteFile(files[0], b, 0o640)
	ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	for _, withKey := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", withKey), func(t *testing.T) {
			opt := Options{Catalog: filepath.Join(t.TempDir(), "new.db"), Changer: ch, Holding: []string{site.Holding}, Org: site.Org, Loc: time.UTC}
			if withKey {
				opt.Identities = crypttest.Identities(t, key)
			}
			res, err := Rebuild(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dumps != 5 || len(res.Problems) != 1 {
				t.Fatalf("result %+v, want 5 images and the damaged one left out", res)
			}
			p := res.Problems[0]
			wants := []string{"web1:/srv level 2 of 20250609010000: ", "the image is damaged"}
			if !withKey {
				wants = append(wants, "SHA-256")
			}
			for _, want := range wants {
				if !strings.Contains(p, want) {
					t.Errorf("problem %q lacks %q", p, want)
				}
			}
			if withKey && !strings.Contains(p, "chunk") {
				t.Errorf("with a key, the problem %q does not name the chunk that fails", p)
			}
		})
	}
}

// TestRebuildEncryptedFromTapes: through drives that read by records only
// (the age header read from the first records of part 1, the image in two
// parts on two volumes put together), with the key, the catalog answers
// as the original did.
func TestRebuildEncryptedFromTapes(t *testing.T) {
	site, key := encryptedSite(t)
	want := collect(t, site.Catalog)
	wantCrypt := cryptAnswers(t, site.Catalog)
	site.Close()
	ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	db := filepath.Join(t.TempDir(), "rebuilt.db")
	res, err := Rebuild(context.Background(), Options{Catalog: db, Changer: tapeChanger{ch}, Holding: []string{site.Holding}, Org: site.Org, Loc: time.UTC,
		Identities: crypttest.Identities(t, key)})
	if err != nil || res.Dumps != 6 || res.Encrypted != 6 || len(res.NoIndex) != 0 || len(res.Problems) != 0 {
		t.Fatalf("rebuild from tapes: %+v %v", res, err)
	}
	cat, err := catalog.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	compare(t, "rebuilt from tapes", collect(t, cat), want)
	if c := cryptAnswers(t, cat); !reflect.DeepEqual(c, wantCrypt) {
		t.Errorf("from tapes, the encryption differs:\n got %q\nwant %q", c, wantCrypt)
	}
}
