package rebuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/taper"
)

// answers is what a catalog says about a site, without ids and times.
type answers struct {
	Runs    []string
	Volumes []string
	Dumps   []string
	Parts   []string
	Frames  []string
	Finds   []string
	Lists   []string
	Views   []string
}

func collect(t *testing.T, cat *catalog.Catalog) answers {
	t.Helper()
	var a answers
	runs, err := cat.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		a.Runs = append(a.Runs, r.Datestamp)
	}
	vols, _ := cat.Volumes(t.Context())
	for _, v := range vols {
		a.Volumes = append(a.Volumes, fmt.Sprintf("%s slot %d bs %d written %s bytes %d", v.Label, v.Slot, v.Blocksize, v.Written, v.Bytes))
	}
	dumps, err := cat.Dumps(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dumps {
		a.Dumps = append(a.Dumps, fmt.Sprintf("%s:%s L%d %s %s orig %d payload %d sha %s %s fs %d files %d hold %q",
			d.Host, d.Path, d.Level, d.Datestamp, d.Status, d.OrigSize, d.PayloadSize, d.SHA256, d.Comp, d.FrameSize, d.Files, d.HoldingPath))
		parts, _ := cat.Parts(t.Context(), d.ID)
		for _, p := range parts {
			a.Parts = append(a.Parts, fmt.Sprintf("%s L%d %s: %s part %d file %d rec %d pos %d off %d len %d", d.Host, d.Level, d.Datestamp, p.Volume, p.Part, p.FileNo, p.Record, p.LogicalPos, p.Offset, p.Length))
		}
		frames, _ := cat.Frames(t.Context(), d.ID)
		a.Frames = append(a.Frames, fmt.Sprintf("%s:%s L%d: %v", d.Host, d.Path, d.Level, frames))
		for _, dir := range []string{"", "etc", "home/bob", "alice"} {
			recs, err := cat.ListDir(t.Context(), d.ID, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				a.Lists = append(a.Lists, fmt.Sprintf("%s:%s L%d %s: %+v", d.Host, d.Path, d.Level, dir, r))
			}
		}
	}
	for _, q := range []struct{ host, dle, file, asOf string }{
		{"web1", "/srv", "etc/passwd", ""}, {"web1", "/srv", "home/bob/doomed.txt", ""}, {"web1", "/srv", "home/alice/notes.txt", "20250607"},
		{"web1", "/srv", "home/alice/big.bin", ""}, {"web2", "/etc", "ssl/cert.pem", ""}, {"db1", "/home", "alice/big.bin", ""},
	} {
		loc, err := cat.FindFile(t.Context(), q.host, q.dle, q.file, q.asOf)
		if err != nil {
			a.Finds = append(a.Finds, err.Error()[strings.Index(err.Error(), ": find")+2:])
			continue
		}
		a.Finds = append(a.Finds, fmt.Sprintf("%s in %s L%d at %d: %+v frames %v", q.file, loc.Dump.Datestamp, loc.Dump.Level, loc.File.TarOffset, loc.File, loc.Frames))
	}
	for _, asOf := range []string{"20250607", "20250608", ""} {
		v, err := cat.View(t.Context(), "web1", "/srv", asOf)
		if err != nil {
			t.Fatal(err)
		}
		err = v.Walk(t.Context(), "", func(r catalog.ViewRecord) error {
			a.Views = append(a.Views, fmt.Sprintf("as of %q: %s from %s", asOf, r.Path, v.Chain[r.Dump].Datestamp))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Same-datestamp dumps come in id order, which a rebuild need not keep.
	for _, l := range [][]string{a.Dumps, a.Parts, a.Frames, a.Lists} {
		sort.Strings(l)
	}
	return a
}

// TestRebuildGivesTheSameAnswers: three runs (a full, a level 1 after
// renames and deletions, a level 2), one of them with a gzip and an
// uncompressed DLE and one image left on the holding disk; then the catalog
// is deleted and rebuilt from the vtapes and the holding disk alone.
func TestRebuildGivesTheSameAnswers(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := testsite.MakeTree(data); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv := testsite.DLE{Host: "web1", Path: "/srv", Root: data}
	gz := testsite.DLE{Host: "web2", Path: "/etc", Root: filepath.Join(data, "etc"), Comp: image.CompGzip}
	none := testsite.DLE{Host: "db1", Path: "/home", Root: filepath.Join(data, "home"), Comp: image.CompNone}
	run := func(ds string, o testsite.RunOptions, dles ...testsite.DLE) {
		t.Helper()
		if _, err := site.Run(ctx, ds, dles, o); err != nil {
			t.Fatal(err)
		}
	}
	run("20250607010000", testsite.RunOptions{Listings: true}, srv, gz, none)
	testsite.Mutate(data)
	srv.Level = 1
	run("20250608010000", testsite.RunOptions{Listings: true}, srv)
	os.Remove(filepath.Join(data, "home/carol/hello.txt"))
	os.WriteFile(filepath.Join(data, "etc/motd"), []byte("welcome\n"), 0o644)
	srv.Level = 2
	run("20250609010000", testsite.RunOptions{Listings: true}, srv)
	gz.Level = 1
	run("20250609020000", testsite.RunOptions{Listings: true, HoldingOnly: true}, gz)
	want := collect(t, site.Catalog)
	if len(want.Dumps) != 6 || len(want.Views) == 0 {
		t.Fatalf("the site has %d dumps", len(want.Dumps))
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
	res, err := Rebuild(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild: %+v\n%s", res, strings.Join(lines, "\n"))
	if res.Dumps != 6 || res.Volumes != 3 || res.Runs != 4 || len(res.Problems) != 0 {
		t.Errorf("rebuild result %+v", res)
	}
	cat, err := catalog.Open(site.CatalogDB)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, cat)
	cat.Close()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		g, w := gv.Field(i).Interface().([]string), wv.Field(i).Interface().([]string)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s differ after the rebuild:\n got %d: %s\nwant %d: %s", gv.Type().Field(i).Name, len(g), strings.Join(g, "\n     "), len(w), strings.Join(w, "\n     "))
		}
	}

	// A catalog is never overwritten unless asked.
	if _, err := Rebuild(ctx, opt); err == nil || !strings.Contains(err.Error(), "add --force to move it aside") {
		t.Errorf("rebuild over a catalog: %v", err)
	}
	opt.Force = true
	res, err = Rebuild(ctx, opt)
	if err != nil || res.MovedAside == "" {
		t.Fatalf("rebuild --force: %+v %v", res, err)
	}
	if _, err := os.Stat(res.MovedAside); err != nil {
		t.Errorf("the old catalog is not at %s: %v", res.MovedAside, err)
	}
}

// TestRebuildReportsDamage: a damaged image and a missing part are left out
// with a reason; the rest is recorded.
func TestRebuildReportsDamage(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	testsite.MakeTree(data)
	ctx := context.Background()
	for i, ds := range []string{"20250607010000", "20250608010000"} {
		if _, err := site.Run(ctx, ds, []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: i}}, testsite.RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	site.Close()
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot2", "00001.*"))
	b, _ := os.ReadFile(files[0])
	b[len(b)-100] ^= 0xff
	os.WriteFile(files[0], b, 0o640)
	ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	res, err := Rebuild(ctx, Options{Catalog: filepath.Join(dir, "new.db"), Changer: ch, Org: site.Org})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dumps != 1 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "web1:/srv level 1 of 20250608010000") {
		t.Errorf("result %+v", res)
	}
}

// tapeChanger lends drives that cannot open files, like a tape library:
// the rebuild reads records.
type tapeChanger struct{ taper.Changer }

type tapeOnly struct{ taper.Device }

// Properties declares a tape's: no names, no random access.
func (tapeOnly) Properties() taper.DeviceProperties { return taper.DeviceProperties{} }

func (c tapeChanger) Load(ctx context.Context, slot int) (taper.Device, error) {
	d, err := c.Changer.Load(ctx, slot)
	if err != nil {
		return nil, err
	}
	return tapeOnly{d}, nil
}

// TestRebuildFromTapes: through drives that read by records only, an
// image in two parts on two volumes is put together again.
func TestRebuildFromTapes(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	testsite.MakeTree(data)
	ctx := context.Background()
	if _, err := site.Run(ctx, "20250607010000", []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}, testsite.RunOptions{Listings: true, SplitAt: 70000}); err != nil {
		t.Fatal(err)
	}
	want := collect(t, site.Catalog)
	if len(want.Parts) != 2 {
		t.Fatalf("the image has %d parts, want 2", len(want.Parts))
	}
	site.Close()
	ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	db := filepath.Join(dir, "rebuilt.db")
	res, err := Rebuild(ctx, Options{Catalog: db, Changer: tapeChanger{ch}, Org: site.Org, Loc: time.UTC})
	if err != nil || res.Dumps != 1 || len(res.Problems) != 0 {
		t.Fatalf("rebuild from tapes: %+v %v", res, err)
	}
	cat, err := catalog.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	got := collect(t, cat)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rebuilt from tapes:\n got %+v\nwant %+v", got, want)
	}
}

// TestRebuildRefusesDamagedHeader: a byte changed in the header of a tape
// file (the level, a datestamp digit, a payload checksum digit, a size, a
// restore line) fails the header's checksum: the rebuild leaves the image
// out, says which volume and file and what changed, and never records it
// (an L1 whose level byte reads 0 would otherwise be a good L0). Through
// vtape files and through drives that read by records.
func TestRebuildRefusesDamagedHeader(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	testsite.MakeTree(data)
	ctx := context.Background()
	for i, ds := range []string{"20250607010000", "20250608010000"} {
		if _, err := site.Run(ctx, ds, []testsite.DLE{{Host: "web1", Path: "/srv", Root: data, Level: i}}, testsite.RunOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	site.Close()
	files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot2", "00001.*"))
	if len(files) != 1 {
		t.Fatalf("slot 2 holds %v", files)
	}
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.ParseHeader(good[:image.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	text := string(good[:bytes.IndexByte(good, 0)])
	at := func(s string, i int) int {
		j := strings.Index(text, s)
		if j < 0 {
			t.Fatalf("test bug: %q not in the header:\n%s", s, text)
		}
		return j + i
	}
	ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	for _, tc := range []struct {
		name string
		off  int
		to   byte
		want string
	}{
		{"level", at(" lev 1 ", 5), '0', "line 1 (level), offset " + strconv.Itoa(at(" lev 1 ", 5)) + `: reads "0" where "1" was written`},
		{"datestamp", at("20250608010000", 7), '9', "line 1 (datestamp)"},
		{"payload sha256", at("\nsha256: ", 20), 0, "line 4 (sha256)"},
		{"payload size", at("\npayload-size: ", 16), 0, "line 3 (payload-size)"},
		{"restore line", at("To restore", 4), 0, "restore instructions"},
	} {
		for _, tapes := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tapes=%v", tc.name, tapes), func(t *testing.T) {
				b := append([]byte(nil), good...)
				if tc.to == 0 {
					b[tc.off] ^= 1
				} else {
					b[tc.off] = tc.to
				}
				os.WriteFile(files[0], b, 0o640)
				defer os.WriteFile(files[0], good, 0o640)
				var c taper.Changer = ch
				if tapes {
					c = tapeChanger{ch}
				}
				var out []string
				db := filepath.Join(t.TempDir(), "new.db")
				res, err := Rebuild(ctx, Options{Catalog: db, Changer: c, Org: site.Org, Progress: func(s string) { out = append(out, s) }})
				if err != nil {
					t.Fatal(err)
				}
				if res.Dumps != 1 || len(res.Problems) != 1 {
					t.Fatalf("%d images recorded, problems %q; want 1 and the damaged header", res.Dumps, res.Problems)
				}
				p := res.Problems[0]
				for _, want := range []string{"volume TEST-002 file 1: image NOT RECORDED", "checksum mismatch", tc.want} {
					if !strings.Contains(p, want) {
						t.Errorf("problem %q\nwant it to contain %q", p, want)
					}
				}
				cat, err := catalog.Open(db)
				if err != nil {
					t.Fatal(err)
				}
				defer cat.Close()
				dumps, _ := cat.Dumps(t.Context(), "", "")
				if len(dumps) != 1 || dumps[0].Datestamp != "20250607010000" || dumps[0].Level != 0 {
					t.Errorf("the rebuilt catalog holds %+v; want only the level 0 of 20250607", dumps)
				}
			})
		}
	}
}

// TestRebuildSkipsWhatAFailedWriteLeft: a write that failed left a
// truncated copy of an image's part (file 1), and the image was written
// again whole (file 2; or it stayed on the holding disk). The rebuild
// records the whole copy, skips the truncated one without calling it a
// problem, and records it as a failed file so that verify lists it as
// one.
func TestRebuildSkipsWhatAFailedWriteLeft(t *testing.T) {
	for _, onHolding := range []bool{false, true} {
		t.Run(fmt.Sprintf("holding=%v", onHolding), func(t *testing.T) {
			dir := t.TempDir()
			site, err := testsite.New(dir, testsite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data")
			testsite.MakeTree(data)
			ctx := context.Background()
			dle := []testsite.DLE{{Host: "web1", Path: "/srv", Root: data}}
			if _, err := site.Run(ctx, "20250607010000", dle, testsite.RunOptions{}); err != nil {
				t.Fatal(err)
			}
			if onHolding {
				if _, err := site.Run(ctx, "20250608010000", dle, testsite.RunOptions{HoldingOnly: true}); err != nil {
					t.Fatal(err)
				}
			}
			site.Close()
			// The vtape file of the last image on slot 1.
			files, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
			if len(files) != 1 {
				t.Fatalf("slot 1 holds %v", files)
			}
			whole, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			stem := strings.TrimPrefix(filepath.Base(files[0]), "00001.")
			cut := whole[:image.HeaderSize+(len(whole)-image.HeaderSize)/2]
			if onHolding {
				// The copy on the holding disk (the next run's) is whole; the
				// volume holds a truncated copy of it as file 2.
				hold, _ := filepath.Glob(filepath.Join(site.Holding, "*", "*"))
				if len(hold) != 1 {
					t.Fatalf("holding holds %v", hold)
				}
				b, err := os.ReadFile(hold[0])
				if err != nil {
					t.Fatal(err)
				}
				cut = b[:image.HeaderSize+(len(b)-image.HeaderSize)/2]
				stem += ".held"
				if err := os.WriteFile(filepath.Join(site.Vtapes, "slot1", "00002."+stem), cut, 0o640); err != nil {
					t.Fatal(err)
				}
			} else {
				// File 1 is the truncated copy, file 2 the whole one.
				if err := os.Rename(files[0], filepath.Join(site.Vtapes, "slot1", "00002."+stem)); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(files[0], cut, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			ch, _ := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
			db := filepath.Join(dir, "rebuilt.db")
			res, err := Rebuild(ctx, Options{Catalog: db, Changer: ch, Holding: []string{site.Holding}, Org: site.Org, Loc: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			wantDumps := 1
			if onHolding {
				wantDumps = 2
			}
			if res.Dumps != wantDumps || len(res.Problems) != 0 || len(res.Skipped) != 1 {
				t.Fatalf("result %+v, want %d images, no problem, one file skipped", res, wantDumps)
			}
			cutFile := int64(1)
			if onHolding {
				cutFile = 2
			}
			if want := fmt.Sprintf("volume TEST-001 file %d: skipped, recorded as a failed file", cutFile); !strings.HasPrefix(res.Skipped[0], want) || !strings.Contains(res.Skipped[0], "left by a write that failed") {
				t.Errorf("skipped %q, want it to start %q", res.Skipped[0], want)
			}
			cat, err := catalog.Open(db)
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			failed, err := cat.FailedFiles(ctx, "TEST-001")
			if err != nil || len(failed) != 1 || failed[0].FileNo != cutFile || failed[0].Host != "web1" {
				t.Fatalf("failed files %+v %v, want TEST-001 file %d", failed, err, cutFile)
			}
			dumps, _ := cat.Dumps(ctx, "web1", "/srv")
			for _, d := range dumps {
				parts, _ := cat.Parts(ctx, d.ID)
				switch {
				case d.Datestamp == "20250608010000" && (d.Status != catalog.DumpHolding || len(parts) != 0):
					t.Errorf("the held image is %s with parts %+v, want it recorded from the holding disk", d.Status, parts)
				case d.Datestamp == "20250607010000" && !onHolding && (len(parts) != 1 || parts[0].FileNo != 2):
					t.Errorf("the image is recorded from %+v, want the whole copy, file 2", parts)
				}
			}
		})
	}
}
