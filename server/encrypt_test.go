package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/report"
)

// testKey is an age identity written to a file as tapir key new writes it.
type testKey struct {
	id   *age.X25519Identity
	file string
	rcpt string
	fp   string
}

func newTestKey(t *testing.T, dir string) *testKey {
	t.Helper()
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "backup.key")
	if err := crypt.WriteIdentityFile(file, crypt.IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	r := id.Recipient().String()
	return &testKey{id: id, file: file, rcpt: r, fp: crypt.Fingerprint(r)}
}

// encryptDumptype makes the dumptype name of the site encrypt (mode
// client or server) to the keys.
func (s *site) encryptDumptype(name, mode string, keys ...*testKey) {
	dt := s.cfg.Dumptypes[name]
	dt.Encrypt = mode
	dt.Recipients, dt.AgeRecipients = nil, nil
	for _, k := range keys {
		dt.Recipients = append(dt.Recipients, k.rcpt)
		dt.AgeRecipients = append(dt.AgeRecipients, k.rcpt)
	}
	s.cfg.Dumptypes[name] = dt
}

// imageFiles returns the vtape files of the images of DLE path (every
// part), oldest first.
func imageFiles(t *testing.T, s *site, path string) []string {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot*", "0*"))
	var out []string
	for _, f := range all {
		h, err := readFileHeader(f)
		if err != nil || h.Path != path {
			continue
		}
		out = append(out, f)
	}
	// Glob order (slot, then tape file) breaks ties: a copy written
	// again after a cut one comes after it.
	sort.SliceStable(out, func(i, j int) bool {
		hi, _ := readFileHeader(out[i])
		hj, _ := readFileHeader(out[j])
		if hi.Datestamp != hj.Datestamp {
			return hi.Datestamp < hj.Datestamp
		}
		return hi.Part < hj.Part
	})
	return out
}

func readFileHeader(path string) (*image.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return image.ReadHeader(f)
}

// checkEncryptedImages checks every image of path on the vtapes: the
// header says age and the key's fingerprint, and the SHA-256 in the
// header and the catalog is of the bytes on the volume (the ciphertext),
// which is an age file.
func checkEncryptedImages(t *testing.T, s *site, path string, k *testKey) []string {
	t.Helper()
	files := imageFiles(t, s, path)
	if len(files) == 0 {
		t.Fatalf("no image of %s on the vtapes", path)
	}
	cat := s.catalog(t)
	dumps, err := cat.Dumps(t.Context(), "localhost", path)
	if err != nil {
		t.Fatal(err)
	}
	nparts := map[string]int{}
	for _, f := range files {
		if h, err := readFileHeader(f); err == nil {
			nparts[h.Datestamp+"/"+fmt.Sprint(h.Level)]++
		}
	}
	checked := 0
	for _, f := range files {
		h, err := readFileHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		if h.Encryption != image.EncAge || strings.Join(h.Recipients, " ") != k.fp {
			t.Errorf("%s: header encryption %q recipients %v, want age and %s", f, h.Encryption, h.Recipients, k.fp)
		}
		if nparts[h.Datestamp+"/"+fmt.Sprint(h.Level)] > 1 {
			continue // a part's bytes are a piece of the payload
		}
		var d *catalog.Dump
		for i := range dumps {
			if dumps[i].Datestamp == h.Datestamp && dumps[i].Level == h.Level && dumps[i].Status == catalog.DumpGood {
				d = &dumps[i]
			}
		}
		if d == nil {
			t.Errorf("%s: no good catalog dump of level %d %s", f, h.Level, h.Datestamp)
			continue
		}
		if !d.Encrypted() || strings.Join(d.Recipients, " ") != k.fp {
			t.Errorf("catalog dump %d: encryption %q recipients %v, want age and %s", d.ID, d.Encryption, d.Recipients, k.fp)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		payload := b[image.HeaderSize:]
		if int64(len(payload)) < d.PayloadSize {
			t.Fatalf("%s: %d payload bytes, the catalog says %d", f, len(payload), d.PayloadSize)
		}
		payload = payload[:d.PayloadSize]
		sum := sha256.Sum256(payload)
		got := hex.EncodeToString(sum[:])
		if got != d.SHA256 {
			t.Errorf("%s: catalog SHA-256 %s, the bytes on the volume %s", f, d.SHA256, got)
		}
		// A header written before the image was whole (taped while
		// dumped) leaves the sums unknown.
		if h.SHA256 != "" && (h.SHA256 != got || h.PayloadSize != d.PayloadSize) {
			t.Errorf("%s: header SHA-256 %s size %d, the bytes on the volume %s size %d", f, h.SHA256, h.PayloadSize, got, d.PayloadSize)
		}
		if !bytes.HasPrefix(payload, []byte("age-encryption.org/v1\n")) {
			t.Errorf("%s: the payload is not an age file: %q", f, payload[:min(len(payload), 32)])
		}
		if len(d.CryptHeader) == 0 || !bytes.HasPrefix(payload, d.CryptHeader) {
			t.Errorf("catalog dump %d: the age header kept (%d bytes) is not the payload's start", d.ID, len(d.CryptHeader))
		}
		checked++

	}
	if checked == 0 && len(nparts) == len(files) {
		t.Errorf("no whole image of %s checked", path)
	}
	return files
}

// restoreWithCLIs restores images (each a list of part files, in order)
// into dest with dd | age -d -i KEY | zstd -dc | tar, as the header's
// restore lines say.
func restoreWithCLIs(t *testing.T, key string, dest string, images ...[]string) {
	t.Helper()
	for _, tool := range []string{"dd", "age", "zstd", "tar", "diff"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; scripts/test installs it", tool)
		}
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, parts := range images {
		var cmd strings.Builder
		cmd.WriteString("(")
		for _, p := range parts {
			fmt.Fprintf(&cmd, "dd if='%s' bs=32k skip=1 status=none; ", p)
		}
		fmt.Fprintf(&cmd, ") | age -d -i '%s' | zstd -dc | tar --listed-incremental=/dev/null -xpf - -C '%s'", key, dest)
		if b, err := exec.Command("sh", "-c", cmd.String()).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd.String(), err, b)
		}
	}
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	if b, err := exec.Command("diff", "-r", "--no-dereference", want, got).CombinedOutput(); err != nil {
		t.Errorf("diff -r %s %s: %v\n%s", want, got, err, b)
	}
}

// The chain of client-side encrypted images (L0, L1, L2 of a changing
// tree) restores with dd | age -d | zstd -dc | tar alone, deletions
// applied; every image names its recipients and its SHA-256 is of the
// ciphertext.
func TestEncryptedChainRestoresWithStandardTools(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptClient, k)
	s.cfg.DLEs = s.cfg.DLEs[:1]
	s.cfg.Bumpdays, s.cfg.Bumpsize, s.cfg.Bumppercent = 1, 1, 0
	night := func(want int) {
		t.Helper()
		rep, out, err := s.night(t, Deps{})
		if err != nil {
			t.Fatalf("night: %v\n%s", err, out)
		}
		if d := rep.DLEs[0]; d.Level != want || d.Status != "OK" {
			t.Fatalf("night dumped level %d (%s %s), want level %d OK\n%s", d.Level, d.Status, d.Reason, want, out)
		}
	}
	night(0)
	// Night 2: a file added, one changed, one deleted.
	mt := time.Now().Add(time.Hour)
	randomFiles(t, filepath.Join(s.data, "added"), 2, 256<<10)
	os.WriteFile(filepath.Join(s.data, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nnew:x:1:1::/:/bin/false\n"), 0o644)
	os.Chtimes(filepath.Join(s.data, "etc/passwd"), mt, mt)
	os.Remove(filepath.Join(s.data, "empty.txt"))
	night(1)
	// Night 3: more changes, one deletion, a rename.
	mt = mt.Add(time.Hour)
	os.WriteFile(filepath.Join(s.data, "etc/shadow"), []byte("root:!:19001:0:99999:7:::\n"), 0o600)
	os.Chtimes(filepath.Join(s.data, "etc/shadow"), mt, mt)
	os.Remove(filepath.Join(s.data, "added", "fa0"))
	os.Rename(filepath.Join(s.data, "bin/run.sh"), filepath.Join(s.data, "bin/run2.sh"))
	night(2)

	files := checkEncryptedImages(t, s, s.data, k)
	if len(files) != 3 {
		t.Fatalf("%d images of %s on the vtapes, want 3: %v", len(files), s.data, files)
	}
	for i, f := range files {
		if h, _ := readFileHeader(f); h.Level != i {
			t.Fatalf("image %d is level %d, want %d", i, h.Level, i)
		}
	}
	dest := filepath.Join(s.dir, "restored")
	restoreWithCLIs(t, k.file, dest, []string{files[0]}, []string{files[1]}, []string{files[2]})
	sameTree(t, s.data, dest)
	if _, err := os.Stat(filepath.Join(dest, "added", "fa0")); !os.IsNotExist(err) {
		t.Errorf("the file deleted before the level 2 was restored: %v", err)
	}

	// The age CLI with another key refuses, and nothing of the tree
	// comes out of the pipeline.
	other := newTestKey(t, filepath.Join(t.TempDir(), "other"))
	cmd := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | age -d -i '%s' > /dev/null", files[0], other.file))
	if b, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("age -d with a key that is not a recipient succeeded: %s", b)
	}
}

// Server-side encryption: the agent sends the usual payload, checked as
// always; what is on the volume is an age file of it, named in the header
// and the catalog (one level is enough, and the plain DLE beside it stays
// plain).
func TestServerSideEncryption(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptServer, k)
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	for _, d := range rep.DLEs {
		if d.Status != "OK" {
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	files := checkEncryptedImages(t, s, s.data, k)
	dest := filepath.Join(s.dir, "restored")
	restoreWithCLIs(t, k.file, dest, files)
	sameTree(t, s.data, dest)
	// The gz DLE is not encrypted.
	sub := imageFiles(t, s, filepath.Join(s.data, "sub"))
	if h, err := readFileHeader(sub[0]); err != nil || h.Encryption != "none" || len(h.Recipients) != 0 {
		t.Errorf("the plain DLE's header: %+v %v", h, err)
	}
}

// Server-side encryption with server-side compression: the agent sends
// plain tar; the server cuts the frames, compresses and encrypts.
func TestServerSideEncryptionServerZstd(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptServer, k)
	dt := s.cfg.Dumptypes["default"]
	dt.Compress = config.CompressServerZstd
	s.cfg.Dumptypes["default"] = dt
	s.cfg.DLEs = s.cfg.DLEs[:1]
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	files := checkEncryptedImages(t, s, s.data, k)
	dest := filepath.Join(s.dir, "restored")
	restoreWithCLIs(t, k.file, dest, files)
	sameTree(t, s.data, dest)
}

// A client-side encrypted image larger than a volume is cut into parts
// of its ciphertext: the parts, fed in order to age -d, restore it; so
// does a server-side one written straight to the volumes.
func TestEncryptedSpanningImage(t *testing.T) {
	for _, tc := range []struct {
		mode, holding string
	}{
		{config.EncryptClient, "auto"},
		{config.EncryptClient, "never"},
		{config.EncryptServer, "never"},
		{config.EncryptServer, "auto"},
	} {
		t.Run(tc.mode+"/holding="+tc.holding, func(t *testing.T) {
			s := newSite(t, "")
			k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
			dt := config.DefaultDumptype()
			dt.FrameSize = 64 << 10
			dt.Strategy = "noinc"
			dt.Holding = tc.holding
			s.cfg.Dumptypes["big"] = dt
			s.encryptDumptype("big", tc.mode, k)
			s.dles(t, "big", 6, 1<<20, "big") // 6 MiB of random bytes
			tt := s.cfg.Tapetypes["small"]
			tt.Length = 4 << 20
			s.cfg.Tapetypes["small"] = tt
			s.cfg.Runtapes, s.cfg.Tapecycle, s.cfg.Changer.Slots = 3, 1, 6
			rep, out, err := s.night(t, Deps{})
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(rep.Volumes) < 2 || !strings.Contains(out, "spans") {
				t.Fatalf("volumes %+v\n%s", rep.Volumes, out)
			}
			src := s.cfg.DLEs[0].Path
			parts := checkEncryptedImages(t, s, src, k)
			if len(parts) < 2 {
				t.Fatalf("%d parts on the vtapes", len(parts))
			}
			// The parts together are the ciphertext the catalog hashed.
			cat := s.catalog(t)
			good, _ := cat.DumpsWithStatus(t.Context(), catalog.DumpGood)
			if len(good) != 1 {
				t.Fatalf("good dumps: %+v", good)
			}
			cparts, _ := cat.Parts(t.Context(), good[0].ID)
			h := sha256.New()
			for i, p := range parts {
				b, _ := os.ReadFile(p)
				h.Write(b[image.HeaderSize : image.HeaderSize+cparts[i].Length])
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != good[0].SHA256 {
				t.Errorf("the parts' bytes hash to %s, the catalog says %s", got, good[0].SHA256)
			}
			dest := filepath.Join(s.dir, "restored")
			restoreWithCLIs(t, k.file, dest, parts)
			sameTree(t, src, dest)
		})
	}
}

// The recipients of a DLE changed between its full and an incremental:
// the report warns (notes and the DLE, text and JSON) and so does tapir
// check; a DLE that switches from plain to encrypted too.
func TestRecipientsChangedWarns(t *testing.T) {
	s := newSite(t, "")
	k1 := newTestKey(t, filepath.Join(t.TempDir(), "k1"))
	k2 := newTestKey(t, filepath.Join(t.TempDir(), "k2"))
	s.encryptDumptype("default", config.EncryptClient, k1)
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night 1: %v\n%s", err, out)
	}
	// Unchanged: no warning.
	if c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{}); len(c.Warnings) != 0 {
		t.Fatalf("check warns with unchanged recipients: %v", c.Warnings)
	}
	s.encryptDumptype("default", config.EncryptClient, k2)
	s.encryptDumptype("gz", config.EncryptServer, k1, k2)
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		t.Fatalf("night 2: %v\n%s", err, out)
	}
	var main, sub []string
	for _, d := range rep.DLEs {
		if d.Level == 0 {
			t.Fatalf("night 2 dumped a full of %s: the test needs incrementals", d.Path)
		}
		if d.Path == s.data {
			main = d.Warnings
		} else {
			sub = d.Warnings
		}
	}
	want := fmt.Sprintf("recipients of localhost:%s changed since its full of %s (was %s, now %s): restoring the chain needs the old keys too; `tapir admin force localhost %s` starts a chain under the new keys",
		s.data, firstDatestamp(t, s, s.data), k1.fp, k2.fp, s.data)
	if len(main) != 1 || main[0] != want {
		t.Errorf("warnings of %s: %q\nwant %q", s.data, main, want)
	}
	if len(sub) != 1 || !strings.Contains(sub[0], "is encrypted now") || !strings.Contains(sub[0], "tapir admin force localhost") {
		t.Errorf("warnings of the DLE that became encrypted: %q", sub)
	}
	if !strings.Contains(out, "NOTES:") || !strings.Contains(out, "warning: localhost "+s.data+" lev 1: "+want) {
		t.Errorf("the text report's notes do not carry the warning:\n%s", out)
	}
	js, err := rep.JSON()
	if err != nil || !bytes.Contains(js, []byte(`"warnings": [`)) || !bytes.Contains(js, []byte(k2.fp)) {
		t.Errorf("the JSON report does not carry the warning: %v\n%s", err, js)
	}
	c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{})
	if len(c.Warnings) != 2 || c.Warnings[0] != want {
		t.Errorf("check warnings %q, want 2, the first %q", c.Warnings, want)
	}
	if txt := c.Text(); !strings.Contains(txt, "WARNING: "+want) {
		t.Errorf("check text:\n%s", txt)
	}
}

// firstDatestamp is the datestamp of the full of path.
func firstDatestamp(t *testing.T, s *site, path string) string {
	t.Helper()
	d, err := s.catalog(t).LastFull(t.Context(), "localhost", path)
	if err != nil || d == nil {
		t.Fatalf("last full of %s: %v %v", path, d, err)
	}
	return d.Datestamp
}

// tapir check --identity proves that a key opens the newest image of each
// encrypted DLE (decrypting its first and last chunks from the volume or
// the holding disk), and names the fingerprints when it does not.
func TestCheckIdentity(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptClient, k)
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	check := func(identity string) *reportCheck {
		t.Helper()
		c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{Identity: identity})
		return &reportCheck{problems: problemsText(c.Problems), info: strings.Join(c.Info, "\n")}
	}
	c := check(k.file)
	if c.problems != "" {
		t.Fatalf("check --identity with the right key: problems\n%s", c.problems)
	}
	wantOpen := fmt.Sprintf("The key in %s opens the level 0 image %s of localhost:%s (first and last chunk decrypted from", k.file, firstDatestamp(t, s, s.data), s.data)
	if !strings.Contains(c.info, wantOpen) {
		t.Errorf("check info does not say the key opens the image:\n%s\nwant %q", c.info, wantOpen)
	}

	other := newTestKey(t, filepath.Join(t.TempDir(), "other"))
	c = check(other.file)
	want := fmt.Sprintf("the key in %s is not a recipient of the level 0 image %s of localhost:%s: its fingerprint is %s, the image's are %s", other.file, firstDatestamp(t, s, s.data), s.data, other.fp, k.fp)
	if !strings.Contains(c.problems, want) {
		t.Errorf("check with another key:\n%s\nwant %q", c.problems, want)
	}

	// A key file others may read is refused.
	loose := filepath.Join(t.TempDir(), "loose.key")
	b, _ := os.ReadFile(k.file)
	os.WriteFile(loose, b, 0o644)
	os.Chmod(loose, 0o644)
	if c = check(loose); !strings.Contains(c.problems, "chmod 600") {
		t.Errorf("check with a 0644 key file:\n%s", c.problems)
	}

	// A flipped byte in the image's last chunk on the volume: the key
	// still opens the header, the chunk fails, the image is named.
	files := imageFiles(t, s, s.data)
	fb, _ := os.ReadFile(files[0])
	h, _ := readFileHeader(files[0])
	at := image.HeaderSize + h.PayloadSize - 5
	fb[at] ^= 0x40
	os.WriteFile(files[0], fb, 0o640)
	c = check(k.file)
	if !strings.Contains(c.problems, "the key opens the age header of the level 0 image") || !strings.Contains(c.problems, "damaged") {
		t.Errorf("check of a damaged image:\n%s", c.problems)
	}
}

type reportCheck struct{ problems, info string }

func problemsText(ps []report.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s: %s\n", p.Where, p.What)
	}
	return b.String()
}

// Encrypted images left on the holding disk by a night without a volume
// are flushed as they are (the server needs no key): tapir check
// --identity opens them on the holding disk, and once flushed they
// restore with the standard tools.
func TestEncryptedLeftoversFlushed(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptClient, k)
	s.encryptDumptype("gz", config.EncryptServer, k)
	path, auto := s.cfg.Changer.Path, s.cfg.Autolabel
	s.cfg.Changer.Path, s.cfg.Autolabel = filepath.Join(s.dir, "blank-vtapes"), ""
	s.cfg.Reserve = 0
	_, out, err := s.night(t, Deps{})
	s.cfg.Changer.Path, s.cfg.Autolabel = path, auto
	if n := len(holdingFiles(t, s)); n != 2 {
		t.Fatalf("degraded night left %d holding files, want 2: %v\n%s", n, err, out)
	}
	c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{Identity: k.file})
	if opened := strings.Count(strings.Join(c.Info, "\n"), "(first and last chunk decrypted from holding file "+s.cfg.Holding[0].Path); opened != 2 {
		t.Errorf("check --identity opened %d holding images, want 2:\n%s\n%s", opened, strings.Join(c.Info, "\n"), problemsText(c.Problems))
	}
	var fout bytes.Buffer
	if _, err := Flush(context.Background(), s.cfg, FlushOptions{}, Deps{Log: testLogger(t), Out: &fout}); err != nil {
		t.Fatalf("flush: %v\n%s", err, fout.String())
	}
	if left := holdingFiles(t, s); len(left) != 0 {
		t.Errorf("holding not empty after flush: %v", left)
	}
	for _, src := range []string{s.data, filepath.Join(s.data, "sub")} {
		files := checkEncryptedImages(t, s, src, k)
		h, _ := readFileHeader(files[0])
		if h.Comp != image.CompZstd {
			// the gz DLE: restore with gzip
			dest := filepath.Join(s.dir, "restored-gz")
			os.MkdirAll(dest, 0o755)
			cmd := exec.Command("sh", "-c", fmt.Sprintf("dd if='%s' bs=32k skip=1 status=none | age -d -i '%s' | gzip -dc | tar -xpf - -C '%s'", files[0], k.file, dest))
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			sameTree(t, src, dest)
			continue
		}
		dest := filepath.Join(s.dir, "restored")
		restoreWithCLIs(t, k.file, dest, files)
		sameTree(t, src, dest)
	}
}

// With a single tape drive, tapir check --identity proves the key on the
// age header the catalog keeps and asks nobody to insert a tape: the
// chunks are not read, and it says so.
func TestCheckIdentitySingleDrive(t *testing.T) {
	s, drive := singleDriveSite(t, 64<<20, "TAPE01")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	s.encryptDumptype("default", config.EncryptClient, k)
	s.cfg.DLEs = s.cfg.DLEs[:1]
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("night: %v\n%s", err, out)
	}
	drive.Eject()
	drive.Remove()
	drive.ResetTrace()
	c := Check(context.Background(), s.cfg, Deps{Log: testLogger(t)}, CheckOptions{Identity: k.file})
	info := strings.Join(c.Info, "\n")
	if !strings.Contains(info, "The key in "+k.file+" opens the level 0 image") || !strings.Contains(info, "which a person would have to insert") {
		t.Errorf("check --identity with the tape out of the drive:\n%s\n%s", info, problemsText(c.Problems))
	}
	for _, p := range c.Problems {
		if strings.Contains(p.What, "insert") {
			t.Errorf("check asked for a tape: %v", p)
		}
	}
}

// Kill -9 of the server in the middle of an encrypted night (client-side
// for two DLEs, server-side for the slow one): the next night flushes the
// encrypted images that were complete on the holding disk, drops the
// partial one, dumps it again, and every image restores with the key.
func TestKilledEncryptedRun(t *testing.T) {
	s := newSite(t, "")
	k := newTestKey(t, filepath.Join(t.TempDir(), "keys"))
	raw := config.DefaultDumptype()
	raw.Strategy = "noinc"
	raw.FrameSize = 64 << 10
	slow := raw
	slow.Bandwidth = 256 << 10 // still dumping when the server dies
	s.cfg.Dumptypes["raw"], s.cfg.Dumptypes["slow"] = raw, slow
	s.encryptDumptype("raw", config.EncryptClient, k)
	s.encryptDumptype("slow", config.EncryptServer, k)
	s.dles(t, "raw", 3, 1<<20, "a", "b", "c")
	s.cfg.DLEs[2].Dumptype = "slow"
	s.cfg.Inparallel = 3
	saveConfig(t, s)
	cmd, childOut := startStalledNight(t, s)
	hold := s.cfg.Holding[0].Path
	childOut.waitFor(t, func(log string) bool {
		return countMsg(log, "dumped to holding") >= 2 && strings.Contains(log, childStalled)
	})
	waitFiles(t, func() bool {
		fs, _ := filepath.Glob(filepath.Join(hold, "*", "*"))
		n, tmp := 0, 0
		for _, f := range fs {
			if strings.HasSuffix(f, ".tmp") {
				tmp++
			} else {
				n++
			}
		}
		return n == 2 && tmp == 1
	}, hold)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s.cfg.Autoflush = true
	slow.Bandwidth = 0
	s.cfg.Dumptypes["slow"] = slow
	s.encryptDumptype("slow", config.EncryptServer, k)
	rep, out, err := s.night(t, Deps{})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(s.dir, "child.log"))
		t.Fatalf("night after the kill: %v\n%s\nchild:\n%s", err, out, b)
	}
	flushed := 0
	for _, d := range rep.DLEs {
		if d.Flushed != "" {
			flushed++
		}
		if d.Status != report.StatusOK {
			t.Errorf("%s: %s %s", d.Path, d.Status, d.Reason)
		}
	}
	if flushed != 2 || !strings.Contains(out, "removed partial holding file") {
		t.Errorf("%d images flushed, want 2, and the partial one removed:\n%s", flushed, out)
	}
	assertGoodMeansOnVolume(t, s)
	for _, d := range s.cfg.DLEs {
		files := checkEncryptedImages(t, s, d.Path, k)
		dest := filepath.Join(s.dir, "restored", filepath.Base(d.Path))
		restoreWithCLIs(t, k.file, dest, files[len(files)-1:])
		sameTree(t, d.Path, dest)
	}
}
