package holding

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
)

func header(payload []byte) *image.Header {
	s := sha256.Sum256(payload)
	return &image.Header{Datestamp: "20260102030405", Host: "web1", Path: "/etc", Level: 0, Part: 1, Parts: 1,
		Comp: image.CompNone, OriginalSize: int64(len(payload)), PayloadSize: int64(len(payload)),
		SHA256: hex.EncodeToString(s[:]), FrameSize: 1 << 20, Frames: 1, Encryption: "none"}
}

// bigFree pretends every disk has a lot of free space.
func bigFree(string) (int64, error) { return 1 << 40, nil }

func newPool(t testing.TB, disks ...Disk) *Pool {
	t.Helper()
	p, err := NewPool(disks, PoolOptions{FreeSpace: bigFree})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func create(t testing.TB, p *Pool, n int64, h *image.Header) *Writer {
	t.Helper()
	s, ok := p.TryReserve(n, Incremental)
	if !ok {
		t.Fatalf("reserve %d: no space (free %d)", n, p.Free())
	}
	w, err := Create(context.Background(), s, h.Datestamp, h.Name())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestFinishWritesCompleteImage(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	payload := []byte(strings.Repeat("x", 5000))
	h := header(payload)
	w := create(t, p, 64<<10, h)
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, TmpSuffix) {
		t.Fatalf("final path %s", path)
	}
	if _, err := os.Stat(path + TmpSuffix); !os.IsNotExist(err) {
		t.Errorf(".tmp still there: %v", err)
	}
	got, err := Verify(path, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "web1" || got.PayloadSize != 5000 {
		t.Errorf("header %+v", got)
	}
	if used := p.Used(); used != image.HeaderSize+5000 {
		t.Errorf("pool counts %d bytes used, want %d (header + payload; the unused reservation is given back)", used, image.HeaderSize+5000)
	}
	if err := Remove(path, []string{dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("empty run directory left behind")
	}
}

// A payload whose SHA-256 does not match what the client announced never
// becomes a complete holding file, and its space is given back.
func TestFinishRefusesCorruptPayload(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	payload := []byte("hello")
	h := header(payload)
	w := create(t, p, 64<<10, h)
	w.Write([]byte("hellO"))
	if _, err := w.Finish(h); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("corrupt payload accepted: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
	if p.Used() != 0 {
		t.Errorf("pool still counts %d bytes", p.Used())
	}
}

func TestVerifyDetectsFlippedByte(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	payload := []byte(strings.Repeat("y", 100000))
	h := header(payload)
	w := create(t, p, 1<<20, h)
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{'z'}, image.HeaderSize+777)
	f.Close()
	if _, err := Verify(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("flipped byte not detected, or the error does not name the file: %v", err)
	}
}

// An image larger than the chunksize is cut into chunk files, spread over
// two disks when the first fills, and reads back byte for byte, both as a
// stream and at any offset; `cat` of the chunks is the tape file.
func TestChunksAcrossDisks(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	p := newPool(t, Disk{Path: d1, Use: 5 << 20, Chunksize: 2 << 20}, Disk{Path: d2, Use: 20 << 20, Chunksize: 2 << 20})
	payload := make([]byte, 11<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(rng.IntN(256))
	}
	h := header(payload)
	// Reserve less than needed: the writer grows its reservation.
	s, ok := p.TryReserve(3<<20, Full)
	if !ok {
		t.Fatal("no space")
	}
	w, err := Create(context.Background(), s, h.Datestamp, h.Name())
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(payload); off += 100000 {
		if _, err := w.Write(payload[off:min(off+100000, len(payload))]); err != nil {
			t.Fatal(err)
		}
	}
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	disks := []string{d1, d2}
	im, err := OpenImage(path, disks)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Paths) < 6 {
		t.Errorf("%d chunks, want at least 6 of 2 MiB: %v", len(im.Paths), im.Paths)
	}
	onD2 := 0
	var cat bytes.Buffer
	for i, c := range im.Paths {
		fi, err := os.Stat(c)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 2<<20 {
			t.Errorf("chunk %s is %d bytes, more than the chunksize", c, fi.Size())
		}
		if strings.HasPrefix(c, d2) {
			onD2++
		}
		b, _ := os.ReadFile(c)
		if i == 0 {
			b = b[image.HeaderSize:]
		}
		cat.Write(b)
	}
	if onD2 == 0 {
		t.Error("no chunk on the second disk although the first holds only 5 MiB")
	}
	if !bytes.Equal(cat.Bytes(), payload) {
		t.Error("concatenated chunks differ from the payload")
	}
	got, err := io.ReadAll(im.Reader())
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("stream read: %v, equal %v", err, bytes.Equal(got, payload))
	}
	for _, off := range []int64{0, 1, 2<<20 - image.HeaderSize - 1, 2<<20 - image.HeaderSize, 7<<20 + 3, int64(len(payload)) - 10} {
		b := make([]byte, 5000)
		n, err := im.ReadAt(b, off)
		want := payload[off:min(off+5000, int64(len(payload)))]
		if !bytes.Equal(b[:n], want) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Errorf("ReadAt %d: %d bytes, %v", off, n, err)
		}
	}
	if _, err := Verify(path, disks); err != nil {
		t.Fatal(err)
	}
	elsewhere := 0
	for _, c := range im.Paths {
		if filepath.Dir(c) != filepath.Dir(path) {
			elsewhere++
		}
	}
	if _, err := Verify(path, nil); (err == nil) != (elsewhere == 0) || (err != nil && !strings.Contains(err.Error(), "missing")) {
		t.Errorf("Verify without the other disk: %v (%d chunks elsewhere)", err, elsewhere)
	}
	im.Close()
	if err := Remove(path, disks); err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if left, _ := filepath.Glob(filepath.Join(d, "*", "*")); len(left) > 0 {
			t.Errorf("left on %s: %v", d, left)
		}
	}
}

// A crash between Prepare (the catalog is then written) and Commit leaves
// .tmp chunks that Salvage renames into a complete image.
func TestSalvagePrepared(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir, Chunksize: 1 << 20})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB: 4 chunks
	h := header(payload)
	w := create(t, p, 4<<20, h)
	w.Write(payload)
	path, err := w.Prepare(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Prepare gave the file its final name")
	}
	found, left, err := Scan([]string{dir})
	if err != nil || len(found) != 0 || len(left) != 4 {
		t.Fatalf("scan of a prepared image: found %v, leftovers %v, %v", found, left, err)
	}
	if err := Salvage(path, []string{dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(path, []string{dir}); err != nil {
		t.Fatal(err)
	}
	found, left, err = Scan([]string{dir})
	if err != nil || len(found) != 1 || len(left) != 0 || found[0].Path != path || found[0].Err != nil {
		t.Fatalf("scan after salvage: %+v %v %v", found, left, err)
	}
	if found[0].Bytes != int64(len(payload))+image.HeaderSize {
		t.Errorf("scan counts %d bytes", found[0].Bytes)
	}
}

// Scan tells complete images, damaged ones, and partial files apart, and
// leaves alone what is not in a run directory.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	ok := header([]byte("complete"))
	w := create(t, p, 1<<20, ok)
	w.Write([]byte("complete"))
	good, err := w.Finish(ok)
	if err != nil {
		t.Fatal(err)
	}
	cut := header([]byte("cut short"))
	cut.Path = "/var"
	w2 := create(t, p, 1<<20, cut)
	w2.Write([]byte("cut"))
	// a damaged header
	bad := filepath.Join(dir, ok.Datestamp, "web1._srv.0")
	os.WriteFile(bad, append([]byte(image.FileMagic+"garbage\n"), make([]byte, 100)...), 0o640)
	// not ours
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o640)
	os.MkdirAll(filepath.Join(dir, "lost+found"), 0o750)

	found, left, err := Scan([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].Path != good || found[0].Err != nil || found[1].Path != bad || found[1].Err == nil {
		t.Errorf("found %+v", found)
	}
	if len(left) != 1 || left[0].Path != w2.TmpPath() {
		t.Errorf("leftovers %+v", left)
	}
	if err := RemoveLeftover(left[0].Path); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLeftover(good); err == nil {
		t.Error("RemoveLeftover removed a complete image")
	}
}

// The invalid names a caller could pass never create files outside the
// holding disk.
func TestCreateRefusesBadNames(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir})
	s, _ := p.TryReserve(1<<20, Incremental)
	for _, name := range []string{"", "../x", "a/b", ".hidden", "a\x00b"} {
		if _, err := Create(context.Background(), s, "20260102030405", name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := Create(context.Background(), s, "../../etc", "x"); err == nil {
		t.Error("bad datestamp accepted")
	}
}

// A holding disk that does not exist (not mounted, a typo) is an error
// naming it and what to do; nothing is created in its place, neither by
// NewPool nor by a writer whose disk vanished during the run.
func TestMissingDiskIsNeverCreated(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "mnt", "holding")
	_, err := NewPool([]Disk{{Path: missing}}, PoolOptions{FreeSpace: bigFree})
	if !errors.Is(err, ErrNoDisk) || !strings.Contains(err.Error(), "holding disk "+missing+" does not exist: mount it, or create it with mkdir if it is new") {
		t.Fatalf("NewPool: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "mnt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewPool created something where the disk should be: %v", err)
	}
	if err := CheckDisk(base); err != nil {
		t.Fatal(err)
	}

	// The disk is unmounted after the pool measured it.
	disk := filepath.Join(base, "hold")
	if err := os.Mkdir(disk, 0o750); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, Disk{Path: disk})
	if err := os.Remove(disk); err != nil {
		t.Fatal(err)
	}
	h := header([]byte("payload"))
	s, _ := p.TryReserve(1<<20, Incremental)
	if _, err := Create(context.Background(), s, h.Datestamp, h.Name()); !errors.Is(err, ErrNoDisk) {
		t.Fatalf("Create on a vanished disk: %v", err)
	}
	if _, err := os.Stat(disk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the writer created the vanished disk: %v", err)
	}
}

// A later chunk whose first chunk is gone is listed as damaged, named, so
// that it does not sit on the disk unseen.
func TestScanOrphanChunk(t *testing.T) {
	dir := t.TempDir()
	p := newPool(t, Disk{Path: dir, Chunksize: 1 << 20})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB: 2 chunks
	h := header(payload)
	w := create(t, p, 2<<20, h)
	w.Write(payload)
	path, err := w.Finish(h)
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := Scan([]string{dir})
	if err != nil || len(found) != 1 || found[0].Err != nil {
		t.Fatalf("before: %+v %v", found, err)
	}
	os.Remove(path)
	found, _, err = Scan([]string{dir})
	if err != nil || len(found) != 1 || found[0].Path != path+".1" || !errors.Is(found[0].Err, ErrOrphanChunk) {
		t.Fatalf("after removing the first chunk: %+v %v", found, err)
	}
	if err := Remove(found[0].Path, []string{dir}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", "*")); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}
