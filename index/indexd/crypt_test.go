package indexd_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/image/crypt"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/internal/testsite"
	"github.com/tapir-backup/tapir/recover"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// Encrypted images restored through the index server and the shell, over
// real TLS: the server, which holds no key, sends the age chunks that hold
// the frames asked for; the shell opens them with its identity.

// testKey makes an identity file (0600) and returns it read back, with
// its recipient.
func testKey(t testing.TB, dir, name string) (*crypt.Identities, string) {
	t.Helper()
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := crypt.WriteIdentityFile(p, crypt.IdentityFileText(id, time.Now())); err != nil {
		t.Fatal(err)
	}
	ids, err := crypt.ReadIdentities(p)
	if err != nil {
		t.Fatal(err)
	}
	return ids, id.Recipient().String()
}

// bigTar is a tar stream of n files of size bytes each (incompressible),
// f000 … under "data/", and their contents.
func bigTar(t testing.TB, n, size int) ([]byte, map[string][]byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, uint64(n)))
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	files := map[string][]byte{}
	mt := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX})
	tw.WriteHeader(&tar.Header{Name: "./data/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX})
	for i := range n {
		d := make([]byte, size)
		for k := range d {
			d[k] = byte(r.Uint32())
		}
		name := fmt.Sprintf("data/f%03d", i)
		files[name] = d
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(d)
	}
	tw.Close()
	return b.Bytes(), files
}

// encImage is an encrypted image the test wrote: its catalog id and
// payload (ciphertext).
type encImage struct {
	id      int64
	dump    catalog.Dump
	payload []byte
	layout  crypt.Layout
	frames  []image.Frame
}

// addEncrypted records an image of tarb, framed with comp and encrypted
// to recipients, as a dumper with client-side encryption does: the file
// index from the tar stream, the age header in the catalog, the header's
// encryption and recipients, PayloadSize and SHA-256 of the ciphertext.
// It stays on the holding disk.
func addEncrypted(t testing.TB, site *testsite.Site, ds, host, path string, level int, comp image.Comp, frameSize int, tarb []byte, recipients []string) *encImage {
	t.Helper()
	ctx := context.Background()
	cat := site.Catalog
	start, _ := time.Parse("20060102150405", ds)
	run, err := cat.BeginRun(ctx, ds, site.Org, start)
	if err != nil {
		t.Fatal(err)
	}
	fps := crypt.Fingerprints(recipients)
	id, err := cat.CreateDump(ctx, &catalog.Dump{RunID: run, Host: host, Path: path, Level: level, Datestamp: ds,
		Comp: string(comp), FrameSize: int64(frameSize), Started: start, Encryption: crypt.Name, Recipients: fps})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := cat.NewFileWriter(ctx, id, int64(frameSize))
	if err != nil {
		t.Fatal(err)
	}
	var nfiles int64
	if _, err := tarscan.Scan(bytes.NewReader(tarb), func(e tarscan.Entry) error {
		if e.Path == "" {
			return nil
		}
		nfiles++
		return fw.Add(ctx, e.FileRecord)
	}); err != nil {
		t.Fatal(err)
	}
	if err := fw.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	cw, err := crypt.NewWriter(&ct, recipients)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := image.NewPayloadWriter(cw, image.WriterOptions{Comp: comp, FrameSize: frameSize, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(tarb); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := pw.Sum()
	if err := cat.SetDumpCryptHeader(ctx, id, cw.Header()); err != nil {
		t.Fatal(err)
	}
	hdr := &image.Header{Datestamp: ds, Host: host, Path: path, Level: level, Part: 1, Parts: 1, Comp: comp, FrameSize: int64(frameSize),
		Encryption: image.EncAge, Recipients: fps, OriginalSize: sum.OriginalSize, PayloadSize: cw.Size(), SHA256: cw.SHA256(),
		Files: nfiles, Frames: int64(len(sum.Frames))}
	hb, err := hdr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(site.Holding, ds)
	os.MkdirAll(dir, 0o750)
	hpath := filepath.Join(dir, hdr.Name())
	if err := os.WriteFile(hpath, append(hb, ct.Bytes()...), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetDumpHolding(ctx, id, sum.OriginalSize, cw.Size(), cw.SHA256(), nfiles, hpath, sum.Frames, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := cat.FinishRun(ctx, run, catalog.RunOK, start.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	d, err := cat.Dump(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	l, err := crypt.NewLayout(int64(len(cw.Header())), cw.Size())
	if err != nil {
		t.Fatal(err)
	}
	return &encImage{id: id, dump: *d, payload: ct.Bytes(), layout: l, frames: sum.Frames}
}

// countingVolumes hides random access (the server reads records, as on a
// tape) and counts the payload bytes read from the volumes.
type countingVolumes struct {
	indexd.VolumeSource
	read   *atomic.Int64
	labels *labelLog
}

// labelLog is the labels of the volumes opened, in order.
type labelLog struct {
	mu sync.Mutex
	l  []string
}

func (g *labelLog) add(s string) {
	g.mu.Lock()
	g.l = append(g.l, s)
	g.mu.Unlock()
}

func (g *labelLog) take() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := strings.Join(g.l, " ")
	g.l = nil
	return s
}

func (c countingVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	dev, release, err := c.VolumeSource.Open(ctx, label, ask)
	if err != nil {
		return nil, nil, err
	}
	if c.labels != nil {
		c.labels.add(label)
	}
	return countingDev{tapeOnly{dev}, c.read}, release, nil
}

type countingDev struct {
	tapeOnly
	n *atomic.Int64
}

func (c countingDev) ReadRecord(p []byte) (int, error) {
	n, err := c.tapeOnly.ReadRecord(p)
	c.n.Add(int64(n))
	return n, err
}

// encSite is a site with a key and an encrypted full of web1:/srv taped.
type encSite struct {
	site   *testsite.Site
	ids    *crypt.Identities
	rcpt   string
	img    *encImage
	files  map[string][]byte
	read   atomic.Int64
	labels labelLog
	addr   string
}

func newEncSite(t *testing.T, comp image.Comp, n, size, frameSize int) *encSite {
	t.Helper()
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	es := &encSite{site: site}
	es.ids, es.rcpt = testKey(t, dir, "key.txt")
	tarb, files := bigTar(t, n, size)
	es.files = files
	es.img = addEncrypted(t, site, "20261203010000", "web1", "/srv", 0, comp, frameSize, tarb, []string{es.rcpt})
	if _, err := site.Tape(context.Background(), "20261203020000", []int64{es.img.id}); err != nil {
		t.Fatal(err)
	}
	ch, err := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	es.addr = serve(t, site, countingVolumes{&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog}, &es.read, &es.labels})
	return es
}

var srvQuery = recover.Query{Host: "web1", DLE: "/srv"}

// TestEncryptedSingleFileRestore: one file in the middle of a big
// encrypted image, for each compression: the server reads from the volume
// and sends only the age chunks of its frames (a small part of the
// image), and the shell restores it identical. The whole image restores
// too, each chunk sent once.
func TestEncryptedSingleFileRestore(t *testing.T) {
	for _, comp := range []image.Comp{image.CompZstd, image.CompGzip, image.CompNone} {
		t.Run(string(comp), func(t *testing.T) {
			es := newEncSite(t, comp, 48, 100<<10, 200<<10)
			cl := dial(t, es.site, es.addr, "web1", wire.RoleClient)
			to := t.TempDir()
			want := "data/f024"
			res, err := cl.Restore(context.Background(), srvQuery, []string{want}, recover.RestoreOptions{To: to, Identities: es.ids})
			if err != nil || !res.OK() || res.Restored != 1 {
				t.Fatalf("restore: %+v %v", res, err)
			}
			got, err := os.ReadFile(filepath.Join(to, want))
			if err != nil || !bytes.Equal(got, es.files[want]) {
				t.Fatalf("%s: restored %d bytes (%v), want the %d of the source", want, len(got), err, len(es.files[want]))
			}
			im := res.Images[0]
			if !im.Encrypted() || len(im.CryptHeader) == 0 || im.Recipients[0] != crypt.Fingerprint(es.rcpt) {
				t.Errorf("plan image %+v: want it encrypted to %s, with its age header", im, crypt.Fingerprint(es.rcpt))
			}
			// The frames of a 100 KiB file in 200 KiB frames: at most two
			// frames, each within 4 age chunks; the volume is read by
			// 32 KiB records, the header record and the chunks'.
			maxSent := int64(2 * 4 * (crypt.ChunkSize + crypt.TagSize))
			if im.Bytes <= 0 || im.Bytes > maxSent {
				t.Errorf("the plan sends %d bytes of a %d-byte image; want at most %d", im.Bytes, es.img.dump.PayloadSize, maxSent)
			}
			if r := es.read.Load(); r > im.Bytes+2*es.site.Blocksize+image.HeaderSize {
				t.Errorf("the server read %d bytes from the volume to send %d", r, im.Bytes)
			}

			// The whole DLE: every chunk once (a chunk two frames share
			// is carried, not sent again), so no more than the payload.
			all := t.TempDir()
			res, err = cl.Restore(context.Background(), srvQuery, []string{""}, recover.RestoreOptions{To: all, Identities: es.ids})
			if err != nil || !res.OK() {
				t.Fatalf("restore all: %+v %v", res, err)
			}
			for name, data := range es.files {
				if got, err := os.ReadFile(filepath.Join(all, name)); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s differs after the whole restore (%v)", name, err)
				}
			}
			if b := res.Images[0].Bytes; b > es.img.dump.PayloadSize-int64(es.img.layout.HeaderLen) {
				t.Errorf("the whole image sends %d bytes; its chunks are %d", b, es.img.dump.PayloadSize-es.img.layout.HeaderLen)
			}
		})
	}
}

// TestEncryptedRestoreKeys: without a key, or with another one, the
// shell says which image needs which key and restores nothing.
func TestEncryptedRestoreKeys(t *testing.T) {
	other, otherRcpt := testKey(t, t.TempDir(), "other.txt")
	for _, c := range []struct {
		name string
		ids  *crypt.Identities
		want func(rcpt string) []string
	}{
		{"missing", nil, func(rcpt string) []string {
			return []string{"level 0 image 20261203010000 of web1:/srv is encrypted (age, recipients " + crypt.Fingerprint(rcpt), "give --identity FILE", "nothing was restored"}
		}},
		{"wrong", other, func(rcpt string) []string {
			return []string{"level 0 image 20261203010000 of web1:/srv is encrypted to recipients " + crypt.Fingerprint(rcpt), "the key in " + other.File + " is " + crypt.Fingerprint(otherRcpt), "nothing was restored"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A site of its own: no session of another subtest reads it.
			es := newEncSite(t, image.CompZstd, 8, 10<<10, 64<<10)
			want := c.want(es.rcpt)
			// The shell refuses at the plan, before the restore is asked:
			// the server reads nothing of the image.
			es.read.Store(0)
			to := t.TempDir()
			var out bytes.Buffer
			sh := &recover.Shell{Client: dial(t, es.site, es.addr, "web1", wire.RoleClient), Out: &out, Lcd: to, Identities: c.ids,
				Ask: func(string, bool) bool { t.Error("the shell asked to continue"); return false }}
			for _, cmd := range []string{"sethost web1", "setdisk /srv", "add data/f001"} {
				if err := sh.Exec(cmd); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
			}
			if err := sh.Exec("extract"); err == nil || !strings.Contains(err.Error(), want[0]) {
				t.Errorf("extract: %v, want %q", err, want[0])
			}
			if n := es.read.Load(); n != 0 {
				t.Errorf("the server read %d bytes of the image for an extract that cannot decrypt it", n)
			}
			if ents, _ := os.ReadDir(to); len(ents) != 0 {
				t.Errorf("the target holds %d entries after the shell's extract", len(ents))
			}
			// Client.Restore checks the keys once the plan is there,
			// before it writes anything (and closes the session).
			cl := dial(t, es.site, es.addr, "web1", wire.RoleClient)
			to = t.TempDir()
			res, err := cl.Restore(context.Background(), srvQuery, []string{"data"}, recover.RestoreOptions{To: to, Identities: c.ids})
			if err == nil {
				t.Fatalf("restore without the right key: %+v", res)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if res != nil && res.Restored != 0 {
				t.Errorf("%d entries reported restored", res.Restored)
			}
			if ents, _ := os.ReadDir(to); len(ents) != 0 {
				t.Errorf("the target holds %d entries", len(ents))
			}
		})
	}
}

// TestEncryptedFlippedByte: a changed byte on the volume in the chunks
// of a file's frame: that file fails with an error naming the image and
// the frame, is not reported restored, and leaves nothing under its name.
func TestEncryptedFlippedByte(t *testing.T) {
	es := newEncSite(t, image.CompZstd, 16, 100<<10, 128<<10)
	want := "data/f008"
	// The frame that holds the file's data, and a byte in its chunks.
	rec, err := es.site.Catalog.FindFile(context.Background(), "web1", "/srv", want, "")
	if err != nil {
		t.Fatal(err)
	}
	f := rec.Frames[len(rec.Frames)/2]
	_, _, off, _, err := es.img.layout.Span(f.Offset+f.Size/2, 1)
	if err != nil {
		t.Fatal(err)
	}
	flipOnVolume(t, es.site, es.img.id, off+100)
	cl := dial(t, es.site, es.addr, "web1", wire.RoleClient)
	to := t.TempDir()
	res, err := cl.Restore(context.Background(), srvQuery, []string{want}, recover.RestoreOptions{To: to, Identities: es.ids})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Restored != 0 || len(res.Failed) != 1 {
		t.Fatalf("restored %d, failed %q: want the file failed", res.Restored, res.Failed)
	}
	msg := res.Failed[0]
	for _, w := range []string{want, "level 0 image 2026-12-03 01:00:00", "is damaged", "authentication"} {
		if !strings.Contains(msg, w) {
			t.Errorf("failure %q does not say %q", msg, w)
		}
	}
	if _, err := os.Lstat(filepath.Join(to, want)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after a failed restore (%v)", want, err)
	}
}

// flipOnVolume changes the byte at payload offset off of the (one-part)
// image id on its vtape file.
func flipOnVolume(t testing.TB, site *testsite.Site, id, off int64) {
	t.Helper()
	parts, err := site.Catalog.Parts(context.Background(), id)
	if err != nil || len(parts) != 1 {
		t.Fatalf("parts %v %v", parts, err)
	}
	vol, err := site.Catalog.Volume(context.Background(), parts[0].Volume)
	if err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(site.Vtapes, fmt.Sprintf("slot%d", vol.Slot), fmt.Sprintf("%05d.*", parts[0].FileNo)))
	if len(matches) != 1 {
		t.Fatalf("tape file %d of slot %d: %v", parts[0].FileNo, vol.Slot, matches)
	}
	fh, err := os.OpenFile(matches[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	at := image.HeaderSize + off - parts[0].Offset
	if _, err := fh.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := fh.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// tapeSpanning writes the holding image id as two parts: payload bytes
// [0, split) end volume TEST-001 (slot 1), the rest starts TEST-002 (slot
// 2), as the taper does at early warning.
func tapeSpanning(t testing.TB, site *testsite.Site, id, split int64) {
	t.Helper()
	ctx := context.Background()
	d, err := site.Catalog.Dump(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := os.Open(d.HoldingPath)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	hdr, err := image.ReadHeader(hf)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	h := sha256.New()
	var parts []catalog.Part
	for i, rng := range [][2]int64{{0, split}, {split, d.PayloadSize - split}} {
		slot, label := i+1, fmt.Sprintf("TEST-%03d", i+1)
		dev, err := site.Changer.Load(ctx, slot)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := site.Catalog.AddVolume(ctx, catalog.Volume{Label: label, Slot: slot, Blocksize: site.Blocksize, Created: start}); err != nil {
			t.Fatal(err)
		}
		if _, err := site.Catalog.StartVolumeWrite(ctx, label, slot, site.Blocksize, "20261203020000"); err != nil {
			t.Fatal(err)
		}
		if err := taper.WriteLabel(dev, taper.Label{Datestamp: "20261203020000", Label: label, Org: site.Org, Blocksize: site.Blocksize, Created: start}); err != nil {
			t.Fatal(err)
		}
		if dev.Properties().NamesFiles {
			if err := dev.BeginFile(hdr.Name()); err != nil {
				t.Fatal(err)
			}
		}
		pos, err := dev.Tell()
		if err != nil {
			t.Fatal(err)
		}
		ph := *hdr
		ph.Part, ph.Parts, ph.Blocksize = i+1, image.Unknown, site.Blocksize
		hb, err := ph.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.WriteRecord(hb); err != nil {
			t.Fatal(err)
		}
		r := io.NewSectionReader(hf, image.HeaderSize+rng[0], rng[1])
		buf := make([]byte, site.Blocksize)
		for {
			k, rerr := io.ReadFull(r, buf)
			if k > 0 {
				h.Write(buf[:k])
				if err := dev.WriteRecord(buf[:k]); err != nil && !errors.Is(err, taper.ErrEarlyWarning) {
					t.Fatal(err)
				}
			}
			if rerr != nil {
				break
			}
		}
		if err := dev.WriteFilemark(); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, catalog.Part{DumpID: id, Volume: label, Part: i + 1, FileNo: pos.File, Record: pos.Record, LogicalPos: pos.Logical, Offset: rng[0], Length: rng[1]})
		if err := site.Changer.Eject(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
		t.Fatalf("taped SHA-256 %s, the catalog says %s", got, d.SHA256)
	}
	if err := site.Catalog.CommitTaped(ctx, id, parts, start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	hf.Close()
	os.Remove(d.HoldingPath)
}

// TestEncryptedSpanningPart2: a file whose frames are in part 2 of an
// encrypted image spanning two volumes needs only the second volume; a
// restore of the whole image crosses the split (inside an age chunk).
func TestEncryptedSpanningPart2(t *testing.T) {
	dir := t.TempDir()
	site, err := testsite.New(dir, testsite.Options{Blocksize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	ids, rcpt := testKey(t, dir, "key.txt")
	tarb, files := bigTar(t, 24, 100<<10)
	img := addEncrypted(t, site, "20261203010000", "web1", "/srv", 0, image.CompZstd, 128<<10, tarb, []string{rcpt})
	split := img.dump.PayloadSize/2 + 1000 // inside a chunk, inside a frame
	tapeSpanning(t, site, img.id, split)
	ch, err := taper.NewDiskChanger(site.Vtapes, site.Slots, site.Capacity, site.Blocksize, nil)
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	var labels labelLog
	addr := serve(t, site, countingVolumes{&indexd.DiskVolumes{Changer: ch, Catalog: site.Catalog}, &read, &labels})
	cl := dial(t, site, addr, "web1", wire.RoleClient)
	want := "data/f023"
	to := t.TempDir()
	res, err := cl.Restore(context.Background(), srvQuery, []string{want}, recover.RestoreOptions{To: to, Identities: ids})
	if err != nil || !res.OK() {
		t.Fatalf("restore: %+v %v", res, err)
	}
	if got, err := os.ReadFile(filepath.Join(to, want)); err != nil || !bytes.Equal(got, files[want]) {
		t.Fatalf("%s differs (%v)", want, err)
	}
	if loaded := labels.take(); strings.Join(res.Needed, " ") != "TEST-002" || loaded != "TEST-002" {
		t.Errorf("needed %q, loaded %q: want only TEST-002", res.Needed, loaded)
	}
	all := t.TempDir()
	res, err = cl.Restore(context.Background(), srvQuery, []string{""}, recover.RestoreOptions{To: all, Identities: ids})
	if err != nil || !res.OK() {
		t.Fatalf("restore all: %+v %v", res, err)
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(all, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s differs after the whole restore (%v)", name, err)
		}
	}
	if strings.Join(res.Needed, " ") != "TEST-001 TEST-002" {
		t.Errorf("needed %q for the whole image", res.Needed)
	}
}
