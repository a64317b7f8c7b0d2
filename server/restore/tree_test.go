package restore

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/internal/testsite"
)

// frameSite dumps a tree (MakeTree, 300 small files, a sparse file) at
// level 0 in 4 KiB frames of comp, so that the image has hundreds of frames, onto
// a vtape. It returns the tree, the configuration, the vtape file and the
// image's frames.
func frameSite(t *testing.T, comp image.Comp) (string, *config.Config, string, []image.Frame) {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := testsite.MakeTree(tree); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 5))
	for i := range 300 {
		b := make([]byte, rng.IntN(20000))
		for j := range b {
			b[j] = byte('a' + rng.IntN(26)) // some compression
		}
		p := filepath.Join(tree, fmt.Sprintf("many/d%d/f%03d.txt", i%7, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// A file with a 1 MiB hole in the middle and one at its end.
	sp, err := os.Create(filepath.Join(tree, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteString("start")
	sp.WriteAt([]byte("middle"), 1<<20)
	sp.Truncate(3 << 20)
	sp.Close()

	site, err := testsite.New(filepath.Join(dir, "site"), testsite.Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids, err := site.Run(ctx, "20250601010000", []testsite.DLE{{Host: "h", Path: "/data", Root: tree, FrameSize: 4096, Comp: comp}}, testsite.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := site.Catalog.Frames(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 100 {
		t.Fatalf("only %d frames", len(frames))
	}
	site.Close()
	vt, _ := filepath.Glob(filepath.Join(site.Vtapes, "slot1", "00001.*"))
	if len(vt) != 1 {
		t.Fatalf("vtape file: %v", vt)
	}
	cfgPath := filepath.Join(dir, "tapir.toml")
	if err := site.WriteConfig(cfgPath, testsite.DLE{Host: "h", Path: "/data"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return tree, cfg, vt[0], frames
}

// files maps each regular file under dir to its bytes.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A whole-DLE restore through the parallel decoder gives back every file,
// byte for byte, with its mode and mtime, and keeps holes.
func TestTreeParallelRestore(t *testing.T) {
	for _, comp := range []image.Comp{image.CompZstd, image.CompGzip, image.CompNone} {
		t.Run(string(comp), func(t *testing.T) { testTreeParallelRestore(t, comp) })
	}
}

func testTreeParallelRestore(t *testing.T, comp image.Comp) {
	tree, cfg, _, _ := frameSite(t, comp)
	to := filepath.Join(t.TempDir(), "to")
	res, err := Tree(context.Background(), cfg, TreeRequest{Host: "h", Path: "/data", To: to, Volumes: diskVolumes(t, cfg)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, got := files(t, tree), files(t, to)
	if len(got) != len(want) || res.Entries < int64(len(want)) {
		t.Fatalf("restored %d files (%d entries), the tree has %d", len(got), res.Entries, len(want))
	}
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Fatalf("%s differs", p)
		}
		fw, _ := os.Lstat(filepath.Join(tree, p))
		fg, _ := os.Lstat(filepath.Join(to, p))
		if fw.Mode() != fg.Mode() || !fw.ModTime().Equal(fg.ModTime()) {
			t.Errorf("%s: mode %v mtime %v, want %v %v", p, fg.Mode(), fg.ModTime(), fw.Mode(), fw.ModTime())
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(to, "sparse.img"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= 1<<20 {
		t.Errorf("sparse.img takes %d bytes on disk: its holes were written", st.Blocks*512)
	}
}

// A damaged frame in the middle of the image fails the restore with an
// error naming the frame and the volume; every file written before it is
// right, none is left with wrong data.
func TestTreeDamagedFrame(t *testing.T) {
	for _, comp := range []image.Comp{image.CompZstd, image.CompGzip} {
		t.Run(string(comp), func(t *testing.T) { testTreeDamagedFrame(t, comp) })
	}
}

func testTreeDamagedFrame(t *testing.T, comp image.Comp) {
	tree, cfg, vt, frames := frameSite(t, comp)
	bad := frames[len(frames)/2]
	f, err := os.OpenFile(vt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The payload follows the 32 KiB image header on the vtape file.
	at := image.HeaderSize + bad.Offset + bad.Size/2
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	to := filepath.Join(t.TempDir(), "to")
	_, err = Tree(context.Background(), cfg, TreeRequest{Host: "h", Path: "/data", To: to, Volumes: diskVolumes(t, cfg)}, nil)
	if err == nil {
		t.Fatal("the restore of a damaged image succeeded")
	}
	t.Log(err)
	for _, w := range []string{fmt.Sprintf("frame %d ", bad.Index), "volume ", "damaged"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	want := files(t, tree)
	got := files(t, to)
	if len(got) == 0 || len(got) >= len(want) {
		t.Errorf("%d of %d files restored before the damaged frame", len(got), len(want))
	}
	for p, b := range got {
		if !bytes.Equal(b, want[p]) {
			t.Errorf("%s was restored with wrong data", p)
		}
	}
}

// framesCover lets only a frame list that holds the whole payload drive
// the parallel read; anything else falls back to one stream.
func TestFramesCover(t *testing.T) {
	d := catalog.Dump{OrigSize: 300, PayloadSize: 250}
	good := []image.Frame{{Index: 0, TarSize: 200, Size: 150}, {Index: 1, TarOffset: 200, TarSize: 100, Offset: 150, Size: 80}}
	if why := framesCover(d, good); why != "" {
		t.Errorf("a covering list refused: %s", why)
	}
	late := []image.Frame{good[1]}
	short := []image.Frame{good[0]}
	long := append([]image.Frame(nil), good...)
	long[1].Size = 200
	for _, tc := range []struct {
		frames []image.Frame
		want   string
	}{
		{nil, "no frame list"},
		{late, "starts at payload offset 150"},
		{short, "holds 200 tar bytes"},
		{long, "past the payload"},
	} {
		if why := framesCover(d, tc.frames); !strings.Contains(why, tc.want) {
			t.Errorf("got %q, want %q", why, tc.want)
		}
	}
}
