package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/rebuild"
	"github.com/tapir-backup/tapir/server/restore"
	"github.com/tapir-backup/tapir/taper"
)

// vtapeImages are the image files of a slot, in tape file order.
func vtapeImages(t *testing.T, s *site, slot int) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.cfg.Changer.Path, "slot"+strconv.Itoa(slot), "0000[1-9].*"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no image on slot %d", slot)
	}
	return files
}

// TestVerifyAndRebuildRefuseDamagedHeaders: after a night, one byte is
// changed in a field of an image header on the vtape (the level, a
// datestamp digit, a payload checksum digit, a size digit, a restore line,
// the padding). For each, Verify reports the image BAD naming what changed
// (from the header's checksum and, field by field, from the catalog),
// a restore of a file of it fails with the checksum error, and a rebuild
// of the catalog from the volumes leaves it out instead of recording it.
func TestVerifyAndRebuildRefuseDamagedHeaders(t *testing.T) {
	s := newSite(t, "")
	s.cfg.TapeWholeImages = true // the header's sizes and checksum are known
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil || res.Bad() != 0 || len(res.Images) != 2 {
		t.Fatalf("verify of a good volume: %+v %v", res, err)
	}
	// The full of the data DLE (not the gz one of its sub directory).
	var file string
	var good []byte
	for _, f := range vtapeImages(t, s, 1) {
		b, _ := os.ReadFile(f)
		h, err := image.ParseHeader(b[:image.HeaderSize])
		if err != nil {
			t.Fatal(err)
		}
		if h.Path == s.data {
			file, good = f, b
			// The fields the cases change are known in the header.
			if h.SHA256 == "" || h.PayloadSize == image.Unknown || h.Level != 0 {
				t.Fatalf("header of %s: %+v", f, h)
			}
		}
	}
	if file == "" {
		t.Fatal("no image of the data DLE on the volume")
	}
	fileNo, _ := strconv.ParseInt(filepath.Base(file)[:5], 10, 64)
	text := string(good[:bytes.IndexByte(good, 0)])
	at := func(sub string, i int) int {
		j := strings.Index(text, sub)
		if j < 0 {
			t.Fatalf("test bug: %q not in the header:\n%s", sub, text)
		}
		return j + i
	}
	ds := text[len(image.FileMagic):][:14]
	shaOff, shaTo := at("\nsha256: ", 30), byte('0') // another hex digit
	if good[shaOff] == '0' {
		shaTo = '1'
	}
	cases := []struct {
		name string
		off  int
		to   byte     // 0: flip the lowest bit
		want []string // in the verdict
	}{
		{"level", at(" lev 0 ", 5), '1', []string{"checksum mismatch", "line 1 (level)", `reads "1" where "0" was written`, "header field level says 1, the catalog says 0"}},
		{"datestamp", at(ds, 13), 0, []string{"checksum mismatch", "line 1 (datestamp)", "header field datestamp says"}},
		{"payload sha256", shaOff, shaTo, []string{"checksum mismatch", "line 4 (sha256)", "header field sha256 says"}},
		{"payload size", at("\npayload-size: ", 17), 0, []string{"checksum mismatch", "line 3 (payload-size)", "header field payload-size says"}},
		{"restore line", at("To restore from tape", 3), 0, []string{"checksum mismatch", "restore instructions"}},
		{"padding", image.HeaderSize - 100, 'x', []string{"checksum mismatch", "padding at offset 32668"}},
	}
	ch, err := taper.NewDiskChanger(s.cfg.Changer.Path, s.cfg.Changer.Slots, 1<<30, 64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	vols, err := VolumeSource(s.cfg, Deps{}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			if tc.to == 0 {
				b[tc.off] ^= 1
			} else {
				b[tc.off] = tc.to
			}
			if err := os.WriteFile(file, b, 0o640); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(file, good, 0o640)

			res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Bad() != 1 {
				t.Errorf("%d bad, want 1: %+v", res.Bad(), res.Images)
			}
			for _, im := range res.Images {
				if im.FileNo != fileNo {
					continue
				}
				if im.OK || im.Orphan || im.Level != 0 || im.Path != s.data {
					t.Errorf("verdict %+v", im)
				}
				for _, w := range tc.want {
					if !strings.Contains(im.Detail, w) {
						t.Errorf("verdict %q\nwant it to contain %q", im.Detail, w)
					}
				}
			}

			// A restore of a file of the image refuses it.
			_, err = restore.File(context.Background(), s.cfg, restore.Request{Host: "localhost", Path: s.data, File: "etc/passwd", To: t.TempDir(), Volumes: vols}, testLogger(t))
			if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Errorf("restore from the damaged image: %v", err)
			}

			// A rebuild leaves it out and says where and what.
			db := filepath.Join(t.TempDir(), "rebuilt.db")
			rb, err := rebuild.Rebuild(context.Background(), rebuild.Options{Catalog: db, Changer: ch, Org: s.cfg.Org})
			if err != nil {
				t.Fatal(err)
			}
			if rb.Dumps != 1 || len(rb.Problems) != 1 || !strings.Contains(rb.Problems[0], "volume test-001 file "+strconv.FormatInt(fileNo, 10)+": image NOT RECORDED") ||
				!strings.Contains(rb.Problems[0], tc.want[1]) {
				t.Errorf("rebuild: %d images, problems %q", rb.Dumps, rb.Problems)
			}
			cat, err := catalog.Open(db)
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			if dumps, _ := cat.Dumps(t.Context(), "localhost", s.data); len(dumps) != 0 {
				t.Errorf("the rebuilt catalog records the damaged image: %+v", dumps)
			}
		})
	}
	// A header that matches its checksum but not the catalog (another
	// image written there): every differing field is named.
	h, _ := image.ParseHeader(good[:image.HeaderSize])
	h.Level, h.FrameSize, h.Files = 2, h.FrameSize*2, h.Files+1
	hb, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, append(hb, good[image.HeaderSize:]...), 0o640)
	res, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range res.Images {
		if im.FileNo == fileNo {
			want := "the header does not match the catalog: header field level says 2, the catalog says 0; header field frame-size says 131072, the catalog says 65536; header field files says"
			if im.OK || !strings.HasPrefix(im.Detail, want) {
				t.Errorf("verdict %q\nwant it to start %q", im.Detail, want)
			}
		}
	}
	os.WriteFile(file, good, 0o640)
	// Whole again: OK.
	if res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)}); err != nil || res.Bad() != 0 {
		t.Fatalf("verify after the repair: %+v %v", res, err)
	}
}

// TestVerifyOrphansAndFailedWrites: a tape file the catalog does not know
// is an ORPHAN (never OK, counted as bad); once the catalog records it as
// a failed write it is listed as such and not counted; a part the catalog
// records on a file the volume lacks is MISSING.
func TestVerifyOrphansAndFailedWrites(t *testing.T) {
	s := newSite(t, "")
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	files := vtapeImages(t, s, 1)
	// A copy of the first image as file 3: a complete image the catalog
	// does not have there.
	b, _ := os.ReadFile(files[0])
	orphan := filepath.Join(filepath.Dir(files[0]), "00003.orphan")
	if err := os.WriteFile(orphan, b, 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 3 || res.Bad() != 1 || res.Orphans() != 1 {
		t.Fatalf("verify with an orphan: %+v", res.Images)
	}
	if im := res.Images[2]; im.FileNo != 3 || im.OK || !im.Orphan || !strings.Contains(im.Detail, "not in the catalog") || !strings.Contains(im.Detail, "tapir admin rebuild") {
		t.Errorf("orphan: %+v", im)
	}
	cat := s.catalog(t)
	if err := cat.RecordFailedFile(t.Context(), catalog.FailedFile{Volume: "test-001", FileNo: 3, Datestamp: "20250607010000", Host: "localhost", Path: s.data, Level: 0, Reason: "volume full"}); err != nil {
		t.Fatal(err)
	}
	res, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bad() != 0 || res.Orphans() != 0 {
		t.Fatalf("verify with a recorded failed write: %+v", res.Images)
	}
	if im := res.Images[2]; !im.FailedWrite || im.Detail != "failed write recorded 20250607010000 (volume full)" {
		t.Errorf("failed write: %+v", im)
	}
	// The last image's file gone: the catalog's part is missing.
	os.Remove(orphan)
	last := files[len(files)-1]
	os.Remove(last)
	res, err = Verify(context.Background(), s.cfg, "test-001", Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	missing := false
	for _, im := range res.Images {
		if im.Missing && !im.OK && strings.Contains(im.Detail, "MISSING") {
			missing = true
		}
	}
	if !missing || res.Bad() == 0 {
		t.Errorf("verify without the last file: %+v", res.Images)
	}
}

// TestDamagedLabel: a flipped byte in a volume's label makes the volume
// unreadable: the inventory says so with the checksum error, a night does
// not write it (nor believe it blank), and tapir label overwrites it only
// with --force.
func TestDamagedLabel(t *testing.T) {
	s := newSite(t, "")
	s.cfg.Changer.Slots = 1
	if _, out, err := s.night(t, Deps{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p := filepath.Join(s.cfg.Changer.Path, "slot1", "00000.LABEL")
	b, _ := os.ReadFile(p)
	b[bytes.Index(b, []byte("test-001"))+7] ^= 1 // test-000 if it were believed
	os.WriteFile(p, b, 0o640)
	slots, _, err := TapeInventory(t.Context(), s.cfg, Deps{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 1 || !strings.HasPrefix(slots[0].State, "unreadable: ") || !strings.Contains(slots[0].State, "label checksum mismatch") || !strings.Contains(slots[0].State, "line 1 (label)") {
		t.Errorf("inventory: %+v", slots)
	}
	before, _ := os.ReadDir(filepath.Dir(p))
	rep, out, _ := s.night(t, Deps{})
	if rep == nil || rep.Degraded == nil || !strings.Contains(out, "unreadable") {
		t.Errorf("a night with only a damaged volume:\n%s", out)
	}
	if after, _ := os.ReadDir(filepath.Dir(p)); len(after) != len(before) {
		t.Errorf("the night wrote on the damaged volume: %d files, then %d", len(before), len(after))
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-002", Slot: 1}, Deps{}); err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("label over a damaged label: %v", err)
	}
	if _, err := Label(t.Context(), s.cfg, LabelOptions{Label: "test-002", Slot: 1, Force: true}, Deps{}); err != nil {
		t.Errorf("forced label over a damaged label: %v", err)
	}
}
